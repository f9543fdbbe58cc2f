"""The lab's remote user: a throwaway account as root, the current user otherwise."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from ._errors import LabError
from ._procs import is_gone, list_processes, process_start_time, run_command, stop_pids

try:
    import pwd
except ImportError:  # not on Windows; the lab needs Linux (Lab says so)
    pwd = None  # type: ignore[assignment]

__all__ = [
    "ACCOUNT_PATTERN",
    "Account",
    "create_account",
    "current_account",
    "delete_account",
    "grant_traversal",
    "owner_is_alive",
    "owner_tag",
    "restore_modes",
    "set_password",
]

logger = logging.getLogger(__name__)

ACCOUNT_PATTERN = re.compile(r"rjl[0-9a-f]{6}")
"""Names of lab accounts: `rjl` and six hex digits (the lab's id)."""

_USERDEL_BUSY = 8  # userdel's exit status for "user is currently used by a process"
_OWNER_TAG = "rjupyter test lab"
_SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
# Where a user can leave files outside its home; cleaned of the lab user's files at teardown.
_SHARED_TEMP_DIRS = tuple(Path(path) for path in ("/tmp", "/var/tmp", "/dev/shm"))  # noqa: S108


@dataclasses.dataclass(frozen=True)
class Account:
    """The user that logs in to a lab's hosts.

    Attributes:
        name: Login name.
        uid: User ID.
        gid: Primary group ID.
        home: Home directory.
        dedicated: Whether the lab created the account (root mode) rather than borrowing the
            current user's.
    """

    name: str
    uid: int
    gid: int
    home: Path
    dedicated: bool

    def environment(self) -> dict[str, str]:
        """A minimal login-like environment for commands run as this user."""
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": "/bin/bash",
            "PATH": _SEARCH_PATH,
            "LANG": "C.UTF-8",
        }


def current_account() -> Account:
    """Return the current user as the lab account (non-root mode)."""
    entry = pwd.getpwuid(os.getuid())
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), dedicated=False)


def create_account(name: str, home: Path) -> Account:
    """Create user `name` with an empty home at `home`, unlocked for key logins only.

    The password field is `*`: no password works, but sshd with `UsePAM no` does not treat the
    account as locked (as it does `useradd`'s default `!`). The home holds no dotfiles, so the
    login shell prints nothing.

    Raises:
        LabError: useradd failed.
    """
    run_command(
        [
            *("useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash"),
            *("--user-group", "--password", "*", "--comment", owner_tag(), name),
        ],
        what=f"create the lab user {name}",
    )
    try:
        entry = pwd.getpwnam(name)
        home.mkdir(mode=0o700)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    except BaseException:
        run_command(["userdel", name], what=f"delete the half-made lab user {name}")
        raise
    logger.debug("created user %s (uid %d) with home %s", name, entry.pw_uid, home)
    return Account(name, entry.pw_uid, entry.pw_gid, home, dedicated=True)


def set_password(account: Account, password: str) -> None:
    """Give a dedicated account a real password (for password and PAM logins).

    Raises:
        LabError: The account is not the lab's own, or chpasswd failed.
    """
    if not account.dedicated:
        raise LabError(f"will not change the password of {account.name}: not a lab account")
    try:
        subprocess.run(  # the password goes through stdin only, never an argv
            ["/usr/sbin/chpasswd"],
            input=f"{account.name}:{password}\n",
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise LabError(f"could not set a password for {account.name}: chpasswd failed") from exc


def owner_tag() -> str:
    """Return the account comment naming this process as the lab's owner.

    `cleanup_stale_labs` reads it back: a lab whose owner is gone was never torn down.
    """
    return f"{_OWNER_TAG} pid={os.getpid()} start={process_start_time(os.getpid())}"


def owner_is_alive(comment: str) -> bool:
    """Tell whether the process named by an `owner_tag()` comment still runs.

    A comment of another form counts as alive: the account is not ours to judge.
    """
    match = re.fullmatch(rf"{_OWNER_TAG} pid=(\d+) start=(\d+)", comment)
    if match is None:
        return True
    pid, start = int(match[1]), int(match[2])
    return process_start_time(pid) == start and not is_gone(pid)


def _live_pids_of(uid: int) -> list[int]:
    return [
        info.pid
        for info in list_processes()
        if uid in (info.real_uid, info.effective_uid) and info.state != "Z"
    ]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _remove_stray_files(uid: int) -> None:
    """Remove what the user left at the top of the shared temporary directories."""
    for directory in _SHARED_TEMP_DIRS:
        if not directory.is_dir():
            continue
        for entry in os.scandir(directory):
            info = entry.stat(follow_symlinks=False)
            if info.st_uid != uid:
                continue
            logger.debug("removing %s, left behind by the lab user", entry.path)
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)


def delete_account(account: Account) -> None:
    """Stop every process of a dedicated account by PID, delete it and its stray temp files.

    Raises:
        LabError: A process survived SIGKILL or userdel failed.
    """
    if not account.dedicated:
        return
    for _ in range(5):
        pids = _live_pids_of(account.uid)
        if not pids:
            break
        stop_pids(pids)
    if survivors := _live_pids_of(account.uid):
        raise LabError(f"processes {survivors} of {account.name} survived SIGKILL")
    if not _user_exists(account.name):
        return
    what = f"delete the lab user {account.name}"
    result = run_command(["userdel", account.name], what=what, check=False)
    if result.returncode == _USERDEL_BUSY:
        # Only zombies are left (PID 1 can take seconds to reap them), yet userdel counts them.
        # --force skips that check; without --remove it deletes nothing else.
        run_command(["userdel", "--force", account.name], what=what)
    elif result.returncode != 0:
        raise LabError(f"could not {what}: userdel exited {result.returncode}: {result.stderr}")
    _remove_stray_files(account.uid)
    logger.debug("deleted user %s", account.name)


def grant_traversal(path: Path) -> list[tuple[Path, int]]:
    """Give others search (x) permission on `path` and every parent that lacks it.

    Returns:
        (directory, original mode) for every directory changed, for `restore_modes`.
    """
    changed = []
    for directory in [path, *path.parents]:
        mode = stat.S_IMODE(directory.stat().st_mode)
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
            changed.append((directory, mode))
    return changed


def restore_modes(changed: list[tuple[Path, int]], account: Account) -> None:
    """Undo `grant_traversal`, except on directories another live lab account still needs."""
    other_homes = [
        Path(entry.pw_dir)
        for entry in pwd.getpwall()
        if ACCOUNT_PATTERN.fullmatch(entry.pw_name) and entry.pw_name != account.name
    ]
    for directory, mode in changed:
        if any(home.is_relative_to(directory) for home in other_homes):
            logger.debug("leaving %s searchable: another lab lives below it", directory)
            continue
        if directory.exists():
            directory.chmod(mode)
