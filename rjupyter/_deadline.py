"""A point in time shared by the steps of one operation (a leaf: imports nothing of ours)."""

from __future__ import annotations

import time

__all__ = ["Deadline"]


class Deadline:
    """A point in time shared by the steps of one operation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self, floor: float = 0.0) -> float:
        """Seconds left, at least ``floor``."""
        return max(floor, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        """True once the time is up."""
        return time.monotonic() >= self._end
