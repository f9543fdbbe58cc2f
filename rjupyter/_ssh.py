"""Connecting: ssh_config, host keys, authentication, and one paramiko transport per session.

This module and the launcher and tunnel modules are the only ones that import paramiko.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
import pwd
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import paramiko

from ._discovery import parse_host_spec
from ._errors import AuthenticationError, HostKeyError, RJupyterError, SSHConnectError

__all__ = [
    "AuthHandler",
    "ConnectOptions",
    "Deadline",
    "HostConfig",
    "SSHConnection",
    "connect",
    "open_connection",
    "resolve_host",
]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = "~/.ssh/config"
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
_POLICIES = {"yes": "reject", "ask": "reject", "accept-new": "accept-new", "no": "no", "off": "no"}
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


class Deadline:
    """A point in time shared by the steps of one operation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self, floor: float = 0.0) -> float:
        """Seconds left, at least ``floor``."""
        return max(floor, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        """True once the time is up."""
        return time.monotonic() >= self._end


#: ``auth_handler(title, instructions, prompts)``: ``prompts`` are ``(prompt, echo)`` pairs; it
#: returns one answer per prompt (keyboard-interactive, e.g. a password then an OTP code).
AuthHandler = Callable[[str, str, list[tuple[str, bool]]], list[str]]


@dataclass(frozen=True)
class ConnectOptions:
    """How to reach a host: everything that connects (RemoteNotebook, Tunnel, ...) takes these.

    Attributes:
        ssh_config: SSH config file to read (default ``~/.ssh/config``).
        identity_file: A private key file to try first.
        password: For password authentication.
        passphrase: For encrypted key files: the passphrase, or a callable that gets the key's
            path and returns it.
        host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``; None takes
            ``StrictHostKeyChecking`` from the config (default ``"reject"``).
        jump: Jump host(s), like ``ProxyJump``: ``"user@bastion:22"``, a comma-separated chain
            or a sequence; None takes ``ProxyJump`` from the config.
        auth_handler: Answers keyboard-interactive prompts (see :data:`AuthHandler`).
    """

    ssh_config: str | os.PathLike[str] | None = None
    identity_file: str | os.PathLike[str] | None = None
    password: str | None = field(default=None, repr=False)
    passphrase: str | Callable[[str], str] | None = field(default=None, repr=False)
    host_key_policy: str | None = None
    jump: str | Sequence[str] | None = None
    auth_handler: AuthHandler | None = None

    def __post_init__(self) -> None:
        if self.host_key_policy not in (None, "reject", "accept-new", "no"):
            raise ValueError(
                "host_key_policy must be 'reject', 'accept-new' or 'no'; "
                f"got {self.host_key_policy!r}"
            )


@dataclass(frozen=True)
class HostConfig:
    """A host resolved from what the user wrote and their ssh_config.

    Attributes:
        name: The host as the user wrote it (used in messages).
        hostname: The address to connect to.
        port: The SSH port.
        user: The login name.
        identity_files: Key files to try, in order (``~`` expanded).
        known_hosts_files: known_hosts files to check, in order (``~`` expanded).
        host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``.
        connect_timeout: ``ConnectTimeout`` from the config, if set.
    """

    name: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts_files: tuple[str, ...]
    host_key_policy: str
    connect_timeout: float | None = None

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts files list this host under (``[host]:port`` off port 22)."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def resolve_host(
    spec: str,
    *,
    ssh_config: str | os.PathLike[str] | None = None,
    identity_file: str | os.PathLike[str] | None = None,
) -> HostConfig:
    """Resolve an alias or ``user@host:port`` through the SSH config file.

    Values in ``spec`` win over the config file, which wins over OpenSSH's defaults.

    Raises:
        ValueError: ``spec`` is malformed.
        SSHConnectError: An explicitly named ``ssh_config`` file cannot be read.
    """
    parsed = parse_host_spec(spec)
    options = _lookup_config(parsed.host, ssh_config, spec)
    identities = [str(identity_file)] if identity_file is not None else []
    identities += options.get("identityfile", [])
    if options.get("identitiesonly", "no").lower() != "yes" or not identities:
        identities += [path for path in DEFAULT_IDENTITIES if path not in identities]
    known = options.get("userknownhostsfile", " ".join(DEFAULT_KNOWN_HOSTS)).split()
    known += options.get("globalknownhostsfile", " ".join(GLOBAL_KNOWN_HOSTS)).split()
    checking = options.get("stricthostkeychecking", "ask").lower()
    if checking not in _POLICIES:
        raise ValueError(f"StrictHostKeyChecking {checking!r} for {spec!r} is not understood")
    timeout = options.get("connecttimeout")
    return HostConfig(
        name=spec,
        hostname=options.get("hostname", parsed.host),
        port=parsed.port or int(options.get("port", 22)),
        user=parsed.user or options.get("user") or pwd.getpwuid(os.getuid()).pw_name,
        identity_files=tuple(os.path.expanduser(path) for path in identities),
        known_hosts_files=tuple(os.path.expanduser(path) for path in known),
        host_key_policy=_POLICIES[checking],
        connect_timeout=float(timeout) if timeout else None,
    )


