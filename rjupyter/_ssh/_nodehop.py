"""The node hop made by the login node's own OpenSSH client, for nodes that refuse the client.

Some sites' compute nodes accept only cluster-internal keys (``~/.ssh/id_*`` in the cluster's
home) or host-based authentication from the login nodes. There, on an exec channel of the login
connection, the login node's ``ssh`` (``BatchMode``: it never prompts) logs in to the node as
the user would by hand -- with the cluster's keys, and checking the node's host key against the
cluster's known hosts itself -- and runs a private ``sshd -i`` as the user on the node, its
stdin and stdout being the channel. rjupyter's own SSH session to the node runs over that
channel, so everything (scripts, SFTP, forwarding) works as on a direct hop:

- the private sshd's host key and the one key it accepts are made afresh here for this session
  and sent on the channel's stdin (never in an argv), into a 0700 directory on the node that is
  removed when the session ends; the host key is pinned: the hop itself was verified by the
  login node's ``ssh``, and by rjupyter before the fallback (the node's host key was checked
  when it refused the client's credentials);
- the commands are constants; the node's name is quoted, the paths are the node's own.
"""

from __future__ import annotations

import io
import logging
import shlex

import paramiko

from .._deadline import Deadline
from .._errors import AuthenticationError, HostKeyError, RJupyterError, SSHConnectError
from .._paramiko._fastpath import install as install_fast_path
from .._paramiko._fixes import install as install_transport_fixes
from ._connection import SSHConnection
from ._hostconfig import HostConfig
from ._knownhosts import fingerprint

__all__ = ["NODE_SCRIPT", "hop_by_login_ssh", "login_ssh_command"]

logger = logging.getLogger(__name__)

READY_MARKER = "RJ-NODE-HOP"
_KEYS_END = "RJ-KEYS-END"
#: Runs on the node (one line: a login shell of any kind passes it to /bin/sh intact). Reads
#: the private sshd's host key up to a marker line and the one accepted key from stdin (``read``
#: takes no byte more than its line), writes a config, says who it runs as, runs ``sshd -i``
#: on the rest of stdin and removes the directory when it ends.
NODE_SCRIPT = (
    'umask 077; d=$(mktemp -d "${TMPDIR:-/tmp}/rjupyter-hop.XXXXXX") || exit 97; '
    'trap \'rm -rf "$d"\' EXIT; : > "$d/host_key"; '
    f'while IFS= read -r l; do [ "$l" = {_KEYS_END} ] && break; '
    'printf \'%s\\n\' "$l" >> "$d/host_key"; done; '
    'IFS= read -r k; printf \'%s\\n\' "$k" > "$d/authorized_keys"; s=; '
    "for c in /usr/sbin/sshd /usr/local/sbin/sshd /usr/bin/sshd /sbin/sshd; do "
    '[ -x "$c" ] && s=$c && break; done; '
    "[ -n \"$s\" ] || { echo 'rjupyter: no sshd on this node' >&2; exit 98; }; "
    'printf \'HostKey "%s"\\nAuthorizedKeysFile "%s"\\n\' "$d/host_key" "$d/authorized_keys" '
    '> "$d/config"; '
    "printf '%s\\n' 'StrictModes no' 'UsePAM no' 'PidFile none' 'LogLevel ERROR' "
    "'AuthenticationMethods publickey' 'PasswordAuthentication no' "
    "'KbdInteractiveAuthentication no' 'AllowTcpForwarding yes' 'PermitTTY no' "
    "'X11Forwarding no' 'Subsystem sftp internal-sftp' >> \"$d/config\"; "
    f"printf '{READY_MARKER} %s\\n' \"$(id -un)\" >&2; "
    '"$s" -i -e -f "$d/config"'
)


def login_ssh_command(node: HostConfig, timeout: float) -> str:
    """The exec command on the login node: its ``ssh`` to the node, running :data:`NODE_SCRIPT`.

    Everything user-given is quoted; the node's login shell gets ``/bin/sh -c SCRIPT``.
    """
    argv = [
        *("ssh", "-T", "-x", "-a", "-e", "none"),
        *("-o", "BatchMode=yes", "-o", "LogLevel=ERROR"),
        *("-o", f"ConnectTimeout={max(1, int(timeout))}"),
        *(["-p", str(node.port)] if node.port != 22 else []),
        # A user the ssh_config names for the node; else the login node's ssh picks it.
        *(["-l", node.user] if "user" not in node.defaulted else []),
        "--",
        node.hostname,
        shlex.join(["/bin/sh", "-c", NODE_SCRIPT]),
    ]
    return "exec " + shlex.join(argv)


