"""Whether this paramiko gets the lean path: decided here, once, for the whole package.

The lean path (:mod:`._fastpath`, :class:`~._spliced.SplicedChannel` and the channel opens of
:class:`~._spliced.Connection`, :mod:`._fixes`) works with paramiko's private state. It is used
only with a paramiko release inside :data:`TESTED` (its test suite was run there, see
:func:`lean_path_enabled`); outside it, and from the moment an internal turns out to be missing
(:func:`disable_lean_path`), tunnels use paramiko's public API: slower, never broken.

The declared floor (``paramiko>=3.5`` in ``pyproject.toml``) is the first release with both
AES-GCM (3.5) and the strict key exchange that closes Terrapin (3.4).
"""

from __future__ import annotations

import functools
import logging
import re
import threading

import paramiko

__all__ = ["TESTED", "disable_lean_path", "lean_path_enabled", "parse_version"]

logger = logging.getLogger(__name__)

#: paramiko releases ``(major, minor)`` from the first included to the first excluded whose
#: internals the lean path was tested against (the unit tests ran on 3.5, 4.0 and 5.1; the
#: forwarding tests against a real sshd on 5.1).
TESTED = ((3, 5), (5, 2))


def parse_version(text: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a version string such as ``"5.1.0"``; None if it has none."""
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


class _Switch:
    """Set once an internal turns out to be missing at run time (any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reason: str | None = None


_SWITCH = _Switch()


@functools.lru_cache(maxsize=4)
def _in_range(version: str) -> bool:
    parsed = parse_version(version)
    low, high = TESTED
    if parsed is not None and low <= parsed < high:
        logger.debug("paramiko %s: lean data path on", version)
        return True
    logger.info(
        "paramiko %s is outside the tested range %d.%d to before %d.%d: tunnels use "
        "paramiko's public API (slower)",
        version,
        *low,
        *high,
    )
    return False


def lean_path_enabled() -> bool:
    """True if this paramiko is in the tested range and no internal was found missing.

    Decided per paramiko version (logged once) and cheap to ask.
    """
    return _SWITCH.reason is None and _in_range(paramiko.__version__)


def disable_lean_path(reason: str) -> None:
    """An internal is missing or changed: every later transport and connection takes
    paramiko's public path (logged once, at WARNING)."""
    with _SWITCH.lock:
        if _SWITCH.reason is not None:
            return
        _SWITCH.reason = reason
    logger.warning(
        "paramiko %s: %s; tunnels use paramiko's public API from now on (slower)",
        paramiko.__version__,
        reason,
    )
