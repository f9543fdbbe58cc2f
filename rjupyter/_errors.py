"""The errors rjupyter raises.

Every error has one root, so ``except rjupyter.RJupyterError`` catches all of them::

    RJupyterError
    ├── SSHConnectError (also ConnectionError)   DNS, TCP, handshake
    │   ├── AuthenticationError                  every offered method was refused
    │   └── HostKeyError                         unknown or changed host key
    ├── LaunchError                              jupyter missing, bad venv/workdir, exited
    │   ├── LaunchTimeout (also TimeoutError)    not ready within ``timeout``
    │   └── JobError                             the Slurm job was refused, failed or ended
    ├── HeartbeatError                           a heartbeat could not be written (retried)
    ├── TunnelError                              local bind failed, forwarder died
    ├── NotebookClosedError                      used after ``close()``
    │   └── KernelClosedError                    a kernel used after ``shutdown()``
    ├── KernelError                              kernel refused, died, or its connection broke
    │   └── ExecutionTimeout (also TimeoutError) code ran past ``timeout`` (it was interrupted)
    ├── RemoteExecutionError                     the remote code raised: ``ename``, ``evalue``
    │   └── CellExecutionError                   ... in a notebook cell: ``cell_index``
    └── TransferError                            an upload or download failed
        └── PathNotFoundError (also FileNotFoundError)

Each message says what went wrong and what to do next. Errors carry the details as attributes
(``host``, ``exit_status``, ``output_tail`` ...) so programs need not parse messages. No
``paramiko`` or ``sshtunnel`` exception reaches a caller: they are translated at the module
boundaries and kept as ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._results import ExecutionResult, strip_ansi

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "AuthenticationError",
    "CellExecutionError",
    "ExecutionTimeout",
    "HeartbeatError",
    "HostKeyError",
    "JobError",
    "KernelClosedError",
    "KernelError",
    "LaunchError",
    "LaunchTimeout",
    "NotebookClosedError",
    "PathNotFoundError",
    "RJupyterError",
    "RemoteExecutionError",
    "SSHConnectError",
    "TransferError",
    "TunnelError",
]


class RJupyterError(Exception):
    """Root of every error rjupyter raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SSHConnectError(RJupyterError, ConnectionError):
    """The SSH connection could not be made or was lost.

    Attributes:
        host: The host as the caller named it (alias or ``user@host:port``).
    """

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host


