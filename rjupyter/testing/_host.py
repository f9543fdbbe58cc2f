"""`LabHost`: one remote host of a lab (an sshd, in its own network namespace when root)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ._account import Account
from ._errors import LabError
from ._hostopts import PAM_DIR, remove_pam_service, totp_code
from ._network import NetnsLink, delete_netns_link
from ._procs import descendants, list_processes, netns_pids, stop_pids, stop_popen
from ._sshd import SshdSettings, start_sshd

__all__ = ["LabHost", "parse_listeners"]

logger = logging.getLogger(__name__)


def parse_listeners(ss_output: str) -> list[tuple[str, int]]:
    """Parse `ss -ltnH` output into (address, port) pairs.

    Brackets around IPv6 addresses and `%interface` suffixes are removed; `*` stays `*`.
    """
    listeners = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        address, _, port = fields[3].rpartition(":")
        address = address.split("%", 1)[0].removeprefix("[").removesuffix("]")
        listeners.append((address, int(port)))
    return listeners


class LabHost:
    """A throwaway remote host: an OpenSSH sshd that `Lab.user` can log in to.

    As root the host has its own network namespace, so its `127.0.0.1` is not the caller's; without
    root it is an sshd on the caller's `127.0.0.1` (`netns` is None). Created by `Lab.add_host`.
    """

    def __init__(
        self,
        *,
        name: str,
        account: Account,
        settings: SshdSettings,
        sshd: subprocess.Popen[bytes],
        link: NetnsLink | None,
        totp_secret: str | None = None,
    ) -> None:
        self._name = name
        self._account = account
        self._settings = settings
        self._sshd = sshd
        self._link = link
        self._totp_secret = totp_secret

    def __repr__(self) -> str:
        return (
            f"<LabHost {self._name} {self.address}:{self.port} netns={self.netns} "
            f"sshd_pid={self.sshd_pid}>"
        )

    @property
    def name(self) -> str:
        """The host's alias in `Lab.ssh_config`."""
        return self._name

    @property
    def address(self) -> str:
        """The IPv4 address sshd listens on, reachable from the caller."""
        return self._settings.address

    @property
    def port(self) -> int:
        """The port sshd listens on (22 in a namespace)."""
        return self._settings.port

    @property
    def netns(self) -> str | None:
        """The host's network namespace (`ip netns` name), or None without root."""
        return None if self._link is None else self._link.netns

    @property
    def link_interface(self) -> str | None:
        """The root namespace's end of the host's veth pair (None without root).

        `ip link set IFACE down` cuts the host off silently, as a dead network would. None also
        for a host reachable only from another host (`reachable_from`).
        """
        if self._link is None or self._link.outer_netns is not None:
            return None
        return self._link.root_interface

    @property
    def auth_methods(self) -> str:
        """sshd's `AuthenticationMethods` on this host, e.g. `"publickey"`."""
        return self._settings.auth_methods

    @property
    def pam_service_file(self) -> Path | None:
        """The PAM service sshd uses (`/etc/pam.d/rjl-...`), or None with `UsePAM no`."""
        service = self._settings.pam_service
        return None if service is None else PAM_DIR / service

    @property
    def host_certificate(self) -> Path | None:
        """The certificate sshd presents with its ed25519 key, if it has one."""
        return self._settings.host_certificate

    def totp_code(self, at: float | None = None) -> str:
        """The TOTP code PAM asks for after the password (hosts with keyboard-interactive).

        Raises:
            LabError: The host asks for no code.
        """
        if self._totp_secret is None:
            raise LabError(f"host {self._name} asks for no one-time code")
        return totp_code(self._totp_secret, at)

    @property
    def link(self) -> NetnsLink | None:
        """The host's namespace and link (None without root)."""
        return self._link

    @property
    def link_peer_address(self) -> str | None:
        """The address of the other end of the host's link (the root namespace's, or for a host
        behind another one, that host's); None without root."""
        return None if self._link is None else self._link.root_address

    @property
    def sshd_pid(self) -> int:
        """PID of the listening sshd."""
        return self._sshd.pid

    @property
    def host_key_files(self) -> tuple[Path, ...]:
        """sshd's private host keys (`.pub` beside each): ed25519, ecdsa, rsa."""
        return self._settings.host_keys

    @property
    def sshd_log_file(self) -> Path:
        """The file sshd logs to."""
        return self._settings.log_file

    def sshd_log(self) -> str:
        """Return sshd's log so far (LogLevel VERBOSE: every accepted key login is recorded)."""
        return self._settings.log_file.read_text(errors="replace")

    def _prefix(self, as_user: bool, account: Account | None = None) -> list[str]:
        prefix = [] if self._link is None else ["ip", "netns", "exec", self._link.netns]
        account = account or (self._account if as_user and self._account.dedicated else None)
        if account is not None:
            prefix += ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}"]
            prefix += ["--init-groups", "--"]
        return prefix

    def run(
        self,
        argv: Sequence[str],
        *,
        as_user: bool = True,
        timeout: float = 30,
        check: bool = False,
        as_account: Account | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on the host without SSH, to inspect or change its state from a test.

        The command runs inside the host's namespace, in `Lab.home`, with a minimal environment
        (`PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, `LANG`) and stdin from /dev/null.

        Args:
            argv: The command; never passed through a shell.
            as_user: Run as `Lab.user` (else as the caller, i.e. root; without root the command
                always runs as the caller, who is `Lab.user`).
            timeout: Seconds before the command is killed.
            check: Raise `subprocess.CalledProcessError` on a non-zero exit.
            as_account: Run as this other user instead (`Lab.add_user`), in its home.

        Returns:
            The completed process, with text stdout and stderr.

        Raises:
            subprocess.TimeoutExpired: The command outlived `timeout` (it is killed).
            subprocess.CalledProcessError: `check` is true and the command failed.
        """
        who = as_account or self._account
        environment = who.environment()
        if not as_user and as_account is None:
            environment.update(HOME="/root", USER="root", LOGNAME="root")
        return subprocess.run(  # noqa: S603 - an argv list, no shell
            [*self._prefix(as_user, as_account), *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            cwd=who.home,
            env=environment,
        )

    def popen(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a command as `Lab.user` on the host, like `run` but without waiting.

        Stdin is /dev/null, stdout is discarded, stderr is a pipe; the caller stops the
        process by PID (`ip netns exec` and `setpriv` exec, so it is the command's own).

        Args:
            argv: The command; never passed through a shell.
            env: Variables added to the minimal environment.

        Returns:
            The started process.
        """
        return subprocess.Popen(  # noqa: S603 - an argv list, no shell
            [*self._prefix(True), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self._account.home,
            env={**self._account.environment(), **(env or {})},
        )

    def user_processes(self) -> list[tuple[int, list[str]]]:
        """Return (pid, argv) of every live process of `Lab.user` on this host.

        As root that means in this host's namespace; without root, every process of the user.
        Zombies are left out. Read from /proc, so the answer is a snapshot.
        """
        in_netns = None if self._link is None else set(netns_pids(self._link.netns_file))
        uid = self._account.uid
        return [
            (info.pid, info.argv)
            for info in list_processes()
            if uid in (info.real_uid, info.effective_uid)
            and info.state != "Z"
            and (in_netns is None or info.pid in in_netns)
        ]

    def listeners(self) -> list[tuple[str, int]]:
        """Return the (address, port) of every listening TCP socket in the host's namespace.

        Raises:
            subprocess.CalledProcessError: `ss` failed.
        """
        result = self.run(["ss", "-ltnH"], as_user=False, check=True)
        return parse_listeners(result.stdout)

    def session_sshd_pids(self) -> list[int]:
        """Return the PIDs of the per-connection sshd processes (children of the listening sshd).

        SIGTERM to one ends its connection at once: this "[priv]" monitor passes the signal on to
        its unprivileged child, which holds the socket. SIGKILL does not: the child and the TCP
        connection live on until it next needs the monitor. Killing the listening sshd leaves all
        connections alive.
        """
        if self._sshd.poll() is not None:
            return []  # its PID may belong to another process by now
        return [
            info.pid
            for info in list_processes()
            if info.ppid == self.sshd_pid and info.state != "Z"
        ]

    def restart_sshd(self) -> None:
        """Restart sshd the hard way: stop the listener and every SSH connection, start it again.

        Like an sshd crash and restart on a real host: each connection ends at once (SIGTERM to
        its privileged monitor), but what the sessions started keeps running (no pty, so no
        SIGHUP). Returns once the new sshd answers.

        Raises:
            LabError: The new sshd did not come up.
        """
        sessions = self.session_sshd_pids()
        stop_popen(self._sshd)
        stop_pids(sessions)
        prefix = [] if self._link is None else ["ip", "netns", "exec", self._link.netns]
        self._sshd = start_sshd(self._settings, prefix)

    def stop(self) -> None:
        """Stop sshd, its sessions and everything in the namespace, then delete the namespace.

        The lab does this at teardown; a test may do it earlier to take the host down (it stays
        in `Lab.ssh_config`). Idempotent. Processes are signalled by PID only; without root,
        processes that left the sshd's process tree are not found.

        Raises:
            LabError: A process survived SIGKILL or the namespace could not be deleted.
        """
        running = self._sshd.poll() is None  # else its PID may belong to another process
        sessions = descendants(self.sshd_pid, list_processes()) if running else []
        stop_popen(self._sshd)
        stop_pids(sessions)
        if self.pam_service_file is not None:
            remove_pam_service(self.pam_service_file)
        if self._link is None:
            return
        for _ in range(5):
            pids = netns_pids(self._link.netns_file)
            if not pids:
                break
            stop_pids(pids)
        else:
            if survivors := netns_pids(self._link.netns_file):
                raise LabError(f"processes {survivors} in {self.netns} survived SIGKILL")
        delete_netns_link(self._link)
