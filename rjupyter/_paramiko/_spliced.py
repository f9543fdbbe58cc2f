"""One local socket spliced to one SSH channel: the per-connection half of :mod:`._pump`.

:class:`Connection` holds a forwarded connection's state; its ``from_remote`` runs in paramiko's
transport thread (the :class:`_Sink` that replaces the channel's receive buffer calls it), the
rest in the pump thread. See :mod:`._pump` for the design and the paramiko internals used.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import itertools
import logging
import selectors
import socket
import threading
import time
from typing import Any, Protocol

import paramiko
from paramiko.common import cMSG_CHANNEL_OPEN, cMSG_CHANNEL_WINDOW_ADJUST

from ._fastpath import FastPath, Sink, sender

__all__ = ["Connection", "Pump", "State"]

logger = logging.getLogger(__name__)

_labels = itertools.count(1)


class Pump(Protocol):
    """What a connection needs of the pump that serves it."""

    @property
    def read_buffer(self) -> memoryview:
        """Where upstream reads land (pump thread only)."""

    def wake(self, connection: Connection | None) -> None:
        """Have the pump look at ``connection`` soon (any thread; never blocks)."""


class State(enum.Enum):
    WAITING = "waiting for the SSH link"
    OPENING = "opening a channel"
    OPEN = "open"
    FINISHED = "finished"


class _Discard(Sink):
    """Stands in for a channel's receive buffer (``Channel.in_buffer``) and drops what comes:
    used as the stderr buffer, which a direct-tcpip channel never gets data for (paramiko would
    keep any forever, unread). Nothing reads from it."""

    def feed(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        return None

    def read_ready(self) -> bool:
        return False

    def set_event(self, event: Any) -> None:  # fileno() is never asked for here
        return None

    def __len__(self) -> int:
        return 0


class _Sink(_Discard):
    """Stands in for a channel's receive buffer and passes data to the connection.

    paramiko's transport thread (or the lean path) calls :meth:`feed` with each data packet,
    and paramiko calls :meth:`close` at the server's EOF and when the channel closes.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def feed(self, data: bytes) -> None:
        self._connection.from_remote(data)

    def close(self) -> None:
        self._connection.pump.wake(self._connection)


class _WindowSignal:
    """Stands in for a channel's send-window condition (``Channel.out_buffer_cv``): paramiko
    notifies it when the server opens the window or the channel closes, and then the pump is
    woken. Nothing waits on it: the channel's timeout is 0, so a send without window raises
    instead of waiting. (A real condition per connection costs a lock and a condition; a burst
    of connections feels it.)"""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def notify_all(self) -> None:
        self._connection.pump.wake(self._connection)

    notify = notify_all

    def wait(self, timeout: float | None = None) -> bool:
        return False


class _OpenSignal:
    """Stands in for paramiko's per-channel open event (``Transport.channel_events``): the
    transport thread sets it when the server answers the open (or the transport ends); the
    client's first bytes go out then, and the pump is woken."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._set = False

    def set(self) -> None:
        self._connection.answered()
        self._set = True
        self._connection.pump.wake(self._connection)

    def is_set(self) -> bool:
        return self._set


class _Inert:
    """Stands in for the channel events paramiko sets on close and a direct-tcpip channel
    never waits on."""

    def set(self) -> None:
        return None

    def clear(self) -> None:
        return None

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        return False


_INERT = _Inert()
_DISCARD = _Discard()
_CHANNEL_LOGGER = logging.getLogger("paramiko.transport")


class SplicedChannel(paramiko.Channel):
    """A channel for one spliced connection, set up as ``paramiko.Channel.__init__`` does but
    with the connection's stand-ins in place of the two receive buffers, two events and a
    condition it would build and this path replaces or never uses (they were a third of the
    cost of opening a connection). Its timeout is 0: a send without window raises instead of
    waiting. A test checks it has every attribute paramiko's constructor sets, and where a
    paramiko release sets more, paramiko's own channel is used instead (:func:`_new_channel`)."""

    def __init__(self, chanid: int, connection: Connection) -> None:
        self.chanid = chanid
        self.remote_chanid = 0
        self.transport = None
        self.active = False
        self.eof_received = 0
        self.eof_sent = 0
        self.in_buffer: Any = _Sink(connection)
        self.in_stderr_buffer: Any = _DISCARD
        self.timeout = 0.0
        self.closed = False
        self.ultra_debug = False
        self.lock = threading.Lock()
        self.out_buffer_cv: Any = _WindowSignal(connection)
        self.in_window_size = 0
        self.out_window_size = 0
        self.in_max_packet_size = 0
        self.out_max_packet_size = 0
        self.in_window_threshold = 0
        self.in_window_sofar = 0
        self.status_event: Any = _INERT
        self._name = str(chanid)
        self.logger = _CHANNEL_LOGGER
        self._pipe = None
        self.event: Any = _INERT
        self.event_ready = False
        self.combine_stderr = False
        self.exit_status = -1
        self.origin_addr = None


