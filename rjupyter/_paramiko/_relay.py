"""One forwarded connection by paramiko's public API alone: the path when the lean one is off.

Outside the tested paramiko range, or once an internal the lean path uses turns out missing
(:mod:`._gate`), a connection is relayed as sshtunnel does it: a thread of its own opens the
``direct-tcpip`` channel with ``Transport.open_channel`` (blocking, with a timeout), then copies
both ways with ``select``, ``recv`` and ``sendall``, keeping half-closes. Slower (a thread per
connection, paramiko's buffers and window handling), but it uses nothing private.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import threading
from collections.abc import Callable

import paramiko

from ._streamlocal import Address, describe
from ._streamlocal import open_channel as open_any

__all__ = ["Relay"]

logger = logging.getLogger(__name__)

#: Bytes asked for per read, either way.
_READ_SIZE = 1 << 16
#: Seconds between looks at whether the relay was closed from outside.
_POLL = 1.0


class Relay:
    """Open a channel for the accepted ``sock`` and copy between them in a thread.

    Args:
        sock: The accepted local connection; the relay closes it.
        label: Names the connection in log lines and the thread.
        on_close: Called once, in the relay's thread, when the relay has ended.
    """

    def __init__(self, sock: socket.socket, label: str, on_close: Callable[[], None]) -> None:
        self.sock = sock
        self.label = label
        self._on_close = on_close
        self._lock = threading.Lock()
        self._channel: paramiko.Channel | None = None
        self._closed = False

    def start(
        self,
        transport: paramiko.Transport,
        address: Address,
        peer: tuple[str, int],
        *,
        window: int,
        packet: int,
        timeout: float,
    ) -> None:
        """Open the channel and relay, in a new thread; errors end the connection there.
        (A socket's channel is opened by hand: paramiko's ``open_channel`` knows only
        ``direct-tcpip``.)"""
        open_channel = functools.partial(
            open_any, transport, address, peer, window=window, packet=packet, timeout=timeout
        )
        thread = threading.Thread(
            target=self._run,
            args=(open_channel, address),
            name=f"rjupyter-relay-{self.label}",
            daemon=True,
        )
        thread.start()

    def close(self) -> None:
        """Close the channel and the socket (the thread then ends); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            channel = self._channel
        with contextlib.suppress(OSError):
            self.sock.close()
        if channel is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                channel.close()

    def _run(self, open_channel: Callable[[], paramiko.Channel], address: Address) -> None:
        try:
            channel = open_channel()
            with self._lock:
                self._channel = channel
                closed = self._closed
            if not closed:
                logger.debug(
                    "connection %s to %s open (public path)", self.label, describe(address)
                )
                self.sock.setblocking(True)
                self._copy(channel)
        except (OSError, ValueError, EOFError, paramiko.SSHException) as exc:
            # (ValueError: select on a socket closed meanwhile)
            if not self._closed:
                logger.warning(
                    "connection %s to %s failed: %s",
                    self.label,
                    describe(address),
                    exc or type(exc),
                )
        finally:
            self.close()
            self._on_close()

    def _copy(self, channel: paramiko.Channel) -> None:
        """Copy both ways until both have ended, the server closed the channel after its end,
        or :meth:`close`. (A closed channel may still hold data: it is read to its end.)"""
        sock = self.sock
        local_open = remote_open = True
        while (local_open or remote_open) and not self._closed:
            if not remote_open and channel.closed:
                return
            watched: list[socket.socket | paramiko.Channel] = []
            if local_open:
                watched.append(sock)
            if remote_open:
                watched.append(channel)
            readable, _, _ = select.select(watched, [], [], _POLL)
            if sock in readable:
                local_open = _pass_on(sock, channel, channel.shutdown_write)
            if channel in readable:
                remote_open = _pass_on(channel, sock, lambda: sock.shutdown(socket.SHUT_WR))


def _pass_on(
    source: socket.socket | paramiko.Channel,
    target: socket.socket | paramiko.Channel,
    end: Callable[[], None],
) -> bool:
    """Pass one read of ``source`` on to ``target``; at the end of ``source`` call ``end`` (a
    half-close of ``target``) and return False."""
    data = source.recv(_READ_SIZE)
    if data:
        target.sendall(data)
        return True
    end()
    return False
