"""Run Python as on Windows as far as rjupyter is concerned: ``pwd``, ``grp``, ``fcntl`` and
``termios`` (and ``tty``, ``pty``, which need them) cannot be imported.

``python tests/no_posix.py -m pytest ...`` or ``python tests/no_posix.py -c CODE``: installs a
meta path finder that raises ImportError for those modules, then runs the rest of the command
line as ``python`` would.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import runpy
import sys
from collections.abc import Sequence
from types import ModuleType

BLOCKED = frozenset({"pwd", "grp", "fcntl", "termios", "tty", "pty"})


class Blocker(importlib.abc.MetaPathFinder):
    """Refuses the POSIX-only modules, as an interpreter without them would."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked)", name=fullname)
        return None


def install() -> None:
    for name in BLOCKED:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, Blocker())


def main(argv: list[str]) -> None:
    install()
    if argv[:1] == ["-c"]:
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    elif argv[:1] == ["-m"]:
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        raise SystemExit("usage: no_posix.py -c CODE | -m MODULE [ARGS]")


if __name__ == "__main__":
    main(sys.argv[1:])
