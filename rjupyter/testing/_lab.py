"""`Lab`: throwaway remote hosts on this machine, each a real OpenSSH sshd, for tests and demos."""

from __future__ import annotations

import enum
import logging
import os
import re
import secrets
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from ._account import (
    Account,
    create_account,
    current_account,
    delete_account,
    grant_traversal,
    restore_modes,
    set_password,
)
from ._build import HostPlan, build_host, client_files
from ._cluster import publish_node, remove_netns_etc, user_key
from ._errors import LabError
from ._host import LabHost
from ._hostopts import HostOptions
from ._network import remove_unreachable_route
from ._slurm import SlurmCluster, slurm_available, start_slurm
from ._sshd import config_path, generate_key, wait_for_keygens
from ._undo import UndoStack
from ._venv import ensure_jupyter_venv, require_searchable

__all__ = ["Lab"]

logger = logging.getLogger(__name__)

_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class Lab:
    """A throwaway set of remote hosts on this machine, each a real OpenSSH sshd.

    As root (the CI case) the lab creates a user `rjl<id>` with its home in `workdir`, and gives
    each host its own network namespace, so a host's `127.0.0.1` is not the caller's. Without root
    each host is an sshd on the caller's `127.0.0.1` that the current user logs in to.

    Leaving the `with` block (or `close()`) stops every process the lab started, by PID, deletes
    the namespaces and the user, and removes what the lab wrote to `workdir`.

    Example:
        with Lab(tmp_path) as lab:
            host = lab.add_host("remote")
            subprocess.run(["ssh", "-F", str(lab.ssh_config), "remote", "true"], check=True)
    """

    def __init__(self, workdir: Path | str, *, jupyter_venv: Path | str | None = None) -> None:
        """Prepare a lab; nothing is created before `__enter__`.

        Args:
            workdir: A fresh directory the lab owns (created if missing). Its path must be
                absolute-able and free of whitespace, quotes, backslashes and `%`.
            jupyter_venv: A venv with notebook and jupyterlab to use instead of the cached one
                `ensure_jupyter_venv()` builds.

        Raises:
            ValueError: `workdir` cannot be written into ssh config files.
        """
        self._workdir = Path(workdir).absolute()
        config_path(self._workdir)
        self._lab_id = secrets.token_hex(3)
        self._isolated = os.geteuid() == 0
        self._state = _State.NEW
        self._undo = UndoStack()
        self._hosts: dict[str, LabHost] = {}
        self._host_count = 0
        self._account: Account | None = None
        self._route_cleanup_pushed = False
        self._jupyter_venv = None if jupyter_venv is None else str(jupyter_venv)
        self._slurm: SlurmCluster | None = None
        self._password: str | None = None
        self._jumps: dict[str, str] = {}
        self._users = 0
        self._unlisted: set[str] = set()

    def __repr__(self) -> str:
        return f"<Lab {self._lab_id} {self._state.value} workdir={self._workdir}>"

    def __enter__(self) -> Lab:
        """Create the user, the client key and the config files.

        Raises:
            LabError: Entered twice, or a setup step failed (what was made is removed again).
        """
        if self._state is not _State.NEW:
            raise LabError(f"{self!r} cannot be entered again: create a new Lab")
        self._state = _State.OPEN
        try:
            self._open()
        except BaseException:
            self._close_quietly()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Tear the lab down; see `close`."""
        self.close()

    def close(self) -> None:
        """Tear everything down, newest first. Idempotent; safe on a partly built lab.

        Every step runs even when an earlier one fails.

        Raises:
            LabError: Some step failed (each is also logged); the message lists them all.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        failures = self._undo.close()
        if failures:
            raise LabError("lab teardown incomplete:\n" + "\n".join(failures))

    def _close_quietly(self) -> None:
        try:
            self.close()
        except LabError:
            logger.warning("teardown after a failed setup was incomplete", exc_info=True)

    # -- setup -------------------------------------------------------------------------------

    def _own_entries(self) -> list[Path]:
        entries = [self._client_dir, self.hosts_dir, self.ssh_config, self.known_hosts]
        entries += [self.authorized_keys, self.slurm_dir]
        return entries + ([self._workdir / "home"] if self._isolated else [])

    def _open(self) -> None:
        if sys.platform != "linux":
            raise LabError(
                "the test lab needs Linux (network namespaces, sshd, the pwd and fcntl modules); "
                f"this is {sys.platform}: run the quick suite with -m 'not lab'"
            )
        created_workdir = not self._workdir.exists()
        self._workdir.mkdir(parents=True, exist_ok=True)
        if busy := [entry.name for entry in self._own_entries() if entry.exists()]:
            raise LabError(f"{self._workdir} already holds {busy}: give the Lab a fresh directory")
        if created_workdir:
            self._undo.push(f"remove {self._workdir}", lambda: shutil.rmtree(self._workdir))
        else:
            self._undo.push(f"remove the lab's files from {self._workdir}", self._remove_entries)
        if self._isolated:
            changed = grant_traversal(self._workdir)
            self._undo.push("restore directory modes", lambda: self._restore_modes(changed))
        self._client_dir.mkdir(mode=0o700)
        self.hosts_dir.mkdir(mode=0o755)
        wait_for_keygens([generate_key(self.identity_file, "ed25519", "rjupyter-lab")])
        if self._isolated:
            name = f"rjl{self._lab_id}"
            self._undo.push(f"delete user {name}", self._delete_account)
            self._account = create_account(name, self._workdir / "home")
        else:
            self._account = current_account()
        public_key = self.identity_file.with_name(self.identity_file.name + ".pub").read_text()
        self.authorized_keys.write_text(public_key)
        self.authorized_keys.chmod(0o644)
        self._write_client_files()
        logger.info("lab %s open: user %s, workdir %s", self._lab_id, self.user, self._workdir)

    def _remove_entries(self) -> None:
        for entry in self._own_entries():
            _remove_path(entry)

    def _restore_modes(self, changed: list[tuple[Path, int]]) -> None:
        restore_modes(changed, self._require_account())

    def _delete_account(self) -> None:
        if self._account is not None:
            delete_account(self._account)

    def _require_account(self) -> Account:
        if self._account is None:
            raise LabError(f"{self!r} is not open: use it as `with Lab(workdir) as lab:`")
        return self._account

    def _write_client_files(self) -> None:
        lines = client_files(
            [host for name, host in self._hosts.items() if name not in self._unlisted],
            self._jumps,
            user=self._require_account().name,
            identity_file=self.identity_file,
            known_hosts=self.known_hosts,
        )
        self.known_hosts.write_text("".join(line + "\n" for line in lines.known_hosts))
        self.ssh_config.write_text(f"# rjupyter test lab {self._lab_id}\n" + lines.ssh_config)

    # -- hosts -------------------------------------------------------------------------------

    def add_host(
        self,
        name: str,
        *,
        auth_methods: str = "publickey",
        trusted_user_ca: Path | str | None = None,
        host_certificate: bool = False,
        reachable_from: str | None = None,
        behind: str | None = None,
        environment: Mapping[str, str] | None = None,
        sshd_options: Mapping[str, str] | None = None,
        listed: bool = True,
        authorized_keys: Path | None = None,
    ) -> LabHost:
        """Start a new remote host and add it to `ssh_config` and `known_hosts`.

        Returns once its sshd answers with an SSH banner (usually well under a second).

        Args:
            name: The host's alias in `ssh_config` (letters, digits, `.`, `_`, `-`).
            auth_methods: sshd's `AuthenticationMethods`: `"publickey"`, `"password"` (the
                lab user's `password`), `"keyboard-interactive"` (PAM asks for the password,
                then a TOTP code: `LabHost.totp_code()`), or a chain such as
                `"publickey,keyboard-interactive"`. All but `"publickey"` need root.
            trusted_user_ca: A CA public key: sshd accepts user certificates it signed.
            host_certificate: Present the ed25519 host key with a certificate signed by
                `host_ca` (for `@cert-authority` lines), naming the address and `name`.
            reachable_from: Another host: this one is linked to that host's namespace only, so
                it is reached through it (`ProxyJump` in `ssh_config`). Needs root.
            behind: Like `reachable_from`, but `ssh_config` has no ProxyJump for this host: the
                client must make the hop itself (a compute node behind a login node).
            environment: Variables sshd sets in every session on the host (`SetEnv`).
            sshd_options: sshd_config keywords and values over the lab's defaults, e.g.
                `{"AllowStreamLocalForwarding": "no"}` (keywords: letters only).
            listed: False (with `behind`): the host is in neither `ssh_config` nor the client's
                `known_hosts`; only `behind`'s host resolves its name, and its host keys are in
                the lab user's `~/.ssh/known_hosts` there (a compute node as clusters have them).
            authorized_keys: The file sshd reads for the lab user (default: the lab's key).

        Returns:
            The running host.

        Raises:
            ValueError: `name` is invalid or taken, or an option is.
            LabError: The lab is not open, an option needs root, or a step failed; what this
                call made is removed again, and an sshd failure carries the tail of sshd's log.
        """
        outer = self._check_new_host(name, reachable_from, behind, listed=listed)
        extra = tuple((sshd_options or {}).items())
        if any(not k.isalpha() or "\n" in v or not v.strip() for k, v in extra):
            raise ValueError(f"sshd_options must be sshd_config keywords and values: {extra}")
        ca = None if trusted_user_ca is None else Path(trusted_user_ca).absolute()
        options = HostOptions(auth_methods, ca, host_certificate, outer)
        if options.needs_root and not self._isolated:
            raise LabError(f"host options {options} need root (PAM, passwords, namespaces)")
        if options.auth_methods != "publickey":
            self._ensure_password()
        plan = HostPlan(
            name=name,
            lab_id=self._lab_id,
            index=self._host_count,
            directory=self.hosts_dir / name,
            account=self._require_account(),
            authorized_keys=authorized_keys or self.authorized_keys,
            options=options,
            isolated=self._isolated,
            outer=None if outer is None else self._hosts[outer],
            host_ca=self.host_ca if host_certificate else None,
            environment=tuple(f"{key}={value}" for key, value in (environment or {}).items()),
            sshd_options=extra,
        )
        self._host_count += 1
        if self._isolated and not self._route_cleanup_pushed:
            # The route comes with the first namespace; it goes when the last lab's namespaces go.
            self._undo.push("remove the lab range's route", remove_unreachable_route)
            self._route_cleanup_pushed = True
        undo = UndoStack()
        try:
            host = build_host(plan, undo)
        except BaseException:
            for failure in undo.close():
                logger.warning("cleanup after failed add_host(%r): %s", name, failure)
            raise
        self._undo.push(f"stop host {name}", host.stop)
        self._hosts[name] = host
        if reachable_from is not None:
            self._jumps[name] = reachable_from
        if not listed and behind is not None:
            self._unlisted.add(name)
            login = self._hosts[behind]
            self._undo.push(
                f"remove /etc/netns/{login.netns}", lambda: remove_netns_etc(login.netns)
            )
            publish_node(host, login, self._require_account())
        self._write_client_files()
        logger.info("lab host %s ready at %s:%d", name, host.address, host.port)
        return host

    def add_user(self) -> Account:
        """Create another user on the lab's hosts (root only): a real account with its own
        empty home, which cannot log in over SSH; run commands as it with
        `LabHost.run(..., as_account=...)`. Deleted, with its processes and home, with the lab.

        Raises:
            LabError: The lab is not open or not isolated (root), or useradd failed.
        """
        self._require_account()
        if not self._isolated:
            raise LabError("a second user needs root (the lab creates and deletes accounts)")
        self._users += 1
        name, home = f"rjo{self._lab_id}{self._users}", self._workdir / f"home-{self._users}"
        self._undo.push(f"remove {home}", lambda: shutil.rmtree(home, ignore_errors=True))
        account = create_account(name, home)
        self._undo.push(f"delete user {name}", lambda: delete_account(account))
        return account

    def add_slurm(self, login: str = "login", node: str = "node") -> SlurmCluster:
        """Start a single-node Slurm: a login host running slurmctld, a node behind it.

        Both are lab hosts; `ssh_config` names only `login`, as a cluster user's does. The node
        is reachable only from the login host, which alone resolves its name; its host keys are
        in the user's `~/.ssh/known_hosts` on the login host (`add_host(listed=False)`). It is
        named `node` to Slurm, in its own host name and on the login host.
        Every session on them has `SLURM_CONF` set, so `sbatch` & co. work as on a cluster.

        Returns:
            The cluster (its `run` runs Slurm commands on the login host as `user`).

        Raises:
            LabError: Not root, Slurm or munge not installed, or a daemon did not start.
        """
        if not self._isolated:
            raise LabError("the lab's Slurm needs root (network namespaces, munge, slurmd)")
        if self._slurm is not None:
            raise LabError("this lab already runs Slurm")
        if reason := slurm_available():
            raise LabError(f"cannot start Slurm: {reason}")
        environment = {"SLURM_CONF": str(self.slurm_dir / "slurm.conf")}
        login_host = self.add_host(login, environment=environment)
        node_host = self.add_host(node, behind=login, environment=environment, listed=False)
        cluster = start_slurm(self.slurm_dir, login=login_host, node=node_host)
        self._undo.push("stop slurm", cluster.stop)
        self._slurm = cluster
        return cluster

    @property
    def user_key(self) -> Path:
        """A key pair in the user's `~/.ssh` on the hosts, made on first use: a cluster-internal
        key (the client's ssh_config never names it). The private key's path.

        Raises:
            LabError: The lab is not open, or ssh-keygen failed.
        """
        path = self.home / ".ssh" / "id_ed25519"
        return path if path.exists() else user_key(self._require_account(), path.name)

    def _check_new_host(
        self, name: str, reachable_from: str | None, behind: str | None, *, listed: bool
    ) -> str | None:
        """Refuse what `add_host` cannot do; returns the host this one sits behind, if any."""
        if self._state is not _State.OPEN:
            raise LabError(f"{self!r} is not open: add hosts inside `with Lab(workdir) as lab:`")
        if not _HOST_NAME.fullmatch(name) or name in self._hosts:
            raise ValueError(f"host name {name!r} is invalid or already used")
        if reachable_from is not None and behind is not None:
            raise ValueError("give reachable_from or behind, not both")
        if not listed and behind is None:
            raise ValueError("listed=False needs behind=")
        outer = reachable_from or behind
        if outer is not None and outer not in self._hosts:
            raise ValueError(f"{outer!r} names no host of this lab")
        return outer

    def _ensure_password(self) -> None:
        if self._password is None:
            password = secrets.token_urlsafe(12)
            set_password(self._require_account(), password)
            self._password = password

    # -- public state ------------------------------------------------------------------------

    @property
    def lab_id(self) -> str:
        """Six hex digits naming this lab's user (`rjl<id>`) and namespaces (`rjl-<id>-N`)."""
        return self._lab_id

    @property
    def isolated(self) -> bool:
        """Whether hosts get their own user and network namespaces (running as root)."""
        return self._isolated

    @property
    def hosts(self) -> dict[str, LabHost]:
        """The running hosts by name (a copy)."""
        return dict(self._hosts)

    @property
    def workdir(self) -> Path:
        """The lab's directory."""
        return self._workdir

    @property
    def hosts_dir(self) -> Path:
        """Where each host's sshd_config, host keys and sshd.log live (`<hosts_dir>/<name>/`)."""
        return self._workdir / "hosts"

    @property
    def _client_dir(self) -> Path:
        return self._workdir / "client"

    @property
    def slurm_dir(self) -> Path:
        """Where the lab's Slurm keeps its config, munge key, state and logs."""
        return self._workdir / "slurm"

    @property
    def slurm(self) -> SlurmCluster | None:
        """The cluster started by `add_slurm`, if any."""
        return self._slurm

    @property
    def ssh_config(self) -> Path:
        """An ssh_config with a `Host` block per host (HostName, Port, User, IdentityFile, ...)."""
        return self._workdir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        """known_hosts listing every host's keys under its address and its alias."""
        return self._workdir / "known_hosts"

    @property
    def identity_file(self) -> Path:
        """The client's ed25519 private key (OpenSSH format, mode 0600, no passphrase)."""
        return self._client_dir / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        """The AuthorizedKeysFile of every host; holds the public half of `identity_file`."""
        return self._workdir / "authorized_keys"

    @property
    def password(self) -> str:
        """The password of `user` (as root; set when the first host needing one is added).

        Raises:
            LabError: No host of this lab takes a password.
        """
        if self._password is None:
            raise LabError("no host of this lab takes a password: add one with auth_methods=")
        return self._password

    @property
    def host_ca(self) -> Path:
        """The lab's host CA (private key; `.pub` beside it), made on first use.

        Raises:
            LabError: ssh-keygen failed.
        """
        path = self._client_dir / "host_ca"
        if not path.exists():
            wait_for_keygens([generate_key(path, "ed25519", "rjupyter-lab host CA")])
        return path

    @property
    def user(self) -> str:
        """The login name on the hosts.

        Raises:
            LabError: The lab has not been entered.
        """
        return self._require_account().name

    @property
    def uid(self) -> int:
        """The user ID of `user`.

        Raises:
            LabError: The lab has not been entered.
        """
        return self._require_account().uid

    @property
    def home(self) -> Path:
        """The home directory of `user` (`workdir/home` as root, with no dotfiles).

        Raises:
            LabError: The lab has not been entered.
        """
        return self._require_account().home

    @property
    def jupyter_venv(self) -> str:
        """A venv with notebook 7 and jupyterlab 4 that `user` can run (`<venv>/bin/jupyter`).

        The first access may build it (see `ensure_jupyter_venv`; 20-60 s).

        Raises:
            LabError: Building failed, or `user` could not reach the venv.
        """
        if self._jupyter_venv is None:
            venv = ensure_jupyter_venv()
            if self._isolated:
                require_searchable(venv.resolve())
            self._jupyter_venv = str(venv)
        return self._jupyter_venv