class AuthenticationError(SSHConnectError):
    """The server refused every credential rjupyter could offer.

    Attributes:
        methods_tried: What was offered, e.g. ``("publickey /home/me/.ssh/id_ed25519",)``.
        methods_allowed: The methods the server said it accepts.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str,
        methods_tried: tuple[str, ...] = (),
        methods_allowed: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, host=host)
        self.methods_tried = methods_tried
        self.methods_allowed = methods_allowed


class HostKeyError(SSHConnectError):
    """The server's host key is unknown, or differs from the one in known_hosts.

    Attributes:
        key_type: The key type the server presented, e.g. ``"ssh-ed25519"``.
        fingerprint: Its OpenSSH fingerprint, ``"SHA256:..."``.
        changed: True when known_hosts holds a *different* key for this host.
    """

    def __init__(
        self, message: str, *, host: str, key_type: str, fingerprint: str, changed: bool
    ) -> None:
        super().__init__(message, host=host)
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.changed = changed


class LaunchError(RJupyterError):
    """The remote Jupyter server could not be started, or exited after it started.

    Attributes:
        host: The host as the caller named it.
        exit_status: The remote exit status, or None when the server did not exit.
        output_tail: The last lines the remote side printed (tokens redacted).
    """

    def __init__(
        self,
        message: str,
        *,
        host: str,
        exit_status: int | None = None,
        output_tail: str = "",
    ) -> None:
        if output_tail:
            message = f"{message}\n--- last remote output ---\n{output_tail}"
        super().__init__(message)
        self.host = host
        self.exit_status = exit_status
        self.output_tail = output_tail


class HeartbeatError(RJupyterError):
    """A heartbeat to the server's abandon watchdog could not be written (retried; see
    ``on_connection_change``)."""


class LaunchTimeout(LaunchError, TimeoutError):
    """The remote Jupyter server was not ready within ``timeout`` seconds (it has been stopped)."""


class TunnelError(RJupyterError):
    """The local end of the tunnel could not be opened, or the forwarder failed.

    Attributes:
        local_port: The local port concerned, when known.
    """

    def __init__(self, message: str, *, local_port: int | None = None) -> None:
        super().__init__(message)
        self.local_port = local_port


class NotebookClosedError(RJupyterError):
    """The object was used after ``close()``; open a new one instead."""


class KernelClosedError(NotebookClosedError):
    """A kernel was used after ``shutdown()``, or after its notebook was closed."""


class KernelError(RJupyterError):
    """A kernel could not be started, died, or the connection to it broke.

    Attributes:
        kernel_id: The server's id for the kernel, when it has one.
    """

    def __init__(self, message: str, *, kernel_id: str | None = None) -> None:
        super().__init__(message)
        self.kernel_id = kernel_id


class ExecutionTimeout(KernelError, TimeoutError):
    """Code ran longer than its ``timeout``; the kernel was interrupted and is usable again.

    Attributes:
        timeout: The seconds that were allowed.
        result: What the code had produced until then (an ``ExecutionResult``).
    """

    def __init__(
        self,
        message: str,
        *,
        kernel_id: str | None,
        timeout: float,
        result: ExecutionResult | None = None,
    ) -> None:
        super().__init__(message, kernel_id=kernel_id)
        self.timeout = timeout
        self.result = result


class RemoteExecutionError(RJupyterError):
    """The code raised an exception in the remote kernel.

    Attributes:
        ename: The exception's class name, e.g. ``"ZeroDivisionError"``.
        evalue: Its message, e.g. ``"division by zero"``.
        traceback: The remote traceback as the kernel sent it (lines with terminal colours).
        result: What the code had produced before it failed (an ``ExecutionResult``).
    """

    def __init__(
        self,
        message: str,
        *,
        ename: str,
        evalue: str,
        traceback: list[str],
        result: ExecutionResult | None = None,
    ) -> None:
        super().__init__(message)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        self.result = result

    @property
    def traceback_text(self) -> str:
        """The remote traceback as plain text, without terminal colour codes."""
        return strip_ansi("\n".join(self.traceback))


class CellExecutionError(RemoteExecutionError):
    """A notebook cell raised; the partial notebook was still written when an output was named.

    Attributes:
        cell_index: The failing cell's index in the notebook's ``cells`` (0-based).
        execution_count: Its ``In [n]`` number, when the kernel gave one.
        notebook: The notebook as executed so far (an ``nbformat.NotebookNode``).
    """

    def __init__(
        self,
        message: str,
        *,
        cell_index: int,
        execution_count: int | None,
        ename: str,
        evalue: str,
        traceback: list[str],
        notebook: NotebookNode | None = None,
        result: ExecutionResult | None = None,
    ) -> None:
        super().__init__(message, ename=ename, evalue=evalue, traceback=traceback, result=result)
        self.cell_index = cell_index
        self.execution_count = execution_count
        self.notebook = notebook


class TransferError(RJupyterError):
    """A file or directory could not be uploaded or downloaded.

    Attributes:
        path: The path concerned (local or remote, as the message says).
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class PathNotFoundError(TransferError, FileNotFoundError):
    """The source of a transfer does not exist (or a destination's parent is not a directory)."""


class JobError(LaunchError):
    """The Slurm job holding the notebook was refused by ``sbatch``, failed, or ended.

    Raised when starting (bad partition, Jupyter crashed in the job, cancelled while queued) and
    from the running notebook (cancelled from outside, time limit reached, node failure) within
    a poll or two of Slurm knowing.

    Attributes:
        job_id: The job's id (None when ``sbatch`` refused it).
        state: Slurm's state for it: ``CANCELLED``, ``TIMEOUT``, ``FAILED``, ``NODE_FAIL`` ...
            ``REJECTED`` when ``sbatch`` refused it, ``GONE`` when Slurm forgot it.
        reason: Slurm's reason, or sbatch's message.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str,
        job_id: str | None,
        state: str,
        reason: str = "",
        output_tail: str = "",
    ) -> None:
        super().__init__(message, host=host, output_tail=output_tail)
        self.job_id = job_id
        self.state = state
        self.reason = reason
