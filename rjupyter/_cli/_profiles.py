"""Per-host defaults for the command line: ``~/.config/rjupyter/config.toml``.

::

    [defaults]              # for every host
    app = "lab"

    [hosts.gpu-box]         # for `rjupyter start gpu-box`
    venv = "~/proj/.venv"
    dir = "~/proj"
    setup = ["module load cuda/12"]

    [hosts.cluster]         # a login node: run the notebook in a Slurm job
    venv = "~/proj/.venv"
    slurm = "--partition=gpu --time=2:00:00 --gres=gpu:1"

Command-line flags win over ``[hosts.NAME]``, which wins over ``[defaults]``. The file lives in
``$XDG_CONFIG_HOME/rjupyter/`` (default ``~/.config/rjupyter/``); ``RJUPYTER_CONFIG`` names
another file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from .._errors import RJupyterError

__all__ = ["PROFILE_KEYS", "load_profile", "profile_path"]

#: The keys a profile may set, with the type each must have.
PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "app": str,
    "port": int,
    "local_port": int,
    "dir": str,
    "venv": str,
    "conda": str,
    "setup": list,
    "jupyter": str,
    "keep_running": bool,
    "open": bool,
    "ssh_config": str,
    "identity_file": str,
    "jump": str,
    "slurm": str,
    "timeout": (int, float),
    "abandon_timeout": (int, float),
}


def profile_path() -> Path:
    """Where the profile file is read from."""
    named = os.environ.get("RJUPYTER_CONFIG")
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "rjupyter" / "config.toml"


def load_profile(host: str, path: Path | None = None) -> dict[str, Any]:
    """The settings for ``host``: ``[defaults]`` overlaid with ``[hosts.<host>]``.

    A missing file is an empty profile.

    Raises:
        RJupyterError: The file is not valid TOML, or sets an unknown key or a wrong type.
    """
    path = path or profile_path()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RJupyterError(f"cannot read the profile file {path}: {exc}") from exc
    hosts = data.get("hosts", {})
    merged = {**_checked(data.get("defaults", {}), path, "defaults")}
    merged.update(_checked(hosts.get(host, {}) if isinstance(hosts, dict) else {}, path, host))
    return merged


def _checked(table: object, path: Path, name: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise RJupyterError(f"{path}: [{name}] must be a table")
    for key, value in table.items():
        if key not in PROFILE_KEYS:
            known = ", ".join(sorted(PROFILE_KEYS))
            raise RJupyterError(f"{path}: unknown key {key!r} in [{name}]; known keys: {known}")
        wrong_setup = isinstance(value, list) and not all(isinstance(x, str) for x in value)
        if not isinstance(value, PROFILE_KEYS[key]) or wrong_setup:
            raise RJupyterError(f"{path}: {key!r} in [{name}] has the wrong type: {value!r}")
    return dict(table)
