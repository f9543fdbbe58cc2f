"""A host as ``ssh`` would reach it: what the user wrote, resolved through their ssh_config."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._errors import SSHConnectError
from ._config import DEFAULT_IDENTITIES, ConfigError, ResolvedConfig, resolve_config, split_jump
from ._hostspec import parse_host_spec
from ._localuser import local_home, local_user_name
from ._tokens import TokenContext, expand_tokens, expand_user_path

__all__ = [
    "DEFAULT_ALIVE_COUNT",
    "DEFAULT_ALIVE_INTERVAL",
    "HostConfig",
    "resolve_chain",
    "resolve_host",
    "split_chain",
]

#: rjupyter probes every 15 s when ServerAliveInterval is unset (OpenSSH then never probes).
DEFAULT_ALIVE_INTERVAL = 15.0
DEFAULT_ALIVE_COUNT = 3
_POLICIES = {"true": "reject", "ask": "reject", "accept-new": "accept-new", "false": "no"}


@dataclass(frozen=True)
class HostConfig:
    """A host resolved from what the user wrote and their ssh_config.

    Attributes:
        name: The host as the user wrote it (used in messages).
        hostname: The address to connect to.
        port: The SSH port.
        user: The login name.
        identity_files: Key files to try, in order (``~`` and tokens expanded).
        known_hosts_files: known_hosts files to check, in order (``~`` expanded).
        host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``.
        connect_timeout: ``ConnectTimeout``, if set.
        certificate_files: ``CertificateFile`` entries (expanded).
        identities_only: ``IdentitiesOnly``.
        agent_socket: The ssh-agent socket to ask (``IdentityAgent``), or None for none.
        proxy_jump: ``ProxyJump`` hops, in order.
        proxy_command: ``ProxyCommand`` (tokens not yet expanded), or None.
        host_key_alias: ``HostKeyAlias``, or None.
        alive_interval: Seconds between keepalives (``ServerAliveInterval``; 15 when unset).
        alive_count: ``ServerAliveCountMax``.
        compression: ``Compression``.
        hash_known_hosts: ``HashKnownHosts``: hash the names ``accept-new`` records.
        defaulted: Which of ``user``, ``identity_files``, ``certificate_files``,
            ``agent_socket`` and ``identities_only`` no ssh_config line (nor ``user@``) set:
            OpenSSH's defaults, which a compute node reached through its login node inherits
            from the login instead.
    """

    name: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts_files: tuple[str, ...]
    host_key_policy: str
    connect_timeout: float | None = None
    certificate_files: tuple[str, ...] = ()
    identities_only: bool = False
    agent_socket: str | None = None
    proxy_jump: tuple[str, ...] = ()
    proxy_command: str | None = None
    host_key_alias: str | None = None
    alive_interval: float = DEFAULT_ALIVE_INTERVAL
    alive_count: int = DEFAULT_ALIVE_COUNT
    compression: bool = False
    hash_known_hosts: bool = False
    defaulted: frozenset[str] = frozenset()

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts lists this host under: HostKeyAlias, else ``[host]:port``."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def split_chain(jump: str | Sequence[str]) -> tuple[str, ...]:
    """A ProxyJump value or a sequence of hops -> the hops (``"none"`` -> none)."""
    hops = jump.split(",") if isinstance(jump, str) else list(jump)
    hops = [hop.strip() for hop in hops if hop.strip()]
    return () if hops in ([], ["none"]) else tuple(hops)


_MAX_HOPS = 16


def resolve_chain(chain: Sequence[str], resolve: Callable[[str], HostConfig]) -> list[HostConfig]:
    """Resolve jump hosts as ``ssh`` does: the first hop's own ``ProxyJump`` comes before it.

    ``ssh -J a,b target`` reaches ``b`` with ``-J a`` (which overrides ``b``'s ProxyJump) and
    ``a`` with ``a``'s own configuration, ProxyJump included; so only the first hop recurses.

    Raises:
        SSHConnectError: The chain grows past 16 hops (a ProxyJump loop), or ``resolve`` fails.
    """
    hops: list[HostConfig] = []
    pending = list(chain)
    while pending:
        resolved = [resolve(hop) for hop in pending]
        hops = resolved + hops
        if len(hops) > _MAX_HOPS:
            raise SSHConnectError(
                f"more than {_MAX_HOPS} jump hosts via {pending[0]!r}: is ProxyJump a loop? "
                "Check the ProxyJump lines of your SSH config",
                host=pending[0],
            )
        pending = list(resolved[0].proxy_jump)
    return hops


def resolve_host(
    spec: str,
    *,
    ssh_config: str | os.PathLike[str] | None = None,
    identity_file: str | os.PathLike[str] | None = None,
) -> HostConfig:
    """Resolve an alias, ``user@host:port`` or ProxyJump hop as ``ssh`` would.

    Values in ``spec`` win over the config file, which wins over OpenSSH's defaults.

    Raises:
        ValueError: ``spec`` is malformed.
        SSHConnectError: The ssh_config file is missing (when named), unreadable or invalid.
    """
    if spec.startswith("ssh://") or spec.startswith("["):
        user, host, port = split_jump(spec)
    else:
        parsed = parse_host_spec(spec)
        user, host, port = parsed.user, parsed.host, parsed.port
    try:
        resolved = resolve_config(host, config=ssh_config, user=user, port=port)
    except ConfigError as exc:
        raise SSHConnectError(f"{exc}", host=spec) from exc
    return _host_config(spec, host, resolved, identity_file, user_given=user is not None)


def _host_config(
    spec: str,
    original: str,
    resolved: ResolvedConfig,
    identity_file: str | os.PathLike[str] | None,
    *,
    user_given: bool = False,
) -> HostConfig:
    home = local_home()
    port = int(resolved.get("port", "22"))
    context = TokenContext(
        host=resolved.get("hostname", original),
        original_host=original,
        port=str(port),
        remote_user=resolved.get("user"),
        key_alias=resolved.get("hostkeyalias") or original,
        jump=resolved.get("proxyjump"),
    )

    def paths(values: list[str]) -> tuple[str, ...]:
        return tuple(expand_user_path(expand_tokens(v, context), home) for v in values)

    identities = list(paths(resolved.all("identityfile")))
    defaulted = _defaulted(resolved, user_given=user_given)
    if identity_file is not None:
        identities = [os.fspath(identity_file), *(p for p in identities if p != identity_file)]
    known = resolved.get("userknownhostsfile").split()
    known += resolved.get("globalknownhostsfile").split()
    checking = resolved.get("stricthostkeychecking", "ask")
    if checking not in _POLICIES:
        raise ValueError(f"StrictHostKeyChecking {checking!r} for {spec!r} is not understood")
    timeout = resolved.get("connecttimeout", "none")
    interval = float(resolved.get("serveraliveinterval", "0"))
    return HostConfig(
        name=spec,
        hostname=resolved.get("hostname", original),
        port=port,
        user=resolved.get("user"),
        identity_files=tuple(identities),
        known_hosts_files=tuple(known),
        host_key_policy=_POLICIES[checking],
        connect_timeout=None if timeout == "none" else float(timeout),
        certificate_files=paths(resolved.all("certificatefile")),
        identities_only=resolved.get("identitiesonly") == "yes",
        agent_socket=_agent_socket(resolved.get("identityagent")),
        proxy_jump=tuple(hop for hop in resolved.get("proxyjump").split(",") if hop),
        proxy_command=resolved.get("proxycommand") or None,
        host_key_alias=resolved.get("hostkeyalias") or None,
        alive_interval=interval if interval > 0 else DEFAULT_ALIVE_INTERVAL,
        alive_count=int(resolved.get("serveralivecountmax", "3")),
        compression=resolved.get("compression") == "yes",
        hash_known_hosts=resolved.get("hashknownhosts") == "yes",
        defaulted=defaulted,
    )


def _defaulted(resolved: ResolvedConfig, *, user_given: bool) -> frozenset[str]:
    """The credential settings at OpenSSH's defaults (``ssh -G`` prints defaults too; these
    are the values no line sets: a line setting exactly the default counts as unset)."""
    found = set()
    if not user_given and resolved.get("user") == local_user_name():
        found.add("user")
    if resolved.all("identityfile") == list(DEFAULT_IDENTITIES):
        found.add("identity_files")
    if not resolved.all("certificatefile"):
        found.add("certificate_files")
    if not resolved.get("identityagent"):
        found.add("agent_socket")
    if resolved.get("identitiesonly", "no") == "no":
        found.add("identities_only")
    return frozenset(found)


def _agent_socket(setting: str) -> str | None:
    """``IdentityAgent`` -> the socket path: unset or ``SSH_AUTH_SOCK`` read that variable."""
    if setting == "none":
        return None
    if setting in ("", "SSH_AUTH_SOCK"):
        return os.environ.get("SSH_AUTH_SOCK") or None
    if setting.startswith("$"):
        return os.environ.get(setting[1:].strip("{}")) or None
    return setting
