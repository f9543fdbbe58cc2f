"""RemoteNotebook: the public lifecycle object, a facade over one launcher.

Which server runs where is the launcher's business (:mod:`._launch`); this module holds what
every notebook has: the tunnel, the readiness check, the keeper thread that heartbeats and
reconnects, and the close order.
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
from collections.abc import Sequence

from ._deadline import Deadline
from ._errors import NotebookClosedError, RJupyterError
from ._exits import Tracked, track
from ._forward._forwarder import LOOPBACK, Forwarder
from ._forward._forwards import Forward
from ._handle import ServerHandle
from ._jupyter._automation import NotebookAutomation
from ._jupyter._redirect import BrowserRedirect
from ._launch import (
    AttachTarget,
    Environment,
    LaunchSpec,
    Scheduler,
    attach_target,
    check_arguments,
    launcher_for,
)
from ._lifecycle import ClosingContext, add_note, first_of
from ._server._startup import ServerInfo
from ._session import Session
from ._signals import SigtermHold
from ._ssh._connection import SSHConnection
from ._ssh._keeper import ConnectionCallback
from ._ssh._options import (
    START_TIMEOUT,
    AuthHandler,
    ConfigPath,
    JumpHosts,
    Passphrase,
    ProgressCallback,
    connect_options,
)

__all__ = ["RemoteNotebook"]

logger = logging.getLogger(__name__)


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSED = "closed"


class RemoteNotebook(NotebookAutomation, ClosingContext):
    """A Jupyter server started on a remote host over SSH, reachable on a local port.

    ``with RemoteNotebook("gpu-box", venv="~/project/.venv") as nb: print(nb.url)`` logs in
    once, starts ``jupyter notebook --no-browser`` on the remote loopback, forwards a local
    loopback port to it over the same SSH connection, and returns when the server answers
    through the tunnel. Leaving the block stops exactly that server (and its kernels), then the
    tunnel and the connection.

    The server runs detached from the SSH session: when the connection drops, rjupyter
    reconnects (with backoff, for up to ``reconnect_timeout`` seconds) and moves the tunnel onto
    the new connection on the same local port; the server and its kernels never notice. If this
    process dies without closing, the server stops itself after ``abandon_timeout`` seconds
    without a heartbeat (unless ``keep_running``).

    Args:
        host: An alias from the SSH config, ``host``, ``user@host`` or ``user@host:port``.
        app: ``"notebook"``, ``"lab"`` or ``"server"``: which Jupyter front end to start.
        remote_port: The port asked of the remote server (implies ``unix_socket=False``); None
            picks one. Jupyter moves to the next free port when it is taken.
        local_port: The local port; None lets the OS choose a free one.
        unix_socket: Jupyter on a Unix socket in its private run directory, which no other user
            of the host can reach (a TCP port on its loopback is open to all of them): None
            (default) where the remote Jupyter and sshd allow it, else a TCP port (logged at
            INFO); True: required (a LaunchError if impossible); False: a TCP port.
        workdir: Remote directory to serve (``~`` means the remote home).
        venv: Remote virtual environment to enter.
        conda_env: Remote conda environment (name or path) to activate.
        setup: Shell lines run first on the remote host, e.g. ``"module load python/3.11"``.
            These are shell code by design; every other string is treated as data.
        jupyter: The ``jupyter`` command or its path on the remote host.
        login_shell: Run ``setup`` and Jupyter in the environment of a login: the user's login
            shell started as a login shell (``/etc/profile``, ``/etc/profile.d`` where Lmod's
            ``module`` and conda's hook live, the user's profile files). False runs them in a
            plain ``/bin/sh`` instead. A login shell that is not POSIX (tcsh, fish) hands its
            exported variables to ``/bin/sh``; see the HPC guide.
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
        keep_running: Leave the server running on close (see :meth:`close`, :meth:`attach`).
        abandon_timeout: Seconds without a heartbeat after which the server stops itself;
            None or 0 disables it. Ignored with ``keep_running``.
        reconnect_timeout: Seconds to keep trying to reconnect after the connection drops.
        on_connection_change: Called with False when the connection drops, True when back.
        progress: Told of each step while starting, as ``progress(step, detail)``: ``"connect"``,
            ``"authenticate"`` (for every hop), ``"launch"`` (or ``"find"`` when attaching),
            ``"tunnel"``, ``"ready"``; with a scheduler also ``"queue"`` (``"job 12 PENDING
            (Resources)"``, at each change) and ``"node"``. The CLI draws its progress display
            from these.
        scheduler: :class:`~rjupyter.Slurm` options: run Jupyter in a batch job on a compute
            node instead of on ``host`` (then the login node), reached by an SSH hop from
            it. ``timeout`` then counts from the moment the job runs; the wait in the queue
            is unlimited unless ``Slurm(queue_timeout=...)``. Leaving the block cancels the
            job (unless ``keep_running``).

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
        unix_socket: bool | None = None,
        workdir: str | None = None,
        venv: str | None = None,
        conda_env: str | None = None,
        setup: Sequence[str] = (),
        jupyter: str = "jupyter",
        login_shell: bool = True,
        ssh_config: ConfigPath | None = None,
        identity_file: ConfigPath | None = None,
        password: str | None = None,
        passphrase: Passphrase | None = None,
        host_key_policy: str | None = None,
        jump: JumpHosts | None = None,
        auth_handler: AuthHandler | None = None,
        timeout: float = START_TIMEOUT,
        keep_running: bool = False,
        abandon_timeout: float | None = 1800.0,
        reconnect_timeout: float = 300.0,
        on_connection_change: ConnectionCallback | None = None,
        progress: ProgressCallback | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        check_arguments(
            app,
            {"remote_port": remote_port, "local_port": local_port},
            setup,
            unix_socket=unix_socket,
            positive={"timeout": timeout, "reconnect_timeout": reconnect_timeout},
        )
        self.host = host
        self.app = app
        self.timeout = timeout
        self.keep_running = keep_running
        self.abandon_timeout = None if keep_running else (abandon_timeout or None)
        self.reconnect_timeout = reconnect_timeout
        self._on_connection_change = on_connection_change
        self._asked_local_port = local_port
        self._spec = LaunchSpec(
            host=host,
            app=app,
            environment=Environment(
                workdir, venv, conda_env, tuple(setup), jupyter, login_shell=login_shell
            ),
            options=connect_options(
                ssh_config=ssh_config,
                identity_file=identity_file,
                password=password,
                passphrase=passphrase,
                host_key_policy=host_key_policy,
                jump=jump,
                auth_handler=auth_handler,
                progress=progress,
            ),
            remote_port=remote_port,
            unix_socket=False if remote_port is not None else unix_socket,
            timeout=timeout,
            keep_running=keep_running,
            abandon_timeout=self.abandon_timeout,
            progress=progress,
        )
        self._scheduler = scheduler
        self._target: AttachTarget | None = None
        self._stop_on_close = not keep_running
        self._state = _State.NEW
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._sigterm: SigtermHold | None = None
        self._tracked: Tracked | None = None
        self._handle: ServerHandle | None = None
        self._redirect = BrowserRedirect()

    @classmethod
    def attach(
        cls,
        host: str,
        *,
        port: int | None = None,
        pid: int | None = None,
        job_id: str | int | None = None,
        stop_on_close: bool = False,
        local_port: int | None = None,
        ssh_config: ConfigPath | None = None,
        identity_file: ConfigPath | None = None,
        password: str | None = None,
        passphrase: Passphrase | None = None,
        host_key_policy: str | None = None,
        jump: JumpHosts | None = None,
        auth_handler: AuthHandler | None = None,
        timeout: float = START_TIMEOUT,
        reconnect_timeout: float = 300.0,
        on_connection_change: ConnectionCallback | None = None,
        progress: ProgressCallback | None = None,
    ) -> RemoteNotebook:
        """A notebook for a server already running on ``host`` (started by rjupyter or by hand).

        The token comes from the server's runtime file on the host. Without ``port`` and
        ``pid`` the host must run exactly one server. Leaving the block leaves the server
        running unless ``stop_on_close``. The other arguments are as for
        :class:`RemoteNotebook`.

        Args:
            host: As for :class:`RemoteNotebook`.
            port: The server's port on the host.
            pid: The server's PID on the host.
            job_id: The Slurm job running the server (started with ``scheduler=`` and
                ``keep_running=True``); ``host`` is then the login node. A job still queued
                is waited for.
            stop_on_close: Stop the server (and its kernels) on close.
            local_port: The local port; None lets the OS choose.
            ssh_config: SSH config file to read (default ``~/.ssh/config``).
            identity_file: A private key file to try first.
            password: A password for password authentication.
            passphrase: For encrypted keys: the passphrase, or a callable given the key's path.
            host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``; None (default) follows
                ``StrictHostKeyChecking`` in the SSH config, itself defaulting to ``"reject"``.
            jump: Jump host(s) like ``ProxyJump``; None follows the SSH config.
            auth_handler: ``auth_handler(title, instructions, prompts)`` answers
                keyboard-interactive prompts (``prompts`` is a list of ``(prompt, echo)``);
                returns one answer each.
            timeout: Seconds for connecting and becoming ready.
            reconnect_timeout: As for :class:`RemoteNotebook`.
            on_connection_change: As for :class:`RemoteNotebook`.
            progress: As for :class:`RemoteNotebook`.

        Raises:
            ValueError: A malformed argument.
        """
        notebook = cls(
            host,
            local_port=local_port,
            timeout=timeout,
            keep_running=not stop_on_close,
            reconnect_timeout=reconnect_timeout,
            on_connection_change=on_connection_change,
            ssh_config=ssh_config,
            identity_file=identity_file,
            password=password,
            passphrase=passphrase,
            host_key_policy=host_key_policy,
            jump=jump,
            auth_handler=auth_handler,
            progress=progress,
        )
        notebook._target = attach_target(pid=pid, port=port, job_id=job_id)
        return notebook

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RemoteNotebook:
        """Connect, start (or find) the server, open the tunnel; return once it answers.

        Returns:
            self, for chaining.

        Raises:
            SSHConnectError: The host cannot be reached (``AuthenticationError`` and
                ``HostKeyError`` are subclasses).
            LaunchError: The remote environment or Jupyter is missing, or Jupyter exited.
            LaunchTimeout: The server was not ready within ``timeout`` seconds.
            TunnelError: The local port cannot be opened.
            RJupyterError: ``attach`` found no matching server.
            NotebookClosedError: The object was already closed.
            RuntimeError: The object was already started.
        """
        with self._lock:
            if self._state is _State.CLOSED:
                raise NotebookClosedError("this RemoteNotebook is closed; create a new one")
            if self._state is not _State.NEW:
                raise RuntimeError("this RemoteNotebook was already started")
            self._state = _State.STARTING
        self._sigterm = hold = SigtermHold()
        try:
            self._start(Deadline(self.timeout), hold)
        except BaseException as exc:
            try:
                self.close()
            except RJupyterError as cleanup_error:
                add_note(exc, f"while cleaning up: {cleanup_error}")
            raise
        self._state = _State.RUNNING
        logger.info("notebook on %s ready at local port %s", self.host, self.local_port)
        return self

    def _start(self, deadline: Deadline, hold: SigtermHold) -> None:
        launcher = launcher_for(self._spec, scheduler=self._scheduler, target=self._target)
        session = self._session = Session(
            launcher,
            local_port=self._asked_local_port or 0,
            reconnect_timeout=self.reconnect_timeout,
            on_change=self._on_connection_change,
        )
        # Closed at exit if still open; released if collected unclosed (the release holds the
        # session and the hold, never this object).
        release = functools.partial(session.release, hold, stop_on_close=self._stop_on_close)
        self._tracked = track(self, release, f"RemoteNotebook on {self.host}")
        session.start(deadline)
        self.app = getattr(launcher, "app", self.app)
        self._handle = ServerHandle.of(session, self.host, self._spec.options)

    def close(self) -> ServerHandle | None:
        """Stop the tunnel, the remote server (and its kernels), then the SSH connection.

        With ``keep_running`` (or an attached server without ``stop_on_close``) the server is
        left running and its :class:`ServerHandle` is returned (also logged at INFO). Idempotent.
        Each step runs even when an earlier one failed; once everything local is released, the
        first failure is raised, with each later one attached to it as a note.

        Returns:
            The handle of a server left running, else None.

        Raises:
            RJupyterError: The remote server could not be stopped (the message says how to
                stop it by hand), or the connection was lost for good earlier.
        """
        with self._lock:
            if self._state is _State.CLOSED:
                return self._handle if not self._stop_on_close else None
            started, self._state = self._state is _State.RUNNING, _State.CLOSED
        if self._tracked is not None:
            self._tracked.done()
        errors: list[BaseException] = []
        session = self._session
        try:
            if session is not None:
                session.stop_keeper(errors)
            # Kernels first, while the tunnel still carries requests; a kept server keeps them.
            self._close_automation(keep_kernels=not self._stop_on_close)
        except RJupyterError as exc:
            errors.append(exc)
        finally:
            try:
                if session is not None:
                    session.shut_tunnel(errors)
                    session.stop_server(errors, stop_on_close=self._stop_on_close, started=started)
            finally:
                if session is not None:
                    session.close()
                self._redirect.close()
                if self._sigterm is not None:
                    self._sigterm.release()
        logger.debug("closed notebook on %s", self.host)
        if errors:
            raise first_of(errors)
        if self._handle is not None and not self._stop_on_close:
            logger.info("%s", self._handle)
            return self._handle
        return None

    def __enter__(self) -> RemoteNotebook:
        return self.start()

    # -- facts -------------------------------------------------------------------------------

    def _running(self) -> tuple[ServerInfo, Forwarder]:
        if self._state is _State.CLOSED:
            raise NotebookClosedError(f"the notebook on {self.host} is closed")
        session = self._session
        if session is None or session.info is None or session.forwarder is None:
            raise RuntimeError("the notebook is not started; use `with` or call start()")
        if session.error is not None:
            raise session.error
        return session.info, session.forwarder

    @property
    def connected(self) -> bool:
        """True while the SSH connection is up (False while reconnecting or after giving up)."""
        return self._session is not None and self._session.connected

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
        """The local port the tunnel listens on (on 127.0.0.1; the same across reconnects)."""
        return self._running()[1].local_port

    @property
    def remote_port(self) -> int | None:
        """The port the server really listens on, on the remote loopback (None on a socket)."""
        info = self._running()[0]
        return None if info.socket else info.port

    @property
    def remote_socket(self) -> str | None:
        """The Unix socket the server listens on, on the remote host (None on a TCP port)."""
        return self._running()[0].socket

    def forward(
        self, remote: int | str, *, local_port: int | None = None, remote_host: str = LOOPBACK
    ) -> Forward:
        """Forward one more local port over this notebook's SSH login (no second login), like
        ``ssh -L``: to port ``remote`` of ``remote_host`` as the remote host sees it, or to the
        Unix socket at path ``remote`` there. It moves with the notebook through reconnects
        (same local port) and closes with it, or sooner with ``close()`` or ``with``.

        Raises:
            ValueError, TypeError: ``remote`` or ``local_port`` is malformed.
            TunnelError: The local port cannot be bound.
            NotebookClosedError: The notebook is closed.
        """
        self._running()
        assert self._session is not None
        return self._session.forward(remote, local_port=local_port or 0, remote_host=remote_host)

    @property
    def remote_pid(self) -> int:
        """The server's process id on the remote host."""
        return self._running()[0].pid

    @property
    def server(self) -> ServerHandle:
        """Host, PID and port of the server: what it takes to attach to it again."""
        if self._handle is None:
            raise RuntimeError("the notebook is not started; use `with` or call start()")
        return self._handle

    @property
    def _connection(self) -> SSHConnection:
        """The live SSH connection to the server's host (for SFTP and extra channels)."""
        self._running()
        slot = self._session.launcher.slot if self._session is not None else None
        if slot is None:
            raise NotebookClosedError(f"the notebook on {self.host} is closed")
        return slot.current

    @property
    def tunnel(self) -> Forwarder:
        """The ``sshtunnel.SSHTunnelForwarder`` (a subclass) that carries the traffic."""
        return self._running()[1]

    def open_browser(self) -> bool:
        """Open the notebook in the local web browser; False when none could be started.

        The browser is given the path of a private page (mode 0600, in a 0700 temp directory,
        removed on close) that forwards to :attr:`url`: the token never appears on a command
        line that other local users could read.

        Raises:
            RJupyterError: The redirect page cannot be written.
        """
        return self._redirect.open(self.url)

    def __repr__(self) -> str:
        parts = [f"host={self.host!r}", f"app={self.app!r}", f"state={self._state.value}"]
        session = self._session
        if session is not None and session.info is not None and session.forwarder is not None:
            parts.append(f"local_port={session.forwarder.local_port}")
            info = session.info
            parts.append(
                f"remote_socket={info.socket}" if info.socket else f"remote_port={info.port}"
            )
            parts.append(f"remote_pid={info.pid}")
        return f"<RemoteNotebook {' '.join(parts)}>"
