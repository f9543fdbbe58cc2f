"""The lean CHANNEL_DATA path against paramiko's own packetizer, with no server: two transports
joined by a socket pair, keyed alike with AES-GCM. Whatever one side sends by either path, the
other side reads back intact and in order by either path, with sequence numbers, GCM counters
and re-key accounting in step."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from paramiko.common import MSG_CHANNEL_DATA, MSG_IGNORE, cMSG_IGNORE
from paramiko.packet import NeedRekeyException

from rjupyter._paramiko import _fixes
from rjupyter._paramiko._channel import SplicedChannel
from rjupyter._paramiko._fastpath import FastPath, Sink, _next_iv, install, sender
from rjupyter._paramiko._fixes import ReadAheadSocket
from rjupyter._paramiko._spliced import _next_channel_id

CHANNEL = 7  # the receiving side's channel number


class Collecting(Sink):
    def __init__(self) -> None:
        self.data = bytearray()

    def feed(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:  # (at the channel's EOF)
        return None


@dataclass
class Side:
    transport: Any
    fast: FastPath
    channel: Any = None
    sink: Collecting = field(default_factory=Collecting)


def _side(sock: socket.socket) -> Side:
    transport: Any = paramiko.Transport(ReadAheadSocket.wrap(sock))
    fast = install(transport)
    transport.active = True  # as after a login; the transport thread is never started
    transport.clear_to_send.set()
    transport.packetizer._initial_kex_done = True
    transport.packetizer.start_handshake(60)
    transport.packetizer.complete_handshake()
    assert fast is not None
    return Side(transport, fast)


def _key(sender: Side, receiver: Side) -> None:
    key, iv = os.urandom(16), os.urandom(12)
    sender.transport.packetizer.set_outbound_cipher(
        AESGCM(key), 16, None, 16, None, aead=True, iv_out=iv
    )
    receiver.transport.packetizer.set_inbound_cipher(
        AESGCM(key), 16, None, 16, None, aead=True, iv_in=iv
    )


@pytest.fixture
def pair() -> Iterator[tuple[Side, Side]]:
    left_sock, right_sock = socket.socketpair()
    left, right = _side(left_sock), _side(right_sock)
    _key(left, right)
    _key(right, left)
    # left's channel 3 sends to right's channel CHANNEL, whose receive buffer is a sink.
    channel: Any = paramiko.Channel(3)
    channel._set_transport(left.transport)
    channel._set_remote_channel(CHANNEL, 1 << 30, 32768)
    channel.settimeout(0.0)
    left.channel = channel
    receiving: Any = paramiko.Channel(CHANNEL)
    receiving.in_buffer = right.sink
    right.transport._channels.put(CHANNEL, receiving)
    right.channel = receiving
    yield left, right
    for side in (left, right):
        side.transport.active = False
        side.transport.sock.close()


def _read_until_ignore(side: Side, until: int) -> list[tuple[int, paramiko.Message]]:
    """Read messages (data goes to the sink) until ``until`` MSG_IGNOREs came back."""
    returned = []
    ignores = 0
    while ignores < until:
        ptype, message = side.transport.packetizer.read_message()
        returned.append((ptype, message))
        ignores += ptype == MSG_IGNORE
    return returned


def _ignore() -> paramiko.Message:
    message = paramiko.Message()
    message.add_byte(cMSG_IGNORE)
    message.add_string(b"marker")
    return message


def test_both_paths_interleaved_arrive_intact_and_in_order(pair: tuple[Side, Side]) -> None:
    left, right = pair
    rng = random.Random(6)
    sent = bytearray()
    markers = 0

    def send() -> None:
        nonlocal markers
        for index in range(400):
            chunk = rng.randbytes(rng.choice([1, 17, 500, 4096, 40000]))
            view = memoryview(chunk)
            while view:
                # two chunks in three by the lean path, the third by paramiko's own
                count = left.fast.send(left.channel, view) if index % 3 else left.channel.send(view)
                view = view[count:]
            sent.extend(chunk)
            if index % 50 == 0:
                left.transport._send_user_message(_ignore())
                markers += 1
        left.transport._send_user_message(_ignore())
        markers += 1

    sender = threading.Thread(target=send)
    sender.start()
    returned = _read_until_ignore(right, 9)
    sender.join()
    assert markers == 9
    assert bytes(right.sink.data) == bytes(sent)
    assert all(ptype == MSG_IGNORE for ptype, _ in returned)
    assert left.fast.packets_out > 0
    assert right.fast.packets_in > 0
    out: Any = left.transport.packetizer
    into: Any = right.transport.packetizer
    assert out._Packetizer__sequence_number_out == into._Packetizer__sequence_number_in
    assert out._Packetizer__iv_out == into._Packetizer__iv_in


def test_what_paramiko_sends_the_lean_reader_delivers(pair: tuple[Side, Side]) -> None:
    left, right = pair
    left.fast.send(left.channel, b"lean ")
    left.channel.send(b"and paramiko's")
    left.transport._send_user_message(_ignore())
    _read_until_ignore(right, 1)
    assert bytes(right.sink.data) == b"lean and paramiko's"
    assert right.fast.packets_in == 2


def test_data_for_another_kind_of_channel_goes_to_paramiko(pair: tuple[Side, Side]) -> None:
    left, right = pair
    right.transport._channels.put(CHANNEL, paramiko.Channel(CHANNEL))  # no sink
    left.fast.send(left.channel, b"for paramiko")
    ptype, message = right.transport.packetizer.read_message()
    assert ptype == MSG_CHANNEL_DATA
    assert message.get_int() == CHANNEL
    assert message.get_binary() == b"for paramiko"
    assert message.seqno == 0
    assert right.fast.packets_in == 0


def test_a_closed_window_raises_and_a_sent_eof_sends_nothing(pair: tuple[Side, Side]) -> None:
    left, _ = pair
    left.channel.out_window_size = 10
    assert left.fast.send(left.channel, b"x" * 100) == 10
    with pytest.raises(TimeoutError):
        left.fast.send(left.channel, b"more")
    left.channel.out_window_size = 100
    left.channel.eof_sent = True
    assert left.fast.send(left.channel, b"after eof") == 0


def test_re_key_counters_trigger_on_both_sides(pair: tuple[Side, Side]) -> None:
    left, right = pair
    left.transport.packetizer.REKEY_PACKETS = 5
    right.transport.packetizer.REKEY_PACKETS = 5
    for _ in range(5):
        left.fast.send(left.channel, b"count me")
    assert left.transport.packetizer.need_rekey()
    left.transport._send_message(_ignore())
    with pytest.raises(NeedRekeyException):
        _read_until_ignore(right, 1)  # the fifth packet asked for the exchange
    assert right.transport.packetizer.need_rekey()
    assert right.sink.data == b"count me" * 5


def test_a_send_waits_for_a_key_exchange_to_end(pair: tuple[Side, Side]) -> None:
    left, right = pair
    left.transport.clear_to_send.clear()
    sender = threading.Thread(target=left.fast.send, args=(left.channel, b"after the exchange"))
    sender.start()
    sender.join(0.3)
    assert sender.is_alive()  # still held at the gate: nothing written
    right_sock: socket.socket = right.transport.sock
    right_sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        right_sock.recv(1, socket.MSG_PEEK)
    right_sock.settimeout(0.1)
    left.transport.clear_to_send.set()
    sender.join(10)
    assert not sender.is_alive()
    left.transport._send_message(_ignore())
    _read_until_ignore(right, 1)
    assert right.sink.data == b"after the exchange"


def _nothing_written(side: Side) -> bool:
    sock: socket.socket = side.transport.sock
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, TimeoutError):
        return True
    return False


def test_a_batch_holds_packets_back_and_keeps_them_in_sequence(pair: tuple[Side, Side]) -> None:
    # A pump turn's packets wait for its end; another thread's packet, or one paramiko frames,
    # writes the held ones first, so the receiver's sequence numbers and GCM counters agree.
    left, right = pair
    writes = left.fast.writes
    with left.fast.batch():
        for _ in range(3):
            left.fast.send(left.channel, b"a,")
        assert left.fast.writes == writes
        assert _nothing_written(right)
        other = threading.Thread(target=left.fast.send, args=(left.channel, b"other,"))
        other.start()
        other.join()
        assert left.fast.writes == writes + 1  # the held three and the other one, at once
        left.fast.send(left.channel, b"b,")
        left.channel.send(b"paramiko,")  # paramiko's framing: the held packet goes first
        assert left.fast.writes == writes + 2
        left.fast.send(left.channel, b"c,")
        assert left.fast.writes == writes + 2
    assert left.fast.writes == writes + 3  # written at the end
    left.transport._send_user_message(_ignore())
    _read_until_ignore(right, 1)
    assert right.sink.data == b"a,a,a,other,b,paramiko,c,"
    out: Any = left.transport.packetizer
    into: Any = right.transport.packetizer
    assert out._Packetizer__sequence_number_out == into._Packetizer__sequence_number_in


class Answering(Sink):
    """Answers every packet fed, from the reading thread, as window adjustments are sent."""

    def __init__(self, side: Side, channel: Any) -> None:
        self.side = side
        self.channel = channel

    def feed(self, data: bytes) -> None:
        self.side.fast.send(self.channel, b"ack " + data)


def test_the_reader_writes_its_answers_together_before_it_waits(pair: tuple[Side, Side]) -> None:
    left, right = pair
    back: Any = paramiko.Channel(4)  # right's channel 4 sends to left's CHANNEL
    back._set_transport(right.transport)
    back._set_remote_channel(CHANNEL, 1 << 30, 32768)
    back.settimeout(0.0)
    receiving: Any = paramiko.Channel(CHANNEL)
    receiving.in_buffer = left.sink
    left.transport._channels.put(CHANNEL, receiving)
    right.channel.in_buffer = Answering(right, back)
    with left.fast.batch():  # ten packets in one write: whole in the reader's buffer at once
        for index in range(10):
            left.fast.send(left.channel, b"%d," % index)
        left.transport._send_user_message(_ignore())
    writes = right.fast.writes
    _read_until_ignore(right, 1)  # (the answers are held while packets are at hand)
    assert right.fast.writes == writes
    reader = threading.Thread(target=_read_until_ignore, args=(right, 1))
    reader.start()  # finds nothing whole: writes the answers, then waits
    right.transport._send_user_message(_ignore())  # (writes them first if it has not yet)
    _read_until_ignore(left, 1)
    assert left.sink.data == b"".join(b"ack %d," % index for index in range(10))
    assert right.fast.writes == writes + 1
    left.transport._send_user_message(_ignore())
    reader.join(10)
    assert not reader.is_alive()


def test_a_close_is_answered_by_the_lean_path(pair: tuple[Side, Side]) -> None:
    # What paramiko's transport thread calls for a CHANNEL_CLOSE (outside a key exchange):
    # the channel closes, leaves the transport, and its EOF and CLOSE go out framed here; the
    # reader hands them to the channel's handlers itself rather than return them to the loop.
    left, right = pair
    assert _fixes.install(right.transport)  # as every rjupyter transport has it
    left.transport._channels.put(3, left.channel)
    receiving = right.channel
    receiving._set_transport(right.transport)
    receiving._set_remote_channel(3, 1 << 20, 32768)
    packets = left.fast.packets_out
    _fixes._handle_close(left.channel, paramiko.Message())
    assert left.channel.closed
    assert left.transport._channels.get(3) is None
    assert left.fast.packets_out == packets + 2
    left.transport._send_user_message(_ignore())
    returned = _read_until_ignore(right, 1)
    assert [kind for kind, _ in returned] == [MSG_IGNORE]
    assert receiving.eof_received
    assert receiving.closed  # ... and answered with its own EOF and CLOSE
    assert right.transport._channels.get(CHANNEL) is None
    assert right.fast.packets_out == 2


def test_channel_ids_are_chosen_as_paramiko_chooses_them(pair: tuple[Side, Side]) -> None:
    transport = pair[0].transport
    alive = [paramiko.Channel(chanid) for chanid in (0, 1, 2)]
    for channel in alive:
        transport._channels.put(channel.chanid, channel)
    transport._channels.put(4, paramiko.Channel(4))  # dropped at once: a dead reference
    transport._channel_counter = 0
    assert [_next_channel_id(transport) for _ in range(3)] == [3, 4, 5]
    transport._channel_counter = 0xFFFFFF  # wraps as paramiko's does, past the live ones
    assert [_next_channel_id(transport) for _ in range(2)] == [0xFFFFFF, 3]
    assert transport._channel_counter == 4


def test_the_nonce_counts_as_paramiko_s() -> None:
    for iv in (os.urandom(12), b"abcd" + b"\xff" * 7 + b"\xfe", b"abcd" + bytes(8)):
        assert _next_iv(iv) == paramiko.packet.Packetizer._inc_iv_counter(None, iv)  # type: ignore[attr-defined]
    with pytest.raises(struct.error):  # never wraps to a nonce used before
        _next_iv(b"abcd" + b"\xff" * 8)


def test_a_spliced_channel_has_every_attribute_paramiko_sets() -> None:
    # SplicedChannel builds a channel without paramiko's constructor: if a paramiko release adds
    # an attribute there, this fails before a forwarded connection meets the missing attribute.
    connection: Any = None  # only handed to the stand-ins
    assert set(vars(SplicedChannel(5, connection))) == set(vars(paramiko.Channel(5)))


def test_another_cipher_goes_by_paramiko_both_ways() -> None:
    # AES-CTR with HMAC (a server without AES-GCM): nothing is framed or read by the lean path.
    left_sock, right_sock = socket.socketpair()
    left, right = _side(left_sock), _side(right_sock)
    key, iv, mac_key = os.urandom(16), os.urandom(16), os.urandom(32)
    aes = algorithms.AES(key)
    left.transport.packetizer.set_outbound_cipher(
        Cipher(aes, modes.CTR(iv)).encryptor(), 16, hashlib.sha256, 32, mac_key, sdctr=True
    )
    right.transport.packetizer.set_inbound_cipher(
        Cipher(aes, modes.CTR(iv)).decryptor(), 16, hashlib.sha256, 32, mac_key
    )
    channel: Any = paramiko.Channel(3)
    channel._set_transport(left.transport)
    channel._set_remote_channel(CHANNEL, 1 << 20, 32768)
    receiving: Any = paramiko.Channel(CHANNEL)
    receiving.in_buffer = right.sink
    right.transport._channels.put(CHANNEL, receiving)
    try:
        assert left.fast.send(channel, b"by paramiko") == len(b"by paramiko")
        ptype, message = right.transport.packetizer.read_message()
        assert ptype == MSG_CHANNEL_DATA
        assert message.get_int() == CHANNEL
        assert message.get_binary() == b"by paramiko"
        assert left.fast.packets_out == 0
        assert right.fast.packets_in == 0
    finally:
        for side in (left, right):
            side.transport.active = False
            side.transport.sock.close()


def test_a_paramiko_without_the_state_gets_no_lean_path() -> None:
    # A paramiko release that renamed what the lean path works with: paramiko's path throughout.
    left_sock, _right_sock = socket.socketpair()
    transport: Any = paramiko.Transport(ReadAheadSocket.wrap(left_sock))
    original = transport.packetizer.read_message
    del transport.packetizer._Packetizer__iv_in
    try:
        assert install(transport) is None
        assert sender(transport) is None
        assert transport.packetizer.read_message == original
    finally:
        transport.sock.close()
        _right_sock.close()
