"""Keeping a session alive: heartbeats to the server's watchdog, and reconnecting after drops.

One daemon thread per session. Every ``tick`` it looks at the connection; when the connection is
down (a reset, sshd killed, keepalives unanswered, a heartbeat that got no answer) it reconnects
with exponential backoff, and hands the new connection to the session, which moves its tunnel and
server onto it. It gives up after ``reconnect_timeout`` seconds and keeps the error for the next
use of the session and for ``close()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .._deadline import Deadline
from .._errors import HeartbeatError, RJupyterError, SSHConnectError
from ._connection import ConnectionSlot, SSHConnection

__all__ = [
    "ConnectionCallback",
    "Keeper",
]

logger = logging.getLogger(__name__)

#: Seconds stop() waits for the thread (one reconnect attempt is at most 20 s).
_STOP_JOIN = 30.0

#: ``on_connection_change(connected)``: called with False when the link drops, True when back.
ConnectionCallback = Callable[[bool], None]


class Keeper:
    """Watches one session's SSH connection; beats its heartbeat; reconnects when it drops.

    Args:
        label: The host as the user named it (for messages).
        slot: Holds the session's current connection.
        reconnect: Opens a new connection within the given deadline.
        adopt: Moves the session onto a new connection (swaps it into ``slot``); raises when
            the server is gone.
        heartbeat: Sends one heartbeat over a connection (None: no heartbeats).
        heartbeat_period: Seconds between heartbeats.
        reconnect_timeout: Seconds to keep trying before giving up.
        on_change: Told when the link goes down (False) and comes back (True).
        tick: Seconds between looks at the connection.
        backoff: The first and the longest pause between reconnect attempts (each failed
            attempt doubles the pause).
    """

    def __init__(
        self,
        *,
        label: str,
        slot: ConnectionSlot,
        reconnect: Callable[[Deadline], SSHConnection],
        adopt: Callable[[SSHConnection], None],
        heartbeat: Callable[[SSHConnection], None] | None,
        heartbeat_period: float,
        reconnect_timeout: float,
        on_change: ConnectionCallback | None = None,
        tick: float = 0.25,
        backoff: tuple[float, float] = (0.5, 15.0),
    ) -> None:
        self._label = label
        self._slot = slot
        self._reconnect = reconnect
        self._adopt = adopt
        self._heartbeat = heartbeat
        self._heartbeat_period = heartbeat_period
        self._reconnect_timeout = reconnect_timeout
        self._on_change = on_change
        self._tick = tick
        self._backoff = backoff
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._adopting = threading.Lock()  # an adopt and stop() never overlap
        self._beat_failing = False
        self.connected = True
        self.error: RJupyterError | None = None
        self.reconnects = 0
        self._thread = threading.Thread(target=self._run, name=f"rjupyter-keeper-{label}")
        self._thread.daemon = True

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for the thread; idempotent.

        A reconnect in flight is not adopted once this returns: the new connection is closed.
        """
        with self._adopting:
            self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_STOP_JOIN)

    def fail(self, error: RJupyterError) -> None:
        """The session is gone for good (e.g. its server exited): keep ``error`` for the next use,
        tell ``on_change``, stop watching. The first error wins."""
        self._give_up(error)
        self._stop.set()
        self._set_connected(False)

    def _run(self) -> None:
        next_beat = time.monotonic() + self._heartbeat_period
        while not self._stop.wait(self._tick):
            if not self._is_up(self._slot.current):
                if not self._recover():
                    return
                next_beat = time.monotonic() + self._heartbeat_period
            elif self._heartbeat is not None and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self._heartbeat_period
                if not self._beat():
                    return

    def _beat(self) -> bool:
        """One heartbeat; False when the session is gone for good."""
        assert self._heartbeat is not None
        try:
            self._heartbeat(self._slot.current)
        except SSHConnectError as exc:
            logger.info("heartbeat to %s failed (%s); reconnecting", self._label, exc)
            self._slot.current.close()
        except HeartbeatError as exc:
            if not self._beat_failing:
                self._beat_failing = True
                logger.warning("%s; retrying", exc)
                self._set_connected(False)
        except RJupyterError as exc:  # the server is gone for good (e.g. its job ended)
            self._give_up(exc)
            self._set_connected(False)
            return False
        else:
            if self._beat_failing:
                self._beat_failing = False
                logger.warning("heartbeats to %s work again", self._label)
                self._set_connected(True)
        return True

    @staticmethod
    def _is_up(connection: SSHConnection) -> bool:
        return connection.is_active and getattr(connection, "lost", None) is None

    def _recover(self) -> bool:
        """Reconnect with backoff; False when given up (the error is kept)."""
        self._set_connected(False)
        logger.warning("connection to %s lost; reconnecting", self._label)
        deadline = Deadline(self._reconnect_timeout)
        pause, longest = self._backoff
        last: Exception | None = None
        while not deadline.expired and not self._stop.is_set():
            try:
                connection = self._reconnect(Deadline(min(deadline.remaining(1.0), 20.0)))
            except SSHConnectError as exc:
                last = exc
                logger.info("reconnecting to %s failed: %s", self._label, exc)
                self._stop.wait(min(pause, deadline.remaining()))
                pause = min(pause * 2, longest)
                continue
            with self._adopting:
                if self._stop.is_set():  # stopped meanwhile: the session is closing
                    connection.close()
                    return False
                try:
                    self._adopt(connection)
                except RJupyterError as exc:
                    connection.close()
                    self._give_up(exc)
                    return False
            self._beat_failing = False
            self.reconnects += 1
            logger.warning("reconnected to %s", self._label)
            self._set_connected(True)
            return True
        if not self._stop.is_set():
            self._give_up(
                SSHConnectError(
                    f"lost the connection to {self._label} and could not reconnect within "
                    f"{self._reconnect_timeout:.0f} s (last error: {last}). The remote server "
                    "keeps running until its abandon timeout; RemoteNotebook.attach() reaches "
                    "it again once the host is back",
                    host=self._label,
                )
            )
        return False

    def _give_up(self, error: RJupyterError) -> None:
        with self._lock:
            if self.error is not None:
                return
            self.error = error
        logger.error("giving up on %s: %s", self._label, error)

    def _set_connected(self, connected: bool) -> None:
        with self._lock:
            if self.connected == connected:
                return
            self.connected = connected
        if self._on_change is not None:
            try:
                self._on_change(connected)
            except Exception:
                logger.exception("on_connection_change callback failed")
