"""sshtunnel's forwarder bent to a transport that is already logged in: its private hooks.

The only module that imports sshtunnel. Stock ``SSHTunnelForwarder`` opens a second TCP
connection and logs in again, reads ``~/.ssh/config`` itself, verifies no host key, binds
``0.0.0.0`` by default and installs log handlers. :class:`TunnelForwarder` overrides the private
hooks behind that (``_consolidate_auth``, ``_connect_to_gateway``, ``_make_ssh_forward_server*``,
``_serve_forever_wrapper``, ``_stop_transport``) so that it binds the local address and nothing
more; a subclass serves the listening socket (:meth:`TunnelForwarder.serve`) and stops serving
(:meth:`TunnelForwarder.stop_serving`) with public names only.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import paramiko
import sshtunnel

from .._errors import TunnelError
from ._streamlocal import Address

__all__ = ["LISTEN_BACKLOG", "TunnelForwarder"]

#: What sshtunnel is told it forwards to when the target is a socket: it refuses remote socket
#: paths, and here it only binds (the real target: :attr:`TunnelForwarder.remote_address`).
_NOMINAL = ("127.0.0.1", 1)

#: Pending connections the listening socket holds (the kernel caps it at somaxconn).
LISTEN_BACKLOG = 1024


class _Server(sshtunnel._ThreadingForwardServer):  # type: ignore[misc]
    """sshtunnel's server with a listen backlog that absorbs bursts. It only binds and listens:
    the subclass's :meth:`TunnelForwarder.serve` accepts (no serving thread, no thread per
    connection)."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


class TunnelForwarder(sshtunnel.SSHTunnelForwarder):  # type: ignore[misc]
    """An ``SSHTunnelForwarder`` over ``transport`` that only binds ``local_address``.

    Args:
        transport: An authenticated paramiko transport; the forwarder does not close it.
        remote_address: ``(host, port)`` as seen from the SSH server, or a socket's path there.
        local_address: ``(host, port)`` to listen on; port 0 lets the OS choose.
        logger: Given to sshtunnel (which would otherwise add log handlers of its own).
    """

    daemon_forward_servers = True
    daemon_transport = True

    def __init__(
        self,
        transport: paramiko.Transport,
        remote_address: Address,
        *,
        local_address: tuple[str, int],
        logger: logging.Logger,
    ) -> None:
        self._target = remote_address
        self._shared_transport = transport
        self._bound_port = 0
        host, port = transport.getpeername()[:2]
        super().__init__(
            (host, port),
            ssh_config_file=None,
            ssh_username=transport.get_username(),
            local_bind_address=local_address,
            remote_bind_address=_NOMINAL if isinstance(remote_address, str) else remote_address,
            logger=logger,
            allow_agent=False,
            host_pkey_directories=[],
            set_keepalive=0.0,
        )

    # -- what a subclass provides -----------------------------------------------------------

    def serve(self, sock: socket.socket) -> None:
        """Serve the listening ``sock`` (called from a thread sshtunnel starts, which may end
        at once); this class closes ``sock`` when it stops."""
        raise NotImplementedError

    def stop_serving(self) -> None:
        """End every forwarded connection (the listening sockets are closed next)."""
        raise NotImplementedError

    # -- public ---------------------------------------------------------------------------------

    def start_listening(self) -> None:
        """Bind and start serving (sshtunnel's ``start``).

        Raises:
            TunnelError: The local address cannot be bound, or sshtunnel failed to start.
        """
        try:
            self.start()
        except sshtunnel.BaseSSHTunnelForwarderError as exc:
            raise TunnelError(f"the SSH tunnel could not start: {exc}") from exc

    @property
    def shared_transport(self) -> paramiko.Transport:
        """The transport connections are forwarded over."""
        return self._shared_transport

    def set_transport(self, transport: paramiko.Transport) -> None:
        """Forward over ``transport`` from now on (after a reconnect)."""
        self._shared_transport = self._transport = transport

    @property
    def remote_address(self) -> Address:
        """``(host, port)`` as seen from the SSH server, or a socket's path there."""
        return self._target

    @property
    def bound_port(self) -> int:
        """The local port bound (0 before :meth:`start`)."""
        return self._bound_port

    @property
    def listening(self) -> bool:
        """True once bound and until stopped."""
        return bool(self._server_list)

    # -- sshtunnel's private hooks --------------------------------------------------------------

    @staticmethod
    def _consolidate_auth(*args: Any, **kwargs: Any) -> tuple[None, list[Any]]:
        """No credentials: the transport is already logged in."""
        return None, []

    def _connect_to_gateway(self) -> None:
        self._transport = self._shared_transport

    def _make_ssh_forward_server_class(self, remote_address: tuple[str, int]) -> type[Any]:
        return _Server

    def _make_ssh_forward_server(
        self, remote_address: tuple[str, int], local_bind_address: tuple[str, int]
    ) -> None:
        server_class = self._make_ssh_forward_server_class(remote_address)
        try:
            server = server_class(local_bind_address, sshtunnel._ForwardHandler, logger=self.logger)
        except OSError as exc:
            host, port = local_bind_address
            raise TunnelError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. "
                f"Another program uses local port {port}; pick another local_port "
                "or leave it unset to let the system choose a free one",
                local_port=port,
            ) from exc
        server.daemon_threads = self.daemon_forward_servers
        self._server_list.append(server)
        self.tunnel_is_up[server.server_address] = False
        self._bound_port = int(server.server_address[1])

    def _serve_forever_wrapper(self, _srv: Any, poll_interval: float = 0.1) -> None:
        """Hand the listening socket to :meth:`serve` (sshtunnel runs this in a thread of its
        own, which then ends)."""
        self.serve(_srv.socket)

    def _stop_transport(self, force: bool = False) -> None:
        """Stop serving and close the listening sockets; the transport belongs to the session
        and stays open."""
        self.stop_serving()
        for server in self._server_list:
            server.server_close()
        self.is_alive = False
