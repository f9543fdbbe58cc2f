"""SIGTERM while a notebook is open: unwind like Ctrl-C does, so the remote server is stopped.

Python's default for SIGTERM kills the process without running ``finally`` blocks or ``__exit__``,
which would leave the remote server to its abandon timeout. While at least one RemoteNotebook is
open, and only if the program has not set a SIGTERM handler of its own, SIGTERM raises
``SystemExit(143)`` in the main thread instead; the previous disposition comes back when the last
notebook closes. Process-wide by nature, hence the module-level count.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["SigtermHold", "hold_sigterm", "holders", "release_sigterm"]

_lock = threading.Lock()
_holders = 0
_installed = False


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class SigtermHold:
    """One notebook's hold on SIGTERM: :meth:`release` gives back exactly this hold, once."""

    def __init__(self) -> None:
        self._held = True
        hold_sigterm()

    def release(self) -> None:
        """Give the hold back; idempotent (a second call releases nothing of anyone else's)."""
        with _lock:
            held, self._held = self._held, False
        if held:
            release_sigterm()


def holders() -> int:
    """How many holds are taken now."""
    return _holders


def hold_sigterm() -> None:
    """Count one open notebook; install the handler if SIGTERM still has its default."""
    global _holders, _installed  # noqa: PLW0603 - one process, one signal disposition
    with _lock:
        _holders += 1
        if (
            _holders == 1
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        ):
            signal.signal(signal.SIGTERM, _raise_exit)
            _installed = True


def release_sigterm() -> None:
    """Count one notebook closed; restore the default when it was the last."""
    global _holders, _installed  # noqa: PLW0603 - see hold_sigterm
    with _lock:
        _holders = max(0, _holders - 1)
        if _holders == 0 and _installed and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) is _raise_exit:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _installed = False