def _matches_paramiko() -> bool:
    """Whether :class:`SplicedChannel` sets what this paramiko's ``Channel()`` sets."""
    connection: Any = None
    return set(vars(SplicedChannel(0, connection))) == set(vars(paramiko.Channel(0)))


_LEAN_CHANNEL = _matches_paramiko()


def _new_channel(chanid: int, connection: Connection) -> Any:
    """A channel for ``connection``: a :class:`SplicedChannel`, or paramiko's own with the
    stand-ins put in if this paramiko's constructor sets something SplicedChannel does not."""
    if _LEAN_CHANNEL:
        return SplicedChannel(chanid, connection)
    channel: Any = paramiko.Channel(chanid)
    channel.settimeout(0.0)
    channel.in_buffer = _Sink(connection)
    channel.out_buffer_cv = _WindowSignal(connection)
    return channel


class Connection:
    """One accepted local socket and (once opened) its channel.

    ``queued``, ``unacknowledged`` and ``broken`` are shared with the transport thread and
    guarded by ``lock``; everything else belongs to the pump thread.
    """

    def __init__(self, pump: Pump, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.pump = pump
        self.sock = sock
        self.peer = peer  # the client's address, told to the server as the originator
        self.label = str(next(_labels))
        self.state = State.WAITING
        self.since = time.monotonic()
        self.channel: Any = None  # paramiko.Channel, used with some of its internals
        self.fast: FastPath | None = None  # the transport's lean path for data, if it has one
        self.opened = _OpenSignal(self)
        self.lock = threading.Lock()
        self.queued: collections.deque[bytes] = collections.deque()  # downstream, not yet written
        self.unacknowledged = 0  # bytes the local socket took whose window is not yet given back
        self.broken = False  # the local socket failed; nothing more is written to it
        self.pending = b""  # upstream bytes read locally, not sent yet (the pump sends them)
        self.early = b""  # the client's first bytes, read while the channel opens (lock)
        self.early_eof = False  # the client ended before the channel opened
        self.answered_open = False  # the server answered the open (lock)
        self.local_eof = False
        self.shut_down_local = False
        self.events = 0  # what the selector watches the socket for

    # -- transport thread -------------------------------------------------------------------

    def from_remote(self, data: bytes) -> None:
        """A data packet from the server (transport thread): write it, or queue it."""
        try:
            written = self._write_or_queue(data)
            if written:
                self.acknowledge(written, in_transport_thread=True)
        except Exception:  # never into paramiko's transport loop: it would end the session
            logger.exception("connection %s: cannot pass data on", self.label)
            with self.lock:
                self.broken = True
            self.pump.wake(self)

    def _write_or_queue(self, data: bytes) -> int:
        wake = False
        with self.lock:
            if self.state is State.FINISHED or self.broken:
                return len(data)  # dropped: the window must not stall the closing channel
            if self.queued:
                self.queued.append(data)
                return 0
            try:
                written = self.sock.send(data)
            except BlockingIOError:
                written = 0
            except OSError:
                self.broken = True
                written = len(data)
                wake = True
            if written < len(data):
                self.queued.append(data[written:])
                wake = True
        if wake:
            self.pump.wake(self)
        return written

    def answered(self) -> None:
        """The server answered the open (transport thread): send the client's first bytes now,
        rather than after a hand-off to the pump; what cannot go now is left to the pump."""
        channel = self.channel
        with self.lock:
            self.answered_open = True
            data, self.early = self.early, b""
        if not data:
            return
        sent = 0
        if channel.active and self.fast is not None and channel.transport.clear_to_send.is_set():
            view = memoryview(data)
            try:
                while sent < len(view):
                    count = self.fast.send(channel, view[sent:])
                    if count == 0:  # closing already: the bytes have nowhere to go
                        return
                    sent += count
            except (TimeoutError, OSError, EOFError, paramiko.SSHException):
                pass  # the pump meets the same condition and handles it
        if sent < len(data):
            with self.lock:  # before anything the pump read after the answer
                self.pending = data[sent:] + self.pending

    def acknowledge(self, count: int, *, in_transport_thread: bool = False) -> None:
        """Give ``count`` bytes of window back to the server (once enough have added up)."""
        channel = self.channel
        transport = channel.transport
        if in_transport_thread and not transport.clear_to_send.is_set():
            # A key exchange is on and only this thread can finish it: leave it to the pump.
            with self.lock:
                self.unacknowledged += count
            self.pump.wake(self)
            return
        adjust = channel._check_add_window(count)
        if adjust > 0:
            message = paramiko.Message()
            message.add_byte(cMSG_CHANNEL_WINDOW_ADJUST)
            message.add_int(channel.remote_chanid)
            message.add_int(adjust)
            self._send_message(transport, message)

    def _send_message(self, transport: Any, message: paramiko.Message) -> None:
        """Send a message (outside a key exchange, as ``_send_user_message``), by the lean path
        when the transport has one."""
        if self.fast is None:
            transport._send_user_message(message)
        else:
            self.fast.send_message(message)

    # -- pump thread ------------------------------------------------------------------------

    def open(self, transport: Any, address: tuple[str, int], window: int, packet: int) -> None:
        """Send the ``direct-tcpip`` open for this connection; the answer wakes the pump.

        The steps of ``Transport.open_channel`` up to its wait, with this connection's sink,
        window signal and open signal in place before the server can answer.
        """
        source = self.peer
        if not transport.is_active():
            raise paramiko.SSHException("SSH session not active")
        message = paramiko.Message()
        with transport.lock:
            window = transport._sanitize_window_size(window)
            packet = transport._sanitize_packet_size(packet)
            chanid = transport._next_channel()
            message.add_byte(cMSG_CHANNEL_OPEN)
            message.add_string("direct-tcpip")
            message.add_int(chanid)
            message.add_int(window)
            message.add_int(packet)
            message.add_string(address[0])
            message.add_int(address[1])
            message.add_string(source[0])
            message.add_int(source[1])
            channel = _new_channel(chanid, self)
            transport._channels.put(chanid, channel)
            transport.channel_events[chanid] = self.opened
            transport.channels_seen[chanid] = True
            channel.transport = transport  # (_set_transport would look its logger up again)
            channel._set_window(window, packet)
            self.channel = channel
        self.fast = sender(transport)
        self.state = State.OPENING
        self.since = time.monotonic()
        self._send_message(transport, message)

    def flush(self) -> None:
        """Write queued downstream bytes the socket can take now; give their window back."""
        written = 0
        with self.lock:
            while self.queued and not self.broken:
                head = self.queued[0]
                try:
                    count = self.sock.send(head)
                except BlockingIOError:
                    break
                except OSError:
                    self.broken = True
                    break
                written += count
                if count < len(head):
                    self.queued[0] = head[count:]
                    break
                self.queued.popleft()
            written += self.unacknowledged
            self.unacknowledged = 0
        if written:
            self.acknowledge(written)

    def _read_local(self) -> int | None:
        """One read of the local socket into the pump's buffer: the count (0 at its end), or
        None when nothing is there or the socket failed (``broken``)."""
        try:
            return self.sock.recv_into(self.pump.read_buffer)
        except BlockingIOError:
            return None
        except OSError:
            self.broken = True
            return None

    def read_early(self) -> None:
        """Read the client's first bytes while the channel opens (pump thread, once)."""
        count = self._read_local()
        if count is None:
            return
        if not count:
            self.early_eof = True  # upstream() reads the end again once the channel is open
            return
        data = bytes(self.pump.read_buffer[:count])
        with self.lock:
            if self.answered_open:
                self.pending += data
            else:
                self.early = data

    def upstream(self) -> None:
        """Read the local socket and send to the channel as far as its window allows."""
        view = memoryview(self.pending)
        if not view:
            count = self._read_local()
            if count is None:
                return
            if not count:
                self.local_eof = True
                self._send_eof()
                return
            view = self.pump.read_buffer[:count]  # what is not sent now is copied below
        sent = 0
        fast, channel = self.fast, self.channel
        try:
            while sent < len(view):
                chunk = view[sent:]  # paramiko takes any buffer
                count = channel.send(chunk) if fast is None else fast.send(channel, chunk)
                if count == 0:  # the channel is closed or at EOF: nothing more goes up
                    self.local_eof = True
                    sent = len(view)
                    break
                sent += count
        except TimeoutError:  # no window left: wait for the server's WINDOW_ADJUST
            pass
        except (OSError, EOFError, paramiko.SSHException):
            self.local_eof = True
            sent = len(view)
        self.pending = bytes(view[sent:])

    def _send_eof(self) -> None:
        """``channel.shutdown_write()``, sent by the lean path."""
        channel = self.channel
        with channel.lock:
            message = channel._send_eof()  # marks the EOF sent; None if it was, or closed
        if message is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self._send_message(channel.transport, message)

    def wanted_events(self) -> int:
        """What to watch the socket for now."""
        if self.state is State.OPENING:  # one read for the first bytes, then wait
            idle = not (self.early or self.pending or self.early_eof or self.broken)
            return selectors.EVENT_READ if idle else 0
        events = 0
        if not self.local_eof and not self.pending and not self.channel.closed:
            events |= selectors.EVENT_READ
        if self.queued:
            events |= selectors.EVENT_WRITE
        return events

    def done(self) -> bool:
        """True when both directions have ended (or either failed); shuts down the local
        sending side once the server's EOF and every queued byte have gone out."""
        if self.broken:
            return True
        if self.queued:
            return False
        channel = self.channel
        if channel.closed:
            return True
        if channel.eof_received and not self.shut_down_local:
            self.shut_down_local = True
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                return True
        return self.shut_down_local and self.local_eof and not self.pending

    def finish(self) -> None:
        """Close the socket and the channel; idempotent."""
        with self.lock:
            if self.state is State.FINISHED:
                return
            self.state = State.FINISHED
            self.queued.clear()
            self.sock.close()
        if self.channel is not None and self.channel.active:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self.channel.close()
        logger.debug("connection %s closed", self.label)
