"""The local end of the tunnel: an ``sshtunnel.SSHTunnelForwarder`` over our own transport.

The only module that imports sshtunnel. Stock ``SSHTunnelForwarder`` opens a second TCP
connection and logs in again, reads ``~/.ssh/config`` itself, verifies no host key, binds
``0.0.0.0`` by default and installs log handlers; :class:`Forwarder` does none of that. It
forwards over the transport the session already authenticated, listens on loopback only, and
leaves that transport open when it stops (the session closes it last). After a reconnect the
session hands it the new transport (:meth:`Forwarder.use_transport`): the listening socket, and so
the local port, stay the same; connections made while the link is down wait for it.

The data path is ours too (sshtunnel's handler polls ``select`` with 16 KiB reads and checks its
trace logging on every chunk, and takes a thread per connection): an accepted connection goes to
a small pool of long-lived threads that open its channel (a round trip to the server), with a
window that follows the link's measured round trip (:class:`._link.LinkEstimate`); from then on
:class:`._pump.Pump` moves its bytes, downstream straight from paramiko's transport thread. The
listening socket's backlog is far above socketserver's 5, which stalls bursts of connections
(JupyterLab opens dozens at once) for the 1 s of a SYN retry.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paramiko
import sshtunnel

from .._errors import TunnelError
from .._ssh._liveness import round_trip
from ._pump import Pump
from ._windows import MAX_PACKET_SIZE, LinkEstimate

__all__ = ["LOOPBACK", "Forwarder"]

logger = logging.getLogger(__name__)
# sshtunnel logs every forwarded chunk in hex at its TRACE level (1): that would put tokens and
# notebook contents into logs. Nothing below DEBUG leaves this logger.
logger.addFilter(lambda record: record.levelno >= logging.DEBUG)

LOOPBACK = "127.0.0.1"
#: Pending connections the listening socket holds (the kernel caps it at somaxconn).
LISTEN_BACKLOG = 1024
_PROBES = 3


class _Server(sshtunnel._ThreadingForwardServer):  # type: ignore[misc]
    """sshtunnel's server with a listen backlog that absorbs bursts. It only binds and listens:
    the pump accepts (no serving thread, no thread per connection)."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


class Forwarder(sshtunnel.SSHTunnelForwarder):  # type: ignore[misc]
    """Forward ``127.0.0.1:local_port`` to ``remote_host:remote_port`` over ``transport``.

    Args:
        transport: An authenticated paramiko transport; the forwarder does not close it.
        remote_address: ``(host, port)`` as seen from the SSH server.
        local_port: The local port; 0 lets the OS choose a free one.
    """

    daemon_forward_servers = True
    daemon_transport = True

    def __init__(
        self,
        transport: paramiko.Transport,
        remote_address: tuple[str, int],
        *,
        local_port: int = 0,
    ) -> None:
        self._shared_transport = transport
        self._bound_port = 0
        self.link = LinkEstimate()
        self._pump: Pump | None = None
        host, port = transport.getpeername()[:2]
        super().__init__(
            (host, port),
            ssh_config_file=None,
            ssh_username=transport.get_username(),
            local_bind_address=(LOOPBACK, local_port),
            remote_bind_address=remote_address,
            logger=logger,
            allow_agent=False,
            host_pkey_directories=[],
            set_keepalive=0.0,
        )

    @staticmethod
    def _consolidate_auth(*args: Any, **kwargs: Any) -> tuple[None, list[Any]]:
        """No credentials: the transport is already logged in."""
        return None, []

    def _connect_to_gateway(self) -> None:
        self._transport = self._shared_transport

    def use_transport(self, transport: paramiko.Transport) -> None:
        """Forward new connections over ``transport`` from now on (after a reconnect);
        connections accepted while the link was down go now."""
        self._shared_transport = self._transport = transport
        self.link.reset()
        if self._pump is not None:
            self._pump.use_transport(transport)
        self._measure_link(transport)

    def _measure_link(self, transport: paramiko.Transport) -> None:
        """Time a few probes in the background; until then, channels get the smallest window."""

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

    def _make_ssh_forward_server_class(self, remote_address: tuple[str, int]) -> type[Any]:
        return _Server

    def _make_ssh_forward_server(
        self, remote_address: tuple[str, int], local_bind_address: tuple[str, int]
    ) -> None:
        server_class = self._make_ssh_forward_server_class(remote_address)
        try:
            server = server_class(local_bind_address, sshtunnel._ForwardHandler, logger=self.logger)
        except OSError as exc:
            port = local_bind_address[1]
            raise TunnelError(
                f"cannot listen on {LOOPBACK}:{port}: {exc.strerror or exc}. "
                f"Another program uses local port {port}; pick another local_port "
                "or leave it unset to let the system choose a free one",
                local_port=port,
            ) from exc
        server.daemon_threads = self.daemon_forward_servers
        self._server_list.append(server)
        self.tunnel_is_up[server.server_address] = False
        self._bound_port = int(server.server_address[1])

    def _serve_forever_wrapper(self, _srv: Any, poll_interval: float = 0.1) -> None:
        """Hand the listening socket to the pump, which accepts (sshtunnel runs this in a
        thread of its own, which then ends)."""
        assert self._pump is not None
        self._pump.listen(_srv.socket)

    def _stop_transport(self, force: bool = False) -> None:
        """End the pump (every forwarded connection) and close the listening sockets; the
        transport belongs to the session and stays open."""
        if self._pump is not None:
            self._pump.close()
        for server in self._server_list:
            server.server_close()
        self.is_alive = False

    @property
    def local_port(self) -> int:
        """The local port the tunnel listens on (the same across reconnects)."""
        return self._bound_port

    def open(self) -> None:
        """Start listening and serving.

        Raises:
            TunnelError: The local port cannot be bound, or the forwarder failed to start.
        """
        self._pump = Pump(
            f"rjupyter-pump-{self._remote_binds[0][1]}",
            self._remote_binds[0],
            self.link,
            MAX_PACKET_SIZE,
        )
        self._pump.use_transport(self._shared_transport)
        try:
            self.start()
        except BaseException as exc:
            self._pump.close()
            if isinstance(exc, sshtunnel.BaseSSHTunnelForwarderError):
                raise TunnelError(f"the SSH tunnel could not start: {exc}") from exc
            raise
        self._measure_link(self._shared_transport)

    def shut(self) -> None:
        """Stop listening and end every forwarded connection; idempotent."""
        self.mark_broken("the tunnel is closed")
        if self._server_list:
            self.stop(force=True)
        elif self._pump is not None:
            self._pump.close()
