"""RemoteNotebook: the public lifecycle object."""

from __future__ import annotations

import enum
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from ._automation import NotebookAutomation
from ._discovery import ServerInfo
from ._errors import (
    LaunchError,
    LaunchTimeout,
    NotebookClosedError,
    RJupyterError,
    TunnelError,
    add_note,
)
from ._launcher import APPS, RemoteServer, build_script
from ._ssh import AuthHandler, ConnectOptions, Deadline, SSHConnection, open_connection
from ._tunnel import LOOPBACK, Forwarder

if TYPE_CHECKING:
    import paramiko

__all__ = ["RemoteNotebook"]

logger = logging.getLogger(__name__)

#: Where a remote port is picked when the caller leaves it to us; Jupyter moves up from there
#: when the port is taken, and reports the port it really got.
REMOTE_PORT_RANGE = (20000, 29999)


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSED = "closed"


class RemoteNotebook(NotebookAutomation):
    """A Jupyter server started on a remote host over SSH, reachable on a local port.

    ``with RemoteNotebook("gpu-box", venv="~/project/.venv") as nb: print(nb.url)`` logs in
    once, starts ``jupyter notebook --no-browser`` on the remote loopback, forwards a local
    loopback port to it over the same SSH connection, and returns when the server answers
    through the tunnel. Leaving the block stops exactly that server (and its kernels), then the
    tunnel and the connection.

    Args:
        host: An alias from the SSH config, ``host``, ``user@host`` or ``user@host:port``.
        app: ``"notebook"``, ``"lab"`` or ``"server"``: which Jupyter front end to start.
        remote_port: The port asked of the remote server; None picks one. Jupyter moves to the
            next free port when it is taken; :attr:`remote_port` reports the real one.
        local_port: The local port; None lets the OS choose a free one.
        workdir: Remote directory to serve (``~`` means the remote home).
        venv: Remote virtual environment to enter.
        conda_env: Remote conda environment (name or path) to activate.
        setup: Shell lines run first on the remote host, e.g. ``"module load python/3.11"``.
            These are shell code by design; every other string is treated as data.
        jupyter: The ``jupyter`` command or its path on the remote host.
        ssh_config: SSH config file to read (default ``~/.ssh/config``).
        identity_file: A private key file to try first.
        password: A password for password authentication.
        passphrase: For encrypted keys: the passphrase, or a callable given the key's path.
        host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``; None (default) follows
            ``StrictHostKeyChecking`` in the SSH config, itself defaulting to ``"reject"``.
        jump: Jump host(s) like ``ProxyJump``; None follows the SSH config.
        auth_handler: ``auth_handler(title, instructions, prompts)`` answers keyboard-interactive
            prompts (``prompts`` is a list of ``(prompt, echo)``); returns one answer each.
        timeout: Seconds allowed for connecting, starting and becoming ready.

    Raises:
        ValueError: An argument is malformed (bad ``app``, port or host spec).
    """

    def __init__(
        self,
        host: str,
        *,
        app: str = "notebook",
        remote_port: int | None = None,
        local_port: int | None = None,
        workdir: str | None = None,
        venv: str | None = None,
        conda_env: str | None = None,
        setup: Sequence[str] = (),
        jupyter: str = "jupyter",
        ssh_config: str | os.PathLike[str] | None = None,
        identity_file: str | os.PathLike[str] | None = None,
        password: str | None = None,
        passphrase: str | Callable[[str], str] | None = None,
        host_key_policy: str | None = None,
        jump: str | Sequence[str] | None = None,
        auth_handler: AuthHandler | None = None,
        timeout: float = 60.0,
    ) -> None:
        if app not in APPS:
            raise ValueError(f"app must be one of {', '.join(APPS)}; got {app!r}")
        for name, port in (("remote_port", remote_port), ("local_port", local_port)):
            if port is not None and not 0 < port < 65536:
                raise ValueError(f"{name} must be in 1..65535; got {port}")
        if isinstance(setup, str):
            raise TypeError("setup takes a sequence of shell lines, not one string")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive; got {timeout}")
        self.host = host
        self.app = app
        self._asked_remote_port = remote_port
        self._asked_local_port = local_port
        self._environment = {
            "workdir": workdir,
            "venv": venv,
            "conda_env": conda_env,
            "jupyter": jupyter,
        }
        self._setup = tuple(setup)
        self._connect_options = ConnectOptions(
            ssh_config=ssh_config,
            identity_file=identity_file,
            password=password,
            passphrase=passphrase,
            host_key_policy=host_key_policy,
            jump=jump,
            auth_handler=auth_handler,
        )
        self.timeout = timeout
        self._state = _State.NEW
        self._lock = threading.Lock()
        self._connection: SSHConnection | None = None
        self._server: RemoteServer | None = None
        self._forwarder: Forwarder | None = None
        self._info: ServerInfo | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RemoteNotebook:
        """Connect, start the server, open the tunnel; return once the server answers.

        Returns:
            self, for chaining.

        Raises:
            SSHConnectError: The host cannot be reached (``AuthenticationError`` and
                ``HostKeyError`` are subclasses).
            LaunchError: The remote environment or Jupyter is missing, or Jupyter exited.
            LaunchTimeout: The server was not ready within ``timeout`` seconds.
            TunnelError: The local port cannot be opened.
            NotebookClosedError: The object was already closed.
            RuntimeError: The object was already started.
        """
        with self._lock:
            if self._state is _State.CLOSED:
                raise NotebookClosedError("this RemoteNotebook is closed; create a new one")
            if self._state is not _State.NEW:
                raise RuntimeError("this RemoteNotebook was already started")
            self._state = _State.STARTING
        try:
            self._start(Deadline(self.timeout))
        except BaseException as exc:
            try:
                self.close()
            except RJupyterError as cleanup_error:
                add_note(exc, f"while cleaning up: {cleanup_error}")
            raise
        self._state = _State.RUNNING
        logger.info("notebook on %s ready at local port %s", self.host, self.local_port)
        return self

    def _start(self, deadline: Deadline) -> None:
        self._connection = open_connection(self.host, self._connect_options, deadline)
        transport = self._connection.transport
        options = {key: str(value) for key, value in self._environment.items()}
        options.update({f"setup:{n}": line for n, line in enumerate(self._setup, 1)})
        self._server = RemoteServer(transport, host=self.host, options=options)
        info = self._server.start(self._script(), deadline)
        logger.debug("remote server pid %s listens on port %s", info.pid, info.port)
        self._forwarder = Forwarder(
            transport, (LOOPBACK, info.port), local_port=self._asked_local_port or 0
        )
        self._forwarder.open()
        self._info = info
        self._wait_ready(info, deadline)

    def _script(self) -> str:
        low, high = REMOTE_PORT_RANGE
        port = self._asked_remote_port or low + secrets.randbelow(high - low)
        env = self._environment
        return build_script(
            app=self.app,
            port=port,
            workdir=env["workdir"],
            venv=env["venv"],
            conda_env=env["conda_env"],
            setup=self._setup,
            jupyter=env["jupyter"] or "jupyter",
        )

    def _wait_ready(self, info: ServerInfo, deadline: Deadline) -> None:
        """Poll ``/api/status`` through the tunnel until it answers 200."""
        assert self._server is not None
        assert self._forwarder is not None
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self._forwarder.local_port}{info.base_url}api/status",
            headers={"Authorization": f"token {info.token}"},
        )
        pause = 0.02
        while True:
            if self._server.exited:
                raise LaunchError(
                    f"Jupyter on {self.host} exited before it answered through the tunnel",
                    host=self.host,
                    output_tail=self._server.output_tail(),
                )
            try:
                # The URL is our own http://127.0.0.1 one, never a user-supplied scheme.
                with urllib.request.urlopen(request, timeout=deadline.remaining(0.5)) as reply:  # noqa: S310
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                logger.debug("not ready yet: %s", exc)
            if deadline.expired:
                raise LaunchTimeout(
                    f"Jupyter on {self.host} did not answer within {deadline.seconds:.0f} s; it "
                    "has been stopped. Raise timeout if the host is slow",
                    host=self.host,
                    output_tail=self._server.output_tail(),
                )
            time.sleep(min(pause, deadline.remaining()))
            pause = min(pause * 2, 0.25)

    def close(self) -> None:
        """Stop the tunnel, the remote server (and its kernels), then the SSH connection.

        Idempotent. Each step runs even when an earlier one failed; the first failure is
        raised once everything is released.

        Raises:
            RJupyterError: The remote server could not be stopped (the message says how to
                stop it by hand).
        """
        with self._lock:
            if self._state is _State.CLOSED:
                return
            self._state = _State.CLOSED
        forwarder, server, connection = self._forwarder, self._server, self._connection
        self._forwarder = self._server = self._connection = None
        errors: list[BaseException] = []
        try:
            self._close_automation()  # kernels first, while the tunnel still carries requests
        except RJupyterError as exc:
            errors.append(exc)
        try:
            if forwarder is not None:
                forwarder.shut()
        except Exception as exc:
            errors.append(TunnelError(f"closing the local tunnel failed: {exc}"))
        finally:
            try:
                if server is not None:
                    server.stop()
            except RJupyterError as exc:
                errors.append(exc)
            finally:
                if connection is not None:
                    connection.close()
        logger.debug("closed notebook on %s", self.host)
        if errors:
            raise errors[0]

    def __enter__(self) -> RemoteNotebook:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except RJupyterError as close_error:
            if exc is None:
                raise
            add_note(exc, f"while closing: {close_error}")

    # -- facts -------------------------------------------------------------------------------

    def _running(self) -> tuple[ServerInfo, Forwarder]:
        if self._state is _State.CLOSED:
            raise NotebookClosedError(f"the notebook on {self.host} is closed")
        if self._info is None or self._forwarder is None:
            raise RuntimeError("the notebook is not started; use `with` or call start()")
        return self._info, self._forwarder

    @property
    def url(self) -> str:
        """The local URL with the token, ready to open in a browser."""
        info, forwarder = self._running()
        return f"http://{LOOPBACK}:{forwarder.local_port}{info.path}?token={info.token}"

    @property
    def base_url(self) -> str:
        """The local URL of the server's root, without the token (for API calls)."""
        info, forwarder = self._running()
        return f"http://{LOOPBACK}:{forwarder.local_port}{info.base_url}"

    @property
    def token(self) -> str:
        """The server's token (send it as ``Authorization: token ...``). Keep it secret."""
        return self._running()[0].token

    @property
    def local_port(self) -> int:
        """The local port the tunnel listens on (on 127.0.0.1)."""
        return self._running()[1].local_port

    @property
    def remote_port(self) -> int:
        """The port the server really listens on, on the remote loopback."""
        return self._running()[0].port

    @property
    def remote_pid(self) -> int:
        """The server's process id on the remote host."""
        return self._running()[0].pid

    @property
    def _transport(self) -> paramiko.Transport:
        """The live SSH transport (for SFTP and extra channels)."""
        self._running()
        if self._connection is None:
            raise NotebookClosedError(f"the notebook on {self.host} is closed")
        return self._connection.transport

    @property
    def tunnel(self) -> Forwarder:
        """The ``sshtunnel.SSHTunnelForwarder`` (a subclass) that carries the traffic."""
        return self._running()[1]

    def open_browser(self) -> bool:
        """Open :attr:`url` in the local web browser; False when none could be started."""
        return webbrowser.open(self.url)

    def __repr__(self) -> str:
        parts = [f"host={self.host!r}", f"app={self.app!r}", f"state={self._state.value}"]
        if self._info is not None and self._forwarder is not None:
            parts += [f"local_port={self._forwarder.local_port}", f"remote_port={self._info.port}"]
            parts.append(f"remote_pid={self._info.pid}")
        return f"<RemoteNotebook {' '.join(parts)}>"
