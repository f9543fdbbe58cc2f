"""Moving bytes between a local socket and an SSH channel, and sizing channel windows.

Two parts the forwarder (``_tunnel``) puts together:

- :func:`splice` copies both directions of one forwarded connection with blocking reads, a
  thread per direction: no ``select`` timeouts on the data path, large reads, ``sendall``, and
  half-close kept (an EOF one way shuts down only that way; the other keeps flowing).
- :class:`LinkEstimate` keeps the smallest recent round-trip time of the SSH link and turns it
  into a channel window of about bandwidth x RTT. Windows bound throughput on slow links (a
  2 MiB window over 40 ms caps a connection near 50 MB/s); on fast links very large windows make
  paramiko slower (its receive buffer deletes from the front of an array on each read), so the
  window grows only when the round trip says it must.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections import deque
from typing import Protocol

__all__ = [
    "CHANNEL_READ_SIZE",
    "MAX_PACKET_SIZE",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "READ_SIZE",
    "LinkEstimate",
    "splice",
]

logger = logging.getLogger(__name__)

#: Bytes asked for per read of the local socket (Python allocates this much per call).
READ_SIZE = 1 << 20
#: The window for links with (almost) no latency: paramiko's default, fast on loopback.
MIN_WINDOW = 2 << 20
#: The largest window: what one slow reader can make the forwarder hold per connection.
MAX_WINDOW = 16 << 20
#: What one forwarded connection should be able to carry; the window is this x RTT.
TARGET_BANDWIDTH = 400e6
#: Largest SSH packet we ask the server to send: fewer packets, less Python work per byte.
MAX_PACKET_SIZE = 1 << 18
#: Bytes asked for per channel read: the largest window, so one read empties paramiko's buffer
#: (no front deletion of what remains). paramiko allocates only what it returns.
CHANNEL_READ_SIZE = MAX_WINDOW
_SAMPLES = 16


class Channel(Protocol):
    """The parts of ``paramiko.Channel`` that :func:`splice` uses."""

    @property
    def closed(self) -> bool:
        """True once the channel is closed (by either side)."""

    def recv(self, nbytes: int) -> bytes:
        """Up to ``nbytes``; empty at EOF or close."""

    def sendall(self, data: bytes) -> None:
        """Send everything or raise ``OSError``."""

    def shutdown_write(self) -> None:
        """Send EOF: nothing more will be written."""

    def close(self) -> None:
        """Close both directions."""


class LinkEstimate:
    """The round-trip time of one SSH link (smallest of recent samples) and the window for it.

    Thread-safe: the forwarder's connections add samples and ask for windows concurrently.
    """

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=_SAMPLES)
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        """Add one round-trip sample (a reply to a probe, or the time to open a channel)."""
        with self._lock:
            self._samples.append(seconds)

    def reset(self) -> None:
        """Forget the samples (the link changed, e.g. after a reconnect)."""
        with self._lock:
            self._samples.clear()

    @property
    def round_trip(self) -> float | None:
        """Seconds; None before the first sample."""
        with self._lock:
            return min(self._samples) if self._samples else None

    def window(self) -> int:
        """Channel window in bytes: bandwidth x RTT, between :data:`MIN_WINDOW` and
        :data:`MAX_WINDOW`."""
        rtt = self.round_trip
        if rtt is None:
            return MIN_WINDOW
        return max(MIN_WINDOW, min(MAX_WINDOW, int(TARGET_BANDWIDTH * rtt)))


def splice(sock: socket.socket, channel: Channel, label: str) -> None:
    """Copy between ``sock`` and ``channel`` both ways until both directions end; then close both.

    The upstream direction (socket to channel) runs in a helper thread, downstream in the
    caller's. An EOF on one side is passed on as an EOF (``shutdown_write`` /
    ``SHUT_WR``) and the other direction keeps going; an error on either side ends both.

    Args:
        sock: The accepted local connection.
        channel: The SSH channel to the remote address.
        label: Names the connection in debug logs.
    """
    upstream = threading.Thread(
        target=_upstream, args=(sock, channel), name=f"rjupyter-up-{label}", daemon=True
    )
    upstream.start()
    try:
        _downstream(channel, sock)
        # The remote may have closed the channel (not just sent EOF) while the local client
        # keeps its side open: wake the upstream reader then, as ssh does.
        while upstream.is_alive():
            upstream.join(0.25)
            if channel.closed:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)
    finally:
        channel.close()
        sock.close()
        upstream.join()
        logger.debug("connection %s closed", label)


def _downstream(channel: Channel, sock: socket.socket) -> None:
    try:
        while data := channel.recv(CHANNEL_READ_SIZE):
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        # The local client is gone: end the other direction too.
        channel.close()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _upstream(sock: socket.socket, channel: Channel) -> None:
    try:
        while data := sock.recv(READ_SIZE):
            channel.sendall(data)
        channel.shutdown_write()
    except OSError:
        # A reset from the client, or the channel closed: nothing more can go up.
        channel.close()
