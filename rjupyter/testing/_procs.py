"""Processes: running system commands, reading /proc, stopping processes by PID."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from ._errors import LabError

try:
    import fcntl
except ImportError:  # not on Windows; the lab needs Linux (Lab says so)
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ProcessInfo",
    "descendants",
    "is_gone",
    "list_processes",
    "netns_pids",
    "process_start_time",
    "run_command",
    "stop_pids",
    "stop_popen",
    "tail",
    "wait_until",
]

logger = logging.getLogger(__name__)

_PROC = Path("/proc")
_POLL_INTERVAL = 0.05


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """One entry of the process table, as read from /proc.

    Attributes:
        pid: Process ID.
        ppid: Parent process ID.
        state: One-letter state from /proc/PID/stat (`Z` for a zombie).
        real_uid: Real user ID.
        effective_uid: Effective user ID.
        argv: Command line, trailing empty arguments dropped; `["[name]"]` for processes
            without one (kernel threads, zombies), as `ps` shows them.
    """

    pid: int
    ppid: int
    state: str
    real_uid: int
    effective_uid: int
    argv: list[str]


def tail(text: str, lines: int = 20) -> str:
    """Return the last `lines` lines of `text`, for error messages."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_command(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a system command to completion and raise if it fails.

    Args:
        argv: The command; never passed through a shell.
        what: Short description of the step, used in the error message.
        timeout: Seconds before the command is killed.
        env: Environment for the command; the current one if omitted.
        check: Raise when the command exits non-zero (else the caller looks at `returncode`).

    Returns:
        The completed process, with text stdout and stderr.

    Raises:
        LabError: The command is missing, timed out, or exited non-zero and `check` is true.
    """
    logger.debug("running %s", list(argv))
    try:
        result = subprocess.run(  # noqa: S603 - an argv list, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"could not {what}: {' '.join(argv)}: {exc}") from exc
    if check and result.returncode != 0:
        output = tail(result.stderr + result.stdout)
        raise LabError(f"could not {what}: {' '.join(argv)} exited {result.returncode}:\n{output}")
    return result


def _read_process(pid: int) -> ProcessInfo | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        status = (_PROC / str(pid) / "status").read_text()
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in parentheses may itself contain spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    uid_fields = next(line.split()[1:3] for line in status.splitlines() if line.startswith("Uid:"))
    # Trailing NULs are dropped: processes that retitle themselves (sshd) pad with them.
    argv = [arg.decode(errors="replace") for arg in cmdline.rstrip(b"\0").split(b"\0")]
    if argv == [""]:  # kernel threads, zombies, a process in mid-exec: use its name, as ps does
        argv = [f"[{stat[stat.index('(') + 1 : stat.rindex(')')]}]"]
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        state=fields[0],
        real_uid=int(uid_fields[0]),
        effective_uid=int(uid_fields[1]),
        argv=argv,
    )


def process_start_time(pid: int) -> int | None:
    """Return when a process started (clock ticks since boot), or None if it does not exist.

    With the PID it identifies a process even after its PID is reused.
    """
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def list_processes() -> list[ProcessInfo]:
    """Return every process visible in /proc (a snapshot; processes come and go)."""
    processes = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            info = _read_process(int(entry.name))
            if info is not None:
                processes.append(info)
    return processes


def is_gone(pid: int) -> bool:
    """Tell whether a process has exited: no longer exists, or is a zombie awaiting its reaper."""
    info = _read_process(pid)
    return info is None or info.state == "Z"


def descendants(root_pid: int, processes: Iterable[ProcessInfo]) -> list[int]:
    """Return the PIDs of all live descendants of `root_pid`, parents before children."""
    children: dict[int, list[int]] = {}
    for info in processes:
        if info.state != "Z":
            children.setdefault(info.ppid, []).append(info.pid)
    found: list[int] = []
    pending = list(children.get(root_pid, []))
    while pending:
        pid = pending.pop(0)
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def netns_pids(netns_file: Path) -> list[int]:
    """Return the PIDs of live processes in the network namespace bound at `netns_file`."""
    try:
        target = netns_file.stat()
    except FileNotFoundError:
        return []
    pids = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ns = (entry / "ns" / "net").stat()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino) and not is_gone(
            int(entry.name)
        ):
            pids.append(int(entry.name))
    return pids


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _signal_all(pids: Iterable[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop_pids(pids: Iterable[int], *, grace: float = 3.0) -> list[int]:
    """Stop processes by PID: SIGTERM, then SIGKILL for those still alive after `grace` seconds.

    Our own process and PID 1 are never signalled.

    Args:
        pids: The processes to stop.
        grace: Seconds between SIGTERM and SIGKILL.

    Returns:
        The PIDs that were still alive after SIGKILL and a further two seconds (normally none).
    """
    targets = [pid for pid in dict.fromkeys(pids) if pid not in (1, os.getpid())]
    if not targets:
        return []
    logger.debug("stopping PIDs %s", targets)
    _signal_all(targets, signal.SIGTERM)
    if wait_until(lambda: all(is_gone(pid) for pid in targets), grace):
        return []
    survivors = [pid for pid in targets if not is_gone(pid)]
    logger.debug("SIGKILL to PIDs %s", survivors)
    _signal_all(survivors, signal.SIGKILL)
    wait_until(lambda: all(is_gone(pid) for pid in survivors), 2.0)
    return [pid for pid in survivors if not is_gone(pid)]


def stop_popen(process: subprocess.Popen[bytes], *, grace: float = 3.0) -> None:
    """Stop a child process we started (SIGTERM, then SIGKILL after `grace`) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def file_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_file` (created if missing) for the block."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
