"""Opening one connection: the stream (TCP, ProxyCommand, or a channel through a jump host),
the handshake (AES-GCM first, known host-key types first), the host-key check, one login."""

from __future__ import annotations

import logging
import os
import shlex
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import paramiko

from .._deadline import Deadline
from .._errors import RJupyterError, SSHConnectError
from .._paramiko._fastpath import install as install_fast_path
from .._paramiko._fixes import STREAM_MAX_PACKET, ReadAheadChannel, ReadAheadSocket
from .._paramiko._fixes import install as install_transport_fixes
from .._paramiko._hostkeys import verifiable_key_types
from ._auth import Credentials, authenticate
from ._hostconfig import HostConfig
from ._hostspec import parse_host_spec
from ._knownhosts import (
    HostIdentity,
    OtherKnownHosts,
    check_host_key,
    known_key_types,
    load_known_hosts,
)
from ._tokens import TokenContext, expand_tokens

__all__ = ["FAST_CIPHERS", "connect"]

logger = logging.getLogger(__name__)

_PROXY_EXIT_TIMEOUT = 5.0


@contextmanager
def _connect_errors(host: HostConfig, timeout: float) -> Iterator[None]:
    """Translate socket and paramiko failures into SSHConnectError."""
    target = f"{host.hostname}:{host.port}"
    try:
        yield
    except RJupyterError:
        raise
    except socket.gaierror as exc:
        raise SSHConnectError(
            f"cannot resolve {host.hostname!r} (host {host.name}): {exc.strerror}. "
            "Check the name, or its HostName in your SSH config",
            host=host.name,
        ) from exc
    except TimeoutError as exc:
        raise SSHConnectError(
            f"no answer from {target} (host {host.name}) within {timeout:.0f} s. "
            "Check that the host is up and reachable (VPN, firewall), or raise ConnectTimeout",
            host=host.name,
        ) from exc
    except ConnectionRefusedError as exc:
        raise SSHConnectError(
            f"connection to {target} (host {host.name}) refused: no SSH server listens there. "
            "Check the port (Port in your SSH config) and that sshd runs",
            host=host.name,
        ) from exc
    except paramiko.ChannelException as exc:
        raise SSHConnectError(
            f"the jump host could not reach {target} (host {host.name}): {exc.text}. Check "
            "HostName and Port as the jump host sees them",
            host=host.name,
        ) from exc
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise SSHConnectError(
            f"SSH connection to {target} (host {host.name}) failed: {exc or type(exc).__name__}. "
            "Check that `ssh` itself reaches this host",
            host=host.name,
        ) from exc


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's ProxyCommand, whose close() also reaps the process and closes its pipes."""

    def close(self) -> None:
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_PROXY_EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _open_stream(
    host: HostConfig, via: paramiko.Transport | None, timeout: float
) -> socket.socket | paramiko.Channel | paramiko.ProxyCommand:
    if via is not None:
        logger.debug("opening a channel to %s:%s through the jump host", host.hostname, host.port)
        # Read ahead (and so the lean path) on the connection the channel carries; its window
        # grows to the link's round trip once the tunnel knows it (_forward's LinkEstimate), and
        # it asks for large packets (STREAM_MAX_PACKET: why).
        return ReadAheadChannel.wrap(
            via.open_channel(
                "direct-tcpip",
                (host.hostname, host.port),
                ("127.0.0.1", 0),
                timeout=timeout,
                max_packet_size=STREAM_MAX_PACKET,
            )
        )
    if host.proxy_command:
        context = TokenContext(
            host=host.hostname,
            original_host=parse_host_spec(host.name).host,
            port=str(host.port),
            remote_user=host.user,
            key_alias=host.host_key_alias or "",
        )
        command = expand_tokens(host.proxy_command, context)
        shell = os.environ.get("SHELL") or "/bin/sh"
        logger.debug("ProxyCommand for %s: %s", host.name, command)
        # paramiko splits its argument with shlex; ssh runs ProxyCommand through the shell.
        return _ProxyCommand(shlex.join([shell, "-c", f"exec {command}"]))
    logger.debug("connecting to %s:%s", host.hostname, host.port)
    sock = socket.create_connection((host.hostname, host.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ReadAheadSocket.wrap(sock)


def connect(
    host: HostConfig,
    credentials: Credentials,
    *,
    deadline: Deadline,
    via: paramiko.Transport | None = None,
    progress: Callable[[str, str], None] | None = None,
    other_known_hosts: OtherKnownHosts | None = None,
) -> paramiko.Transport:
    """Open one connection (directly, by ProxyCommand, or through ``via``), check, log in once.

    A host key the known_hosts files do not list at all is looked up in ``other_known_hosts``
    (a compute node's, as its cluster knows it) before the host's policy applies.

    Raises:
        SSHConnectError: The host cannot be reached or the handshake fails.
        HostKeyError: The host key is unknown (under ``"reject"``), changed or revoked.
        AuthenticationError: No credential was accepted.
    """
    timeout = min(host.connect_timeout or deadline.seconds, deadline.remaining(0.1))
    if progress is not None:
        progress("connect", f"{host.hostname}:{host.port}")
    with _connect_errors(host, timeout):
        transport = paramiko.Transport(_open_stream(host, via, timeout))
    install_transport_fixes(transport)
    install_fast_path(transport)
    try:
        with _connect_errors(host, timeout):
            transport.banner_timeout = timeout
            transport.auth_timeout = deadline.remaining(0.1)
            transport.use_compression(host.compression)
            entries = load_known_hosts(host.known_hosts_files)
            wanted = known_key_types(entries, host.known_hosts_name)
            if not wanted and other_known_hosts is not None:
                # As ssh does: ask for a key type the checking files hold (else a node known
                # by its RSA key alone would show its ed25519 key and look changed).
                wanted = known_key_types(other_known_hosts.load(), host.known_hosts_name)
            _prefer(transport, wanted)
            _prefer_fast_ciphers(transport)
            transport.start_client(timeout=deadline.remaining(0.1))
            identity = HostIdentity(
                label=host.name,
                lookup_name=host.known_hosts_name,
                principal=host.host_key_alias or host.hostname,
                files=host.known_hosts_files,
                policy=host.host_key_policy,
                hash_names=host.hash_known_hosts,
            )
            check_host_key(
                identity, transport.get_remote_server_key(), entries, other=other_known_hosts
            )
            if progress is not None:
                progress("authenticate", f"{host.user}@{host.name}")
            authenticate(transport, credentials)
    except BaseException:
        transport.close()
        raise
    logger.debug("logged in to %s as %s", host.name, host.user)
    return transport


def _prefer(transport: paramiko.Transport, wanted: list[str]) -> None:
    """Ask first for the host key types known_hosts has, as OpenSSH does."""
    options = transport.get_security_options()
    supported = list(options.key_types)
    available = verifiable_key_types(options)
    first = [name for name in wanted if name in available]
    if first:
        options.key_types = first + [name for name in supported if name not in first]


#: Ciphers to ask for first: AES-GCM is authenticated encryption in one pass (no separate MAC),
#: the fastest paramiko offers with AES-NI. The rest of paramiko's list follows as fallback.
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _prefer_fast_ciphers(transport: paramiko.Transport) -> None:
    """Put AES-GCM first; the server picks it when it offers it too."""
    options = transport.get_security_options()
    supported = list(options.ciphers)
    first = [name for name in FAST_CIPHERS if name in supported]
    options.ciphers = first + [name for name in supported if name not in first]
