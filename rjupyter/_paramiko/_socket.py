"""The TCP socket under a paramiko transport, for socket options (e.g. ``TCP_CORK``)."""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["transport_socket"]


def transport_socket(transport: Any) -> socket.socket | None:
    """The socket ``transport`` reads and writes (``Transport.sock``); None over a jump host's
    channel, a ProxyCommand, or a paramiko that keeps it elsewhere."""
    sock = getattr(transport, "sock", None)
    return sock if isinstance(sock, socket.socket) else None
