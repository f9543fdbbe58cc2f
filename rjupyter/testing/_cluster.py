"""Compute nodes as a cluster user has them: known to the login node, not to the laptop.

A node added with ``listed=False`` is left out of the client's ssh_config and known_hosts. The
login host resolves its name (``/etc/netns/<login netns>/hosts``, which ``ip netns exec``
bind-mounts over ``/etc/hosts`` for the login host's sshd and everything it starts), and its
host keys sit in the lab user's ``~/.ssh/known_hosts`` -- the home the login host sees, shared
with the nodes as on a cluster. ``user_key`` makes a key that exists only in that home (the
cluster-internal key some sites' nodes alone accept).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ._account import Account
from ._errors import LabError
from ._host import LabHost
from ._network import NETNS_PREFIX
from ._sshd import generate_key, known_hosts_lines, wait_for_keygens

__all__ = ["NETNS_ETC", "publish_node", "remove_netns_etc", "user_key", "user_ssh_dir"]

logger = logging.getLogger(__name__)

NETNS_ETC = Path("/etc/netns")


def user_ssh_dir(account: Account) -> Path:
    """The lab user's ``~/.ssh`` (created, mode 0700, owned by the user)."""
    directory = account.home / ".ssh"
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chown(directory, account.uid, account.gid)
    return directory


def _append_owned(path: Path, lines: list[str], account: Account) -> None:
    with path.open("a", encoding="ascii") as stream:
        stream.write("".join(line + "\n" for line in lines))
    path.chmod(0o600)
    os.chown(path, account.uid, account.gid)


def publish_node(node: LabHost, login: LabHost, account: Account) -> None:
    """Make ``node`` known on ``login`` by name: a hosts entry for the login host's namespace
    (its sshd restarted to see it) and the node's keys in the user's ``~/.ssh/known_hosts``.

    Raises:
        LabError: A host has no namespace, or the login host's sshd did not come back.
    """
    if login.netns is None:
        raise LabError("a node known only to the login host needs namespaces (root)")
    directory = NETNS_ETC / login.netns
    directory.mkdir(parents=True, exist_ok=True)
    hosts = directory / "hosts"
    if not hosts.exists():
        shutil.copyfile("/etc/hosts", hosts)
    with hosts.open("a", encoding="ascii") as stream:
        stream.write(f"{node.address} {node.name}\n")
    login.restart_sshd()
    known = known_hosts_lines([node.name, node.address], node.port, node.host_key_files)
    _append_owned(user_ssh_dir(account) / "known_hosts", known, account)
    logger.debug("node %s known on %s only", node.name, login.name)


def remove_netns_etc(netns: str | None) -> None:
    """Remove ``/etc/netns/<netns>`` (written by ``publish_node``); idempotent."""
    if netns is not None and netns.startswith(NETNS_PREFIX):
        shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def user_key(account: Account, name: str = "id_ed25519") -> Path:
    """A key pair in the lab user's ``~/.ssh`` (private half 0600, owned by the user).

    Raises:
        LabError: ssh-keygen failed, or the key exists already.
    """
    path = user_ssh_dir(account) / name
    if path.exists():
        raise LabError(f"{path} exists already")
    wait_for_keygens([generate_key(path, "ed25519", "cluster-internal key")])
    for file in (path, path.with_name(name + ".pub")):
        os.chown(file, account.uid, account.gid)
    return path
