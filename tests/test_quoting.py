"""Finding 2 of issue 15: for any string, the path the remote shell receives is that string.

A property test without a dependency: thousands of strings drawn (with fixed seeds) from the
characters and fragments that break quoting — quotes, ``;``, ``$()``, backticks, newlines,
leading ``-``, every ``~`` form — are quoted by ``remote_path`` and printed back by a real
dash and a real bash. Each must come back exactly as ``~`` expansion says it should, and a
marker program that a broken quote would run must never run.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from helpers import SHELLS, run_shell

from rjupyter._server._scripts import build_script, remote_path

CHARACTERS = list("ab~/.-_ \n\t\r'\"\\$`;&|()<>*?[]{}#!=%^,:+@é")
FRAGMENTS = [
    "~", "~/", "~root", "~root/", "~x", "~x\n", "~a.b-c", "~+", "~-", "~x;", "-", "--", "-n",
    "$(touch PWNED)", "`touch PWNED`", "; touch PWNED", "\ntouch PWNED\n", "${IFS}", "$HOME",
    "'", "\"", "\\", "\n", "~nobody/", "*", "$(", "${", "'\"'\"'",
]  # fmt: skip


def draw(rng: random.Random, marker: str) -> str:
    pieces = [*FRAGMENTS, *CHARACTERS, f"~x\n{marker}", f"\n{marker}\n", f"$({marker})"]
    return "".join(rng.choices(pieces, k=rng.randint(1, 8)))


def cases(marker: str) -> list[str]:
    fixed = [f"~x\n{marker}", f"~root\n{marker}", f"~\n{marker}", "~x\n", "-rf", "~"]
    rng = random.Random(15)
    return fixed + [draw(rng, marker) for _ in range(1500)]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A program that leaves a file behind if a quote ever lets it run."""
    program = tmp_path / "bin" / "pwn"
    program.parent.mkdir()
    program.write_text(f"#!/bin/sh\n: > {tmp_path}/PWNED\n")
    program.chmod(0o755)
    return program


def expected(path: str, home: Path) -> str:
    """What ``~`` expansion makes of ``path``: ``~`` and ``~/`` the home, ``~user`` that
    user's home when the user exists, everything else verbatim."""
    if path == "~" or path.startswith("~/"):
        return str(home) + path[1:]
    return os.path.expanduser(path) if path.startswith("~") else path


@pytest.mark.parametrize("shell", SHELLS)
def test_any_string_reaches_the_shell_as_that_path(
    shell: str, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pwd", reason="~user is looked up in the Unix account database")
    monkeypatch.setenv("HOME", str(tmp_path))
    strings = cases(str(marker))
    script = "".join(f"printf '%s\\0' {remote_path(s)}\n" for s in strings)
    result = subprocess.run(
        [shell, "-s"],
        input=script.encode(),
        capture_output=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    received = result.stdout.decode().split("\0")[:-1]
    assert not (tmp_path / "PWNED").exists(), "a quoted path ran a program"
    assert received == [expected(s, tmp_path) for s in strings]


def test_a_nul_character_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        remote_path("a\0b")


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("option", ["workdir", "venv", "jupyter"])
def test_a_tilde_user_then_a_newline_runs_nothing_in_the_launch_script(
    shell: str, option: str, tmp_path: Path, marker: Path
) -> None:
    options: dict[str, str | None] = {"workdir": None, "venv": None, "jupyter": "jupyter"}
    options[option] = f"~x\n{marker}"
    script = build_script(app="lab", port=20001, conda_env=None, setup=(), **options)  # type: ignore[arg-type]
    result = run_shell(shell, script, tmp_path)
    assert result.returncode == 97, result.stderr
    assert "RJUPYTER-ERROR" in result.stderr
    assert not (tmp_path / "PWNED").exists()
