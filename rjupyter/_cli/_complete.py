"""Shell completion of HOST: the ``Host`` names of the SSH config and the profile's hosts.

Only plain names are offered (no patterns with ``*``, ``?`` or ``!``). ``Include`` is followed
(relative paths from ``~/.ssh``, globs), a few levels deep. ``user@`` typed before the name is
kept. Nothing here raises: a file that cannot be read adds no names.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from ._profiles import profile_hosts

__all__ = ["complete_host", "ssh_config_hosts"]

_PATTERN_CHARS = frozenset("*?!")
_MAX_DEPTH = 8


def complete_host(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The host names that start with what was typed (after any ``user@``)."""
    user, _, partial = incomplete.rpartition("@")
    prefix = f"{user}@" if user else ""
    named = ctx.params.get("ssh_config")
    configs = [Path(named).expanduser()] if named else _default_configs()
    names = {name for config in configs for name in ssh_config_hosts(config)}
    names.update(profile_hosts())
    return [
        CompletionItem(prefix + name)
        for name in sorted(names)
        if name.startswith(partial) and "@" not in name
    ]


def _default_configs() -> list[Path]:
    return [Path("~/.ssh/config").expanduser(), Path("/etc/ssh/ssh_config")]


def ssh_config_hosts(path: Path, depth: int = 0) -> Iterator[str]:
    """The plain names on the ``Host`` lines of ``path`` and of the files it includes."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        keyword, values = _split(line)
        if keyword == "host":
            yield from (value for value in values if not _PATTERN_CHARS & set(value))
        elif keyword == "include" and depth < _MAX_DEPTH:
            for value in values:
                for included in _included(value):
                    yield from ssh_config_hosts(included, depth + 1)


def _split(line: str) -> tuple[str, list[str]]:
    words = line.strip().replace("=", " ", 1).split()
    if not words or words[0].startswith("#"):
        return "", []
    return words[0].lower(), [word.strip('"') for word in words[1:]]


def _included(pattern: str) -> list[Path]:
    expanded = os.path.expanduser(pattern)
    if not os.path.isabs(expanded):
        expanded = os.path.join(os.path.expanduser("~/.ssh"), expanded)
    return [Path(found) for found in sorted(glob.glob(expanded))]
