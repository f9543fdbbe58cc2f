"""SIGTERM and SIGHUP while a notebook is open: unwind like Ctrl-C does, so the server is stopped.

Python's default for SIGTERM and SIGHUP (a closed terminal) kills the process without running
``finally`` blocks, ``__exit__`` or exit handlers, which would leave the remote server to its
abandon timeout. While at least one notebook or tunnel is open, each of these signals that still
has its default disposition (the program set no handler of its own, and did not ignore it, as
``nohup`` does) raises ``SystemExit(128 + signal)`` in the main thread instead: 143 for SIGTERM,
129 for SIGHUP, the statuses the default would have given. The previous disposition comes back
when the last one closes. Process-wide by nature, hence the module-level count.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["SigtermHold", "holders"]

#: The signals held: SIGTERM everywhere, SIGHUP where the platform has it.
_SIGNALS = tuple(
    sig for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig is not None
)

_lock = threading.Lock()
_holders = 0
_installed: list[signal.Signals] = []


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class SigtermHold:
    """One open notebook's (or tunnel's) hold: :meth:`release` gives back exactly this hold,
    once."""

    def __init__(self) -> None:
        self._held = True
        _hold()

    def release(self) -> None:
        """Give the hold back; idempotent (a second call releases nothing of anyone else's)."""
        with _lock:
            held, self._held = self._held, False
        if held:
            _release()


def holders() -> int:
    """How many holds are taken now."""
    return _holders


def _hold() -> None:
    global _holders  # noqa: PLW0603 - one process, one signal disposition
    with _lock:
        _holders += 1
        if _holders != 1 or threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _raise_exit)
                _installed.append(sig)


def _release() -> None:
    global _holders  # noqa: PLW0603 - see _hold
    with _lock:
        _holders = max(0, _holders - 1)
        if _holders or threading.current_thread() is not threading.main_thread():
            return
        for sig in _installed:
            if signal.getsignal(sig) is _raise_exit:
                signal.signal(sig, signal.SIG_DFL)
        _installed.clear()