def _lookup_config(
    host: str, path: str | os.PathLike[str] | None, spec: str
) -> paramiko.config.SSHConfigDict:
    config_path = Path(os.path.expanduser(path if path is not None else DEFAULT_CONFIG))
    if not config_path.exists():
        if path is not None:
            raise SSHConnectError(
                f"SSH config file {str(config_path)!r} does not exist; "
                "pass the path of an existing file or leave ssh_config unset",
                host=spec,
            )
        return paramiko.SSHConfig().lookup(host)
    try:
        return paramiko.SSHConfig.from_path(str(config_path)).lookup(host)
    except (OSError, paramiko.ConfigParseError) as exc:
        raise SSHConnectError(
            f"cannot read SSH config {str(config_path)!r}: {exc}", host=spec
        ) from exc


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _load_known_hosts(files: Sequence[str]) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    for path in files:
        if os.path.isfile(path):
            try:
                keys.load(path)
            except (OSError, paramiko.SSHException) as exc:
                logger.warning("skipping unreadable known_hosts file %s: %s", path, exc)
    return keys


def _prefer_known_key_types(transport: paramiko.Transport, known: dict[str, paramiko.PKey]) -> None:
    """Ask first for the host key types known_hosts has, as OpenSSH does."""
    wanted: list[str] = []
    for key_type in known:
        wanted += list(_RSA_ALGORITHMS) if key_type == "ssh-rsa" else [key_type]
    options = transport.get_security_options()
    supported = list(options.key_types)
    first = [name for name in wanted if name in supported]
    if first:
        options.key_types = first + [name for name in supported if name not in first]


def _check_host_key(
    host: HostConfig, key: paramiko.PKey, known: dict[str, paramiko.PKey], policy: str
) -> None:
    key_type, print_ = key.get_name(), fingerprint(key)
    stored = known.get(key_type)
    if stored is not None and stored.asbytes() == key.asbytes():
        logger.debug("host key %s %s matches known_hosts", key_type, print_)
        return
    if stored is not None or (known and key_type not in known and policy != "no"):
        raise _changed_key_error(host, key_type, print_, stored is not None)
    if policy == "no":
        logger.warning(
            "host key checking is off: accepting %s key %s for %s without verification",
            key_type,
            print_,
            host.name,
        )
        return
    if policy == "accept-new":
        _record_host_key(host, key)
        return
    raise HostKeyError(
        f"the host key of {host.name} ({host.known_hosts_name}) is not known: the server "
        f"offered {key_type} {print_}. Verify that fingerprint with the host's administrator, "
        f"then add it, e.g. by logging in once with `ssh -p {host.port} "
        f"{host.user}@{host.hostname}` and answering yes, or pass host_key_policy='accept-new'",
        host=host.name,
        key_type=key_type,
        fingerprint=print_,
        changed=False,
    )


def _changed_key_error(
    host: HostConfig, key_type: str, print_: str, same_type: bool
) -> HostKeyError:
    files = ", ".join(host.known_hosts_files[:1])
    what = "a different key" if same_type else "keys of other types only"
    return HostKeyError(
        f"HOST KEY MISMATCH for {host.name} ({host.known_hosts_name}): the server offered "
        f"{key_type} {print_}, but known_hosts holds {what} for it. Someone may be "
        f"intercepting the connection, or the host was reinstalled. If you are sure the new "
        f"key is right, remove the old one with `ssh-keygen -R '{host.known_hosts_name}' "
        f"-f {files}` and connect again",
        host=host.name,
        key_type=key_type,
        fingerprint=print_,
        changed=True,
    )


def _record_host_key(host: HostConfig, key: paramiko.PKey) -> None:
    path = Path(host.known_hosts_files[0])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{host.known_hosts_name} {key.get_name()} {key.get_base64()}\n"
    with open(path, "a", encoding="ascii") as stream:
        stream.write(line)
    logger.warning(
        "added %s host key %s for %s to %s", key.get_name(), fingerprint(key), host.name, path
    )


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
            "Check that the host is up and reachable (VPN, firewall), or raise timeout",
            host=host.name,
        ) from exc
    except ConnectionRefusedError as exc:
        raise SSHConnectError(
            f"connection to {target} (host {host.name}) refused: no SSH server listens there. "
            "Check the port (Port in your SSH config) and that sshd runs",
            host=host.name,
        ) from exc
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise SSHConnectError(
            f"SSH connection to {target} (host {host.name}) failed: {exc or type(exc).__name__}. "
            "Check that `ssh` itself reaches this host",
            host=host.name,
        ) from exc


