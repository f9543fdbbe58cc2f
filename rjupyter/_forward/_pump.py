"""Moving bytes between local sockets and SSH channels: one thread for all connections.

Handing each connection to its own threads costs more than the bytes: a thread start per
direction per connection, a blocking ``open_channel`` per connection, and a wake-up of another
thread for every packet. Instead, like ``ssh`` itself, one :class:`Pump` thread per forwarder
runs a selector over the listening socket and every local connection:

- **Accept and open** in the pump thread: the ``direct-tcpip`` open is sent without waiting.
  While it opens, the client's first bytes are read (once); the server's confirmation, on
  paramiko's transport thread, sends them at once and wakes the pump (paramiko's per-channel
  open event is replaced by one that does both).
- **Downstream** (server to local client) runs *in paramiko's transport thread*: the channel's
  receive buffer is replaced by a :class:`_Sink` before the open is sent, so each data packet is
  written to the non-blocking local socket the moment it is decrypted. What the socket cannot
  take now is queued and written by the pump when the socket drains. Window is given back only
  for bytes the local socket took, so a slow local reader holds back the server (at most one
  window per connection is queued here) and the transport thread never blocks on a local socket.
  A WINDOW_ADJUST is not sent from the transport thread during a key exchange (it would wait for
  the exchange that only that thread can finish); the pump sends it then.
- **Windows** follow the link: each channel opens with the window the link's round trip asks
  for (:class:`._windows.LinkEstimate`), and when the estimate changes, the pump grows the
  windows of the channels already open (and of the jump host's channel that carries the
  connection) with a WINDOW_ADJUST, so a transfer that began before the estimate was in
  speeds up as soon as it is.
- **Upstream** (local client to server) in the pump thread; a channel with no send window left is
  not read from until the server opens the window again (paramiko's window condition is replaced
  by one that also wakes the pump).
- **Half-close** is kept: an EOF one way shuts down only that way. A channel the server closes
  ends the local connection once the queued bytes are written; a local reset closes the channel.
- **Spares** (:mod:`._spares`, the notebook's forward): channels opened ahead of clients.
- **While the link is down** (a reconnect in progress) accepted connections wait, up to
  :data:`LINK_WAIT` seconds, for :meth:`Pump.use_transport`.
- **Supervised**: if the pump's thread dies of an unexpected error, it closes the listening
  sockets (new connections are refused at once instead of waiting in the backlog) and every
  connection, logs the error once, and keeps it as :attr:`Pump.error`.

The steps above use paramiko internals; all of them live in :mod:`rjupyter._paramiko`
(:class:`~rjupyter._paramiko._spliced.Connection` and what it uses), which this module reaches
only by public names. Outside the tested paramiko range, or once an internal turns out missing,
a connection is handed to a thread that serves it by paramiko's public API instead (state
RELAYED): slower, never broken.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from typing import Any

import paramiko

from .._errors import TunnelError
from .._paramiko._fastpath import batched_writes
from .._paramiko._spliced import Connection, State
from .._paramiko._streamlocal import Address, describe
from .._paramiko._window import grow_stream_window
from ._spares import Spares
from ._windows import LinkEstimate

__all__ = ["CHANNEL_OPEN_TIMEOUT", "LINK_WAIT", "MAX_CONNECTIONS", "READ_SIZE", "Pump"]

logger = logging.getLogger(__name__)

#: Bytes asked for per read of a local socket.
READ_SIZE = 1 << 18
#: Seconds a new local connection waits for the SSH link while it is being re-established.
LINK_WAIT = 30.0
#: Seconds allowed for the SSH server to open a channel to the remote address.
CHANNEL_OPEN_TIMEOUT = 30.0
#: Seconds a listener is not watched after accept() failed (e.g. out of file descriptors).
_PAUSE = 0.1
#: Connections accepted per turn of the loop, so that a burst does not starve the others.
_ACCEPTS_PER_TURN = 64
#: Open connections per tunnel at most (each may queue up to one channel window of data, so
#: this also bounds the memory any local user can make a tunnel hold); more are refused.
MAX_CONNECTIONS = 1024


class Pump:
    """The thread that accepts, opens and serves every connection of one forwarder.

    Args:
        name: The thread's name.
        remote_address: ``(host, port)`` as seen from the SSH server, or a socket's path there.
        link: The link's round trip: sizes each channel's window, and learns from open times.
        max_packet: The largest SSH packet the server may send us.
        max_connections: Connections open at once at most; more are closed as they come.
        spares: Channels kept open ahead of clients (:class:`._spares.Spares`; 0: none).
    """

    def __init__(
        self,
        name: str,
        remote_address: Address,
        link: LinkEstimate,
        max_packet: int,
        *,
        max_connections: int = MAX_CONNECTIONS,
        spares: int = 0,
    ) -> None:
        self._spares = Spares(self, self._open_channel, link, count=spares)
        self._max_connections = max_connections
        self._refusing = False  # over the limit now (logged once per episode)
        self._remote_address = remote_address
        self._target = describe(remote_address)
        self._link = link
        # Upstream reads land here (pump thread only): recv() of a large size allocates, and
        # maps and unmaps, that much on every call, which costs more than the read itself.
        self.read_buffer = memoryview(bytearray(READ_SIZE))
        self._max_packet = max_packet
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._woken: dict[Connection, None] = {}
        self._signalled = False  # a wake-up byte is on its way
        self._sleeping = False  # the pump is (about to be) blocked in select
        self._closing = False
        self._transport: Any = None
        self._broken: str | None = None
        self._transport_changed = False
        self._window_changed = False  # the link's window changed: grow the open channels
        self._listeners: list[socket.socket] = []  # given, not yet watched
        self._all_listeners: list[socket.socket] = []  # closed if the pump dies
        self.error: TunnelError | None = None  # why the pump died, if it did
        self._relays: set[Connection] = set()  # handed to the public path (pump thread only)
        self._connections: set[Connection] = set()  # pump thread only
        self._unopened: set[Connection] = set()  # of those, the ones waiting or opening
        self._next_expiry = 0.0
        self._paused: list[tuple[float, socket.socket]] = []  # listeners not watched until then
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        link.on_change(self._link_changed)

    # -- any thread ---------------------------------------------------------------------------

    def listen(self, sock: socket.socket) -> None:
        """Accept connections on the listening ``sock`` (the caller keeps and closes it; a pump
        that has died closes it, so that clients are refused at once)."""
        sock.setblocking(False)
        with self._lock:
            dead = self.error is not None
            if not dead:
                self._listeners.append(sock)
                self._all_listeners.append(sock)
        if dead:
            sock.close()
            return
        self.wake(None)

    def use_transport(self, transport: paramiko.Transport) -> None:
        """Open channels over ``transport`` from now on; connections waiting for the link go."""
        with self._lock:
            self._transport = transport
            self._transport_changed = True
        self.wake(None)

    def _link_changed(self, window: int) -> None:
        """The link's window changed (any thread): the pump grows the open channels'."""
        with self._lock:
            self._window_changed = True
        self.wake(None)

    def give_up(self, reason: str) -> None:
        """The link will not come back: close waiting and new connections, saying why."""
        with self._lock:
            self._broken = reason
            self._transport_changed = True
        self.wake(None)

    def wake(self, connection: Connection | None) -> None:
        """Have the pump look at ``connection`` (or its own state) soon; never blocks."""
        with self._lock:
            if connection is not None:
                self._woken[connection] = None
            # A busy pump looks at the woken connections before it next sleeps: no byte, no
            # system call, no thread switch (a burst of connections wakes it thousands of times).
            if self._signalled or not self._sleeping or self._closing:
                return
            self._signalled = True
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            self._wake_writer.send(b"\0")

    def close(self) -> None:
        """Stop accepting, end every connection (sockets and channels) and the thread;
        idempotent."""
        with self._lock:
            already = self._closing
            self._closing = True
        if not already:
            with contextlib.suppress(OSError):
                self._wake_writer.send(b"\0")
        if self._thread is not threading.current_thread():
            self._thread.join()

    # -- pump thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._closing:
                with self._lock:
                    pending = bool(
                        self._woken
                        or self._transport_changed
                        or self._window_changed
                        or self._listeners
                    )
                    self._sleeping = not pending
                timeout = 0 if pending else 1.0 if self._unopened else self._spares.due()
                if self._paused:
                    timeout = _PAUSE if timeout is None else min(timeout, _PAUSE)
                    self._resume_listeners()
                ready = self._selector.select(timeout)
                with self._lock:
                    self._sleeping = False
                self._turn(ready)
                if self._unopened and time.monotonic() >= self._next_expiry:
                    self._next_expiry = time.monotonic() + 0.5
                    self._expire()
                self._spares.expire()
        except Exception as exc:
            self._die(exc)
        finally:
            self._spares.close()
            for connection in list(self._connections):
                self._end(connection)
            for connection in self._relays:
                connection.finish()
            self._selector.close()
            self._wake_reader.close()
            self._wake_writer.close()

    def _die(self, exc: Exception) -> None:
        """Refuse new connections from now on (close the listeners) and keep the error."""
        error = TunnelError(
            f"the tunnel to {self._target} stopped forwarding: its pump failed "
            f"({type(exc).__name__}: {exc}). Close it and open a new one"
        )
        error.__cause__ = exc
        with self._lock:
            self.error = error
            listeners, self._all_listeners = self._all_listeners, []
        logger.error("%s", error, exc_info=exc)
        for listener in listeners:
            with contextlib.suppress(OSError):
                listener.close()

    def _turn(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Serve what the selector found ready, then the connections woken by other threads.
        A turn that may serve several connections (more than one ready or woken, or a listener
        to accept from) batches its SSH packets (see ``batched_writes``); a lone request does
        not wait for that."""
        if len(self._woken) <= 1 and (
            not ready or (len(ready) == 1 and isinstance(ready[0][0].data, Connection))
        ):
            self._serve_ready(ready)
            return
        with batched_writes(self._transport):
            self._serve_ready(ready)

    def _serve_ready(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        drain = False
        for key, events in ready:
            if key.data is None:
                drain = True
            elif isinstance(key.data, Connection):
                self._serve(key.data, events)
            else:
                self._accept(key.fileobj)  # type: ignore[arg-type]
        if (
            drain
            or self._woken
            or self._transport_changed
            or self._window_changed
            or self._listeners
        ):
            self._serve_woken(drain)  # (unlocked reads: the top of the loop looks again, under
            # the lock, before the pump sleeps)

    def _resume_listeners(self) -> None:
        now = time.monotonic()
        for entry in [entry for entry in self._paused if entry[0] <= now]:
            self._paused.remove(entry)
            self._selector.register(entry[1], selectors.EVENT_READ, entry[1].fileno())

    def _serve_woken(self, drain: bool) -> None:
        if drain:
            with contextlib.suppress(BlockingIOError):
                self._wake_reader.recv(4096)
        with self._lock:
            woken = list(self._woken)
            self._woken.clear()
            self._signalled = False
            changed, self._transport_changed = self._transport_changed, False
            grow, self._window_changed = self._window_changed, False
            new_listeners, self._listeners = self._listeners, []
            transport = self._transport
        for listener in new_listeners:
            self._selector.register(listener, selectors.EVENT_READ, listener.fileno())
        if changed:
            for connection in [c for c in self._unopened if c.state is State.WAITING]:
                self._start(connection)
            self._spares.replace(transport if self._broken is None else None)
        if (grow or changed) and transport is not None:
            self._grow_windows(transport)
        for connection in woken:
            self._serve(connection, 0)

    def _grow_windows(self, transport: paramiko.Transport) -> None:
        """Give every open channel, and a jump host's channel carrying ``transport``, the
        window the link asks for now."""
        window = self._link.window()
        grow_stream_window(transport, window)
        for connection in self._connections:
            if connection.state is State.OPEN:
                connection.grow_window(window)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of file descriptors, say: the listener stays readable, so stop watching
                # it for a moment instead of spinning, and let the backlog hold the clients.
                logger.warning("cannot accept a connection (retrying in %g s): %s", _PAUSE, exc)
                self._selector.unregister(listener)
                self._paused.append((time.monotonic() + _PAUSE, listener))
                return
            if self._over_limit():
                sock.close()
                continue
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # the client is already gone (a reset right after connecting)
                sock.close()
                continue
            spare = self._spares.take(sock, address[:2])
            connection = spare or Connection(self, sock, address[:2])
            self._connections.add(connection)
            if connection.state is not State.OPEN:
                self._unopened.add(connection)
            if spare is None:
                self._start(connection)
            else:  # its channel is open (or opening) already: its first bytes can go at once
                self._watch(connection, connection.wanted_events())
            self._spares.fill(self._transport if self._broken is None else None)

    def _over_limit(self) -> bool:
        """True while the tunnel holds :data:`MAX_CONNECTIONS` connections (logged once)."""
        self._relays = {c for c in self._relays if c.state is State.RELAYED}
        over = len(self._connections) + len(self._relays) >= self._max_connections
        if over and not self._refusing:
            logger.warning(
                "the tunnel to %s has %d connections open, its limit: refusing new ones "
                "until some close",
                self._target,
                self._max_connections,
            )
        self._refusing = over
        return over

    def _start(self, connection: Connection) -> None:
        """Open the connection's channel, or let it wait for the link."""
        with self._lock:
            transport, broken = self._transport, self._broken
        if broken is not None:
            self._fail(connection, f"the SSH link is down: {broken}")
            return
        if transport is None or not transport.is_active():
            return  # waits (WAITING) until use_transport, give_up or LINK_WAIT
        connection.alone = len(self._unopened) == 1  # (it is one of them)
        try:
            served_here = self._open_channel(connection, transport)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._fail(connection, f"cannot open a channel: {exc}")
            return
        except Exception as exc:  # a bug or a changed paramiko: this connection only
            logger.exception("connection %s: opening its channel failed", connection.label)
            self._fail(connection, f"cannot open a channel: {type(exc).__name__}: {exc}")
            return
        if not served_here:  # relayed by paramiko's public API in a thread of its own
            self._connections.discard(connection)
            self._unopened.discard(connection)
            self._relays = {c for c in self._relays if c.state is State.RELAYED}
            self._relays.add(connection)
            return
        self._watch(connection, connection.wanted_events())  # for the client's first bytes

    def _open_channel(self, connection: Connection, transport: Any) -> bool:
        """Open ``connection``'s channel to the target (:meth:`Connection.open`)."""
        return connection.open(
            transport,
            self._remote_address,
            self._link.window(),
            self._max_packet,
            timeout=CHANNEL_OPEN_TIMEOUT,
        )

    def _serve(self, connection: Connection, events: int) -> None:
        if connection.state is State.FINISHED:
            # Given up while opening, and the server's answer came after all: close it there.
            connection.close_channel()
            return
        if connection.spare:
            self._spares.serve(connection)
            return
        try:
            if connection.state is State.OPENING:
                if events & selectors.EVENT_READ:
                    connection.read_early()  # sent by the transport thread at the answer
                if not self._opened(connection):
                    self._watch(connection, connection.wanted_events())
                    return
                # Bytes sent after the first ones: read them now rather than after another
                # turn of the selector.
                events |= selectors.EVENT_READ
            if connection.state is not State.OPEN:
                return
            if connection.queued or connection.unacknowledged:  # else nothing to flush
                connection.flush()
            if events & selectors.EVENT_READ or (connection.pending and connection.can_send()):
                connection.upstream()
            if connection.done():
                self._end(connection)
                return
            self._watch(connection, connection.wanted_events())
        except Exception:
            logger.exception("connection %s failed", connection.label)
            self._end(connection)

    def _opened(self, connection: Connection) -> bool:
        """Move an OPENING connection on once the server answered; False while it has not."""
        failure = connection.answer()
        if failure is None:
            return False
        if failure:
            self._fail(connection, failure)
            return False
        if connection.alone and len(self._unopened) == 1:
            # Opened with no other open before or beside it: the time is the link's round
            # trip, not a queue (a burst of opens would make the windows grow for nothing).
            self._link.observe(time.monotonic() - connection.since)
        connection.grow_window(self._link.window())  # if it changed while the channel opened
        connection.state = State.OPEN
        self._unopened.discard(connection)
        logger.debug("connection %s to %s open", connection.label, self._target)
        return True

    def _fail(self, connection: Connection, reason: str) -> None:
        logger.warning(
            "cannot open a channel to %s for local connection %s: %s",
            self._target,
            connection.label,
            reason,
        )
        self._end(connection)

    def _expire(self) -> None:
        now = time.monotonic()
        for connection in list(self._unopened):
            age = now - connection.since
            if connection.state is State.WAITING and age > LINK_WAIT:
                self._fail(connection, f"the SSH link did not come back within {LINK_WAIT:g} s")
            elif connection.state is State.OPENING and age > CHANNEL_OPEN_TIMEOUT:
                self._fail(connection, "the SSH server did not answer the channel open")

    def _watch(self, connection: Connection, events: int) -> None:
        if events == connection.events:
            return
        if not events:
            self._selector.unregister(connection.sock)
        elif not connection.events:
            self._selector.register(connection.sock, events, connection)
        else:
            self._selector.modify(connection.sock, events, connection)
        connection.events = events

    def _end(self, connection: Connection) -> None:
        self._connections.discard(connection)
        self._unopened.discard(connection)
        if connection.events:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(connection.sock)
            connection.events = 0
        connection.finish()
