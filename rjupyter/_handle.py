"""ServerHandle: what it takes to come back to a server left running."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._session import Session
from ._ssh._options import START_TIMEOUT, ConnectOptions

if TYPE_CHECKING:
    from ._notebook import RemoteNotebook

__all__ = ["ServerHandle"]


@dataclass(frozen=True)
class ServerHandle:
    """What it takes to come back to a server left running (``keep_running=True``).

    Attributes:
        host: The host as it was named.
        pid: The server's PID there.
        remote_port: The port it listens on, on the host's loopback (the node's, for a job);
            None when it listens on a Unix socket.
        job_id: The batch job holding it, when it runs in one (``host`` is the login node).
        remote_socket: The Unix socket it listens on, or None on a port.
    """

    host: str
    pid: int
    remote_port: int | None
    _options: ConnectOptions = field(repr=False, compare=False)
    job_id: str | None = None
    remote_socket: str | None = None
    _description: str = field(default="", repr=False, compare=False)

    def attach(
        self, *, stop_on_close: bool = False, timeout: float = START_TIMEOUT
    ) -> RemoteNotebook:
        """A RemoteNotebook attached to this server, with the same connection options."""
        from ._notebook import RemoteNotebook  # noqa: PLC0415 - the facade imports this module

        notebook = RemoteNotebook.attach(
            self.host,
            pid=self.pid,
            job_id=self.job_id,
            stop_on_close=stop_on_close,
            timeout=timeout,
        )
        notebook._spec = dataclasses.replace(notebook._spec, options=self._options)
        return notebook

    @classmethod
    def of(cls, session: Session, host: str, options: ConnectOptions) -> ServerHandle:
        """The handle of the server a started session runs."""
        return cls(host, _options=options, **session.kept())

    def __str__(self) -> str:
        return self._description or f"Jupyter pid {self.pid} on {self.host}"
