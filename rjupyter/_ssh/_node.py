"""Reaching a compute node through its login node, as a cluster user's own ``ssh`` would.

The user's ssh_config usually names the login node only. So, for the node:

- **credentials** -- the user, key files, certificates, agent and ``IdentitiesOnly`` that no
  ssh_config line sets for the node are the login connection's (the same passphrase and
  keyboard-interactive handlers too: nothing new to answer); what the config does set wins;
- **host key** -- the local known_hosts files first (a mismatch there is fatal); a node they do
  not list at all is looked up in the cluster's own known hosts, read through the login
  connection (the login node's ``/etc/ssh/ssh_known_hosts{,2}`` and the user's
  ``~/.ssh/known_hosts{,2}`` there): the keys the user's ``ssh node`` on the login node trusts.
  ``host_key_policy`` (e.g. a scheduler's ``node_host_key_policy``) applies to the node only;
- **the hop** -- a ``direct-tcpip`` channel through the login connection. Where the node refuses
  every credential the client has, the login node's own OpenSSH client makes the hop instead
  (:mod:`._nodehop`), with the cluster's own node authentication.
"""

from __future__ import annotations

import dataclasses
import logging

from .._deadline import Deadline
from .._errors import AuthenticationError
from ._connection import SSHConnection, credentials_for
from ._handshake import connect
from ._hostconfig import HostConfig, resolve_host
from ._knownhosts import KnownHost, OtherKnownHosts, parse_known_hosts
from ._nodehop import hop_by_login_ssh
from ._options import ConnectOptions

__all__ = ["CLUSTER_KNOWN_HOSTS", "cluster_known_hosts", "inherit_login", "open_node_connection"]

logger = logging.getLogger(__name__)

#: The files the login node's ``ssh`` reads by default (``~`` is the user's home there).
CLUSTER_KNOWN_HOSTS = (
    "/etc/ssh/ssh_known_hosts",
    "/etc/ssh/ssh_known_hosts2",
    "~/.ssh/known_hosts",
    "~/.ssh/known_hosts2",
)
_SECTION = "RJ-KNOWN-HOSTS"
#: Prints each readable file after a line naming it.
_READ_SCRIPT = f"""\
for f in /etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2 \
"$HOME/.ssh/known_hosts" "$HOME/.ssh/known_hosts2"; do
  [ -f "$f" ] && [ -r "$f" ] || continue
  printf '\\n{_SECTION} %s\\n' "$f"
  cat -- "$f"
done
exit 0
"""


def inherit_login(node: HostConfig, login: HostConfig) -> HostConfig:
    """``node`` with the login's credentials where no ssh_config line set the node's own."""
    fields = {
        "user": login.user,
        "identity_files": login.identity_files,
        "certificate_files": login.certificate_files,
        "agent_socket": login.agent_socket,
        "identities_only": login.identities_only,
    }
    inherited = {name: value for name, value in fields.items() if name in node.defaulted}
    logger.debug(
        "compute node %s inherits %s from the login connection to %s",
        node.name,
        ", ".join(sorted(inherited)) or "nothing",
        login.name,
    )
    return dataclasses.replace(node, **inherited)  # type: ignore[arg-type]


def cluster_known_hosts(login: SSHConnection, timeout: float = 15.0) -> list[KnownHost]:
    """The known hosts of the login node's ``ssh``, read through ``login`` (hashed lines too).

    Raises:
        SSHConnectError: The connection failed.
    """
    _, output = login.run(_READ_SCRIPT, timeout=timeout)
    entries: list[KnownHost] = []
    source, lines = "", list[str]()
    for line in [*output.splitlines(), f"{_SECTION} "]:
        if line.startswith(f"{_SECTION} "):
            if source:
                entries += parse_known_hosts("\n".join(lines), f"{login.label}:{source}")
            source, lines = line[len(_SECTION) + 1 :], []
        else:
            lines.append(line)
    logger.debug("read %d known hosts lines on %s", len(entries), login.label)
    return entries


def open_node_connection(
    node: str,
    options: ConnectOptions,
    deadline: Deadline,
    *,
    login: SSHConnection,
    host_key_policy: str | None = None,
) -> SSHConnection:
    """Log in to ``node`` through the live ``login`` connection (see the module's docstring).

    Closing the new connection leaves ``login`` open.

    Raises:
        ValueError: ``node`` is malformed.
        HostKeyError: The node's key mismatches the local known_hosts or the cluster's, or is
            known in neither (unless the policy accepts new keys).
        AuthenticationError: Neither the client's credentials nor the login node's ``ssh``
            got in.
        SSHConnectError: The node cannot be reached.
    """
    resolved = resolve_host(
        node, ssh_config=options.ssh_config, identity_file=options.identity_file
    )
    host = inherit_login(dataclasses.replace(resolved, proxy_command=None), login.host)
    policy = host_key_policy or options.host_key_policy
    if policy is not None:
        host = dataclasses.replace(host, host_key_policy=policy)
    where = f"the known hosts of {login.label} ({', '.join(CLUSTER_KNOWN_HOSTS)} there)"
    cached: list[list[KnownHost]] = []

    def load() -> list[KnownHost]:
        if not cached:
            cached.append(cluster_known_hosts(login, timeout=deadline.remaining(1.0)))
        return cached[0]

    credentials = credentials_for(host, options, target=True)
    try:
        transport = connect(
            host,
            credentials,
            deadline=deadline,
            via=login.transport,
            progress=options.progress,
            other_known_hosts=OtherKnownHosts(where, load),
        )
    except AuthenticationError as refused:
        logger.debug("node %s refused the client's credentials: %s", node, refused)
        transport, user = hop_by_login_ssh(host, login, deadline, refused=refused)
        logger.debug("node access path for %s: login-node ssh on %s", node, login.label)
        return SSHConnection(dataclasses.replace(host, user=user), transport)
    logger.debug("node access path for %s: direct hop through %s", node, login.label)
    return SSHConnection(host, transport)
