"""The receive buffer of a jump host's channel (``ChunkPipe``) keeps paramiko's BufferedPipe
contract: bytes in order (those fed to the buffer it replaced first), reads of any size, a
timeout when nothing comes, an empty read once closed, the channel's event kept in step."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout

from rjupyter._paramiko._fixes import ChunkPipe, Sink


def test_bytes_come_out_in_order_in_any_sizes() -> None:
    pipe = ChunkPipe(BufferedPipe())
    assert isinstance(pipe, Sink)  # the lean path feeds it straight from the packet
    for chunk in (b"abc", b"defgh", b"", b"ij"):
        pipe.feed(chunk)
    assert len(pipe) == 10
    assert pipe.read(2) == b"ab"
    assert pipe.read(4) == b"cdef"
    assert pipe.read(100) == b"ghij"
    assert len(pipe) == 0


def test_what_the_old_buffer_held_comes_first() -> None:
    previous: Any = BufferedPipe()  # (its stubs say str; paramiko feeds it bytes)
    previous.feed(b"SSH-2.0-banner\r\n")
    pipe = ChunkPipe(previous)
    previous.feed(b"late")  # fed by a transport thread that looked the buffer up before
    pipe.feed(b"new")
    assert len(pipe) == 23
    assert pipe.read(100) == b"SSH-2.0-banner\r\nlate"
    assert pipe.read(100) == b"new"


def test_a_read_times_out_then_gets_what_comes() -> None:
    pipe = ChunkPipe(BufferedPipe())
    with pytest.raises(PipeTimeout):
        pipe.read(10, 0.0)
    with pytest.raises(PipeTimeout):
        pipe.read(10, 0.05)
    timer = threading.Timer(0.05, pipe.feed, args=(b"late",))
    timer.start()
    assert pipe.read(10, 5.0) == b"late"
    timer.join()


def test_closed_and_drained_reads_empty_and_the_event_follows() -> None:
    pipe = ChunkPipe(BufferedPipe())
    event = threading.Event()
    pipe.set_event(event)
    assert not event.is_set()
    pipe.feed(b"x")
    assert event.is_set()
    assert pipe.read_ready()
    assert pipe.read(1) == b"x"
    assert not event.is_set()
    assert not pipe.read_ready()
    pipe.feed(b"rest")
    pipe.close()
    assert event.is_set()
    assert pipe.empty() == b"rest"
    assert pipe.read(10) == b""
