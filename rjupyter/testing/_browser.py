"""Headless Chromium driven over the Chrome DevTools Protocol, for browser tests and benchmarks.

A small client over one WebSocket (``websocket-client``, a test extra): enough to open a page,
wait for something to appear in it, press keys and take a screenshot. Waiting happens inside the
page (a promise that resolves when a condition holds), never by sleeping here.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from ._errors import LabError
from ._procs import stop_popen, wait_until

__all__ = ["Chromium", "find_chromium"]

#: Flags that work in a container as root, with no GPU and no network beyond loopback.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
    "--remote-debugging-port=0",
)
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")

_WAIT_FOR = """
new Promise((resolve, reject) => {
  const deadline = Date.now() + %d;
  const check = () => {
    let value;
    try { value = (%s); } catch (error) { value = null; }
    if (value) { resolve(String(value)); }
    else if (Date.now() > deadline) { reject(new Error("timed out waiting for: %s")); }
    else { requestAnimationFrame(check); }
  };
  check();
})
"""


def find_chromium() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """A headless Chromium with a fresh profile and one page, stopped by PID on exit."""

    def __init__(self, executable: str | None = None) -> None:
        self._executable = executable or find_chromium()
        self._process: subprocess.Popen[bytes] | None = None
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._socket: Any = None
        self._ids = itertools.count(1)
        self._session = ""
        self._events: list[str] = []

    def __enter__(self) -> Chromium:
        """Start the browser and attach to a blank page.

        Raises:
            LabError: Chromium is missing or did not start.
        """
        import websocket  # websocket-client: a test extra  # noqa: PLC0415

        if self._executable is None:
            raise LabError("Chromium is not installed (Debian: apt-get install chromium)")
        if self._process is not None:
            # Entering twice would start a second browser and lose the first one's PID.
            raise LabError("this Chromium is already running; enter it once")
        self._profile = tempfile.TemporaryDirectory(prefix="rjupyter-chromium-")
        self._process = subprocess.Popen(  # noqa: S603 - an argv list, no shell
            [self._executable, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own process group: Chromium's zygotes, renderers and crash handler outlive
            # the browser process itself, so they are stopped as this group (see close()).
            start_new_session=True,
        )
        try:
            url = self._read_devtools_url()
            self._socket = websocket.create_connection(url, timeout=120, suppress_origin=True)
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            attached = self._call("Target.attachToTarget", targetId=target, flatten=True)
            self._session = attached["sessionId"]
            self.page("Page.enable")
            # A headless page has no window focus of its own: without this, keys can get lost.
            self.page("Emulation.setFocusEmulationEnabled", enabled=True)
        except BaseException:
            self.close()
            raise
        return self

    def _read_devtools_url(self) -> str:
        assert self._process is not None
        assert self._process.stderr is not None
        seen = []
        for raw in self._process.stderr:
            line = raw.decode(errors="replace")
            seen.append(line)
            match = _LISTENING.search(line)
            if match:
                # Keep reading what it logs, or a full pipe would stall the browser.
                stream = self._process.stderr
                threading.Thread(target=stream.read, daemon=True).start()
                return match.group(1)
        raise LabError("Chromium exited before listening:\n" + "".join(seen[-20:]))

    def _call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        while True:
            reply = json.loads(self._socket.recv())
            if reply.get("id") != message_id:
                if "method" in reply:
                    self._events.append(reply["method"])
                continue
            if "error" in reply:
                raise LabError(f"{method} failed: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method on the page (``Page.navigate``, ``Input.insertText``, ...).

        Raises:
            LabError: The browser refused the call.
        """
        return self._call(method, session=True, **params)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited).

        Raises:
            LabError: The expression threw.
        """
        result = self.page(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise LabError(f"in the page: {text}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        """Load ``url``; return after its ``load`` event (scripts may still be running).

        Raises:
            LabError: The navigation failed.
        """
        self._events.clear()
        result = self.page("Page.navigate", url=url)
        if result.get("errorText"):
            raise LabError(f"cannot load {url}: {result['errorText']}")
        while "Page.loadEventFired" not in self._events:
            message = json.loads(self._socket.recv())
            if "method" in message:
                self._events.append(message["method"])

    def wait_for(self, condition: str, *, timeout: float = 60) -> str:
        """Wait in the page until the JavaScript ``condition`` is truthy; return it as a string.

        Raises:
            LabError: Not within ``timeout`` seconds.
        """
        quoted = condition.replace("\\", "\\\\").replace('"', '\\"')
        return str(self.evaluate(_WAIT_FOR % (int(timeout * 1000), condition, quoted)))

    def press(self, key: str, *, code: str, key_code: int, modifiers: int = 0) -> None:
        """Press and release one key (``modifiers``: 1 Alt, 2 Ctrl, 4 Meta, 8 Shift).

        Raises:
            LabError: The browser refused the event.
        """
        for kind in ("rawKeyDown", "keyUp"):
            self.page(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                windowsVirtualKeyCode=key_code,
                modifiers=modifiers,
            )

    def click(self, selector: str) -> None:
        """Click the middle of the first element matching the CSS ``selector``.

        Raises:
            LabError: No such element.
        """
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.page(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page to ``path``.

        Raises:
            LabError: The browser refused.
        """
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Stop the browser by PID and remove its profile; idempotent."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._process is not None:
            _stop_group(self._process)
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the browser; see :meth:`close`."""
        self.close()


def _live_group_members(group: int) -> list[int]:
    """PIDs in process group ``group`` that are not zombies (those only wait to be reaped)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _parent, process_group = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(process_group) == group and state != "Z":
            members.append(int(entry.name))
    return members


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the browser and every process of its group (the group we created for it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    stop_popen(process)
    if not wait_until(lambda: not _live_group_members(process.pid), 5):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
