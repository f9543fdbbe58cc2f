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
import weakref
from typing import Any, Protocol

import paramiko
from paramiko.common import cMSG_CHANNEL_OPEN

from ._channel import OpenSignal, new_channel
from ._fastpath import FastPath, channel_refs, sender
from ._gate import disable_lean_path, lean_path_enabled
from ._relay import Relay
from ._streamlocal import Address, add_target, channel_type
from ._window import grow_receive_window, window_adjust

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
    RELAYED = "relayed by paramiko's public API"  # in a thread of its own (:mod:`._relay`)
    FINISHED = "finished"


class Connection:
    """One accepted local socket and (once opened) its channel.

    ``queued``, ``unacknowledged`` and ``broken`` are shared with the transport thread and
    guarded by ``lock``; everything else belongs to the pump thread.
    """

    def __init__(
        self, pump: Pump, sock: socket.socket, peer: tuple[str, int], *, spare: bool = False
    ) -> None:
        self.pump = pump
        self.sock = sock
        # Opened ahead of a client (``sock`` is a placeholder): what the server sends is kept
        # for the client that takes it (see attach).
        self.spare = spare
        self.peer = peer  # the client's address, told to the server as the originator
        self.label = str(next(_labels))
        self.state = State.WAITING
        self.since = time.monotonic()
        #: The only channel opening when this one's open was sent: its open time can serve as
        #: a round-trip sample (set by the pump; one sent in a burst measures the queue).
        self.alone = False
        self.channel: Any = None  # paramiko.Channel, used with some of its internals
        self.fast: FastPath | None = None  # the transport's lean path for data, if it has one
        self.relay: Relay | None = None  # the public path serves it instead (RELAYED)
        self.opened = OpenSignal(self)
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
            if self.queued or self.spare:
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
            self._send_message(transport, window_adjust(channel, adjust))

    def grow_window(self, target: int) -> None:
        """Raise the channel's receive window to ``target`` bytes (pump thread, channel open or
        opening): the link turned out to need more than the window it opened with."""
        channel = self.channel
        increase = grow_receive_window(channel, target)
        if increase:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self._send_message(channel.transport, window_adjust(channel, increase))

    def _send_message(self, transport: Any, message: paramiko.Message) -> None:
        """Send a message (outside a key exchange, as ``_send_user_message``), by the lean path
        when the transport has one."""
        if self.fast is None:
            transport._send_user_message(message)
        else:
            self.fast.send_message(message)

    # -- pump thread ------------------------------------------------------------------------

    def attach(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        """Give a spare connection its client (pump thread): bytes the server sent before are
        written first. The placeholder socket is closed."""
        with self.lock:
            placeholder, self.sock, self.peer, self.spare = self.sock, sock, peer, False
        placeholder.close()

    def open(
        self,
        transport: Any,
        address: Address,
        window: int,
        packet: int,
        *,
        timeout: float,
    ) -> bool:
        """Open this connection's channel: ``direct-tcpip`` to ``(host, port)``, or
        ``direct-streamlocal@openssh.com`` to a socket path.

        By the lean path the open is sent and the answer wakes the pump (state OPENING);
        where that path is off, or an internal it uses turns out missing, the connection is
        handed to a :class:`~._relay.Relay` that opens and serves it by paramiko's public API
        (state RELAYED; the pump has nothing more to do with it).

        Returns:
            True if the pump serves the connection, False if a relay does.

        Raises:
            paramiko.SSHException: The transport is down.
            OSError: The open could not be sent.
        """
        if not transport.is_active():
            raise paramiko.SSHException("SSH session not active")
        if lean_path_enabled() and _has_open_steps(transport):
            try:
                self._open_lean(transport, address, window, packet)
                return True
            except (paramiko.SSHException, OSError, EOFError):
                raise
            except Exception as exc:  # an internal renamed or changed: the public path
                disable_lean_path(f"a channel open failed ({type(exc).__name__}: {exc})")
                self._forget_channel(transport)
        self.state = State.RELAYED
        self.relay = Relay(self.sock, self.label, self.finish)
        self.relay.start(
            transport, address, self.peer, window=window, packet=packet, timeout=timeout
        )
        return False

    def _open_lean(self, transport: Any, address: Address, window: int, packet: int) -> None:
        """The steps of ``Transport.open_channel`` up to its wait, with this connection's sink,
        window signal and open signal in place before the server can answer."""
        source = self.peer
        message = paramiko.Message()
        with transport.lock:
            window = transport._sanitize_window_size(window)
            packet = transport._sanitize_packet_size(packet)
            chanid = _next_channel_id(transport)
            message.add_byte(cMSG_CHANNEL_OPEN)
            message.add_string(channel_type(address))
            message.add_int(chanid)
            message.add_int(window)
            message.add_int(packet)
            add_target(message, address, source)
            channel = new_channel(chanid, self)
            self.channel = channel
            transport._channels.put(chanid, channel)
            transport.channel_events[chanid] = self.opened
            transport.channels_seen[chanid] = True
            channel.transport = transport  # (_set_transport would look its logger up again)
            channel._set_window(window, packet)
        self.fast = sender(transport)
        self.state = State.OPENING
        self.since = time.monotonic()
        self._send_message(transport, message)

    def _forget_channel(self, transport: Any) -> None:
        """Undo what a failed lean open left in the transport (best effort)."""
        channel, self.channel, self.fast = self.channel, None, None
        self.state = State.WAITING
        if channel is not None:
            with contextlib.suppress(Exception):
                transport._channels.delete(channel.chanid)
                transport.channel_events.pop(channel.chanid, None)

    # -- the pump asks ------------------------------------------------------------------------

    def answer(self) -> str | None:
        """How the server answered the open (OPENING): None while it has not, ``""`` for an
        open channel, else why it is not open."""
        channel = self.channel
        if not self.opened.is_set():  # (the answer also sends the first bytes)
            return "the SSH link closed" if channel.closed else None
        if channel.active:
            return ""
        if channel.closed:
            return "the SSH link closed"
        return f"the SSH server refused: {channel.transport.get_exception()}"

    def can_send(self) -> bool:
        """True if the channel's send window is open (bytes are pending upstream)."""
        return bool(self.channel.out_window_size > 0)

    def close_channel(self) -> None:
        """Close the channel if it is open (an answer that came after the connection ended)."""
        channel = self.channel
        if channel is not None and channel.active:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                channel.close()

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
        """Close the socket and the channel (or end the relay); idempotent."""
        with self.lock:
            if self.state is State.FINISHED:
                return
            self.state = State.FINISHED
            self.queued.clear()
            self.sock.close()
        if self.relay is not None:
            self.relay.close()
        self.close_channel()
        logger.debug("connection %s closed", self.label)


#: What a lean open uses of a transport beyond its public API (checked before each open).
_TRANSPORT_OPEN_STEPS = (
    "lock",
    "_sanitize_window_size",
    "_sanitize_packet_size",
    "_channel_counter",
    "_channels",
    "channel_events",
    "channels_seen",
    "clear_to_send",
    "_send_user_message",
)
_CHANNEL_STEPS = ("_set_window", "_check_add_window", "_send_eof")


_CHECKED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _next_channel_id(transport: Any) -> int:
    """``Transport._next_channel`` (``transport.lock`` held): the next channel id no live
    channel has, reading the channel map's weak references directly rather than through its
    lock (5% of a burst's GIL time went to that lookup); paramiko's own where the map keeps
    them elsewhere."""
    refs = channel_refs(transport)
    if refs is None:
        return int(transport._next_channel())
    chanid = transport._channel_counter
    while (ref := refs.get(chanid)) is not None and ref() is not None:
        chanid = (chanid + 1) & 0xFFFFFF
    transport._channel_counter = (chanid + 1) & 0xFFFFFF
    return int(chanid)


def _has_open_steps(transport: Any) -> bool:
    """Whether ``transport`` (and this paramiko's channels) have what a lean open uses (looked
    at once per transport: a burst of connections asks for each)."""
    known = _CHECKED.get(transport)
    if known is None:
        known = all(hasattr(transport, name) for name in _TRANSPORT_OPEN_STEPS) and all(
            hasattr(paramiko.Channel, name) for name in _CHANNEL_STEPS
        )
        _CHECKED[transport] = known
    return known
