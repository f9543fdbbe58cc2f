"""Growing the receive window of a channel that is already open.

paramiko fixes a channel's receive window when it opens the channel (``window_size``) and then
only gives back what was consumed. The window a link needs (bandwidth x round trip) is often
known only later: the first channel of a tunnel opens before the link's round trip has been
measured. A ``CHANNEL_WINDOW_ADJUST`` may add more than was consumed (RFC 4254 5.2), which is
how the window grows here; paramiko's own accounting (``in_window_size`` and the threshold
after which it acknowledges consumed bytes) is moved along so that it keeps acknowledging
a tenth of the new window at a time.
"""

from __future__ import annotations

import logging
from typing import Any

import paramiko
from paramiko.common import cMSG_CHANNEL_WINDOW_ADJUST

__all__ = ["grow_receive_window", "grow_stream_window", "window_adjust"]

logger = logging.getLogger(__name__)

#: What growing a window uses of a channel beyond its public API.
_CHANNEL_STATE = ("lock", "in_window_size", "in_window_threshold", "remote_chanid", "eof_received")


def grow_receive_window(channel: Any, target: int) -> int:
    """Raise ``channel``'s receive window to ``target`` bytes in paramiko's accounting.

    Returns:
        The increase the caller must announce to the server in a WINDOW_ADJUST
        (:func:`window_adjust`); 0 when the window is already that large, the channel is not
        open, or this paramiko keeps its window elsewhere.
    """
    current = getattr(channel, "in_window_size", None)
    if current is None or target <= current:  # the common case, at every channel open
        return 0
    if not all(hasattr(channel, name) for name in _CHANNEL_STATE):
        return 0
    with channel.lock:
        if channel.closed or channel.eof_received or not channel.active:
            return 0
        increase = int(target) - int(channel.in_window_size)
        if increase <= 0:
            return 0
        channel.in_window_size = target
        channel.in_window_threshold = target // 10
    return increase


def window_adjust(channel: Any, increase: int) -> paramiko.Message:
    """The WINDOW_ADJUST message that gives ``channel``'s server ``increase`` more bytes."""
    message = paramiko.Message()
    message.add_byte(cMSG_CHANNEL_WINDOW_ADJUST)
    message.add_int(channel.remote_chanid)
    message.add_int(increase)
    return message


def grow_stream_window(transport: Any, target: int) -> bool:
    """Grow the window of the channel that carries ``transport`` (a connection made through a
    jump host: its stream is a ``direct-tcpip`` channel of the jump host's connection).

    Never call it from the jump host's transport thread (the message waits out a key
    exchange only that thread can finish). Never raises.

    Returns:
        True if the window grew.
    """
    stream = getattr(transport, "sock", None)
    channel = getattr(stream, "channel", stream)  # a ReadAheadChannel, or the channel itself
    if not isinstance(channel, paramiko.Channel):
        return False
    increase = grow_receive_window(channel, target)
    if not increase:
        return False
    outer: Any = channel.transport
    try:
        outer._send_user_message(window_adjust(channel, increase))
    except (OSError, EOFError, paramiko.SSHException) as exc:
        logger.debug("cannot grow the jump host channel's window: %s", exc)
        return False
    logger.debug("jump host channel window now %d bytes", target)
    return True
