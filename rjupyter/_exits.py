"""Nothing left behind however the program ends: what is still open gets closed.

A started notebook or tunnel is *tracked* until it is closed:

- **At interpreter exit** (normal end, ``sys.exit``, an unhandled exception, and SIGTERM or
  SIGHUP, which :mod:`._signals` turns into ``SystemExit``), every tracked object still open is
  closed, in the order they were started, newest first. The handler is registered at the first
  start, after paramiko's own exit handler, so it runs while paramiko's transports still work.
- **When it is collected unclosed** (its last reference dropped, as in a REPL that rebinds
  ``nb = RemoteNotebook(...).start()``), its *release* function runs, like an unclosed file, with
  a :class:`ResourceWarning`. The release function never references the object itself (threads
  hold only its parts), and it runs in a background thread, not inside the garbage collector:
  it does network I/O (stopping the remote server).

A leaf: it imports nothing of rjupyter.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["Tracked", "track"]

logger = logging.getLogger(__name__)

#: Seconds the exit handler waits for releases of collected objects still running.
_DRAIN_TIMEOUT = 60.0


class Closable(Protocol):
    """What is tracked: an object with an idempotent ``close()``."""

    def close(self) -> object: ...


class Tracked:
    """One tracked object: :meth:`done` once it is closed."""

    def __init__(self, owner: Closable, release: Callable[[], object], what: str) -> None:
        self._finalizer = weakref.finalize(owner, _collected, release, what)
        self._finalizer.atexit = False  # our own exit handler closes the owner instead
        with _lock:
            _open[id(self)] = weakref.ref(owner)

    def done(self) -> None:
        """The owner was closed: forget it (idempotent)."""
        self._finalizer.detach()
        with _lock:
            _open.pop(id(self), None)


def track(owner: Closable, release: Callable[[], object], what: str) -> Tracked:
    """Close ``owner`` at exit, or run ``release`` if it is collected first.

    Args:
        owner: The object; ``owner.close()`` runs at interpreter exit if it is still open.
        release: Frees what ``owner`` holds; must not reference ``owner``.
        what: How the warning names it, e.g. ``"RemoteNotebook on gpu-box"``.
    """
    _ensure_exit_handler()
    return Tracked(owner, release, what)


_lock = threading.Lock()
_open: dict[int, weakref.ref[Closable]] = {}
_registered = False
_pending: queue.Queue[Callable[[], object] | None] = queue.Queue()
_reaper: threading.Thread | None = None


def _ensure_exit_handler() -> None:
    global _registered  # noqa: PLW0603 - one process, one exit handler
    with _lock:
        if not _registered:
            atexit.register(_at_exit)
            _registered = True


def _collected(release: Callable[[], object], what: str) -> None:
    """The owner was collected unclosed: release in the background, then say so."""
    _reap(release)
    warnings.warn(
        f"unclosed {what}: closing it now (use `with`, or call close())",
        ResourceWarning,
        stacklevel=2,
    )


def _reap(release: Callable[[], object]) -> None:
    global _reaper  # noqa: PLW0603 - one reaper thread per process
    _pending.put(release)
    with _lock:
        if _reaper is None or not _reaper.is_alive():
            _reaper = threading.Thread(target=_reap_forever, name="rjupyter-reaper", daemon=True)
            _reaper.start()


def _reap_forever() -> None:
    while True:
        release = _pending.get()
        try:
            if release is None:
                return
            release()
        except Exception:
            logger.exception("closing a collected notebook or tunnel failed")
        finally:
            _pending.task_done()


def _at_exit() -> None:
    """Close every tracked object still open, newest first; wait for pending releases."""
    with _lock:
        owners = [ref() for ref in reversed(list(_open.values()))]
    for owner in owners:
        if owner is None:
            continue
        try:
            owner.close()
        except Exception as exc:  # the program is ending: report, never raise
            logger.warning("closing %r at exit failed: %s", owner, exc)
    if _reaper is not None and _reaper.is_alive():
        _pending.put(None)  # the reaper ends after what is queued before this
        _reaper.join(_DRAIN_TIMEOUT)
