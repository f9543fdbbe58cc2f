"""A lean path for the message a tunnel carries most: CHANNEL_DATA, under AES-GCM.

paramiko runs every SSH message through the same general steps: a :class:`paramiko.Message`
built field by field, the channel's and the transport's locks and checks, the packetizer's
framing, then (coming in) the transport loop's dispatch table and the channel's ``_feed``. For
a small request or response that is most of the forwarder's time — several times the
encryption and the system calls — and it stands between every request and its answer.

:class:`FastPath` sends and receives CHANNEL_DATA in a few steps instead, with the same state
paramiko keeps (window, sequence numbers, the GCM counter, the byte and packet counts that
trigger a re-key) and under the same locks, so that paramiko's own path can take over at any
message:

- **Out** (:meth:`FastPath.send`, from the pump): the channel's window as
  ``Channel._wait_for_send_window`` takes it, the key-exchange gate of
  ``Transport._send_user_message``, then the packet as ``Packetizer.send_message`` frames it
  for AES-GCM, written by :class:`~._writes.PacketWriter` (one ``write``, or one ``writev``
  for a batch).
- **In** (``Packetizer.read_message``, replaced on the one transport): a packet already whole
  in the :class:`~rjupyter._paramiko._fixes.ReadAheadSocket`'s buffer is decrypted there; if it
  is data for a channel whose receive buffer is a :class:`Sink`, the bytes go straight to it and
  the next packet is read, without returning to the transport loop; a known channel's open
  confirmation, EOF or close goes to the handler the loop would call. Anything else is handed
  to the transport loop exactly as paramiko's ``read_message`` would have.

Anything outside the common case goes to paramiko's code unchanged: another cipher or a MAC,
compression, packet dumps, a key exchange in progress or expected packets, the handshake, a
packet not yet whole in the buffer, a timeout or the end of the connection. A connection
through a jump host reads ahead from its channel (:class:`~._fixes.ReadAheadChannel`) and takes
this path too; its packets leave by paramiko's ``write_all`` (the channel's ``send``).

It relies on the packetizer's private state (``_Packetizer__*``, listed in
:data:`_PACKETIZER_STATE`), unchanged from paramiko 3.2 (AES-GCM support) to 5.1; a paramiko
without it gets no lean path (:func:`install` returns None) and works as before. The forwarding
tests (re-keying every 256 KiB under load, SHA-256 checked transfers both ways) run over this
path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
import weakref
from typing import Any

import paramiko
from paramiko.packet import NeedRekeyException

from ._fixes import ReadAheadChannel, ReadAheadSocket, Sink, send_closes_with
from ._gate import lean_path_enabled
from ._writes import PacketWriter

__all__ = ["FastPath", "Sink", "batched_writes", "channel_refs", "install", "sender"]

logger = logging.getLogger(__name__)

_CHANNEL_DATA = 94
_OPEN_CONFIRMATION = 91
#: Messages of a channel's life handled here rather than by paramiko's transport loop: the open
#: confirmation, EOF and close.
_LIFECYCLE = frozenset((_OPEN_CONFIRMATION, 96, 97))
_LENGTH = struct.Struct(">I")
#: message type, recipient channel, data length
_DATA_HEADER = struct.Struct(">BII")
_CHANNEL_AND_LENGTH = struct.Struct(">II")
_SEQUENCE_MASK = 0xFFFFFFFF
#: An AES-GCM nonce: 4 fixed bytes and a 64-bit invocation counter.
_IV = struct.Struct(">4sQ")
_RANDOM_POOL = 4096
_ALL: weakref.WeakKeyDictionary[paramiko.Transport, FastPath] = weakref.WeakKeyDictionary()


#: What the lean path uses of a packetizer and a transport beyond their public API.
_PRIVATE = (
    "aead_in",
    "aead_out",
    "block_engine_in",
    "block_engine_out",
    "block_size_out",
    "compress_engine_in",
    "compress_engine_out",
    "dump_packets",
    "handshake_complete",
    "iv_in",
    "iv_out",
    "keepalive_last",
    "mac_size_in",
    "need_rekey",
    "received_bytes",
    "received_bytes_overflow",
    "received_packets",
    "received_packets_overflow",
    "remainder",
    "sent_bytes",
    "sent_packets",
    "sequence_number_in",
    "sequence_number_out",
    "write_lock",
)
_PACKETIZER_STATE = (
    *("_Packetizer__" + name for name in _PRIVATE),
    "_initial_kex_done",
    "_trigger_rekey",
    "REKEY_BYTES",
    "REKEY_PACKETS",
)
_TRANSPORT_STATE = (
    "_handler_table",
    "_channel_handler_table",
    "clear_to_send",
    "clear_to_send_lock",
    "clear_to_send_timeout",
    "_channels",
    "_expected_packet",
    "in_kex",
    "_send_message",
)


def install(transport: paramiko.Transport) -> FastPath | None:
    """Put the fast path on ``transport`` (before it starts); never raises.

    Returns:
        The lean path, or None (and paramiko's own path throughout) outside the tested
        paramiko range or if this paramiko does not keep the state the lean path works with.
    """
    if not lean_path_enabled():
        return None
    packetizer = getattr(transport, "packetizer", None)
    if not all(hasattr(packetizer, name) for name in _PACKETIZER_STATE) or not all(
        hasattr(transport, name) for name in _TRANSPORT_STATE
    ):
        logger.debug("paramiko %s: no lean data path", paramiko.__version__)
        return None
    try:
        fast = FastPath(transport)
    except Exception:  # a changed internal: paramiko's own path
        logger.debug("paramiko %s: no lean data path", paramiko.__version__, exc_info=True)
        return None
    _ALL[transport] = fast
    send_closes_with(transport, fast.send_message)
    return fast


def sender(transport: paramiko.Transport) -> FastPath | None:
    """The fast path installed on ``transport``, if any."""
    return _ALL.get(transport)


def batched_writes(transport: Any) -> contextlib.AbstractContextManager[None]:
    """:meth:`PacketWriter.batch` on ``transport`` (None: no transport yet); nothing is held
    back where it has no lean path or reaches its server through a jump host's channel."""
    fast = None if transport is None else _ALL.get(transport)
    return contextlib.nullcontext() if fast is None else fast.batch()


def channel_refs(transport: Any) -> dict[int, Any] | None:
    """The weak references behind ``Transport._channels`` (a ``ChannelMap``: a lock around a
    ``WeakValueDictionary``), read without its lock and steps; None if this paramiko keeps
    them otherwise. A reference that died reads as no channel, as paramiko's lookup would."""
    refs = getattr(getattr(transport._channels, "_map", None), "data", None)
    return refs if isinstance(refs, dict) else None


class FastPath:
    """CHANNEL_DATA in and out of one transport, in fewer steps than paramiko's general path.

    Attributes:
        packets_out: Packets (data or other) sent by this path.
        packets_in: Data packets delivered by this path.
    """

    def __init__(self, transport: paramiko.Transport) -> None:
        raw: Any = transport
        self._transport: Any = weakref.proxy(transport)
        self._packetizer: Any = raw.packetizer
        self._random = b""
        self._random_at = 0
        self.packets_out = 0
        self.packets_in = 0
        sock = raw.sock
        #: Where packets are written with one os.write: a TCP socket of our own.
        self._direct = isinstance(sock, ReadAheadSocket)
        #: The weak references behind ``Transport._channels`` (a ``ChannelMap``), if it keeps
        #: them as this paramiko does.
        self._refs = channel_refs(transport)
        if isinstance(sock, (ReadAheadSocket, ReadAheadChannel)):
            self._sock: ReadAheadSocket | ReadAheadChannel | None = sock
            self._original_read = self._packetizer.read_message
            self._packetizer.read_message = self._read_message
        else:
            self._sock = None
        self._writer = PacketWriter(self._packetizer, sock) if self._direct else None

    # -- out (any thread but the transport's) ---------------------------------------------------

    def send(self, channel: Any, data: bytes | memoryview) -> int:
        """Send what one packet and the window allow of ``data``, as ``channel.send`` does on a
        channel with timeout 0: returns the count sent (0 once the channel is closing), raises
        :class:`TimeoutError` when the window is shut. (Under another cipher the window is
        taken here all the same, and paramiko frames the packet.)"""
        with channel.lock:
            if channel.closed:
                raise OSError("Socket is closed")
            if channel.eof_sent:
                return 0
            window = channel.out_window_size
            if window == 0:
                raise TimeoutError
            size: int = min(len(data), window, channel.out_max_packet_size - 64)
            channel.out_window_size = window - size
            recipient = channel.remote_chanid
        self._send(_DATA_HEADER.pack(_CHANNEL_DATA, recipient, size), data[:size])
        return size

    def send_message(self, message: paramiko.Message) -> None:
        """Send any message as ``Transport._send_user_message`` does (waiting out a key
        exchange), framed here."""
        self._send(message.asbytes(), b"")

    def _send(self, head: bytes, data: bytes | memoryview) -> None:
        """Send the message ``head + data`` past the key-exchange gate, framed here under
        AES-GCM without compression, else by paramiko."""
        transport = self._transport
        gate = transport.clear_to_send_lock
        gate.acquire()
        if not (transport.clear_to_send.is_set() and transport.active):
            gate.release()
            if not self._enter_gate(transport, gate):
                return  # the connection is dead: paramiko drops the message the same way
        try:
            packetizer = self._packetizer
            if (
                packetizer._Packetizer__compress_engine_out is not None
                or not packetizer._Packetizer__aead_out
                or packetizer._Packetizer__dump_packets
            ):  # paramiko frames it (and compresses, adds a MAC, dumps)
                transport._send_message(paramiko.Message(head + bytes(data)))
                return
            with packetizer._Packetizer__write_lock:
                self._frame(packetizer, head, data)
        finally:
            gate.release()

    @staticmethod
    def _enter_gate(transport: Any, gate: Any) -> bool:
        """``Transport._send_user_message``'s wait: hold ``gate`` outside a key exchange.
        False if the connection died meanwhile (``gate`` is not held then)."""
        clear = transport.clear_to_send
        start = time.monotonic()
        while True:
            if not clear.is_set():
                clear.wait(0.1)
            if not transport.active:
                return False
            gate.acquire()
            if clear.is_set():
                return True
            gate.release()
            if time.monotonic() > start + transport.clear_to_send_timeout:
                raise paramiko.SSHException("Key-exchange timed out waiting for key negotiation")

    def _frame(self, packetizer: Any, head: bytes, data: bytes | memoryview) -> None:
        """``Packetizer.send_message`` for the payload ``head + data`` under AES-GCM (write
        lock held)."""
        block = packetizer._Packetizer__block_size_out
        length = len(head) + len(data)
        padding = 3 + block - ((length + 4) % block)
        body = bytes((padding,)) + head
        if data:
            body += data
        body += self._padding(padding)
        size = _LENGTH.pack(len(body))
        iv = packetizer._Packetizer__iv_out
        out = size + packetizer._Packetizer__block_engine_out.encrypt(iv, body, size)
        packetizer._Packetizer__iv_out = _next_iv(iv)
        packetizer._Packetizer__sequence_number_out = _following(
            packetizer, packetizer._Packetizer__sequence_number_out
        )
        self._write(packetizer, out)
        packetizer._Packetizer__sent_bytes += len(out)
        packetizer._Packetizer__sent_packets += 1
        self.packets_out += 1
        if (
            packetizer._Packetizer__sent_packets >= packetizer.REKEY_PACKETS
            or packetizer._Packetizer__sent_bytes >= packetizer.REKEY_BYTES
        ) and not packetizer._Packetizer__need_rekey:
            packetizer._Packetizer__received_bytes_overflow = 0
            packetizer._Packetizer__received_packets_overflow = 0
            packetizer._trigger_rekey()

    def _write(self, packetizer: Any, out: bytes) -> None:
        """Write one framed packet (write lock held): by the batching writer on a socket of
        our own, else by paramiko's ``write_all``."""
        if self._writer is None:
            packetizer.write_all(out)
        else:
            self._writer.write(out)

    @property
    def writes(self) -> int:
        """System calls made to write this path's packets (fewer than the packets when they
        were batched; 0 where paramiko writes them)."""
        return 0 if self._writer is None else self._writer.writes

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """:meth:`PacketWriter.batch` where packets go to a socket of our own."""
        return contextlib.nullcontext() if self._writer is None else self._writer.batch()

    def _padding(self, count: int) -> bytes:
        """``count`` random bytes from a pool refilled by ``os.urandom`` (one system call per
        pool rather than per packet)."""
        start = self._random_at
        if start + count > len(self._random):
            self._random = os.urandom(_RANDOM_POOL)
            start = 0
        self._random_at = start + count
        return self._random[start : start + count]

    # -- in (the transport thread) -------------------------------------------------------------

    def _read_message(self) -> tuple[int, paramiko.Message]:
        """``Packetizer.read_message``, with data for sink channels delivered on the way."""
        packetizer = self._packetizer
        transport = self._transport
        sock = self._sock
        assert sock is not None
        writer = self._writer
        while True:
            if (
                not packetizer._Packetizer__aead_in
                or not packetizer._Packetizer__handshake_complete
                or packetizer._Packetizer__compress_engine_in is not None
                or packetizer._Packetizer__dump_packets
                or packetizer._Packetizer__remainder
                or transport._expected_packet
            ):
                self._end_reading()
                return self._original_read()  # type: ignore[no-any-return]
            if packetizer._Packetizer__need_rekey and not transport.in_kex:
                self._end_reading()
                raise NeedRekeyException()  # the transport loop starts the exchange
            buffer, start = sock.buffer, sock.taken
            held = sock.end - start
            whole = 4 + packetizer._Packetizer__mac_size_in
            if held >= 4:
                whole += _LENGTH.unpack_from(buffer, start)[0]
            if held < whole:
                # Not all here yet: wait for more where it fits, else paramiko reads it. What
                # the packets read so far made this thread send goes before it waits.
                self._end_reading()
                if whole > len(buffer) or not self._fill(sock):
                    return self._original_read()  # type: ignore[no-any-return]
                continue
            if writer is not None:
                writer.begin_reading()
            end = start + whole
            iv = packetizer._Packetizer__iv_in
            plain = packetizer._Packetizer__block_engine_in.decrypt(
                iv, buffer[start + 4 : end], buffer[start : start + 4]
            )
            sock.taken = end
            packetizer._Packetizer__iv_in = _next_iv(iv)
            sequence = packetizer._Packetizer__sequence_number_in
            self._count_in(packetizer, sequence, whole)
            stop = len(plain) - plain[0]  # the payload ends before the padding
            if plain[1] == _CHANNEL_DATA and stop >= 10:
                recipient, count = _CHANNEL_AND_LENGTH.unpack_from(plain, 2)
                channel = self._channel(recipient)
                sink = None if channel is None else channel.in_buffer
                if isinstance(sink, Sink):
                    self.packets_in += 1
                    sink.feed(plain[10 : min(10 + count, stop)])
                    continue
            message = paramiko.Message(plain[2:stop])
            message.seqno = sequence
            if plain[1] in _LIFECYCLE and stop >= 6 and self._dispatch(transport, plain, message):
                continue
            return plain[1], message

    def _dispatch(self, transport: Any, plain: bytes, message: paramiko.Message) -> bool:
        """Hand a channel's open confirmation, EOF or close to the handler paramiko's transport
        loop would call, from here (three in every connection's life; the loop's own steps
        for each cost as much as the handler). False for anything the loop must see: a
        channel it does not know (it logs, or ends the session), a handler it lacks."""
        kind = plain[1]
        if kind == _OPEN_CONFIRMATION:
            handler = transport._handler_table.get(kind)
            if handler is None:
                return False
            handler(message)  # (it finds the channel; a client needs no authentication check)
            return True
        handler = transport._channel_handler_table.get(kind)
        channel = self._channel(_LENGTH.unpack_from(plain, 2)[0])
        if handler is None or channel is None:
            return False
        message.get_int()  # the recipient channel, read as the loop reads it
        handler(channel, message)
        return True

    def _channel(self, chanid: int) -> Any:
        """``Transport._channels.get(chanid)`` by :func:`channel_refs` (once per data
        packet)."""
        refs = self._refs
        if refs is None:
            return self._transport._channels.get(chanid)
        ref = refs.get(chanid)
        return None if ref is None else ref()

    def _end_reading(self) -> None:
        if self._writer is not None:
            self._writer.end_reading()

    @staticmethod
    def _fill(sock: ReadAheadSocket | ReadAheadChannel) -> bool:
        """Wait for bytes (up to the socket's timeout); False at a timeout, an error or the
        end, which paramiko's own read then meets and handles."""
        try:
            return sock.fill() > 0
        except OSError:  # includes the timeout
            return False

    @staticmethod
    def _count_in(packetizer: Any, sequence: int, raw_size: int) -> None:
        """``read_message``'s sequence number and re-key accounting for one packet."""
        packetizer._Packetizer__sequence_number_in = _following(packetizer, sequence)
        packetizer._Packetizer__received_bytes += raw_size
        packetizer._Packetizer__received_packets += 1
        if packetizer._Packetizer__need_rekey:
            packetizer._Packetizer__received_bytes_overflow += raw_size
            packetizer._Packetizer__received_packets_overflow += 1
            if (
                packetizer._Packetizer__received_packets_overflow
                >= packetizer.REKEY_PACKETS_OVERFLOW_MAX
                or packetizer._Packetizer__received_bytes_overflow
                >= packetizer.REKEY_BYTES_OVERFLOW_MAX
            ):
                raise paramiko.SSHException("Remote transport is ignoring rekey requests")
        elif (
            packetizer._Packetizer__received_packets >= packetizer.REKEY_PACKETS
            or packetizer._Packetizer__received_bytes >= packetizer.REKEY_BYTES
        ):
            packetizer._Packetizer__received_bytes_overflow = 0
            packetizer._Packetizer__received_packets_overflow = 0
            packetizer._trigger_rekey()


def _next_iv(iv: bytes) -> bytes:
    """``Packetizer._inc_iv_counter``: the GCM nonce after ``iv`` (RFC 5647 7.1: the last 8
    bytes are a counter), in one unpack and one pack; like paramiko's, it raises rather than
    wrap (a nonce used twice)."""
    fixed, counter = _IV.unpack(iv)
    return _IV.pack(fixed, counter + 1)


def _following(packetizer: Any, sequence: int) -> int:
    """The sequence number after ``sequence``, as the packetizer counts (it wraps at 2**32,
    which must not happen before the first key exchange is done)."""
    following = (sequence + 1) & _SEQUENCE_MASK
    if following == 0 and not packetizer._initial_kex_done:
        raise paramiko.SSHException("Sequence number rolled over during initial kex!")
    return following
