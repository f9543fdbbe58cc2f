"""Dead-peer detection: keepalives that expect a reply, like OpenSSH's ServerAlive*.

paramiko's own ``Transport.set_keepalive`` sends requests that want no reply, so a silent
partition goes unnoticed. Here a ``keepalive@openssh.com`` global request asks for one (OpenSSH
answers with a failure, which is an answer); after ``count`` intervals without any, the peer is
declared lost.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

import paramiko

from .._errors import SSHConnectError

__all__ = [
    "Keepalive",
    "handshake_round_trip",
    "note_handshake_round_trip",
    "probe",
    "round_trip",
]

logger = logging.getLogger(__name__)

_REQUEST = "keepalive@openssh.com"
# paramiko keeps one pending-reply slot per transport: two global requests waiting at once would
# lose a reply and leave one waiter hanging. Every waiting request goes through this lock.
_request_locks: weakref.WeakKeyDictionary[paramiko.Transport, threading.Lock] = (
    weakref.WeakKeyDictionary()
)
_locks_guard = threading.Lock()
# The round trip seen while logging in, per transport: the first estimate of the link, there
# before any channel opens (see note_handshake_round_trip).
_handshake_round_trips: weakref.WeakKeyDictionary[paramiko.Transport, float] = (
    weakref.WeakKeyDictionary()
)


def note_handshake_round_trip(transport: paramiko.Transport, seconds: float) -> None:
    """Keep ``seconds`` as ``transport``'s round trip seen during the login (an upper bound:
    it may include some of the server's work)."""
    with _locks_guard:
        _handshake_round_trips[transport] = seconds


def handshake_round_trip(transport: paramiko.Transport) -> float | None:
    """The round trip noted during ``transport``'s login, if any."""
    with _locks_guard:
        return _handshake_round_trips.get(transport)


def _request_lock(transport: paramiko.Transport) -> threading.Lock:
    with _locks_guard:
        return _request_locks.setdefault(transport, threading.Lock())


def probe(transport: paramiko.Transport) -> bool:
    """Send a keepalive that expects a reply; True once answered, False if the transport closed.

    Blocks until either happens (no timeout: a silent peer blocks it; call from a thread).
    """
    with _request_lock(transport):
        if not _request(transport):
            return False
    return bool(transport.is_active())


def round_trip(transport: paramiko.Transport, *, wait: float = 5.0) -> float | None:
    """Seconds for one request/reply over ``transport``; None if no probe could be sent within
    ``wait`` seconds (another is pending) or the transport closed meanwhile."""
    lock = _request_lock(transport)
    if not lock.acquire(timeout=wait):
        return None
    try:
        start = time.monotonic()
        answered = _request(transport)
        elapsed = time.monotonic() - start
    finally:
        lock.release()
    return elapsed if answered and transport.is_active() else None


def _request(transport: paramiko.Transport) -> bool:
    """One keepalive request, waiting for its reply; False if the transport closed under it
    (paramiko raises then when the close races the send)."""
    try:
        transport.global_request(_REQUEST, wait=True)
    except (EOFError, OSError, paramiko.SSHException):
        return False
    return True


class Keepalive:
    """A daemon thread probing one transport every ``interval`` seconds until stopped.

    Args:
        transport: The transport to probe (the innermost one of a jump chain: probing it
            crosses every hop).
        label: The host as the caller named it (messages, thread name).
        interval: Seconds between probes (``ServerAliveInterval``).
        count: Unanswered intervals before the peer counts as dead (``ServerAliveCountMax``).
        on_lost: Called once, from the keepalive thread, with the error describing the loss.
    """

    def __init__(
        self,
        transport: paramiko.Transport,
        *,
        label: str,
        interval: float,
        count: int,
        on_lost: Callable[[SSHConnectError], None],
    ) -> None:
        self._transport = transport
        self._label = label
        self._interval = interval
        self._count = max(1, count)
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"rjupyter-keepalive-{label}", daemon=True
        )

    def start(self) -> None:
        """Start probing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop probing and wait for the thread (unless called from it); idempotent."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _probe(self, answered: threading.Event) -> None:
        # Returns on a reply, or when the transport closes (then it is no answer).
        if probe(self._transport):
            answered.set()

    def _run(self) -> None:
        answered = threading.Event()
        answered.set()
        unanswered = 0
        while not self._stop.wait(self._interval):
            if not self._transport.is_active():
                self._lost(f"the SSH connection to {self._label} was closed by the remote side")
                return
            if answered.is_set():
                unanswered = 0
                answered = threading.Event()
                probe = threading.Thread(
                    target=self._probe, args=(answered,), name="rjupyter-probe", daemon=True
                )
                probe.start()
                continue
            unanswered += 1
            logger.debug("no keepalive reply from %s for %d interval(s)", self._label, unanswered)
            if unanswered >= self._count:
                self._lost(
                    f"the SSH connection to {self._label} stopped answering: no reply to a "
                    f"keepalive within {self._count} x {self._interval:g} s "
                    "(ServerAliveCountMax x ServerAliveInterval). Check the network and the "
                    "host, then connect again"
                )
                return

    def _lost(self, message: str) -> None:
        if self._stop.is_set():
            return  # closed on purpose meanwhile
        logger.warning("%s", message)
        self._on_lost(SSHConnectError(message, host=self._label))
