"""The local end of the tunnel: an ``sshtunnel.SSHTunnelForwarder`` over our own transport.

Stock ``SSHTunnelForwarder`` opens a second TCP connection and logs in again, reads
``~/.ssh/config`` itself, verifies no host key, binds ``0.0.0.0`` by default and installs log
handlers; :class:`Forwarder` does none of that (the sshtunnel hooks behind it are overridden in
:mod:`rjupyter._paramiko._sshtunnel`, the fenced place for such internals). It forwards over the
transport the session already authenticated, listens on loopback only, and leaves that transport
open when it stops (the session closes it last). After a reconnect the session hands it the new
transport (:meth:`Forwarder.use_transport`): the listening socket, and so the local port, stay
the same; connections made while the link is down wait for it.

The data path is ours too (sshtunnel's handler polls ``select`` with 16 KiB reads and checks its
trace logging on every chunk, and takes a thread per connection): :class:`._pump.Pump` accepts,
opens each connection's channel with a window that follows the link's measured round trip
(:class:`._windows.LinkEstimate`) and moves its bytes, downstream straight from paramiko's
transport thread. The listening socket's backlog is far above socketserver's 5, which stalls
bursts of connections (JupyterLab opens dozens at once) for the 1 s of a SYN retry. If the
pump's thread dies of an unexpected error, the listening socket is closed (new connections are
refused at once, not left waiting) and :attr:`Forwarder.error` says why.
"""

from __future__ import annotations

import logging
import socket
import threading

import paramiko

from .._errors import TunnelError
from .._paramiko._sshtunnel import TunnelForwarder
from .._paramiko._streamlocal import Address, describe
from .._ssh._liveness import handshake_round_trip, round_trip
from ._pump import Pump
from ._windows import MAX_PACKET_SIZE, LinkEstimate

__all__ = ["LOOPBACK", "Forwarder"]

logger = logging.getLogger(__name__)
# sshtunnel logs every forwarded chunk in hex at its TRACE level (1): that would put tokens and
# notebook contents into logs. Nothing below DEBUG leaves this logger.
logger.addFilter(lambda record: record.levelno >= logging.DEBUG)

LOOPBACK = "127.0.0.1"
_PROBES = 3


class Forwarder(TunnelForwarder):
    """Forward ``127.0.0.1:local_port`` to ``remote_host:remote_port`` (or to a Unix socket on
    the SSH server) over ``transport``.

    Args:
        transport: An authenticated paramiko transport; the forwarder does not close it.
        remote_address: ``(host, port)`` as seen from the SSH server, or a socket's path there.
        local_port: The local port; 0 lets the OS choose a free one.
        spares: Channels kept open ahead of new connections (:mod:`._spares`; 0: none).
    """

    def __init__(
        self,
        transport: paramiko.Transport,
        remote_address: Address,
        *,
        local_port: int = 0,
        spares: int = 0,
    ) -> None:
        self.link = LinkEstimate()
        self._spares = spares
        self._pump: Pump | None = None
        super().__init__(
            transport, remote_address, local_address=(LOOPBACK, local_port), logger=logger
        )

    def use_transport(self, transport: paramiko.Transport) -> None:
        """Forward new connections over ``transport`` from now on (after a reconnect);
        connections accepted while the link was down go now."""
        self.set_transport(transport)
        self.link.reset()
        if self._pump is not None:
            self._pump.use_transport(transport)
        self._measure_link(transport)

    def _measure_link(self, transport: paramiko.Transport) -> None:
        """Start from the round trip seen at login (channels opened from now on get the window
        it asks for), then time a few probes in the background."""
        seconds = handshake_round_trip(transport)
        if seconds is not None:
            self.link.observe(seconds)

        def measure() -> None:
            for _ in range(_PROBES):
                seconds = round_trip(transport)
                if seconds is None:
                    return
                self.link.observe(seconds)
            logger.debug("SSH round trip %.2f ms", (self.link.round_trip or 0) * 1e3)

        threading.Thread(target=measure, name="rjupyter-rtt", daemon=True).start()

    def mark_broken(self, reason: str) -> None:
        """The link will not come back: close connections waiting for it, and new ones."""
        if self._pump is not None:
            self._pump.give_up(reason)

    @property
    def error(self) -> TunnelError | None:
        """Why this forwarder stopped forwarding on its own (its pump died; new connections
        are refused), or None while it forwards."""
        return None if self._pump is None else self._pump.error

    @property
    def broken(self) -> bool:
        """True once the forwarder stopped forwarding on its own (see :attr:`error`)."""
        return self.error is not None

    def serve(self, sock: socket.socket) -> None:
        """Hand the listening socket to the pump, which accepts."""
        assert self._pump is not None
        self._pump.listen(sock)

    def stop_serving(self) -> None:
        """End the pump (every forwarded connection)."""
        if self._pump is not None:
            self._pump.close()

    @property
    def local_port(self) -> int:
        """The local port the tunnel listens on (the same across reconnects)."""
        return self.bound_port

    def open(self) -> None:
        """Start listening and serving.

        Raises:
            TunnelError: The local port cannot be bound, or the forwarder failed to start.
        """
        remote_address = self.remote_address
        self._pump = Pump(
            f"rjupyter-pump-{describe(remote_address)}",
            remote_address,
            self.link,
            MAX_PACKET_SIZE,
            spares=self._spares,
        )
        self._measure_link(self.shared_transport)  # before the first connection can come
        self._pump.use_transport(self.shared_transport)
        try:
            self.start_listening()
        except BaseException:
            self._pump.close()
            raise

    def shut(self) -> None:
        """Stop listening and end every forwarded connection; idempotent."""
        self.mark_broken("the tunnel is closed")
        if self.listening:
            self.stop(force=True)
        elif self._pump is not None:
            self._pump.close()
