"""The host launcher: Jupyter runs on the host itself, started by us or found running."""

from __future__ import annotations

import logging
import secrets

from .._deadline import Deadline
from .._errors import RJupyterError, SSHConnectError
from .._server._inventory import find_server, inventory, server_from_record
from .._server._remote import RemoteServer
from .._server._scripts import abandon_step, build_script
from .._ssh._connection import ConnectionSlot, SSHConnection
from ._base import OLD_JUPYTER, Launcher, LaunchSpec, socket_forwarded

__all__ = ["HostLauncher"]

logger = logging.getLogger(__name__)

#: Seconds between heartbeats when the server has no abandon watchdog to feed.
_IDLE_PERIOD = 60.0


class HostLauncher(Launcher):
    """Start Jupyter on ``spec.host`` (detached, under a supervisor), or find a running one.

    Args:
        spec: What to start and how to connect.
        find: ``(pid, port)`` to attach to a running server instead (either may be None:
            the only running server).
    """

    def __init__(self, spec: LaunchSpec, *, find: tuple[int | None, int | None] | None = None):
        super().__init__(spec)
        self._find = find
        self.attaching = find is not None
        self.app = spec.app

    def start(self, deadline: Deadline) -> RemoteServer:
        slot = self.slot = ConnectionSlot(self.spec.connect(deadline))
        self.spec.step("find" if self.attaching else "launch", f"jupyter {self.spec.app}")
        if self._find is not None:
            pid, port = self._find
            record = find_server(inventory(slot.current), host=self.label, pid=pid, port=port)
            self.app = record.app or "server"
            self.server = server_from_record(slot.current, record)
            return self.server
        spec = self.spec
        server = self._launch(slot, deadline, unix_socket=spec.unix_socket is not False)
        info = server.info
        assert info is not None
        if spec.unix_socket is False or socket_forwarded(slot.current, server, spec, deadline):
            return server
        if info.socket is None:  # a Jupyter too old for sockets: on TCP already
            logger.info("Jupyter on %s listens on a TCP port: %s", self.label, OLD_JUPYTER)
            return server
        server.stop()  # (the run dir, and the socket in it, go with it)
        logger.info(
            "%s does not forward to Unix sockets (sshd's AllowStreamLocalForwarding): "
            "Jupyter listens on a TCP port of its loopback instead",
            self.label,
        )
        return self._launch(slot, deadline, unix_socket=False)

    def _launch(
        self, slot: ConnectionSlot, deadline: Deadline, *, unix_socket: bool
    ) -> RemoteServer:
        run_id = secrets.token_hex(8)  # names the launch before it printed anything
        server = self.server = RemoteServer(
            slot, host=self.label, options=self.spec.environment.described(), run_id=run_id
        )
        info = server.start(self._script(run_id, unix_socket=unix_socket), deadline)
        where = info.socket or f"port {info.port}"
        logger.debug("remote server pid %s listens on %s", info.pid, where)
        server.wait_listening(deadline)
        return server

    def _script(self, run_id: str, *, unix_socket: bool) -> str:
        spec = self.spec
        script = build_script(
            app=spec.app,
            port=spec.pick_port(),
            **spec.environment.script_args(),
            run_id=run_id,
            abandon=spec.abandon_timeout or 0,
            keep=spec.keep_running,
            unix_socket=unix_socket,
        )
        return spec.environment.wrap(script)

    def reconnect(self, deadline: Deadline) -> SSHConnection:
        return self.spec.connect(deadline)

    @property
    def wants_heartbeat(self) -> bool:
        server = self.server
        return bool(server is not None and server.run_dir and self.spec.abandon_timeout)

    @property
    def heartbeat_period(self) -> float:
        abandon = self.spec.abandon_timeout
        return abandon_step(abandon) / 2 if abandon else _IDLE_PERIOD

    def heartbeat(self, connection: SSHConnection) -> None:
        if self.server is not None:
            self.server.heartbeat()

    def stop(self) -> None:
        server = self.server
        if server is None:
            return
        try:
            self._live(self.slot)
        except SSHConnectError as exc:
            raise RJupyterError(
                f"cannot stop Jupyter (pid {server.pid}) on {self.label}: {exc}. It stops by "
                "itself after the abandon timeout"
            ) from exc
        server.stop()

    def describe_kept(self, pid: int, port: int) -> str:
        return (
            f"Jupyter pid {pid} on {self.label}{f' (port {port})' if port else ''} keeps running; "
            f"come back with RemoteNotebook.attach({self.label!r}, pid={pid}) "
            f"or `rjupyter attach {self.label} --pid {pid}`"
        )
