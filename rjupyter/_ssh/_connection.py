"""The SSH connection everything above holds: :func:`open_connection` resolves a host like
``ssh``, walks its jump chain and logs in once (:mod:`._handshake` per hop); an
:class:`SSHConnection` runs remote scripts, opens session and SFTP channels and watches its peer;
a :class:`ConnectionSlot` holds the one a session uses now.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import paramiko

from .._deadline import Deadline
from .._errors import SSHConnectError
from .._paramiko._streamlocal import reaches_socket
from ._auth import Credentials
from ._handshake import connect
from ._hostconfig import HostConfig, resolve_chain, resolve_host, split_chain
from ._liveness import Keepalive
from ._options import ConnectOptions

__all__ = ["ConnectionSlot", "SSHConnection", "credentials_for", "open_connection"]

logger = logging.getLogger(__name__)


class SSHConnection:
    """One logged-in SSH connection to a host (through its jump hosts, if any).

    A keepalive thread probes the connection every ``ServerAliveInterval`` seconds; after
    ``ServerAliveCountMax`` unanswered intervals the peer counts as lost: :attr:`lost` is set,
    the transports are closed, and every callback added with :meth:`add_lost_callback` runs.

    Attributes:
        host: The resolved host.
        transport: The authenticated paramiko transport to the host itself.
        lost: The error describing how the connection was lost, or None while it is fine.
    """

    def __init__(
        self,
        host: HostConfig,
        transport: paramiko.Transport,
        hops: Sequence[paramiko.Transport] = (),
        *,
        keepalive: bool = True,
    ) -> None:
        self.host = host
        self.transport = transport
        self._hops = list(hops)
        self.lost: SSHConnectError | None = None
        self._callbacks: list[Callable[[SSHConnectError], None]] = []
        self._lock = threading.Lock()
        self._keepalive: Keepalive | None = None
        if keepalive and host.alive_interval > 0:
            self._keepalive = Keepalive(
                transport,
                label=host.name,
                interval=host.alive_interval,
                count=host.alive_count,
                on_lost=self._mark_lost,
            )
            self._keepalive.start()

    @property
    def is_active(self) -> bool:
        """True while the transport is up and the peer answers."""
        return self.lost is None and bool(self.transport.is_active())

    def add_lost_callback(self, callback: Callable[[SSHConnectError], None]) -> None:
        """Call ``callback(error)`` once the peer is found dead (at once if it already is).

        Callbacks run in the keepalive thread; one that raises is logged and skipped.
        """
        with self._lock:
            lost = self.lost
            if lost is None:
                self._callbacks.append(callback)
        if lost is not None:
            self._run_callback(callback, lost)

    def check(self) -> None:
        """Raise the loss, if the connection was lost.

        Raises:
            SSHConnectError: The peer stopped answering or closed the connection.
        """
        if self.lost is not None:
            raise self.lost

    def _mark_lost(self, error: SSHConnectError) -> None:
        with self._lock:
            if self.lost is not None:
                return
            self.lost = error
            callbacks, self._callbacks = self._callbacks, []
        self._close_transports()
        for callback in callbacks:
            self._run_callback(callback, error)

    @staticmethod
    def _run_callback(callback: Callable[[SSHConnectError], None], error: SSHConnectError) -> None:
        try:
            callback(error)
        except Exception:
            logger.exception("a lost-connection callback failed")

    def _close_transports(self) -> None:
        for transport in [self.transport, *reversed(self._hops)]:
            transport.close()

    def open_sftp(self) -> paramiko.SFTPClient:
        """An SFTP client on this connection (no second login).

        Raises:
            SSHConnectError: The SFTP subsystem could not be started.
        """
        with self._channel_errors("starting SFTP"):
            client = paramiko.SFTPClient.from_transport(self.transport)
        if client is None:
            raise SSHConnectError(f"{self.host.name} refused the SFTP subsystem", host=self.label)
        return client

    def reaches_socket(self, path: str, *, timeout: float = 15.0) -> bool:
        """Whether the server forwards to the Unix socket ``path`` (one channel opened and
        closed). On a socket known to exist, False means the server forbids stream-local
        forwarding (sshd's ``AllowStreamLocalForwarding``).

        Raises:
            SSHConnectError: The connection failed.
        """
        with self._channel_errors("reaching a Unix socket"):
            return reaches_socket(self.transport, path, timeout=timeout)

    def stream(
        self, script: str, args: Sequence[str] = (), *, timeout: float, hold_stdin: bool = False
    ) -> paramiko.Channel:
        """Start ``script`` with ``/bin/sh -s`` on the host and return its channel (stdout and
        stderr merged) to read as it runs; the script goes on stdin, ``args`` are data. With
        ``hold_stdin`` the channel's stdin stays open after the script (the script can tell
        when the channel closes: its stdin ends).

        Raises:
            SSHConnectError: The channel could not be opened (the connection may be down).
        """
        command = " ".join(["exec /bin/sh -s --", *(shlex.quote(arg) for arg in args)])
        with self._channel_errors("a remote command"):
            channel = self.transport.open_session(timeout=timeout)
            try:
                channel.set_combine_stderr(True)
                channel.exec_command(command)
                channel.sendall(script.encode())
                if not hold_stdin:
                    channel.shutdown_write()
            except BaseException:
                channel.close()
                raise
        return channel

    def run(
        self, script: str, args: Sequence[str] = (), *, timeout: float = 30.0
    ) -> tuple[int | None, str]:
        """Run ``script`` with ``/bin/sh -s`` on the host; return (exit status, output).

        The script goes on the channel's stdin, so nothing of it shows in a remote command
        line; ``args`` are quoted as data. stderr is merged into the output.

        Raises:
            SSHConnectError: The connection failed or the script did not end within ``timeout``.
        """
        command = " ".join(["exec /bin/sh -s --", *(shlex.quote(arg) for arg in args)])
        chunks: list[bytes] = []
        with self._channel_errors("a remote command"):
            channel = self.transport.open_session(timeout=min(timeout, 15.0))
            try:
                channel.set_combine_stderr(True)
                channel.settimeout(timeout)
                channel.exec_command(command)
                channel.sendall(script.encode())
                channel.shutdown_write()
                while data := channel.recv(65536):
                    chunks.append(data)
                status = channel.recv_exit_status() if channel.status_event.wait(timeout) else None
            finally:
                channel.close()
        return status, b"".join(chunks).decode(errors="replace")

    @property
    def label(self) -> str:
        """The host as the user named it."""
        return self.host.name

    @contextmanager
    def _channel_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise SSHConnectError(
                f"{what} on {self.host.name} failed: {exc or type(exc).__name__} "
                "(the SSH connection may be down)",
                host=self.host.name,
            ) from exc

    def close(self) -> None:
        """Stop the keepalive, close the connection, then each jump host's; idempotent."""
        if self._keepalive is not None:
            self._keepalive.stop()
        self._close_transports()

    def __repr__(self) -> str:
        return f"<SSHConnection {self.host.user}@{self.host.name} active={self.is_active}>"


