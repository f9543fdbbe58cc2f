"""The errors rjupyter raises.

Every error has one root, so ``except rjupyter.RJupyterError`` catches all of them::

    RJupyterError
    ├── SSHConnectError (also ConnectionError)   DNS, TCP, handshake
    │   ├── AuthenticationError                  every offered method was refused
    │   └── HostKeyError                         unknown or changed host key
    ├── LaunchError                              jupyter missing, bad venv/workdir, exited early
    │   ├── LaunchTimeout (also TimeoutError)    not ready within ``timeout``
    │   └── JobError                             the Slurm job was refused, failed or ended
    ├── TunnelError                              local bind failed, forwarder died
    └── NotebookClosedError                      used after ``close()``

Each message says what went wrong and what to do next. Errors carry the details as attributes
(``host``, ``exit_status``, ``output_tail`` ...) so programs need not parse messages. No
``paramiko`` or ``sshtunnel`` exception reaches a caller: they are translated at the module
boundaries and kept as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "HostKeyError",
    "JobError",
    "LaunchError",
    "LaunchTimeout",
    "NotebookClosedError",
    "RJupyterError",
    "SSHConnectError",
    "TunnelError",
]


def add_note(exc: BaseException, note: str) -> None:
    """Attach ``note`` to ``exc`` (shown under its traceback) where Python supports notes."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)


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
    """The remote Jupyter server could not be started.

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
