"""Sizing channel windows from the SSH link's round trip (the data path is :mod:`._pump`).

:class:`LinkEstimate` keeps the smallest recent round-trip time of the SSH link and turns it
into a channel window of about bandwidth x RTT. Windows bound throughput on slow links (a
2 MiB window over 40 ms caps a connection near 50 MB/s); on fast links very large windows make
paramiko slower (its receive buffer deletes from the front of an array on each read), so the
window grows only when the round trip says it must.

The first sample is the round trip seen during the login
(:func:`rjupyter._ssh._liveness.handshake_round_trip`), so the first channel already opens
with the window the link needs; probes and channel opens refine it, and whoever listens
(:meth:`LinkEstimate.on_change`: the pump) grows the windows of channels already open when the
window it gives changes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

__all__ = [
    "MAX_PACKET_SIZE",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "LinkEstimate",
    "window_for",
]

logger = logging.getLogger(__name__)

#: The window for links with (almost) no latency: paramiko's default, fast on loopback.
MIN_WINDOW = 2 << 20
#: The largest window: what one slow reader can make the forwarder hold per connection.
MAX_WINDOW = 16 << 20
#: What one forwarded connection should be able to carry; the window is this x RTT.
TARGET_BANDWIDTH = 400e6
#: Largest SSH packet we ask the server to send: fewer packets, less Python work per byte.
MAX_PACKET_SIZE = 1 << 18
_SAMPLES = 16


class LinkEstimate:
    """The round-trip time of one SSH link (smallest of recent samples) and the window for it.

    Thread-safe: the forwarder's connections add samples and ask for windows concurrently.
    """

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=_SAMPLES)
        self._lock = threading.Lock()
        self._window = MIN_WINDOW
        self._listeners: list[Callable[[int], None]] = []

    def on_change(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(window)`` (from the thread that added the sample) whenever
        :meth:`window` changes; it must not block."""
        with self._lock:
            self._listeners.append(listener)

    def observe(self, seconds: float) -> None:
        """Add one round-trip sample (the login's, a reply to a probe, or the time to open a
        channel)."""
        with self._lock:
            self._samples.append(seconds)
        self._update()

    def reset(self) -> None:
        """Forget the samples (the link changed, e.g. after a reconnect)."""
        with self._lock:
            self._samples.clear()
        self._update()

    def _update(self) -> None:
        with self._lock:
            window = window_for(min(self._samples)) if self._samples else MIN_WINDOW
            changed, self._window = window != self._window, window
            listeners = list(self._listeners) if changed else []
        for listener in listeners:
            listener(window)

    @property
    def round_trip(self) -> float | None:
        """Seconds; None before the first sample."""
        with self._lock:
            return min(self._samples) if self._samples else None

    def window(self) -> int:
        """Channel window in bytes: bandwidth x RTT, between :data:`MIN_WINDOW` and
        :data:`MAX_WINDOW` (the smallest before the first sample)."""
        return self._window


def window_for(round_trip: float) -> int:
    """The window for a link of ``round_trip`` seconds: bandwidth x RTT, within bounds."""
    return max(MIN_WINDOW, min(MAX_WINDOW, int(TARGET_BANDWIDTH * round_trip)))
