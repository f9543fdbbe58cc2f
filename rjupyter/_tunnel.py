"""The local end of the tunnel: an ``sshtunnel.SSHTunnelForwarder`` over our own transport.

The only module that imports sshtunnel. Stock ``SSHTunnelForwarder`` opens a second TCP
connection and logs in again, reads ``~/.ssh/config`` itself, verifies no host key, binds
``0.0.0.0`` by default and installs log handlers; :class:`Forwarder` does none of that. It
forwards over the transport the session already authenticated, listens on loopback only, and
leaves that transport open when it stops (the session closes it last). After a reconnect the
session hands it the new transport (:meth:`Forwarder.use_transport`): the listening socket, and so
the local port, stay the same; connections made while the link is down wait for it.

The data path is ours too (sshtunnel's handler polls ``select`` with 16 KiB reads and checks its
trace logging on every chunk): each connection is spliced by :func:`._link.splice` with large
blocking reads, TCP_NODELAY and half-close, over a channel whose window follows the link's
measured round trip (:class:`._link.LinkEstimate`). The listening socket's backlog is far above
socketserver's 5, which stalls bursts of connections (JupyterLab opens dozens at once) for the
1 s of a SYN retry.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from typing import Any

import paramiko
import sshtunnel

from ._errors import TunnelError
from ._link import MAX_PACKET_SIZE, LinkEstimate, splice
from ._liveness import round_trip

__all__ = ["LOOPBACK", "Forwarder"]

logger = logging.getLogger(__name__)
# sshtunnel logs every forwarded chunk in hex at its TRACE level (1): that would put tokens and
# notebook contents into logs. Nothing below DEBUG leaves this logger.
logger.addFilter(lambda record: record.levelno >= logging.DEBUG)

LOOPBACK = "127.0.0.1"
#: How long a new local connection waits for the SSH link while it is being re-established.
RECONNECT_WAIT = 30.0
#: Seconds allowed for the SSH server to open a channel to the remote address.
CHANNEL_OPEN_TIMEOUT = 30.0
#: Pending connections the listening socket holds (the kernel caps it at somaxconn).
LISTEN_BACKLOG = 1024
_PROBES = 3
_connection_numbers = itertools.count(1)


class _Server(sshtunnel._ThreadingForwardServer):  # type: ignore[misc]
    """sshtunnel's threading server with a listen backlog that absorbs bursts."""

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
        self._link_up = threading.Condition()
        self._bound_port = 0
        self._broken: str | None = None
        self.link = LinkEstimate()
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
        """Forward new connections over ``transport`` from now on (after a reconnect)."""
        with self._link_up:
            self._shared_transport = self._transport = transport
            self._link_up.notify_all()
        self.link.reset()
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
        """The link will not come back: refuse new connections at once, saying why."""
        with self._link_up:
            self._broken = reason
            self._link_up.notify_all()

    def current_transport(self) -> paramiko.Transport:
        """The live transport, waiting a while for one when the link is being re-established.

        Raises:
            TunnelError: No live transport within :data:`RECONNECT_WAIT` seconds, or the link
                was given up.
        """
        with self._link_up:
            ready = self._link_up.wait_for(
                lambda: self._broken is not None or self._shared_transport.is_active(),
                timeout=RECONNECT_WAIT,
            )
            if self._broken is not None or not ready:
                raise TunnelError(
                    f"the SSH link behind local port {self._bound_port} is down: "
                    f"{self._broken or 'still reconnecting'}",
                    local_port=self._bound_port,
                )
            return self._shared_transport

    def _make_ssh_forward_handler_class(self, remote_address_: tuple[str, int]) -> type[Any]:
        forwarder = self

        class Handler(sshtunnel._ForwardHandler):  # type: ignore[misc]
            remote_address = remote_address_
            logger = forwarder.logger

            def handle(self) -> None:
                forwarder.forward(self.request, self.remote_address)

        return Handler

    def _make_ssh_forward_server_class(self, remote_address: tuple[str, int]) -> type[Any]:
        return _Server

    def forward(self, sock: socket.socket, remote_address: tuple[str, int]) -> None:
        """Carry one accepted local connection to ``remote_address`` until both sides end.

        Raises:
            TunnelError: The SSH link is down (the connection is closed).
        """
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        label = str(next(_connection_numbers))
        try:
            transport = self.current_transport()
            started = time.monotonic()
            channel = transport.open_channel(
                "direct-tcpip",
                dest_addr=remote_address,
                src_addr=sock.getpeername()[:2],
                window_size=self.link.window(),
                max_packet_size=MAX_PACKET_SIZE,
                timeout=CHANNEL_OPEN_TIMEOUT,
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            sock.close()
            logger.warning(
                "local port %s: cannot open a channel to %s:%s: %s",
                self._bound_port,
                *remote_address,
                exc,
            )
            return
        except BaseException:
            sock.close()
            raise
        self.link.observe(time.monotonic() - started)
        logger.debug("connection %s to %s:%s open", label, *remote_address)
        splice(sock, channel, label)

    def _make_ssh_forward_server(
        self, remote_address: tuple[str, int], local_bind_address: tuple[str, int]
    ) -> None:
        handler = self._make_ssh_forward_handler_class(remote_address)
        server_class = self._make_ssh_forward_server_class(remote_address)
        try:
            server = server_class(local_bind_address, handler, logger=self.logger)
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

    def _stop_transport(self, force: bool = False) -> None:
        """Stop the listeners; the transport belongs to the session and stays open."""
        for server in self._server_list:
            server.shutdown()
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
        try:
            self.start()
        except sshtunnel.BaseSSHTunnelForwarderError as exc:
            raise TunnelError(f"the SSH tunnel could not start: {exc}") from exc
        self._measure_link(self._shared_transport)

    def shut(self) -> None:
        """Stop listening; idempotent. Connections in flight end when the transport closes."""
        self.mark_broken("the tunnel is closed")
        if self._server_list:
            self.stop(force=True)