def connect(
    host: HostConfig,
    *,
    password: str | None,
    deadline: Deadline,
    keepalive: float = 30.0,
) -> paramiko.Transport:
    """Open one TCP connection, verify the host key and log in once.

    Raises:
        SSHConnectError: The host cannot be reached or the handshake fails.
        HostKeyError: The host key is unknown (under ``"reject"``) or changed.
        AuthenticationError: No credential was accepted.
    """
    timeout = min(host.connect_timeout or deadline.seconds, deadline.remaining(0.1))
    with _connect_errors(host, timeout):
        logger.debug("connecting to %s:%s as %s", host.hostname, host.port, host.user)
        sock = socket.create_connection((host.hostname, host.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
    try:
        with _connect_errors(host, timeout):
            transport.banner_timeout = transport.auth_timeout = deadline.remaining(0.1)
            known = _load_known_hosts(host.known_hosts_files).lookup(host.known_hosts_name)
            known_types = dict(known.items()) if known is not None else {}
            _prefer_known_key_types(transport, known_types)
            transport.start_client(timeout=deadline.remaining(0.1))
            _check_host_key(
                host, transport.get_remote_server_key(), known_types, host.host_key_policy
            )
            _authenticate(transport, host, password)
            transport.set_keepalive(int(keepalive))
    except BaseException:
        transport.close()
        raise
    logger.debug("logged in to %s as %s", host.name, host.user)
    return transport


def _agent_keys() -> list[paramiko.AgentKey]:
    if not os.environ.get("SSH_AUTH_SOCK"):
        return []
    try:
        return list(paramiko.Agent().get_keys())
    except paramiko.SSHException as exc:
        logger.debug("ssh-agent unavailable: %s", exc)
        return []


def _file_keys(host: HostConfig) -> Iterator[tuple[str, paramiko.PKey]]:
    for path in host.identity_files:
        if not os.path.isfile(path):
            continue
        try:
            yield path, paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException:
            logger.info("skipping encrypted key %s (no passphrase given)", path)
        except (OSError, ValueError, paramiko.SSHException) as exc:
            logger.info("skipping unreadable key %s: %s", path, exc)


def _authenticate(transport: paramiko.Transport, host: HostConfig, password: str | None) -> None:
    tried: list[str] = []
    allowed: list[str] = []
    try:
        transport.auth_none(host.user)
        return
    except paramiko.BadAuthenticationType as exc:
        allowed = list(exc.allowed_types)
    except paramiko.AuthenticationException:
        pass
    candidates: list[tuple[str, paramiko.PKey]] = [
        (f"agent key {fingerprint(key)}", key) for key in _agent_keys()
    ]
    if "publickey" in allowed or not allowed:
        candidates += list(_file_keys(host))
        for label, key in candidates:
            tried.append(f"publickey {label}")
            if _try(partial(transport.auth_publickey, host.user, key), allowed):
                return
    if password is not None and ("password" in allowed or not allowed):
        tried.append("password")
        if _try(partial(transport.auth_password, host.user, password), allowed):
            return
    raise AuthenticationError(
        f"{host.user}@{host.name} refused every credential offered "
        f"(tried: {', '.join(tried) or 'nothing'}; the server accepts: "
        f"{', '.join(allowed) or 'unknown'}). Check that your public key is in the remote "
        "~/.ssh/authorized_keys, pass identity_file= or password=, or load the key into ssh-agent",
        host=host.name,
        methods_tried=tuple(tried),
        methods_allowed=tuple(allowed),
    )


def _try(attempt: Callable[[], list[str]], allowed: list[str]) -> bool:
    """Run one auth attempt; True once the transport is fully authenticated."""
    try:
        remaining = attempt()
    except paramiko.BadAuthenticationType as exc:
        allowed[:] = list(exc.allowed_types)
        return False
    except paramiko.AuthenticationException:
        return False
    if remaining:
        allowed[:] = list(remaining)
    return not remaining


class SSHConnection:
    """One logged-in SSH connection to a host (through its jump hosts, if any).

    Attributes:
        host: The resolved host.
        transport: The authenticated paramiko transport to the host itself.
    """

    def __init__(
        self,
        host: HostConfig,
        transport: paramiko.Transport,
        hops: Sequence[paramiko.Transport] = (),
    ) -> None:
        self.host = host
        self.transport = transport
        self._hops = list(hops)

    @property
    def is_active(self) -> bool:
        """True while the transport is up (as far as paramiko knows)."""
        return bool(self.transport.is_active())

    def close(self) -> None:
        """Close the connection, then each jump host's; idempotent."""
        for transport in [self.transport, *reversed(self._hops)]:
            transport.close()

    def __repr__(self) -> str:
        return f"<SSHConnection {self.host.user}@{self.host.name} active={self.is_active}>"


def open_connection(spec: str, options: ConnectOptions, deadline: Deadline) -> SSHConnection:
    """Resolve ``spec`` through the SSH config and log in once.

    Raises:
        ValueError: ``spec`` or an option is malformed.
        SSHConnectError: The host cannot be reached (``HostKeyError``, ``AuthenticationError``).
    """
    host = resolve_host(spec, ssh_config=options.ssh_config, identity_file=options.identity_file)
    if options.host_key_policy is not None:
        host = dataclasses.replace(host, host_key_policy=options.host_key_policy)
    return SSHConnection(host, connect(host, password=options.password, deadline=deadline))