class ConnectionSlot:
    """The connection a session uses now: what the server, the job and the tunnel hold.

    A reconnect swaps this one reference (:meth:`swap`); those that must act on a new
    connection (the forwarder moves its channels) are told through :meth:`on_swap`.
    """

    def __init__(self, connection: SSHConnection) -> None:
        self._connection = connection
        self._listeners: list[Callable[[SSHConnection], None]] = []
        self._lock = threading.Lock()

    @property
    def current(self) -> SSHConnection:
        """The live connection (it may have dropped since; see ``is_active``)."""
        return self._connection

    def on_swap(self, listener: Callable[[SSHConnection], None]) -> None:
        """Call ``listener(new)`` after each :meth:`swap`."""
        with self._lock:
            self._listeners.append(listener)

    def swap(self, connection: SSHConnection) -> None:
        """Use ``connection`` from now on; tell the listeners, then close the old one."""
        with self._lock:
            old, self._connection = self._connection, connection
            listeners = list(self._listeners)
        for listener in listeners:
            listener(connection)
        if old is not connection:
            old.close()

    def close(self) -> None:
        """Close the current connection; idempotent."""
        self._connection.close()

    def __repr__(self) -> str:
        return f"<ConnectionSlot {self._connection!r}>"


def credentials_for(host: HostConfig, options: ConnectOptions, *, target: bool) -> Credentials:
    """What ``host`` may be offered (``password`` only on the target, never to a jump host)."""
    return Credentials(
        user=host.user,
        label=host.name,
        identity_files=host.identity_files,
        certificate_files=host.certificate_files,
        identities_only=host.identities_only,
        agent_socket=host.agent_socket,
        password=options.password if target else None,
        passphrase=options.passphrase,
        handler=options.auth_handler,
    )


def _with_policy(host: HostConfig, options: ConnectOptions) -> HostConfig:
    if options.host_key_policy is None:
        return host
    return dataclasses.replace(host, host_key_policy=options.host_key_policy)


def open_connection(
    spec: str, options: ConnectOptions, deadline: Deadline, *, via: SSHConnection | None = None
) -> SSHConnection:
    """Resolve ``spec`` like ``ssh``, connect through its jump hosts and log in once.

    With ``via``, the host is reached through that live connection instead (its jump chain
    is not used): one more hop without a second login to the hop. Closing the new
    connection leaves ``via`` open.

    Raises:
        ValueError: ``spec`` or an option is malformed.
        SSHConnectError: The host cannot be reached (``HostKeyError``, ``AuthenticationError``).
    """
    host = _with_policy(
        resolve_host(spec, ssh_config=options.ssh_config, identity_file=options.identity_file),
        options,
    )
    chain = split_chain(options.jump) if options.jump is not None else host.proxy_jump
    if via is not None:
        chain = ()
    # host_key_policy is the target's: each jump host follows its own StrictHostKeyChecking.
    hops = resolve_chain(
        chain,
        lambda hop: resolve_host(
            hop, ssh_config=options.ssh_config, identity_file=options.identity_file
        ),
    )
    if chain or via is not None:
        host = dataclasses.replace(host, proxy_command=None)
    transports: list[paramiko.Transport] = []
    first_via = via.transport if via is not None else None
    try:
        for number, step in enumerate([*hops, host]):
            through = transports[-1] if transports else first_via
            # Only the first step may use its ProxyCommand; later ones go through the chain.
            reached = step if number == 0 else dataclasses.replace(step, proxy_command=None)
            credentials = credentials_for(reached, options, target=number == len(hops))
            transports.append(
                connect(
                    reached, credentials, deadline=deadline, via=through, progress=options.progress
                )
            )
    except BaseException:
        for transport in reversed(transports):
            transport.close()
        raise
    return SSHConnection(host, transports[-1], transports[:-1])
