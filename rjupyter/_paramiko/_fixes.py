"""Changes to how paramiko's transport meets the network: for speed, and for a bug.

:class:`ReadAheadSocket` serves paramiko's many small reads from one large one;
:class:`ReadAheadChannel` does the same for a connection made through a jump host (whose stream
is a channel of the jump host's connection).

paramiko issue #822 (open since 2016): when the server closes a channel after our side has
started a key exchange (paramiko re-keys on its own every 512 MiB), the transport thread answers
the close with ``_send_user_message``, which waits for the exchange to finish, and only that very
thread can finish it. It waits 30 s, and the whole connection dies. A tunnel closes channels all
the time (every HTTP connection of JupyterLab), so a re-key now and then meets one.

:func:`install` replaces, on one transport, the handler paramiko's transport thread calls for a
channel close: it takes paramiko's steps, and sends the closing messages by the lean path where
the transport has one (:func:`send_closes_with`); during a key exchange, the channel is closed
at once and its closing messages are sent from a short-lived thread as soon as it is done.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import paramiko
from paramiko.buffered_pipe import PipeTimeout
from paramiko.common import MSG_CHANNEL_CLOSE

from ._gate import lean_path_enabled

__all__ = [
    "STREAM_MAX_PACKET",
    "ChunkPipe",
    "ReadAheadChannel",
    "ReadAheadSocket",
    "Sink",
    "install",
    "send_closes_with",
]

logger = logging.getLogger(__name__)


class Sink:
    """A channel receive buffer that takes data as it arrives: the lean path
    (:mod:`._fastpath`) gives data for its channel to :meth:`feed` straight from the packet.
    ``_spliced`` has the one of forwarded connections, :class:`ChunkPipe` the one of a jump
    host's channel."""

    def feed(self, data: bytes) -> None:
        raise NotImplementedError


#: What the close handler uses of paramiko beyond its public API.
_CLOSE_INTERNALS = (
    (paramiko.Transport, "_channel_handler_table"),
    (paramiko.Transport, "_unlink_channel"),
    (paramiko.Transport, "_send_user_message"),
    (paramiko.Channel, "_close_internal"),
)


def install(transport: paramiko.Transport) -> bool:
    """Apply the close fix to ``transport`` (before it carries channels); never raises.

    Returns:
        False, and paramiko's own handling, outside the tested paramiko range or where an
        internal it needs is missing.
    """
    if not lean_path_enabled():
        return False
    missing = [name for owner, name in _CLOSE_INTERNALS if not hasattr(owner, name)]
    if missing:
        logger.debug("paramiko %s lacks %s: no channel-close fix", paramiko.__version__, missing)
        return False
    try:
        raw: Any = transport
        table = dict(paramiko.Transport._channel_handler_table)  # type: ignore[attr-defined]
        table[MSG_CHANNEL_CLOSE] = _handle_close
        raw._channel_handler_table = table
    except Exception:  # a changed internal: paramiko's own handler stays
        logger.debug("no channel-close fix on paramiko %s", paramiko.__version__, exc_info=True)
        return False
    return True


#: How each transport with a lean path sends a message (``FastPath.send_message``, registered
#: by :func:`rjupyter._paramiko._fastpath.install`): the replies to a close go that way.
_SENDERS: weakref.WeakKeyDictionary[Any, Callable[[paramiko.Message], None]] = (
    weakref.WeakKeyDictionary()
)


def send_closes_with(transport: Any, send: Callable[[paramiko.Message], None]) -> None:
    """Answer ``transport``'s channel closes with ``send`` rather than paramiko's framing."""
    _SENDERS[transport] = send


