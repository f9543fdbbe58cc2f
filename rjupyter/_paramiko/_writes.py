"""Writing the lean path's packets to the SSH connection's own socket, batched per thread.

A turn of the forwarder's pump that serves many connections (a burst's accepts and opens, data,
EOFs) frames a packet for each; paramiko's transport thread answers packets it has just read
(window adjustments, a client's first bytes at an open's answer, the replies to a close).
Written one by one, each is a system call, and for the kernel and sshd a segment and a wake-up.
:class:`PacketWriter` holds a thread's packets while it says so (:meth:`PacketWriter.batch`
for the pump's turn, :meth:`PacketWriter.begin_reading` while the transport thread handles what
it has read) and writes them together with one ``writev``.

Packets must leave in the order they were framed (their sequence numbers and GCM nonces say
so). Every packet is framed and written under the packetizer's write lock, and whoever writes
while another thread holds packets writes those first: the lean path of another thread, and
paramiko's own framing (key exchange, keepalives, any message it frames itself), whose
``write_all`` this replaces on the one packetizer.

This replaced ``TCP_CORK`` on the socket: uncorking makes the kernel send the held segments
inside ``setsockopt``, which Python calls with the GIL held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import paramiko

from ._fixes import ReadAheadSocket

__all__ = ["PacketWriter"]

logger = logging.getLogger(__name__)

#: Batched bytes written at once, so that a long turn does not hold back its first packets.
_BATCH_BYTES = 1 << 16
#: ... and packets (``writev`` takes at most IOV_MAX, 1024 on Linux, buffers per call).
_BATCH_PACKETS = 512


class PacketWriter:
    """Writes framed packets to ``sock``, the TCP socket of ``packetizer``'s connection.

    Attributes:
        writes: System calls made to write packets (fewer than the packets when batched).
    """

    def __init__(self, packetizer: Any, sock: ReadAheadSocket) -> None:
        self._packetizer = packetizer
        self._sock = sock
        self._lock = packetizer._Packetizer__write_lock
        #: Packets framed but not written yet, in sequence order (write lock), and the thread
        #: whose packets join them; nobody's when None.
        self._batch: list[bytes] = []
        self._batched = 0
        self._batcher: int | None = None
        self.writes = 0
        self._original_write_all = packetizer.write_all
        packetizer.write_all = self._write_all

    def write(self, out: bytes) -> None:
        """Write one framed packet (write lock held): into the batch if this thread keeps
        one, else at once, after what is batched."""
        if self._batcher == threading.get_ident():
            self._batch.append(out)
            self._batched += len(out)
            if self._batched >= _BATCH_BYTES or len(self._batch) >= _BATCH_PACKETS:
                self._flush()
            return
        if self._batch:  # another thread's, framed before this one: out first
            self._batch.append(out)
            self._flush()
            return
        self._packetizer._Packetizer__keepalive_last = time.time()
        self.writes += 1
        try:  # one write (a socket with a timeout would poll first)
            sent = os.write(self._sock.fileno(), out)
        except OSError:  # full (EAGAIN) or failing: write_all waits, or raises as paramiko
            sent = 0
        if sent < len(out):
            self._original_write_all(out[sent:] if sent else out)

    def _write_all(self, out: bytes) -> None:
        """``Packetizer.write_all`` for paramiko's own sends (write lock held): the batch
        first."""
        if self._batch:
            self._flush()
        self._original_write_all(out)

    def _flush(self) -> None:
        """Write the batch with one ``writev`` (``sendall`` would join the packets); what the
        socket does not take now goes by paramiko's ``write_all``, which waits for room or
        raises as paramiko does (write lock held)."""
        batch, self._batch, self._batched = self._batch, [], 0
        self._packetizer._Packetizer__keepalive_last = time.time()
        self.writes += 1
        try:
            sent = os.writev(self._sock.fileno(), batch)
        except OSError:  # full (EAGAIN) or failing: write_all waits, or raises as paramiko
            sent = 0
        if sent < sum(map(len, batch)):
            self._original_write_all(b"".join(batch)[sent:])

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold back this thread's packets and write them together at the end (the pump's
        turns); held packets of the transport thread are written first. A write that fails at
        the end is left to the transport thread, which meets the same broken connection."""
        me = threading.get_ident()
        with self._lock:
            owner = self._batcher != me
            if owner:
                if self._batch:
                    self._flush()
                self._batcher = me
        try:
            yield
        finally:
            if owner:
                with self._lock:
                    self._batcher = None
                    if self._batch:
                        try:
                            self._flush()
                        except (OSError, EOFError, paramiko.SSHException) as exc:
                            logger.debug("cannot write batched packets: %s", exc)

    def begin_reading(self) -> None:
        """Hold what the calling (transport) thread sends while it handles packets already
        read, unless another thread holds a batch."""
        if self._batcher is None:
            with self._lock:
                if self._batcher is None:
                    self._batcher = threading.get_ident()

    def end_reading(self) -> None:
        """Write what the calling thread holds, before it waits for the server."""
        me = threading.get_ident()
        if self._batcher != me:
            return  # (another thread took the batch, and wrote what this one held)
        with self._lock:
            if self._batcher == me:
                self._batcher = None
                if self._batch:
                    self._flush()
