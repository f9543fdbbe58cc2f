"""Forward: one more local port over a session's SSH login (``nb.forward(6006)``).

A notebook's forwards share its connection slot: they move with it after a reconnect (the same
local ports) and close with it. :class:`Forwards` is the notebook's list of them.
"""

from __future__ import annotations

import threading

from .._errors import NotebookClosedError, TunnelError
from .._lifecycle import ClosingContext
from .._paramiko._streamlocal import Address
from .._ssh._connection import ConnectionSlot, SSHConnection
from ._forwarder import LOOPBACK, Forwarder

__all__ = ["Forward", "Forwards", "target_of"]


def target_of(remote: int | str, remote_host: str) -> Address:
    """What ``remote`` names on the remote host: a port of ``remote_host``, or a socket path.

    Raises:
        ValueError: ``remote`` is neither a port in 1..65535 nor an absolute path.
        TypeError: ``remote`` is neither an int nor a str.
    """
    if isinstance(remote, bool) or not isinstance(remote, (int, str)):
        raise TypeError(f"remote must be a port number or a socket path; got {remote!r}")
    if isinstance(remote, int):
        if not 0 < remote < 65536:
            raise ValueError(f"remote port must be in 1..65535; got {remote}")
        return (remote_host, remote)
    if not remote.startswith("/") or "\0" in remote:
        raise ValueError(f"a remote socket must be an absolute path; got {remote!r}")
    return remote


class Forward(ClosingContext):
    """A local port forwarded to a port (or a Unix socket) on the remote host, over the login
    of the notebook that made it (:meth:`~rjupyter.RemoteNotebook.forward`).

    It listens on 127.0.0.1 only, follows the notebook through reconnects on the same local
    port, and closes with it; :meth:`close` (or leaving a ``with`` block) closes it sooner.

    Attributes:
        remote: The port number or socket path on the remote host, as asked.
    """

    def __init__(self, forwarder: Forwarder, remote: int | str, owner: Forwards) -> None:
        self.remote = remote
        self._forwarder = forwarder
        self._owner = owner
        self._closed = False

    @property
    def local_port(self) -> int:
        """The local port (on 127.0.0.1; the same across reconnects).

        Raises:
            NotebookClosedError: The forward (or its notebook) was closed.
            TunnelError: The forward stopped forwarding on its own.
        """
        if self._closed:
            raise NotebookClosedError(f"the forward to {self.remote} is closed")
        if self._forwarder.error is not None:
            raise self._forwarder.error
        return self._forwarder.local_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:LOCAL_PORT/``: where a web service behind it answers."""
        return f"http://{LOOPBACK}:{self.local_port}/"

    @property
    def closed(self) -> bool:
        """True once closed (by :meth:`close` or with the notebook)."""
        return self._closed

    def close(self) -> None:
        """Stop listening and end its connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._owner.forget(self)
        self._forwarder.shut()

    def __enter__(self) -> Forward:
        return self

    def __repr__(self) -> str:
        port = None if self._closed else self._forwarder.local_port
        state = "closed" if self._closed else "open"
        return f"<Forward 127.0.0.1:{port} -> {self.remote} state={state}>"

    def move(self, connection: SSHConnection) -> None:
        """Forward over ``connection`` from now on (after a reconnect)."""
        self._forwarder.use_transport(connection.transport)


class Forwards:
    """The forwards of one session: opened over its slot, moved on each swap, closed with it."""

    def __init__(self, slot: ConnectionSlot) -> None:
        self._slot = slot
        self._lock = threading.Lock()
        self._open: list[Forward] = []
        self._closed = False
        slot.on_swap(self._move)

    def add(self, remote: int | str, *, local_port: int, remote_host: str) -> Forward:
        """Open one more forward.

        Raises:
            ValueError, TypeError: ``remote`` or ``local_port`` is malformed.
            TunnelError: The local port cannot be bound.
        """
        target = target_of(remote, remote_host)
        if not 0 <= local_port < 65536:
            raise ValueError(f"local_port must be in 1..65535; got {local_port}")
        forwarder = Forwarder(self._slot.current.transport, target, local_port=local_port)
        forwarder.open()
        forward = Forward(forwarder, remote, self)
        with self._lock:
            closed = self._closed
            if not closed:
                self._open.append(forward)
        if closed:
            forward.close()
            raise TunnelError("the notebook closed while the forward opened")
        return forward

    @property
    def all(self) -> list[Forward]:
        """The open forwards, oldest first."""
        with self._lock:
            return list(self._open)

    def forget(self, forward: Forward) -> None:
        with self._lock:
            if forward in self._open:
                self._open.remove(forward)

    def _move(self, connection: SSHConnection) -> None:
        for forward in self.all:
            forward.move(connection)

    def close(self) -> None:
        """Close every forward; idempotent."""
        with self._lock:
            self._closed = True
            forwards, self._open = self._open, []
        for forward in forwards:
            forward.close()
