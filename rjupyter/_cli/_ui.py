"""What the command line shows: step-by-step progress with a spinner, the live status line,
and terminal prompts for passphrases, passwords and 2FA codes. Drawn with rich on stderr, so
stdout carries only the URL (or the JSON) for scripts."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import unicodedata
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

import click
from rich.console import Console
from rich.status import Status

__all__ = [
    "Progress",
    "StatusLine",
    "count_kernels",
    "printable",
    "prompt_answers",
    "prompt_passphrase",
    "terminal_restored",
]

#: Our own 127.0.0.1 URLs never go through an http_proxy.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_LABELS = {
    "connect": "connecting",
    "authenticate": "authenticating",
    "launch": "starting Jupyter",
    "find": "finding the server",
    "tunnel": "opening the tunnel",
    "queue": "Slurm:",
    "node": "reaching the compute node",
    "ready": "tunnel ready",
}


class Progress:
    """Shows each start-up step with its time; a spinner while a step runs."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self._console = console
        self._quiet = quiet
        self._status: Status | None = None
        self._current: tuple[str, str, float] | None = None

    def __enter__(self) -> Progress:
        if not self._quiet:
            self._status = self._console.status("starting", spinner="dots")
            self._status.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self._finish_step()
        if self._status is not None:
            self._status.stop()

    def step(self, step: str, detail: str) -> None:
        """Mark the previous step done and show ``step`` as running."""
        self._finish_step()
        self._current = (step, detail, time.monotonic())
        if self._status is not None:
            self._status.update(f"{_LABELS.get(step, step)} {detail}")
        if step == "ready":
            self._finish_step()

    def _finish_step(self) -> None:
        if self._current is None or self._quiet:
            self._current = None
            return
        step, detail, started = self._current
        self._current = None
        elapsed = time.monotonic() - started
        mark = "[green]✓[/]" if step == "ready" else "[green]•[/]"
        self._console.print(f"{mark} {_LABELS.get(step, step)} {detail} [dim]{elapsed:.2f} s[/]")

    def pause(self) -> Callable[[], None]:
        """Stop the spinner (for a prompt); returns the function that restarts it."""
        status = self._status
        if status is None:
            return lambda: None
        status.stop()
        return status.start


class StatusLine:
    """The live line under a running notebook: host, ports, uptime, kernels, connection."""

    def __init__(
        self,
        console: Console,
        *,
        host: str,
        local_port: int,
        remote: str,
        forwards: Sequence[tuple[int, str]] = (),
    ) -> None:
        self._console = console
        self._host = host
        more = "".join(f", {local}->{target}" for local, target in forwards)
        self._ports = f"127.0.0.1:{local_port} -> {host}:{remote}{more}"
        self._started = time.monotonic()

    def render(self, *, connected: bool, kernels: int | None) -> str:
        """The text of the line."""
        uptime = int(time.monotonic() - self._started)
        hours, rest = divmod(uptime, 3600)
        clock = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        state = "[green]connected[/]" if connected else "[yellow]reconnecting[/]"
        count = "?" if kernels is None else str(kernels)
        return f"{self._ports}  up {clock}  kernels {count}  {state}"


def count_kernels(base_url: str, token: str) -> int | None:
    """How many kernels the server runs, or None when it does not answer right now."""
    url = f"{base_url}api/kernels"  # our own http://127.0.0.1 URL
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})  # noqa: S310
    try:
        with _DIRECT.open(request, timeout=2) as reply:
            return len(json.load(reply))
    except (OSError, ValueError):
        return None


def prompt_answers(
    progress: Progress | None,
) -> Callable[[str, str, list[tuple[str, bool]]], list[str]]:
    """A keyboard-interactive handler that asks on the terminal (hidden input unless echo)."""

    def answer(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        resume = progress.pause() if progress is not None else (lambda: None)
        try:
            for text in (title, instructions):
                if printable(text, keep_newlines=True).strip():
                    click.echo(printable(text, keep_newlines=True).strip(), err=True)
            return [
                click.prompt(
                    printable(prompt).rstrip(": ") or "Answer",
                    hide_input=not echo,
                    err=True,
                    default="",
                )
                for prompt, echo in prompts
            ]
        finally:
            resume()

    return answer


def prompt_passphrase(progress: Progress | None) -> Callable[[str], str]:
    """A passphrase callback that asks on the terminal."""

    def ask(path: str) -> str:
        resume = progress.pause() if progress is not None else (lambda: None)
        try:
            answer: str = click.prompt(f"Passphrase for {path}", hide_input=True, err=True)
            return answer
        finally:
            resume()

    return ask


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` from the server without control or format characters (escape sequences, ``\\r``,
    bidirectional overrides), so that a prompt cannot rewrite or hide what the terminal shows.
    Tabs become spaces; newlines stay only with ``keep_newlines``."""
    kept = []
    for char in text.replace("\t", " "):
        newline = char == "\n" and keep_newlines
        if newline or unicodedata.category(char) not in ("Cc", "Cf", "Co", "Cs"):
            kept.append(char)
    return "".join(kept)


@contextlib.contextmanager
def terminal_restored() -> Iterator[None]:
    """Put the terminal's modes (echo) back as they were, however the block ends.

    A hidden prompt turns echo off; when Ctrl-C ends the command while the prompt waits (it may
    wait in the SSH transport's thread, which the interrupt never reaches), this turns it back
    on. Without ``termios`` (Windows) or a terminal on stdin it does nothing.
    """
    try:
        import termios  # noqa: PLC0415 - absent on Windows
    except ImportError:
        yield
        return
    try:
        descriptor = sys.stdin.fileno()
        saved = termios.tcgetattr(descriptor)
    except (AttributeError, ValueError, OSError, termios.error):
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, termios.error):
            termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)
