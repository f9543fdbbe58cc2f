"""The Launcher interface: how a Jupyter server comes to run, is kept, and is ended.

:class:`~rjupyter.RemoteNotebook` is a lifecycle facade over one launcher. The launcher owns
the SSH connection(s) to where Jupyter runs and the :class:`~._server._remote.RemoteServer`
there; the notebook owns the tunnel, the readiness check, the keeper thread and ``close()``.

A launcher:

- ``start(deadline)`` connects, launches (or finds) the server and returns it once its URL and
  token are known; :attr:`Launcher.slot` then holds the connection to the server's host.
- ``reconnect(deadline)`` opens a new connection to that host after a drop; ``adopt(connection)``
  checks the server is still there and swaps the connection into the slot.
- ``heartbeat(connection)`` runs every :attr:`Launcher.heartbeat_period` seconds while the
  notebook is open (the host launcher feeds the server's abandon watchdog; a batch launcher
  checks its job).
- ``stop()`` ends the server (or the job); ``close()`` closes the launcher's connections.

Two implementations: :class:`~._host.HostLauncher` (the server runs on the host itself) and
:class:`~._batch.BatchLauncher` (it runs in a batch job on a compute node reached through the
login node; one :class:`~._batch.Scheduler` subclass per batch system, e.g. Slurm).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._deadline import Deadline
from .._errors import LaunchError, RJupyterError
from .._server._login import login_script
from .._server._remote import RemoteServer
from .._server._scripts import APPS
from .._ssh._connection import ConnectionSlot, SSHConnection, open_connection
from .._ssh._options import ConnectOptions

__all__ = [
    "OLD_JUPYTER",
    "REMOTE_PORT_RANGE",
    "Environment",
    "LaunchSpec",
    "Launcher",
    "check_arguments",
    "socket_forwarded",
]

logger = logging.getLogger(__name__)

#: Where a remote port is picked when the caller leaves it to us; Jupyter moves up from there
#: when the port is taken, and reports the port it really got.
REMOTE_PORT_RANGE = (20000, 29999)
#: Why a server asked for a socket may listen on a port.
OLD_JUPYTER = (
    "a Unix socket needs jupyter_server 1.9 or later (not Notebook 6) and a run directory path "
    "short enough for one"
)
#: Pauses between opens to a socket that refused, while it may not listen yet.
_PROBE_PAUSES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.0)
#: Seconds allowed to log in again once, when the link is down at the moment of stopping.
_STOP_RECONNECT = 10.0


@dataclass(frozen=True)
class Environment:
    """The remote environment Jupyter runs in (user strings: data, except ``setup``).

    ``login_shell``: run in the user's login environment (see ``_server._login``), else in a
    plain ``/bin/sh``.
    """

    workdir: str | None = None
    venv: str | None = None
    conda_env: str | None = None
    setup: Sequence[str] = ()
    jupyter: str = "jupyter"
    login_shell: bool = True

    def wrap(self, script: str) -> str:
        """``script`` as it is sent: in the login environment, unless ``login_shell`` is off."""
        return login_script(script) if self.login_shell else script

    def script_args(self) -> dict[str, Any]:
        """Keyword arguments for the launch and batch script builders."""
        return {
            "workdir": self.workdir,
            "venv": self.venv,
            "conda_env": self.conda_env,
            "setup": tuple(self.setup),
            "jupyter": self.jupyter or "jupyter",
        }

    def described(self) -> dict[str, str]:
        """The options by name, to explain a launch that failed (``setup:N`` per line)."""
        options = {
            "workdir": str(self.workdir),
            "venv": str(self.venv),
            "conda_env": str(self.conda_env),
            "jupyter": str(self.jupyter),
        }
        options.update({f"setup:{n}": line for n, line in enumerate(self.setup, 1)})
        return options


@dataclass(frozen=True)
class LaunchSpec:
    """What the notebook asks of a launcher.

    Attributes:
        host: The host as the user named it (the login node, with a scheduler).
        app: ``"notebook"``, ``"lab"`` or ``"server"``.
        environment: Where and how Jupyter runs.
        options: How to connect.
        remote_port: The port asked of the server; None picks one.
        unix_socket: Jupyter on a Unix socket: None where possible, True required, False never.
        timeout: Seconds for connecting and starting (with a scheduler: from when the job runs).
        keep_running: The server is to outlive the notebook.
        abandon_timeout: Seconds without a heartbeat before the server stops itself (None: never).
        progress: Told of each step, as ``progress(step, detail)``.
    """

    host: str
    app: str
    environment: Environment
    options: ConnectOptions
    remote_port: int | None = None
    unix_socket: bool | None = None
    timeout: float = 60.0
    keep_running: bool = False
    abandon_timeout: float | None = None
    progress: Callable[[str, str], None] | None = field(default=None, compare=False)

    def step(self, step: str, detail: str = "") -> None:
        """Report one start-up step."""
        if self.progress is not None:
            self.progress(step, detail)

    def pick_port(self) -> int:
        """The remote port to ask for."""
        low, high = REMOTE_PORT_RANGE
        return self.remote_port or low + secrets.randbelow(high - low)

    def connect(
        self, deadline: Deadline, host: str | None = None, *, hop: bool = False
    ) -> SSHConnection:
        """Log in to ``host`` (default: :attr:`host`) with the notebook's options.

        ``hop``: the host is a way to the server (a batch system's login node), not where it
        runs; ``host_key_policy`` is the server host's, so the hop follows its own ssh_config.
        """
        options = dataclasses.replace(self.options, host_key_policy=None) if hop else self.options
        return open_connection(host or self.host, options, deadline)


def socket_forwarded(
    connection: SSHConnection, server: RemoteServer, spec: LaunchSpec, deadline: Deadline
) -> bool:
    """Whether the SSH server forwards to the Unix socket ``server`` listens on, and, when
    ``spec`` leaves the choice open, whether to use a TCP port instead: the socket exists
    (Jupyter printed its URL after binding it), so a refused open means the SSH server forbids
    stream-local forwarding. A server that cannot be on a socket when one is required is
    stopped, with a :class:`LaunchError` saying what to do.

    Raises:
        LaunchError: ``spec.unix_socket`` is True and the socket cannot be used.
        SSHConnectError: The connection failed.
    """
    info = server.info
    assert info is not None
    if info.socket is None:
        reason = f"Jupyter listens on a TCP port, not a Unix socket ({OLD_JUPYTER})"
    elif _reaches(connection, info.socket, deadline):
        return True
    else:
        reason = (
            f"{spec.host}'s SSH server does not forward to Unix sockets "
            "(sshd_config: AllowStreamLocalForwarding no)"
        )
    if not spec.unix_socket:
        return False
    server.stop()
    raise LaunchError(
        f"unix_socket=True, but {reason}; it has been stopped. Use unix_socket=None (a Unix "
        "socket where possible) or unix_socket=False (`--tcp`) for a TCP port on the remote "
        "loopback",
        host=spec.host,
    )


def _reaches(connection: SSHConnection, path: str, deadline: Deadline) -> bool:
    """Whether the server forwards to the socket at ``path``. Jupyter binds the socket, then
    listens: an open in between is refused too, so a refusal is asked again a few times
    (about a second in all) before it counts as the SSH server's answer."""
    for pause in _PROBE_PAUSES:
        if connection.reaches_socket(path, timeout=max(1.0, min(15.0, deadline.remaining()))):
            return True
        if deadline.remaining() < pause:
            break
        time.sleep(pause)
    return False


class Launcher(abc.ABC):
    """How one notebook's server comes to run, is kept alive, and is ended.

    Attributes:
        spec: What was asked.
        slot: The connection to the host the server runs on (None before :meth:`start`).
        server: The server (None before :meth:`start` got that far).
        attaching: True when the launcher finds a running server instead of starting one; a
            found server is not stopped when the start fails.
    """

    attaching = False

    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec
        self.slot: ConnectionSlot | None = None
        self.server: RemoteServer | None = None

    @property
    def label(self) -> str:
        """The host as the user named it."""
        return self.spec.host

    @abc.abstractmethod
    def start(self, deadline: Deadline) -> RemoteServer:
        """Connect, then launch or find the server; return it once its URL is known.

        Raises:
            SSHConnectError: A host cannot be reached.
            LaunchError: Jupyter (or its job) failed to start.
            RJupyterError: No server to attach to.
        """

    @abc.abstractmethod
    def reconnect(self, deadline: Deadline) -> SSHConnection:
        """A new connection to the server's host (after a drop).

        Raises:
            SSHConnectError: The host cannot be reached.
        """

    def adopt(self, connection: SSHConnection) -> None:
        """Move onto ``connection``, once the server is known to be still there.

        Raises:
            RJupyterError: The server ended while the connection was down.
            SSHConnectError: The new connection failed at once.
        """
        server, slot = self.server, self.slot
        assert server is not None
        assert slot is not None
        slot.swap(connection)
        if not server.alive():
            raise RJupyterError(
                f"the Jupyter server (pid {server.pid}) on {self.label} ended while the "
                "connection was down (its kernels are gone); start a new RemoteNotebook"
            )
        if self.spec.abandon_timeout:
            server.heartbeat()

    @property
    @abc.abstractmethod
    def heartbeat_period(self) -> float:
        """Seconds between heartbeats."""

    @abc.abstractmethod
    def heartbeat(self, connection: SSHConnection) -> None:
        """One heartbeat over ``connection``.

        Raises:
            SSHConnectError: The connection failed (the keeper reconnects).
            RJupyterError: The server is gone for good.
        """

    def explain_end(self, error: LaunchError) -> RJupyterError:
        """The error to report for a server seen to exit (a batch launcher names its job's
        end instead, when that is why)."""
        return error

    @property
    def wants_heartbeat(self) -> bool:
        """False when a heartbeat would do nothing."""
        return True

    @abc.abstractmethod
    def stop(self) -> None:
        """End the server (and its kernels) or its job, logging in once more if needed.

        Raises:
            RJupyterError: It could not be stopped; the message says how to by hand.
        """

    @abc.abstractmethod
    def describe_kept(self, pid: int, port: int) -> str:
        """How to come back to (or end) a server left running, for :class:`ServerHandle`."""

    @property
    def job_id(self) -> str | None:
        """The batch job holding the server, if any."""
        return None

    def close(self) -> None:
        """Close every connection the launcher opened; idempotent."""
        if self.slot is not None:
            self.slot.close()

    def _live(
        self, slot: ConnectionSlot | None, host: str | None = None, *, hop: bool = False
    ) -> ConnectionSlot:
        """``slot``, logged in again once if its connection dropped (for one last command).

        Raises:
            SSHConnectError: Logging in again failed.
        """
        assert slot is not None
        if not slot.current.is_active:
            slot.swap(self.spec.connect(Deadline(_STOP_RECONNECT), host, hop=hop))
        return slot


def check_arguments(
    app: str,
    ports: dict[str, int | None],
    setup: Sequence[str],
    *,
    unix_socket: bool | None,
    positive: dict[str, float],
) -> None:
    """Raise ValueError/TypeError for a malformed app, port, setup or timeout of a launch."""
    if app not in APPS:
        raise ValueError(f"app must be one of {', '.join(APPS)}; got {app!r}")
    for name, port in ports.items():
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"{name} must be in 1..65535; got {port}")
    if isinstance(setup, str):
        raise TypeError("setup takes a sequence of shell lines, not one string")
    if unix_socket and ports.get("remote_port") is not None:
        raise ValueError("remote_port= is a TCP port: give it or unix_socket=True, not both")
    for name, value in positive.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive; got {value}")
