"""Channels opened ahead of the clients that will use them (the pump's spares).

A new local connection normally waits one round trip of the SSH link for its channel to open
before its first bytes go (``ssh -L`` too). A browser opening JupyterLab makes new connections
at the start of the load and again when it fans out to six, each time on the page's critical
path. :class:`Spares` keeps a few channels open to the forward's target ahead of them: an
accepted connection takes one (already open, or at least on its way) and its bytes go at once;
the pump opens a new spare in its place.

This connects to the target before any client does, which is right for an HTTP server (it
waits for a request) and wrong for services that act on a connection by itself (a banner, a
session, a log line): so spares are off for a plain forward and on for the notebook's own.
Bounded: at most ``count`` spares; spares no client took for ``idle`` seconds are closed and not
replaced until the next client comes; a spare the server closed or ended (an idle timeout, a
restart) is dropped and not replaced until then either; none outlive the pump, and a reconnect
replaces them over the new transport. A server that closes a spare just as a client takes it
(the close still on its way) leaves that client with a closed connection, as a server that
closes at once would: :data:`SPARE_IDLE` stays well below the time servers give a new connection
to send its request (Jupyter's tornado: an hour; nginx: 60 s). Whatever a spare's server sends
before a client takes it is kept for that client, as a TCP connection would have kept it.

Pump thread only, like the rest of the pump's state.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import paramiko

from .._paramiko._gate import lean_path_enabled
from .._paramiko._spliced import Connection, Pump, State
from ._windows import LinkEstimate

__all__ = ["NOTEBOOK_SPARES", "SPARE_IDLE", "Spares"]

logger = logging.getLogger(__name__)

#: Spares of the notebook's own forward: as many as the connections a browser opens to one
#: host (Chromium and Firefox: 6).
NOTEBOOK_SPARES = 6
#: Seconds a spare no client took stays open: Chromium's own limit for a connection it opened
#: ahead and did not use, and well below the time servers give a connection to send its first
#: request (so that a spare is not closed by the server just as a client takes it).
SPARE_IDLE = 10.0
#: The originator a spare's open names (no client is connected yet).
_NO_CLIENT = ("127.0.0.1", 0)


class Spares:
    """Up to ``count`` connections with their channels open (or opening) and no client yet.

    Args:
        pump: The pump that serves the connections once taken.
        open_channel: Opens a connection's channel over a transport as the pump opens every
            other (its target, window, packet size and timeout): True if the pump serves it,
            False if paramiko's public path took it over.
        link: The link's round trip: a taken spare's window grows to what it asks for now.
        count: Spares kept at most (0: none, the pump opens a channel per connection).
        idle: Seconds a spare no client took stays open.
    """

    def __init__(
        self,
        pump: Pump,
        open_channel: Callable[[Connection, Any], bool],
        link: LinkEstimate,
        *,
        count: int,
        idle: float = SPARE_IDLE,
    ) -> None:
        if count < 0:
            raise ValueError(f"count must be 0 or more; got {count}")
        self._pump = pump
        self._open_channel = open_channel
        self._link = link
        self._count = count
        self._idle = idle
        self._spares: list[Connection] = []
        self._wanted = count > 0  # keep filling (until idle, refused or stale: then at a take)
        self._since = time.monotonic()  # the last take, or the start

    def __len__(self) -> int:
        return len(self._spares)

    def fill(self, transport: Any) -> None:
        """Open spares until there are ``count`` (none while the link is down)."""
        if not self._wanted or transport is None or not transport.is_active():
            return
        if not lean_path_enabled():
            return  # the public path serves each connection in a thread of its own
        while len(self._spares) < self._count:
            connection = Connection(self._pump, socket.socket(), _NO_CLIENT, spare=True)
            try:
                served_here = self._open_channel(connection, transport)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                logger.debug("cannot open a spare channel: %s", exc)
                connection.finish()
                return
            if not served_here:  # the lean path went off during the open
                connection.finish()
                self._wanted = False
                return
            self._spares.append(connection)

    def take(self, sock: socket.socket, peer: tuple[str, int]) -> Connection | None:
        """A spare with ``sock`` as its client (open or opening), or None if none is left.
        The next :meth:`fill` replaces it."""
        self._since = time.monotonic()
        self._wanted = self._count > 0
        while self._spares:
            connection = self._spares.pop(0)
            if self._usable(connection):
                connection.attach(sock, peer)
                connection.grow_window(self._link.window())
                return connection
            connection.finish()
        return None

    def serve(self, connection: Connection) -> None:
        """A spare was woken (its open answered, the server sent, ended or closed)."""
        if connection.state is State.OPENING:
            failure = connection.answer()
            if failure is None:
                return
            if failure:
                logger.debug("a spare channel did not open: %s", failure)
                self._drop(connection)
                return
            # (Not a round-trip sample: spares open in bursts, and a burst's opens queue.)
            connection.state = State.OPEN
        if not self._usable(connection):
            logger.debug("the server ended a spare channel; dropped")
            self._drop(connection)

    def due(self) -> float | None:
        """Seconds until the spares expire, or None when there are none."""
        if not self._spares:
            return None
        return max(0.0, self._since + self._idle - time.monotonic())

    def expire(self) -> None:
        """Close the spares if no client took one for ``idle`` seconds (not replaced until a
        client comes)."""
        if self._spares and time.monotonic() - self._since >= self._idle:
            logger.debug("closing %d spare channels nobody used", len(self._spares))
            self._wanted = False
            self.close()

    def replace(self, transport: Any) -> None:
        """The link changed (a reconnect): close the spares and open new ones over
        ``transport`` (those dropped as the old link went down count for nothing)."""
        self.close()
        self._wanted, self._since = self._count > 0, time.monotonic()
        self.fill(transport)

    def close(self) -> None:
        """Close every spare; idempotent."""
        spares, self._spares = self._spares, []
        for connection in spares:
            connection.finish()

    def _usable(self, connection: Connection) -> bool:
        channel = connection.channel
        return (
            connection.state in (State.OPENING, State.OPEN)
            and channel is not None
            and not channel.closed
            and not channel.eof_received
        )

    def _drop(self, connection: Connection) -> None:
        """Drop a spare that failed or that the server ended; not replaced until a take."""
        if connection in self._spares:
            self._spares.remove(connection)
        connection.finish()
        self._wanted = False
