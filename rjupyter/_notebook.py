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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._deadline import Deadline
from ._errors import (
    JobError,
    LaunchError,
    LaunchTimeout,
    NotebookClosedError,
    RJupyterError,
    SSHConnectError,
    TunnelError,
)
from ._forward._forwarder import LOOPBACK, Forwarder
from ._jupyter._automation import NotebookAutomation
from ._launch._jobs import SlurmJob
from ._launch._slurm import Slurm, batch_script
from ._lifecycle import ClosingContext, add_note
from ._server._inventory import find_server, inventory, server_from_record
from ._server._remote import RemoteServer, run_remote
from ._server._scripts import APPS, abandon_step, build_script
from ._server._startup import ServerInfo
from ._signals import hold_sigterm, release_sigterm
from ._ssh._connection import AuthHandler, ConnectOptions, SSHConnection, open_connection
from ._ssh._keeper import ConnectionCallback, Keeper

if TYPE_CHECKING:
    import paramiko

__all__ = ["RemoteNotebook", "ServerHandle"]

logger = logging.getLogger(__name__)

#: Where a remote port is picked when the caller leaves it to us; Jupyter moves up from there
#: when the port is taken, and reports the port it really got.
REMOTE_PORT_RANGE = (20000, 29999)
#: Requests to our own 127.0.0.1 tunnel go straight there, whatever http_proxy says.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(frozen=True)
class ServerHandle:
    """What it takes to come back to a server left running (``keep_running=True``).

    Attributes:
        host: The host as it was named.
        pid: The server's PID there.
        remote_port: The port it listens on, on the host's loopback (the node's, for a job).
        job_id: The Slurm job holding it, when it runs in one (``host`` is the login node).
    """

    host: str
    pid: int
    remote_port: int
    _options: ConnectOptions = field(repr=False, compare=False)
    job_id: str | None = None

    def attach(self, *, stop_on_close: bool = False, timeout: float = 60.0) -> RemoteNotebook:
        """A RemoteNotebook attached to this server, with the same connection options."""
        where = {"job_id": self.job_id} if self.job_id else {"pid": self.pid}
        notebook = RemoteNotebook.attach(
            self.host, stop_on_close=stop_on_close, timeout=timeout, **where
        )
        notebook._connect_options = self._options
        return notebook

    def __str__(self) -> str:
        if self.job_id is not None:
            return (
                f"Slurm job {self.job_id} on {self.host} keeps running Jupyter; come back with "
                f"RemoteNotebook.attach({self.host!r}, job_id={self.job_id!r}) or `rjupyter "
                f"attach {self.host} --job {self.job_id}`; `scancel {self.job_id}` ends it"
            )
        return (
            f"Jupyter pid {self.pid} on {self.host} (port {self.remote_port}) keeps running; "
            f"come back with RemoteNotebook.attach({self.host!r}, pid={self.pid}) "
            f"or `rjupyter attach {self.host} --pid {self.pid}`"
        )


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
        keep_running: bool = False,
        abandon_timeout: float | None = 1800.0,
        reconnect_timeout: float = 300.0,
        on_connection_change: ConnectionCallback | None = None,
        progress: Callable[[str, str], None] | None = None,
        scheduler: Slurm | None = None,
    ) -> None:
        if app not in APPS:
            raise ValueError(f"app must be one of {', '.join(APPS)}; got {app!r}")
        for name, port in (("remote_port", remote_port), ("local_port", local_port)):
            if port is not None and not 0 < port < 65536:
                raise ValueError(f"{name} must be in 1..65535; got {port}")
        if isinstance(setup, str):
            raise TypeError("setup takes a sequence of shell lines, not one string")
        for name, value in (("timeout", timeout), ("reconnect_timeout", reconnect_timeout)):
            if value <= 0:
                raise ValueError(f"{name} must be positive; got {value}")
        self.host = host
        self.app = app
        self.timeout = timeout
        self.keep_running = keep_running
        self.abandon_timeout = None if keep_running else (abandon_timeout or None)
        self.reconnect_timeout = reconnect_timeout
        self._on_connection_change = on_connection_change
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
            progress=progress,
        )
        self._progress = progress
        self._attach_to: tuple[int | None, int | None] | None = None
        self._stop_on_close = not keep_running
        self._state = _State.NEW
        self._lock = threading.Lock()
        self._connection: SSHConnection | None = None
        self._server: RemoteServer | None = None
        self._forwarder: Forwarder | None = None
        self._keeper: Keeper | None = None
        self._info: ServerInfo | None = None
        self._handle: ServerHandle | None = None
        self._scheduler = scheduler
        self._attach_job: str | None = None
        self._job: SlurmJob | None = None
        self._login: SSHConnection | None = None
        self._node = ""

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
        ssh_config: str | os.PathLike[str] | None = None,
        identity_file: str | os.PathLike[str] | None = None,
        password: str | None = None,
        passphrase: str | Callable[[str], str] | None = None,
        host_key_policy: str | None = None,
        jump: str | Sequence[str] | None = None,
        auth_handler: AuthHandler | None = None,
        timeout: float = 60.0,
        reconnect_timeout: float = 300.0,
        on_connection_change: ConnectionCallback | None = None,
        progress: Callable[[str, str], None] | None = None,
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
            ssh_config: As for :class:`RemoteNotebook`, like the other connection options.
            identity_file: See ``ssh_config``.
            password: See ``ssh_config``.
            passphrase: See ``ssh_config``.
            host_key_policy: See ``ssh_config``.
            jump: See ``ssh_config``.
            auth_handler: See ``ssh_config``.
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
        if job_id is not None:
            if not str(job_id).isdigit():
                raise ValueError(f"job_id must be a Slurm job number; got {job_id!r}")
            notebook._attach_job = str(job_id)
        else:
            notebook._attach_to = (pid, port)
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
        hold_sigterm()
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

    def _step(self, step: str, detail: str = "") -> None:
        if self._progress is not None:
            self._progress(step, detail)

    def _start(self, deadline: Deadline) -> None:
        if self._scheduler is not None or self._attach_job is not None:
            self._start_job()
            return
        connection = self._connection = self._connect(deadline)
        self._step("find" if self._attach_to else "launch", f"jupyter {self.app}")
        server = self._server = self._find() if self._attach_to else self._launch(deadline)
        self._serve(connection, server, deadline)

    def _start_job(self) -> None:
        """Submit (or find) the job, wait for it, hop to its node; then as for a plain server."""
        login = self._login = self._connect(Deadline(self.timeout))
        job = self._job = SlurmJob(
            login.transport, host=self.host, job_id=self._attach_job, options=self._options()
        )
        slurm = self._scheduler or Slurm()
        if self._attach_job is None:
            self._step("launch", f"jupyter {self.app} in a Slurm job")
            job.submit(slurm, batch_script(app=self.app, port=self._pick_port(), **self._env()))
        else:
            self._step("find", f"Slurm job {self._attach_job}")
        info, self._node = job.wait_ready(
            queue_timeout=slurm.queue_timeout,
            start_timeout=self.timeout,
            poll=slurm.poll,
            progress=self._step,
        )
        deadline = Deadline(self.timeout)
        self._step("node", self._node)
        connection = self._connection = self._connect_node(deadline)
        server = self._server = RemoteServer(connection.transport, host=self._node, info=info)
        self._serve(connection, server, deadline)

    def _connect_node(self, deadline: Deadline) -> SSHConnection:
        """Reach the job's node through the login node (logging in there again if it dropped)."""
        login = self._login
        if login is None or not login.is_active:
            if login is not None:
                login.close()
            login = self._login = self._connect(deadline)
            assert self._job is not None
            self._job.rebind(login.transport)
        return open_connection(self._node, self._connect_options, deadline, via=login)

    def _watch_job(self, connection: SSHConnection) -> None:
        """The heartbeat of a job's session: raise JobError once the job has ended."""
        assert self._job is not None
        try:
            self._job.check()
        except JobError as exc:
            if self._forwarder is not None:
                self._forwarder.mark_broken(str(exc))
            raise

    def _serve(self, connection: SSHConnection, server: RemoteServer, deadline: Deadline) -> None:
        info = server.info
        assert info is not None
        self._step("tunnel", f"remote port {info.port}")
        if not self._attach_to:
            server.wait_listening(deadline)
        self._forwarder = Forwarder(
            connection.transport, (LOOPBACK, info.port), local_port=self._asked_local_port or 0
        )
        self._forwarder.open()
        self._info = info
        self._wait_ready(info, deadline)
        self._step("ready", f"local port {self._forwarder.local_port}")
        job_id = self._job.job_id if self._job is not None else None
        self._handle = ServerHandle(self.host, info.pid, info.port, self._connect_options, job_id)
        beat = abandon_step(self.abandon_timeout) / 2 if self.abandon_timeout else 60.0
        heartbeat = self._beat if info.run_dir and self.abandon_timeout else None
        if self._job is not None:
            beat, heartbeat = 2 * (self._scheduler or Slurm()).poll, self._watch_job
        self._keeper = Keeper(
            label=self.host,
            connection=connection,
            reconnect=self._connect if self._job is None else self._connect_node,
            adopt=self._adopt,
            heartbeat=heartbeat,
            heartbeat_period=beat,
            reconnect_timeout=self.reconnect_timeout,
            on_change=self._on_connection_change,
        )
        self._keeper.start()

    def _connect(self, deadline: Deadline) -> SSHConnection:
        return open_connection(self.host, self._connect_options, deadline)

    def _options(self) -> dict[str, str]:
        options = {key: str(value) for key, value in self._environment.items()}
        options.update({f"setup:{n}": line for n, line in enumerate(self._setup, 1)})
        return options

    def _env(self) -> dict[str, Any]:
        env = self._environment
        return {
            "workdir": env["workdir"],
            "venv": env["venv"],
            "conda_env": env["conda_env"],
            "setup": self._setup,
            "jupyter": env["jupyter"] or "jupyter",
        }

    def _pick_port(self) -> int:
        low, high = REMOTE_PORT_RANGE
        return self._asked_remote_port or low + secrets.randbelow(high - low)

    def _launch(self, deadline: Deadline) -> RemoteServer:
        assert self._connection is not None
        options = self._options()
        server = RemoteServer(self._connection.transport, host=self.host, options=options)
        self._server = server
        info = server.start(self._script(), deadline)
        logger.debug("remote server pid %s listens on port %s", info.pid, info.port)
        return server

    def _find(self) -> RemoteServer:
        assert self._connection is not None
        assert self._attach_to is not None
        pid, port = self._attach_to
        record = find_server(inventory(self._connection), host=self.host, pid=pid, port=port)
        self.app = record.app or "server"
        return server_from_record(self._connection, record)

    def _script(self) -> str:
        return build_script(
            app=self.app,
            port=self._pick_port(),
            **self._env(),
            run_id=secrets.token_hex(8),
            abandon=self.abandon_timeout or 0,
            keep=self.keep_running,
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
            if self._server.ended:
                raise LaunchError(
                    f"Jupyter on {self.host} exited before it answered through the tunnel",
                    host=self.host,
                    output_tail=self._server.output_tail(),
                )
            try:
                # The URL is our own http://127.0.0.1 one, never a user-supplied scheme.
                with _DIRECT.open(request, timeout=deadline.remaining(0.5)) as reply:
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

    def _beat(self, connection: SSHConnection) -> None:
        if self._server is not None:
            self._server.heartbeat()

    def _adopt(self, connection: SSHConnection) -> None:
        """Move the server handle and the tunnel onto a new connection (after a reconnect).

        Raises:
            RJupyterError: The server is gone (it ended while we were away).
        """
        server, forwarder = self._server, self._forwarder
        assert server is not None
        assert forwarder is not None
        old, self._connection = self._connection, connection
        if old is not None:
            old.close()
        server.rebind(connection.transport)
        status, _ = run_remote(
            connection.transport,
            f"kill -0 {int(server.pid or 0)} 2>/dev/null\n",
            host=self.host,
        )
        if status != 0:
            error = RJupyterError(
                f"the Jupyter server (pid {server.pid}) on {self.host} ended while the "
                "connection was down (its kernels are gone); start a new RemoteNotebook"
            )
            forwarder.mark_broken(str(error))
            raise error
        forwarder.use_transport(connection.transport)
        if self._server is not None and self.abandon_timeout:
            self._server.heartbeat()

    def close(self) -> ServerHandle | None:
        """Stop the tunnel, the remote server (and its kernels), then the SSH connection.

        With ``keep_running`` (or an attached server without ``stop_on_close``) the server is
        left running and its :class:`ServerHandle` is returned (also logged at INFO). Idempotent.
        Each step runs even when an earlier one failed; the first failure is raised once
        everything local is released.

        Returns:
            The handle of a server left running, else None.

        Raises:
            RJupyterError: The remote server could not be stopped (the message says how to
                stop it by hand), or the connection was lost for good earlier.
        """
        with self._lock:
            if self._state is _State.CLOSED:
                return self._handle if not self._stop_on_close else None
            self._state = _State.CLOSED
        errors: list[BaseException] = []
        try:
            self._close_front(errors)
        finally:
            try:
                self._stop_server_if_ours(errors)
            finally:
                for connection in (self._connection, self._login):
                    if connection is not None:
                        connection.close()
                self._forwarder = self._server = self._connection = self._keeper = None
                self._login = None
                release_sigterm()
        logger.debug("closed notebook on %s", self.host)
        if errors:
            raise errors[0]
        if self._handle is not None and not self._stop_on_close:
            logger.info("%s", self._handle)
            return self._handle
        return None

    def _close_front(self, errors: list[BaseException]) -> None:
        """Stop watching the link, close our kernels, stop the local listener."""
        try:
            if self._keeper is not None:
                self._keeper.stop()
                if self._keeper.error is not None:
                    errors.append(self._keeper.error)
            # Kernels first, while the tunnel still carries requests; a kept server keeps them.
            self._close_automation(keep_kernels=not self._stop_on_close)
        except RJupyterError as exc:
            errors.append(exc)
        try:
            if self._forwarder is not None:
                self._forwarder.shut()
        except Exception as exc:
            errors.append(TunnelError(f"closing the local tunnel failed: {exc}"))

    def _stop_server_if_ours(self, errors: list[BaseException]) -> None:
        """Stop the server unless it is to keep running (a failed start always stops it)."""
        try:
            self._stop_remote(self._job, self._server)
        except RJupyterError as exc:
            errors.append(exc)

    def _stop_remote(self, job: SlurmJob | None, server: RemoteServer | None) -> None:
        """Cancel the job, or stop the server, unless it is meant to keep running."""
        if job is not None:
            if self._stop_on_close or (self._info is None and self._attach_job is None):
                self._ensure_login()
                job.cancel()
        elif server is not None and (
            self._stop_on_close or (self._info is None and self._attach_to is None)
        ):
            self._ensure_connection()
            server.stop()

    def _ensure_login(self) -> None:
        """Reconnect to the login node once, briefly, if the link is down when cancelling."""
        login = self._login
        if login is not None and login.is_active:
            return
        try:
            self._login = self._connect(Deadline(10.0))
        except SSHConnectError as exc:
            job_id = self._job.job_id if self._job else None
            raise RJupyterError(
                f"cannot cancel Slurm job {job_id} on {self.host}: {exc}. Log in and run "
                f"`scancel {job_id}`; it ends by itself at its time limit"
            ) from exc
        finally:
            if login is not None:
                login.close()
        assert self._job is not None
        self._job.rebind(self._login.transport)

    def _ensure_connection(self) -> None:
        """Reconnect once, briefly, if the link is down when the server must be stopped."""
        connection = self._connection
        if connection is None or connection.is_active:
            return
        try:
            self._connection = self._connect(Deadline(10.0))
        except SSHConnectError as exc:
            pid = self._info.pid if self._info else None
            raise RJupyterError(
                f"cannot stop Jupyter (pid {pid}) on {self.host}: {exc}. It stops by itself "
                "after the abandon timeout"
            ) from exc
        finally:
            connection.close()
        assert self._server is not None
        self._server.rebind(self._connection.transport)

    def __enter__(self) -> RemoteNotebook:
        return self.start()

    # -- facts -------------------------------------------------------------------------------

    def _running(self) -> tuple[ServerInfo, Forwarder]:
        if self._state is _State.CLOSED:
            raise NotebookClosedError(f"the notebook on {self.host} is closed")
        if self._info is None or self._forwarder is None:
            raise RuntimeError("the notebook is not started; use `with` or call start()")
        keeper = self._keeper
        if keeper is not None and keeper.error is not None:
            raise keeper.error
        return self._info, self._forwarder

    @property
    def connected(self) -> bool:
        """True while the SSH connection is up (False while reconnecting or after giving up)."""
        keeper = self._keeper
        return keeper is not None and keeper.connected and keeper.error is None

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
    def remote_port(self) -> int:
        """The port the server really listens on, on the remote loopback."""
        return self._running()[0].port

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
