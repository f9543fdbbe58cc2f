"""Per-host defaults for the command line: ``~/.config/rjupyter/config.toml``.

::

    [defaults]              # for every host
    app = "lab"

    [hosts.gpu-box]         # for `rjupyter start gpu-box` (and me@gpu-box, gpu-box:2222)
    venv = "~/proj/.venv"
    workdir = "~/proj"
    setup = ["module load cuda/12"]

    [hosts.cluster]         # a login node: run the notebook in a Slurm job
    venv = "~/proj/.venv"
    slurm = "--partition=gpu --time=2:00:00 --gres=gpu:1"

Command-line flags win over ``[hosts.NAME]``, which wins over ``[defaults]``. The file lives in
``$XDG_CONFIG_HOME/rjupyter/`` (default ``~/.config/rjupyter/``); ``RJUPYTER_CONFIG`` names
another file. The whole file is checked on every run: an unknown table or key, a wrong type or
an out-of-range value is an error naming the file, and so is a file that others may write (as
OpenSSH refuses such a config file).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from .._launch._slurm import Slurm
from .._ssh._hostspec import parse_host_spec

__all__ = [
    "APP",
    "EXCLUSIVE_KEYS",
    "HOST_KEY_POLICY",
    "IDLE_SECONDS",
    "KEY_ALIASES",
    "NODE_HOST_KEY_POLICY",
    "PORT",
    "PROFILE_KEYS",
    "SECONDS",
    "SLURM",
    "ProfileError",
    "load_profile",
    "profile_hosts",
    "profile_path",
]

#: A TCP port, for every port flag and profile key.
PORT = click.IntRange(1, 65535)
#: Seconds that must be more than zero (connect and start-up timeouts, code timeouts).
SECONDS = click.FloatRange(min=0, min_open=True)
#: Seconds where 0 means "never" (the abandon watchdog).
IDLE_SECONDS = click.FloatRange(min=0)
APP = click.Choice(["notebook", "lab", "server"])
HOST_KEY_POLICY = click.Choice(["reject", "accept-new", "no"])
NODE_HOST_KEY_POLICY = click.Choice(["reject", "accept-new"])


class SlurmOptions(click.ParamType):  # type: ignore[type-arg]
    """sbatch options as one string, e.g. ``"--partition=gpu --time=2:00:00"``."""

    name = "sbatch options"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Slurm):
            return value
        try:
            return Slurm.parse(str(value))
        except ValueError as exc:
            self.fail(f"{value!r} is not valid sbatch options: {exc}", param, ctx)


SLURM = SlurmOptions()


class _Lines(click.ParamType):  # type: ignore[type-arg]
    """A list of strings (``setup``)."""

    name = "list of strings"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(f"expected a list of strings, got {value!r}", param, ctx)
        return value


#: The keys a profile may set: the TOML type each must have, and the check its flag uses.
PROFILE_KEYS: dict[str, tuple[type | tuple[type, ...], click.ParamType[Any, Any] | None]] = {
    "app": (str, APP),
    "remote_port": (int, PORT),
    "local_port": (int, PORT),
    "workdir": (str, None),
    "venv": (str, None),
    "conda_env": (str, None),
    "setup": (list, _Lines()),
    "jupyter": (str, None),
    "login_shell": (bool, None),
    "keep_running": (bool, None),
    "open": (bool, None),
    "ssh_config": (str, None),
    "identity_file": (str, None),
    "jump": (str, None),
    "host_key_policy": (str, HOST_KEY_POLICY),
    "slurm": (str, SLURM),
    "node_host_key_policy": (str, NODE_HOST_KEY_POLICY),
    "timeout": ((int, float), SECONDS),
    "abandon_timeout": ((int, float), IDLE_SECONDS),
}
#: Earlier spellings, still read: old key -> key.
KEY_ALIASES = {"port": "remote_port", "dir": "workdir", "conda": "conda_env"}
#: Keys that exclude each other (in one table; a flag of the group replaces the profile's).
EXCLUSIVE_KEYS = (("venv", "conda_env"),)
TABLES = ("defaults", "hosts")


class ProfileError(click.ClickException):
    """The profile file cannot be used; the message names the file (exit status 2)."""

    exit_code = 2


def profile_path() -> Path:
    """Where the profile file is read from."""
    named = os.environ.get("RJUPYTER_CONFIG")
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "rjupyter" / "config.toml"


def load_profile(host: str, path: Path | None = None) -> dict[str, Any]:
    """The settings for ``host``: ``[defaults]``, then ``[hosts.H]`` for the host part H of
    ``user@H:port``, then ``[hosts."user@H:port"]`` when written exactly so.

    A missing file is an empty profile. Values come back converted (``slurm`` as a
    :class:`~rjupyter.Slurm`, timeouts as floats).

    Raises:
        ProfileError: The file cannot be read, is not TOML, may be written by others, or has an
            unknown table or key, a wrong type or a bad value (the message names the file).
    """
    path = path or profile_path()
    data = _read(path)
    if data is None:
        return {}
    hosts = data.get("hosts", {})
    tables = {name: _checked(table, path, f"hosts.{name}") for name, table in hosts.items()}
    merged = _checked(data.get("defaults", {}), path, "defaults")
    try:
        host_part = parse_host_spec(host).host
    except ValueError:
        host_part = host
    for name in dict.fromkeys([host_part, host]):
        merged.update(tables.get(name, {}))
    return merged


def profile_hosts(path: Path | None = None) -> list[str]:
    """The host names a profile file has tables for; none when it cannot be read (completion)."""
    try:
        data = _read(path or profile_path())
    except ProfileError:
        return []
    hosts = (data or {}).get("hosts", {})
    return sorted(hosts) if isinstance(hosts, dict) else []


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProfileError(f"cannot read the profile file {path}: {exc}") from exc
    _check_permissions(path, info)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"cannot read the profile file {path}: {exc}") from exc
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise ProfileError(
            f"{path}: unknown table or key {', '.join(unknown)}; a profile has only "
            "[defaults] and [hosts.NAME] tables"
        )
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict) or not all(isinstance(t, dict) for t in hosts.values()):
        raise ProfileError(f"{path}: hosts must hold tables, as [hosts.NAME]; got {hosts!r}")
    return dict(data)


def _check_permissions(path: Path, info: os.stat_result) -> None:
    """Refuse a file others may change, as OpenSSH refuses such a config file."""
    if not stat.S_ISREG(info.st_mode):
        raise ProfileError(f"the profile file {path} is not a regular file")
    owner_ok = not hasattr(os, "getuid") or info.st_uid in (os.getuid(), 0)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or not owner_ok:
        raise ProfileError(
            f"bad owner or permissions on the profile file {path} (it must be yours and "
            f"writable by you only, like ~/.ssh/config); fix it with: chmod 600 {path}"
        )


def _checked(table: object, path: Path, name: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ProfileError(f"{path}: [{name}] must be a table, got {table!r}")
    checked: dict[str, Any] = {}
    for written, value in table.items():
        key = KEY_ALIASES.get(written, written)
        if key not in PROFILE_KEYS:
            known = ", ".join(sorted(PROFILE_KEYS))
            raise ProfileError(f"{path}: unknown key {written!r} in [{name}]; known keys: {known}")
        if key in checked:
            raise ProfileError(f"{path}: [{name}] sets {key!r} twice (once as {written!r})")
        checked[key] = _value(path, name, written, value)
    for group in EXCLUSIVE_KEYS:
        if all(key in checked for key in group):
            raise ProfileError(f"{path}: [{name}] sets both {' and '.join(group)}; keep one")
    return checked


def _value(path: Path, table: str, key: str, value: object) -> Any:
    kind, check = PROFILE_KEYS[KEY_ALIASES.get(key, key)]
    wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if wrong:
        expected = kind.__name__ if isinstance(kind, type) else "a number"
        raise ProfileError(f"{path}: {key!r} in [{table}] must be {expected}, got {value!r}")
    if check is None:
        return value
    try:
        return check.convert(value, None, None)
    except click.BadParameter as exc:
        raise ProfileError(f"{path}: {key!r} in [{table}]: {exc.message}") from exc
