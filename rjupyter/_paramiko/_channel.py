"""The channel of a spliced connection and the stand-ins it carries (see :mod:`._spliced`).

:class:`SplicedChannel` is set up without paramiko's constructor, with stand-ins in place of the
receive buffers, events and condition paramiko would build: they hand data, window changes and
the server's answer straight to the :class:`~._spliced.Connection`.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import paramiko

from ._fastpath import Sink

if TYPE_CHECKING:
    from ._spliced import Connection

__all__ = ["OpenSignal", "SplicedChannel", "new_channel"]


class _Discard(Sink):
    """Stands in for a channel's receive buffer (``Channel.in_buffer``) and drops what comes:
    used as the stderr buffer, which a direct-tcpip channel never gets data for (paramiko would
    keep any forever, unread). Nothing reads from it."""

    def feed(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        return None

    def read_ready(self) -> bool:
        return False

    def set_event(self, event: Any) -> None:  # fileno() is never asked for here
        return None

    def __len__(self) -> int:
        return 0


class _Sink(_Discard):
    """Stands in for a channel's receive buffer and passes data to the connection.

    paramiko's transport thread (or the lean path) calls :meth:`feed` with each data packet,
    and paramiko calls :meth:`close` at the server's EOF and when the channel closes.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def feed(self, data: bytes) -> None:
        self._connection.from_remote(data)

    def close(self) -> None:
        self._connection.pump.wake(self._connection)


class _WindowSignal:
    """Stands in for a channel's send-window condition (``Channel.out_buffer_cv``): paramiko
    notifies it when the server opens the window or the channel closes, and then the pump is
    woken. Nothing waits on it: the channel's timeout is 0, so a send without window raises
    instead of waiting. (A real condition per connection costs a lock and a condition; a burst
    of connections feels it.)"""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def notify_all(self) -> None:
        self._connection.pump.wake(self._connection)

    notify = notify_all

    def wait(self, timeout: float | None = None) -> bool:
        return False


class OpenSignal:
    """Stands in for paramiko's per-channel open event (``Transport.channel_events``): the
    transport thread sets it when the server answers the open (or the transport ends); the
    client's first bytes go out then, and the pump is woken."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._set = False

    def set(self) -> None:
        self._connection.answered()
        self._set = True
        self._connection.pump.wake(self._connection)

    def is_set(self) -> bool:
        return self._set


class _Inert:
    """Stands in for the channel events paramiko sets on close and a direct-tcpip channel
    never waits on."""

    def set(self) -> None:
        return None

    def clear(self) -> None:
        return None

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        return False


_INERT = _Inert()
_DISCARD = _Discard()
_CHANNEL_LOGGER = logging.getLogger("paramiko.transport")


class SplicedChannel(paramiko.Channel):
    """A channel for one spliced connection, set up as ``paramiko.Channel.__init__`` does but
    with the connection's stand-ins in place of the two receive buffers, two events and a
    condition it would build and this path replaces or never uses (they were a third of the
    cost of opening a connection). Its timeout is 0: a send without window raises instead of
    waiting. A test checks it has every attribute paramiko's constructor sets, and where a
    paramiko release sets more, paramiko's own channel is used instead (:func:`new_channel`)."""

    def __init__(self, chanid: int, connection: Connection) -> None:
        self.chanid = chanid
        self.remote_chanid = 0
        self.transport = None
        self.active = False
        self.eof_received = 0
        self.eof_sent = 0
        self.in_buffer: Any = _Sink(connection)
        self.in_stderr_buffer: Any = _DISCARD
        self.timeout = 0.0
        self.closed = False
        self.ultra_debug = False
        self.lock = threading.Lock()
        self.out_buffer_cv: Any = _WindowSignal(connection)
        self.in_window_size = 0
        self.out_window_size = 0
        self.in_max_packet_size = 0
        self.out_max_packet_size = 0
        self.in_window_threshold = 0
        self.in_window_sofar = 0
        self.status_event: Any = _INERT
        self._name = str(chanid)
        self.logger = _CHANNEL_LOGGER
        self._pipe = None
        self.event: Any = _INERT
        self.event_ready = False
        self.combine_stderr = False
        self.exit_status = -1
        self.origin_addr = None

    def _log(self, level: int, msg: str, *args: Any) -> None:
        # paramiko joins the line (``"[chan " + name + "] " + msg``) before the logger looks at
        # its level: three or four times in every connection's life, almost never logged.
        if self.logger.isEnabledFor(level):
            super()._log(level, msg, *args)  # type: ignore[misc]


def _matches_paramiko() -> bool:
    """Whether :class:`SplicedChannel` sets what this paramiko's ``Channel()`` sets."""
    connection: Any = None
    try:
        return set(vars(SplicedChannel(0, connection))) == set(vars(paramiko.Channel(0)))
    except Exception:  # a constructor that changed more than its attributes
        return False


_LEAN_CHANNEL = _matches_paramiko()


def new_channel(chanid: int, connection: Connection) -> Any:
    """A channel for ``connection``: a :class:`SplicedChannel`, or paramiko's own with the
    stand-ins put in if this paramiko's constructor sets something SplicedChannel does not."""
    if _LEAN_CHANNEL:
        return SplicedChannel(chanid, connection)
    channel: Any = paramiko.Channel(chanid)
    channel.settimeout(0.0)
    channel.in_buffer = _Sink(connection)
    channel.out_buffer_cv = _WindowSignal(connection)
    return channel
