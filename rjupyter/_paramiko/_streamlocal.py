"""Channels to a remote Unix socket: OpenSSH's ``direct-streamlocal@openssh.com``.

paramiko knows only ``direct-tcpip``: asked for ``direct-streamlocal@openssh.com`` its
``open_channel`` sends a host and port where OpenSSH expects a path, a reserved string and a
reserved uint32, and OpenSSH drops the whole connection. So the open is built here by hand,
with the steps of ``Transport.open_channel`` (paramiko internals: this is the fenced package).

A forwarded address is either ``(host, port)`` (``direct-tcpip``) or a ``str``, the path of a
socket on the SSH server (``direct-streamlocal@openssh.com``); :func:`add_target` writes either
into a CHANNEL_OPEN message, :func:`open_channel` opens either and waits for the answer.

OpenSSH answers an open to a missing path and one that its ``AllowStreamLocalForwarding``
forbids alike ("open failed"): only an open that fails on a socket known to exist tells that
the server forbids stream-local forwarding (:func:`reaches_socket` is that probe).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paramiko
from paramiko.common import cMSG_CHANNEL_OPEN

__all__ = [
    "STREAMLOCAL",
    "Address",
    "add_target",
    "channel_type",
    "describe",
    "open_channel",
    "reaches_socket",
    "streamlocal_available",
]

#: OpenSSH's channel type for a connection to a Unix socket on the server.
STREAMLOCAL = "direct-streamlocal@openssh.com"

#: ``(host, port)`` as seen from the SSH server, or the path of a Unix socket there.
Address = tuple[str, int] | str

_STEPS = (
    "lock",
    "_sanitize_window_size",
    "_sanitize_packet_size",
    "_next_channel",
    "_channels",
    "channel_events",
    "channels_seen",
    "_send_user_message",
)


def describe(address: Address) -> str:
    """``host:port``, or the socket's path, for log lines and messages."""
    if isinstance(address, str):
        return address
    return f"{address[0]}:{address[1]}"


def streamlocal_available(transport: Any) -> bool:
    """Whether this paramiko has what a hand-built open uses."""
    return all(hasattr(transport, name) for name in _STEPS) and hasattr(
        paramiko.Channel, "_set_transport"
    )


def add_target(message: paramiko.Message, address: Address, peer: tuple[str, int]) -> None:
    """Write the part of a CHANNEL_OPEN that follows the window and packet sizes: for a socket
    its path, a reserved string and a reserved uint32; else the address and the originator."""
    if isinstance(address, str):
        message.add_string(address)
        message.add_string("")  # reserved
        message.add_int(0)  # reserved
        return
    message.add_string(address[0])
    message.add_int(address[1])
    message.add_string(peer[0])
    message.add_int(peer[1])


def channel_type(address: Address) -> str:
    """The channel type that reaches ``address``."""
    return STREAMLOCAL if isinstance(address, str) else "direct-tcpip"


def open_channel(
    transport: paramiko.Transport,
    address: Address,
    peer: tuple[str, int],
    *,
    window: int,
    packet: int,
    timeout: float,
) -> paramiko.Channel:
    """Open a channel to ``address`` and wait for it (``Transport.open_channel``'s steps).

    Raises:
        paramiko.ChannelException: The server refused (for a socket: missing, or forbidden).
        paramiko.SSHException: The transport is down, the open timed out, or this paramiko
            lacks what a stream-local open needs.
    """
    if not isinstance(address, str):
        return transport.open_channel(
            "direct-tcpip",
            address,
            peer,
            window_size=window,
            max_packet_size=packet,
            timeout=timeout,
        )
    if not streamlocal_available(transport):
        raise paramiko.SSHException("this paramiko cannot open stream-local channels")
    if not transport.is_active():
        raise paramiko.SSHException("SSH session not active")
    owner: Any = transport
    event = threading.Event()
    message = paramiko.Message()
    with owner.lock:
        window = owner._sanitize_window_size(window)
        packet = owner._sanitize_packet_size(packet)
        chanid = owner._next_channel()
        message.add_byte(cMSG_CHANNEL_OPEN)
        message.add_string(STREAMLOCAL)
        message.add_int(chanid)
        message.add_int(window)
        message.add_int(packet)
        add_target(message, address, peer)
        channel: Any = paramiko.Channel(chanid)
        owner._channels.put(chanid, channel)
        owner.channel_events[chanid] = event
        owner.channels_seen[chanid] = True
        channel._set_transport(owner)
        channel._set_window(window, packet)
    owner._send_user_message(message)
    opened: paramiko.Channel = _wait_open(owner, chanid, event, timeout)
    return opened


def _wait_open(owner: Any, chanid: int, event: threading.Event, timeout: float) -> Any:
    """The answer to an open (as ``open_channel`` waits for it)."""
    start = time.monotonic()
    while not event.wait(0.1):
        if not owner.active:
            raise owner.get_exception() or paramiko.SSHException("Unable to open channel.")
        if time.monotonic() - start > timeout:
            owner.channel_events.pop(chanid, None)
            owner._channels.delete(chanid)
            raise paramiko.SSHException("Timeout opening channel.")
    channel = owner._channels.get(chanid)
    if channel is not None:
        return channel
    raise owner.get_exception() or paramiko.SSHException("Unable to open channel.")


def reaches_socket(transport: paramiko.Transport, path: str, *, timeout: float) -> bool:
    """Open and close a stream-local channel to ``path``: True if the server opened it, False
    if it refused (for a socket known to exist and listen: the server forbids stream-local
    forwarding). paramiko's ERROR line for a refused open is left out of the logs: here a
    refusal is an answer, not a failure.

    Raises:
        paramiko.SSHException: The transport failed, or this paramiko cannot open one.
        OSError, EOFError: The connection failed.
    """
    quiet = _Refusals()
    paramiko_logger = getattr(transport, "logger", None)
    if paramiko_logger is not None:
        paramiko_logger.addFilter(quiet)
    try:
        channel = open_channel(
            transport, path, ("127.0.0.1", 0), window=1 << 16, packet=1 << 15, timeout=timeout
        )
    except paramiko.ChannelException:
        return False
    finally:
        if paramiko_logger is not None:
            paramiko_logger.removeFilter(quiet)
    channel.close()
    return True


class _Refusals(logging.Filter):
    """Drops paramiko's "Secsh channel N open FAILED" lines (while a probe runs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "open FAILED" not in str(record.msg)