def _handle_close(channel: Any, message: paramiko.Message) -> None:
    """paramiko's ``Channel._handle_close`` steps: close the channel and unlink it, then send
    its EOF and CLOSE — by the lean path where the transport has one (batched with what this
    thread sends while it reads), else as paramiko does; during a key exchange (started by this
    thread, the only one that can finish it) from a short-lived thread once it is done."""
    transport = channel.transport
    with channel.lock:
        replies = [m for m in channel._close_internal() if m is not None]
        transport._unlink_channel(channel.chanid)
    if not replies:
        return
    if transport.clear_to_send.is_set():
        send = _SENDERS.get(transport, transport._send_user_message)
        for reply in replies:
            send(reply)
        return
    logger.debug("channel %s closed during a key exchange; replying after it", channel.chanid)
    threading.Thread(
        target=_send_all, args=(transport, replies), name="rjupyter-close", daemon=True
    ).start()


def _send_all(transport: Any, messages: list[paramiko.Message]) -> None:
    try:
        for message in messages:
            transport._send_user_message(message)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        logger.debug("could not answer a channel close: %s", exc)


class ReadAheadSocket(socket.socket):
    """A TCP socket whose ``recv`` reads ahead: paramiko asks for each packet in two reads
    (the first block, then the rest), each a ``poll`` and a ``recv`` on a socket with a timeout;
    one read of up to :data:`READ_AHEAD` bytes serves several packets. It reads into a buffer
    it keeps: ``recv`` of a large size allocates (and for 128 KiB or more, maps and unmaps) that
    much on every call, which costs more than the system call. paramiko never polls the socket
    itself, so bytes held here are never missed."""

    READ_AHEAD = 1 << 18

    @classmethod
    def wrap(cls, sock: socket.socket) -> socket.socket:
        """The same connection (same descriptor and timeout) as a read-ahead socket; ``sock``
        itself outside the tested paramiko range (read-ahead relies on paramiko reading its
        socket only by ``recv``)."""
        if not lean_path_enabled():
            return sock
        timeout = sock.gettimeout()
        wrapped = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        wrapped.settimeout(timeout)
        return wrapped

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Bytes read ahead are ``buffer[taken:end]``.
        self.buffer = memoryview(bytearray(self.READ_AHEAD))
        self.taken = 0
        self.end = 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:
            return super().recv(bufsize, flags)
        if self.taken >= self.end:
            self.end = self.recv_into(self.buffer)
            self.taken = 0
        start = self.taken
        self.taken = min(self.end, start + bufsize)
        return bytes(self.buffer[start : self.taken])

    def fill(self) -> int:
        """Read more after the bytes held (moved to the front first), waiting up to the
        socket's timeout; returns the count read (0 at the end of the connection)."""
        if self.taken:
            held = self.end - self.taken
            self.buffer[:held] = self.buffer[self.taken : self.end]
            self.taken, self.end = 0, held
        count = self.recv_into(self.buffer[self.end :])
        self.end += count
        return count


#: The largest data packet to ask of a jump host for the ``direct-tcpip`` channel that carries a
#: connection (``open_channel(max_packet_size=...)``). paramiko's default, 32 KiB, makes the jump
#: host's sshd cut a fast stream into 32 KiB packets, each a write (and a wake-up of whatever
#: relays it) there and a packet for the jump host's connection to read here: through a jump
#: host 40 ms away, transfers (mostly a fresh tunnel's first) stalled for seconds at a few MB/s
#: with the same windows that carry 150+ MB/s with large packets. As large as fits, whole, in
#: :class:`ReadAheadSocket`'s buffer (with the packet's length, padding, channel header and
#: MAC), so that the lean path decrypts every packet in place.
STREAM_MAX_PACKET = ReadAheadSocket.READ_AHEAD - 1024


