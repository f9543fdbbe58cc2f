"""Tunnel: a local port forwarded to any port on (or reachable from) a remote host."""

from __future__ import annotations

import functools
import logging
import threading

from .._deadline import Deadline
from .._errors import NotebookClosedError, RJupyterError
from .._exits import Tracked, track
from .._lifecycle import ClosingContext
from .._paramiko._streamlocal import Address, describe
from .._signals import SigtermHold
from .._ssh._connection import ConnectionSlot, SSHConnection, open_connection
from .._ssh._keeper import ConnectionCallback, Keeper
from .._ssh._options import (
    CONNECT_TIMEOUT,
    AuthHandler,
    ConfigPath,
    JumpHosts,
    Passphrase,
    connect_options,
)
from ._forwarder import Forwarder
from ._forwards import target_of

__all__ = ["Tunnel"]

logger = logging.getLogger(__name__)


class Tunnel(ClosingContext):
    """``ssh -N -L 127.0.0.1:LOCAL:REMOTE_HOST:REMOTE_PORT host``, as an object.

    One SSH login, host keys checked, the local end on 127.0.0.1 only. Like a notebook, it
    reconnects after a drop and keeps its local port.

    Args:
        host: An alias from the SSH config, ``host``, ``user@host`` or ``user@host:port``.
        remote_port: The port to reach, as seen from ``host``; or a str, the path of a Unix
            socket on ``host`` (``ssh -L LOCAL:/path``).
        remote_host: The address to reach, as seen from ``host`` (default its loopback).
        local_port: The local port; None lets the OS choose a free one.
        ssh_config: SSH config file to read (default ``~/.ssh/config``).
        identity_file: A private key file to try first.
        password: A password for password authentication.
        passphrase: For encrypted keys: the passphrase, or a callable given the key's path.
        host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``; None (default) follows
            ``StrictHostKeyChecking`` in the SSH config, itself defaulting to ``"reject"``.
        jump: Jump host(s) like ``ProxyJump``; None follows the SSH config.
        auth_handler: ``auth_handler(title, instructions, prompts)`` answers keyboard-interactive
            prompts (``prompts`` is a list of ``(prompt, echo)``); returns one answer each.
        timeout: Seconds allowed for connecting.
        reconnect_timeout: Seconds to keep trying to reconnect after the connection drops.
        on_connection_change: Called with False when the connection drops, True when back.
        spare_channels: Channels to keep open to the target ahead of new connections, so that
            a new connection's first bytes go without waiting a round trip for its channel
            (a browser's page load makes several). For HTTP servers: the target sees
            connections before any client makes them. 0 (default): none, like ``ssh -L``;
            a notebook's own tunnel keeps 6.

    Raises:
        ValueError: A malformed argument.
    """

    def __init__(
        self,
        host: str,
        remote_port: int | str,
        *,
        remote_host: str = "127.0.0.1",
        local_port: int | None = None,
        ssh_config: ConfigPath | None = None,
        identity_file: ConfigPath | None = None,
        password: str | None = None,
        passphrase: Passphrase | None = None,
        host_key_policy: str | None = None,
        jump: JumpHosts | None = None,
        auth_handler: AuthHandler | None = None,
        timeout: float = CONNECT_TIMEOUT,
        reconnect_timeout: float = 300.0,
        on_connection_change: ConnectionCallback | None = None,
        spare_channels: int = 0,
    ) -> None:
        target_of(remote_port, remote_host)
        _check_spares(spare_channels)
        if local_port is not None and not 0 < local_port < 65536:
            raise ValueError(f"local_port must be in 1..65535; got {local_port}")
        self.host = host
        self.remote_host = remote_host
        self.remote_port = remote_port
        self.timeout = timeout
        self._asked_local_port = local_port or 0
        self._reconnect_timeout = reconnect_timeout
        self._on_change = on_connection_change
        self._spares = spare_channels
        self._options = connect_options(
            ssh_config=ssh_config,
            identity_file=identity_file,
            password=password,
            passphrase=passphrase,
            host_key_policy=host_key_policy,
            jump=jump,
            auth_handler=auth_handler,
        )
        self._lock = threading.Lock()
        self._closed = False
        self._parts: _Parts | None = None
        self._tracked: Tracked | None = None
        self._more: list[tuple[Address, int, int]] = []

    def forward_also(
        self,
        remote_port: int | str,
        *,
        remote_host: str = "127.0.0.1",
        local_port: int | None = None,
        spare_channels: int = 0,
    ) -> None:
        """Forward one more local port over the same login (like a second ``-L``); before
        :meth:`start`. Its local port is in :attr:`more_local_ports` once started.
        ``remote_port`` may be a socket path, and ``spare_channels`` is kept, as for the first.

        Raises:
            ValueError: A port is out of range, or ``spare_channels`` negative.
            RuntimeError: The tunnel was already started.
        """
        target = target_of(remote_port, remote_host)
        if local_port is not None and not 0 < local_port < 65536:
            raise ValueError(f"local_port must be in 1..65535; got {local_port}")
        _check_spares(spare_channels)
        if self._parts is not None:
            raise RuntimeError("forward_also() comes before start()")
        self._more.append((target, local_port or 0, spare_channels))

    @property
    def more_local_ports(self) -> list[int]:
        """The local ports of the forwards added with :meth:`forward_also`, in order."""
        more = self._parts.more if self._parts is not None else []
        return [forwarder.local_port for forwarder in more]

    def start(self) -> Tunnel:
        """Log in and start listening.

        Returns:
            self, for chaining.

        Raises:
            SSHConnectError: The host cannot be reached (and its subclasses).
            TunnelError: The local port cannot be opened.
            NotebookClosedError: The tunnel was closed.
            RuntimeError: The tunnel was already started.
        """
        with self._lock:
            if self._closed:
                raise NotebookClosedError("this Tunnel is closed; create a new one")
            if self._parts is not None:
                raise RuntimeError("this Tunnel was already started")
            parts = self._parts = _Parts(ConnectionSlot(self._connect(Deadline(self.timeout))))
        try:
            self._tracked = track(self, parts.release, f"Tunnel to {self.host}")
            slot = parts.slot
            forwarder = parts.forwarder = Forwarder(
                slot.current.transport,
                target_of(self.remote_port, self.remote_host),
                local_port=self._asked_local_port,
                spares=self._spares,
            )
            forwarder.open()
            for target, local_port, spares in self._more:
                more = Forwarder(
                    slot.current.transport, target, local_port=local_port, spares=spares
                )
                more.open()
                parts.more.append(more)
            forwarders = [forwarder, *parts.more]
            slot.on_swap(lambda connection: _use_transport(forwarders, connection))
            parts.keeper = Keeper(
                label=self.host,
                slot=slot,
                # Nothing the threads hold refers to the Tunnel (so it can be collected).
                reconnect=functools.partial(open_connection, self.host, self._options),
                adopt=slot.swap,
                heartbeat=None,
                heartbeat_period=60.0,
                reconnect_timeout=self._reconnect_timeout,
                on_change=self._on_change,
            )
            parts.keeper.start()
        except BaseException:
            self.close()
            raise
        logger.info(
            "tunnel 127.0.0.1:%s -> %s:%s open",
            forwarder.local_port,
            self.host,
            describe(target_of(self.remote_port, self.remote_host)),
        )
        return self

    def _connect(self, deadline: Deadline) -> SSHConnection:
        return open_connection(self.host, self._options, deadline)

    @property
    def local_port(self) -> int:
        """The local port (on 127.0.0.1).

        Raises:
            NotebookClosedError: The tunnel was closed.
            RuntimeError: The tunnel was not started.
        """
        if self._closed:
            raise NotebookClosedError(f"the tunnel to {self.host} is closed")
        if self._forwarder is None:
            raise RuntimeError("the tunnel is not started; use `with` or call start()")
        if self._keeper is not None and self._keeper.error is not None:
            raise self._keeper.error
        if self._forwarder.error is not None:
            raise self._forwarder.error
        return self._forwarder.local_port

    @property
    def connected(self) -> bool:
        """True while the SSH connection is up."""
        keeper, forwarder = self._keeper, self._forwarder
        broken = forwarder is not None and forwarder.broken
        return keeper is not None and keeper.connected and keeper.error is None and not broken

    def close(self) -> None:
        """Stop listening and log out; idempotent.

        Raises:
            SSHConnectError: The connection had been lost for good (raised after releasing).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._tracked is not None:
            self._tracked.done()
        if self._parts is not None:
            error = self._parts.release()
            if error is not None:
                raise error

    @property
    def _slot(self) -> ConnectionSlot | None:
        return self._parts.slot if self._parts is not None else None

    @property
    def _forwarder(self) -> Forwarder | None:
        return self._parts.forwarder if self._parts is not None else None

    @property
    def _keeper(self) -> Keeper | None:
        return self._parts.keeper if self._parts is not None else None

    def __enter__(self) -> Tunnel:
        return self.start()

    def __repr__(self) -> str:
        port = self._forwarder.local_port if self._forwarder is not None else None
        state = "closed" if self._closed else ("open" if port else "new")
        return (
            f"<Tunnel 127.0.0.1:{port} -> "
            f"{self.host}:{describe(target_of(self.remote_port, self.remote_host))} "
            f"state={state}>"
        )


class _Parts:
    """What a started tunnel holds: released by ``close()``, or when the Tunnel is collected
    unclosed (so nothing here refers to the Tunnel itself)."""

    def __init__(self, slot: ConnectionSlot) -> None:
        self.slot = slot
        self.forwarder: Forwarder | None = None
        self.more: list[Forwarder] = []
        self.keeper: Keeper | None = None
        self.hold = SigtermHold()

    def release(self) -> RJupyterError | None:
        """Stop watching and listening, log out, give the signal hold back; idempotent.

        Returns:
            The error the keeper gave up with, if it did.
        """
        try:
            if self.keeper is not None:
                self.keeper.stop()
            for each in [self.forwarder, *self.more]:
                if each is not None:
                    each.shut()
        finally:
            self.slot.close()
            self.hold.release()
        return self.keeper.error if self.keeper is not None else None


def _check_spares(count: int) -> None:
    if count < 0:
        raise ValueError(f"spare_channels must be 0 or more; got {count}")


def _use_transport(forwarders: list[Forwarder], connection: SSHConnection) -> None:
    for forwarder in forwarders:
        forwarder.use_transport(connection.transport)