def hop_by_login_ssh(
    node: HostConfig, login: SSHConnection, deadline: Deadline, *, refused: AuthenticationError
) -> tuple[paramiko.Transport, str]:
    """An authenticated transport to ``node`` over the login node's ``ssh``, and the user.

    Raises:
        AuthenticationError: The login node's ``ssh`` did not get in either (its message and
            the client's refusal both in the message).
        HostKeyError: The login node's ``ssh`` refused the node's host key.
        SSHConnectError: The connection failed meanwhile.
    """
    host_key = paramiko.ECDSAKey.generate(bits=256)
    client_key = paramiko.ECDSAKey.generate(bits=256)
    pem = io.StringIO()
    host_key.write_private_key(pem)
    keys = f"{pem.getvalue().rstrip()}\n{_KEYS_END}\n"
    keys += f"{client_key.get_name()} {client_key.get_base64()}\n"
    label = f"{login.label}'s ssh to {node.hostname}"
    try:
        channel = login.transport.open_session(timeout=deadline.remaining(0.1))
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise SSHConnectError(
            f"cannot open a channel on {login.label}: {exc}", host=node.name
        ) from exc
    transport: paramiko.Transport | None = None
    try:
        channel.settimeout(deadline.remaining(0.1))
        channel.exec_command(login_ssh_command(node, deadline.remaining(1.0)))
        channel.sendall(keys.encode())
        user = _wait_ready(channel, node, label, refused)
        channel.settimeout(None)
        transport = paramiko.Transport(channel)
        install_transport_fixes(transport)
        install_fast_path(transport)
        transport.start_client(timeout=deadline.remaining(0.1))
        offered = transport.get_remote_server_key()
        if offered.asbytes() != host_key.asbytes():
            raise HostKeyError(
                f"the private sshd on {node.name} (through {label}) presented "
                f"{fingerprint(offered.asbytes())}, not the key made for it: refusing it",
                host=node.name,
                key_type=offered.get_name(),
                fingerprint=fingerprint(offered.asbytes()),
                changed=True,
            )
        transport.auth_publickey(user, client_key)
    except BaseException as exc:
        if transport is not None:
            transport.close()
        channel.close()
        if not isinstance(exc, RJupyterError) and isinstance(
            exc, (OSError, EOFError, paramiko.SSHException)
        ):
            raise SSHConnectError(
                f"the hop to {node.name} by {label} failed: {exc or type(exc).__name__}",
                host=node.name,
            ) from exc
        raise
    logger.debug("logged in to %s as %s by the login node's ssh", node.name, user)
    return transport, user


def _wait_ready(
    channel: paramiko.Channel, node: HostConfig, label: str, refused: AuthenticationError
) -> str:
    """Read stderr up to the ready line; its user. Turn an early end into the right error."""
    text = b""
    while b"\n" not in text.partition(READY_MARKER.encode())[2]:
        chunk = channel.recv_stderr(4096)
        if not chunk:
            break
        text += chunk
    said = text.decode(errors="replace")
    for line in said.splitlines():
        if line.startswith(f"{READY_MARKER} ") and line.split()[1:]:
            return line.split()[1]
    status = channel.recv_exit_status() if channel.exit_status_ready() else None
    message = said.strip()[-500:].rstrip(".") or f"exit status {status}"
    if "Host key verification failed" in said or "HOST IDENTIFICATION HAS CHANGED" in said:
        raise HostKeyError(
            f"{label} refused the node's host key ({message}): the node is not in the cluster's "
            f"known hosts there; ask the cluster's administrators, or log in to {node.name} "
            "once by hand from the login node",
            host=node.name,
            key_type="",
            fingerprint="",
            changed="HOST IDENTIFICATION HAS CHANGED" in said,
        )
    raise AuthenticationError(
        f"{node.name} refused the client's credentials ({refused}), and {label} could not log "
        f"in either: {message}. Check that `ssh {node.hostname} true` works on the login node",
        host=node.name,
        methods_tried=refused.methods_tried,
        methods_allowed=refused.methods_allowed,
    )
