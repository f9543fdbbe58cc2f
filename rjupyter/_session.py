"""One notebook session: a launcher's server, the tunnel to it, and the keeper that minds both.

:class:`~rjupyter.RemoteNotebook` owns one :class:`Session` between ``start()`` and ``close()``.
The session knows nothing of where the server runs (that is the launcher's); it opens the tunnel
over the launcher's connection, waits until the server answers through it, then keeps the link:
heartbeats, reconnects (the launcher swaps the connection, the tunnel follows), and on close the
steps in order, each one run whatever the others did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._deadline import Deadline
from ._errors import HeartbeatError, LaunchError, RJupyterError, SSHConnectError, TunnelError
from ._forward._forwarder import LOOPBACK, Forwarder
from ._forward._forwards import Forward, Forwards
from ._forward._spares import NOTEBOOK_SPARES
from ._jupyter._wire import Endpoint
from ._launch import Launcher
from ._server._remote import RemoteServer
from ._server._startup import ServerInfo
from ._signals import SigtermHold
from ._ssh._connection import SSHConnection
from ._ssh._keeper import ConnectionCallback, Keeper

__all__ = ["Session"]

logger = logging.getLogger(__name__)


class Session:
    """The running parts of one notebook.

    Args:
        launcher: Starts (or finds) the server and owns the connection to it.
        local_port: The local port asked for (0: the OS picks one).
        reconnect_timeout: Seconds to keep trying to reconnect after a drop.
        on_change: Told when the link goes down (False) and comes back (True).
    """

    def __init__(
        self,
        launcher: Launcher,
        *,
        local_port: int,
        reconnect_timeout: float,
        on_change: ConnectionCallback | None,
    ) -> None:
        self.launcher = launcher
        self._local_port = local_port
        self._reconnect_timeout = reconnect_timeout
        self._on_change = on_change
        self.forwarder: Forwarder | None = None
        self.keeper: Keeper | None = None
        self.info: ServerInfo | None = None
        self.forwards: Forwards | None = None

    def start(self, deadline: Deadline) -> ServerInfo:
        """Start the server, open the tunnel, wait until the server answers through it.

        Raises:
            SSHConnectError: A host cannot be reached.
            LaunchError: Jupyter failed to start (``LaunchTimeout``: not within ``deadline``).
            TunnelError: The local port cannot be opened.
            RJupyterError: No server to attach to.
        """
        launcher = self.launcher
        server = launcher.start(deadline)
        info, slot = server.info, launcher.slot
        assert info is not None
        assert slot is not None
        where = f"socket {info.socket}" if info.socket else f"remote port {info.port}"
        launcher.spec.step("tunnel", where)
        forwarder = self.forwarder = Forwarder(
            slot.current.transport,
            info.socket or (LOOPBACK, info.port),
            local_port=self._local_port,
            spares=NOTEBOOK_SPARES,
        )
        slot.on_swap(lambda connection: forwarder.use_transport(connection.transport))
        self.forwards = Forwards(slot)
        forwarder.open()
        self.info = info
        base_url = f"http://{LOOPBACK}:{forwarder.local_port}{info.base_url}"
        endpoint = Endpoint(base_url, info.token, launcher.label)
        endpoint.wait_ready(deadline, server.failure, server.output_tail)
        launcher.spec.step("ready", f"local port {forwarder.local_port}")
        self.keeper = Keeper(
            label=launcher.label,
            slot=slot,
            reconnect=launcher.reconnect,
            adopt=lambda connection: self._unless_gone(launcher.adopt, connection),
            heartbeat=(
                (lambda connection: self._unless_gone(launcher.heartbeat, connection))
                if launcher.wants_heartbeat
                else None
            ),
            heartbeat_period=launcher.heartbeat_period,
            reconnect_timeout=self._reconnect_timeout,
            on_change=self._on_change,
        )
        self.keeper.start()
        # A server that exits is noticed within seconds, also after a reconnect: the tunnel
        # stops forwarding (another user could bind the freed port) and the keeper says so.
        slot.on_swap(lambda connection: self._watch(server))
        server.on_end(self._server_ended)
        self._watch(server)
        return info

    def _watch(self, server: RemoteServer) -> None:
        try:
            server.watch()
        except SSHConnectError as exc:  # the keeper sees the connection fail too
            logger.debug("cannot follow the server on %s: %s", self.launcher.label, exc)

    def _server_ended(self, error: LaunchError) -> None:
        if self.forwarder is not None:
            self.forwarder.mark_broken(str(error))
        reported = self.launcher.explain_end(error)
        if self.keeper is not None:
            self.keeper.fail(reported)

    def _unless_gone(
        self, step: Callable[[SSHConnection], None], connection: SSHConnection
    ) -> None:
        """Run ``step``; when it finds the server gone for good, the tunnel stops forwarding."""
        try:
            step(connection)
        except (SSHConnectError, HeartbeatError):  # the keeper reconnects, or retries
            raise
        except RJupyterError as exc:
            if self.forwarder is not None:
                self.forwarder.mark_broken(str(exc))
            raise

    def forward(self, remote: int | str, *, local_port: int, remote_host: str) -> Forward:
        """One more forward over this session's login (see ``RemoteNotebook.forward``)."""
        if self.forwards is None:
            raise RuntimeError("the notebook is not started; use `with` or call start()")
        return self.forwards.add(remote, local_port=local_port, remote_host=remote_host)

    def kept(self) -> dict[str, Any]:
        """What a handle on this server needs: ``pid``, ``remote_port`` (None on a socket),
        ``remote_socket``, ``job_id`` and the launcher's words on how to come back to it."""
        info, launcher = self.info, self.launcher
        assert info is not None
        return {
            "pid": info.pid,
            "remote_port": None if info.socket else info.port,
            "remote_socket": info.socket,
            "job_id": launcher.job_id,
            "_description": launcher.describe_kept(info.pid, info.port),
        }

    @property
    def error(self) -> RJupyterError | None:
        """Why the session broke for good (the keeper gave up, or the tunnel's pump died),
        else None."""
        if self.keeper is not None and self.keeper.error is not None:
            return self.keeper.error
        return self.forwarder.error if self.forwarder is not None else None

    @property
    def connected(self) -> bool:
        """True while the SSH connection is up and the tunnel forwards."""
        keeper = self.keeper
        return keeper is not None and keeper.connected and self.error is None

    def stop_keeper(self, errors: list[BaseException]) -> None:
        """Stop heartbeats and reconnects; keep the error the keeper gave up with."""
        if self.keeper is not None:
            self.keeper.stop()
            if self.keeper.error is not None:
                errors.append(self.keeper.error)

    def shut_tunnel(self, errors: list[BaseException]) -> None:
        """Stop listening and end every forwarded connection."""
        try:
            try:
                if self.forwards is not None:
                    self.forwards.close()
            finally:
                if self.forwarder is not None:
                    self.forwarder.shut()
        except Exception as exc:
            errors.append(TunnelError(f"closing the local tunnel failed: {exc}"))

    def stop_server(
        self, errors: list[BaseException], *, stop_on_close: bool, started: bool = True
    ) -> None:
        """Stop the server unless it is to keep running; a start that did not complete always
        stops a server launched for it (``keep_running`` included), never one it found."""
        launcher = self.launcher
        try:
            if stop_on_close or (not started and not launcher.attaching):
                launcher.stop()
        except RJupyterError as exc:
            errors.append(exc)

    def close(self) -> None:
        """Close the launcher's connections; idempotent."""
        self.launcher.close()

    def release(self, hold: SigtermHold, *, stop_on_close: bool) -> None:
        """Close everything, for a notebook that was collected unclosed: never raises (each
        failure is logged), and releases the notebook's signal hold."""
        errors: list[BaseException] = []
        try:
            self.stop_keeper(errors)
            self.shut_tunnel(errors)
            self.stop_server(errors, stop_on_close=stop_on_close)
        finally:
            self.close()
            hold.release()
        for error in errors:
            logger.warning("closing the notebook on %s: %s", self.launcher.label, error)