class ReadAheadChannel:
    """A jump host's ``direct-tcpip`` channel, as the stream of the connection it carries,
    with :class:`ReadAheadSocket`'s read-ahead: paramiko reads each packet of the inner
    connection in two or more ``Channel.recv`` calls (each a lock, a condition and a copy out of
    the channel's buffer); one read of up to :data:`READ_AHEAD` bytes serves several packets,
    and the lean path (:mod:`._fastpath`) decrypts packets where they lie in :attr:`buffer`.
    Everything but reading is the channel's own (``send``, ``settimeout``, ``close``...)."""

    READ_AHEAD = ReadAheadSocket.READ_AHEAD

    @classmethod
    def wrap(cls, channel: paramiko.Channel) -> paramiko.Channel:
        """The channel with read-ahead (typed as the channel it stands in for); ``channel``
        itself outside the tested paramiko range."""
        return cast(paramiko.Channel, cls(channel)) if lean_path_enabled() else channel

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        raw: Any = channel
        if hasattr(raw, "in_buffer"):
            raw.in_buffer = ChunkPipe(raw.in_buffer)
        #: Bytes read ahead are ``buffer[taken:end]``.
        self.buffer = memoryview(bytearray(self.READ_AHEAD))
        self.taken = 0
        self.end = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    def recv(self, bufsize: int) -> bytes:
        if self.taken >= self.end:
            data = self.channel.recv(self.READ_AHEAD)
            if not data:
                return b""
            self.buffer[: len(data)] = data
            self.taken, self.end = 0, len(data)
        start = self.taken
        self.taken = min(self.end, start + bufsize)
        return bytes(self.buffer[start : self.taken])

    def fill(self) -> int:
        """Read more after the bytes held (moved to the front first), waiting up to the
        channel's timeout (:class:`TimeoutError`); returns the count read (0 at the end)."""
        if self.taken:
            held = self.end - self.taken
            self.buffer[:held] = self.buffer[self.taken : self.end]
            self.taken, self.end = 0, held
        data = self.channel.recv(len(self.buffer) - self.end)
        self.buffer[self.end : self.end + len(data)] = data
        self.end += len(data)
        return len(data)


class ChunkPipe(Sink):
    """paramiko's ``BufferedPipe`` (a channel's receive buffer) for a jump host's channel: the
    lean path feeds it straight from the packet, and it keeps chunks in a deque where
    ``BufferedPipe`` keeps one array and moves what is left of it on every read.

    ``previous`` is the buffer the channel had (data may have come before the swap, or be fed to
    it by a transport thread that looked it up just before): it is read first, until the first
    chunk here shows that the transport thread has moved on.
    """

    def __init__(self, previous: Any) -> None:
        self._previous = previous
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._closed = False
        self._event: Any = None
        self._ready = threading.Condition(threading.Lock())

    def feed(self, data: bytes) -> None:
        with self._ready:
            self._chunks.append(bytes(data))
            self._size += len(data)
            if self._event is not None:
                self._event.set()
            self._ready.notify_all()

    def read(self, nbytes: int, timeout: float | None = None) -> bytes:
        """Up to ``nbytes``, waiting up to ``timeout`` (``PipeTimeout``) for the first;
        ``b""`` once closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._chunks and not self._closed:
                if self._previous is not None and len(self._previous):
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise PipeTimeout()
                self._ready.wait(remaining)
            if self._previous is not None:
                if len(self._previous):
                    return bytes(self._previous.read(nbytes, 0))
                if self._chunks:
                    self._previous = None  # the transport thread feeds only this one now
            return self._take(nbytes)

    def _take(self, nbytes: int) -> bytes:
        out = []
        count = 0
        chunks = self._chunks
        while chunks and count < nbytes:
            head = chunks[0]
            if len(head) <= nbytes - count:
                out.append(chunks.popleft())
                count += len(head)
            else:
                out.append(head[: nbytes - count])
                chunks[0] = head[nbytes - count :]
                count = nbytes
        self._size -= count
        if not chunks and self._event is not None and not self._closed:
            self._event.clear()
        return b"".join(out)

    def read_ready(self) -> bool:
        with self._ready:
            return bool(self._chunks) or bool(self._previous is not None and len(self._previous))

    def set_event(self, event: Any) -> None:
        with self._ready:
            self._event = event
            if self._closed or self._chunks:
                event.set()
            else:
                event.clear()

    def empty(self) -> bytes:
        with self._ready:
            earlier = b"" if self._previous is None else bytes(self._previous.empty())
            return earlier + self._take(self._size)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            if self._event is not None:
                self._event.set()
            self._ready.notify_all()

    def __len__(self) -> int:
        earlier = 0 if self._previous is None else len(self._previous)
        return self._size + earlier
