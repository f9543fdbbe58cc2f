"""The local account: its name, home and uid, with or without the ``pwd`` module.

``pwd`` exists on every Unix; on Windows it does not, and ``os.getuid`` neither. There the name
comes from the environment and the home from ``~``; ``~user`` paths of other accounts cannot be
resolved and say so.
"""

from __future__ import annotations

import os

try:
    import pwd
except ImportError:  # Windows
    pwd = None  # type: ignore[assignment]

__all__ = ["home_of", "local_home", "local_uid", "local_user_name"]


def local_home() -> str:
    """The home directory of the account running this process (as ssh takes it: not $HOME)."""
    if pwd is not None and hasattr(os, "getuid"):
        return pwd.getpwuid(os.getuid()).pw_dir
    return os.path.expanduser("~")


def local_user_name() -> str:
    """The name of the account running this process."""
    if pwd is not None and hasattr(os, "getuid"):
        return pwd.getpwuid(os.getuid()).pw_name
    for variable in ("USER", "USERNAME", "LOGNAME"):
        if os.environ.get(variable):
            return os.environ[variable]
    return os.path.basename(local_home())


def local_uid() -> str:
    """The numeric user id (OpenSSH's ``%i``); empty where there is none (Windows)."""
    return str(os.getuid()) if hasattr(os, "getuid") else ""


def home_of(name: str) -> str:
    """The home directory of the account ``name`` (for ``~name/...``).

    Raises:
        ValueError: No such account, or no account database on this platform.
    """
    if pwd is None:
        raise ValueError(
            f"~{name} paths need the Unix account database (the pwd module), which this "
            "platform lacks; write the full path instead"
        )
    try:
        return pwd.getpwnam(name).pw_dir
    except KeyError as exc:
        raise ValueError(f"no local account {name!r} for ~{name}") from exc
