"""Where ``pwd``, ``grp``, ``fcntl`` and ``termios`` do not exist (as on Windows): ``import
rjupyter`` works, the quick suite passes, and what needs them says so (no lab)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
NO_POSIX = [sys.executable, str(TESTS / "no_posix.py")]


def blocked(*args: str, cwd: Path = TESTS) -> subprocess.CompletedProcess[str]:
    # The project root is importable (the benchmarks package), as it is for the outer pytest
    # started there; the nested run starts in tests/.
    path = os.pathsep.join(filter(None, [str(TESTS.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "RJUPYTER_NO_POSIX": "1", "PYTHONPATH": path}
    return subprocess.run(
        [*NO_POSIX, *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def test_the_blocker_blocks() -> None:
    for module in ("pwd", "grp", "fcntl", "termios"):
        result = blocked("-c", f"import {module}")
        assert "ModuleNotFoundError" in result.stderr, module


def test_import_and_the_pure_parts_work() -> None:
    code = """
import rjupyter, rjupyter._cli
from rjupyter._ssh._hostspec import parse_host_spec
from rjupyter._ssh._localuser import local_home, local_user_name, home_of
from rjupyter._ssh._tokens import TokenContext, expand_tokens, expand_user_path
from rjupyter._cli._ui import terminal_restored
assert parse_host_spec("me@h:22").port == 22
assert "token" not in repr(rjupyter.RemoteNotebook("me@h:22"))
assert local_home() and local_user_name()
assert expand_tokens("%d/%u", TokenContext(host="h")) == f"{local_home()}/{local_user_name()}"
assert expand_user_path("~/x", "/home/me") == "/home/me/x"
with terminal_restored():
    pass
try:
    home_of("root")
except ValueError as error:
    print("MESSAGE", error)
"""
    result = blocked("-c", code)
    assert result.returncode == 0, result.stderr
    assert "MESSAGE ~root paths need the Unix account database" in result.stdout


def test_the_command_line_runs() -> None:
    result = blocked("-m", "rjupyter", "start", "--help")
    assert result.returncode == 0, result.stderr
    assert "--workdir" in result.stdout
    usage = blocked("-m", "rjupyter", "stop", "somewhere")
    assert usage.returncode == 2


@pytest.mark.skipif("RJUPYTER_NO_POSIX" in os.environ, reason="already inside the blocked run")
def test_the_quick_suite_passes_without_them() -> None:
    result = blocked(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not lab",
        "--ignore=test_platforms.py",
        "--ignore=test_release.py",
        "--ignore=test_docs.py",
        # These start other processes (Python, or the remote scripts in a local sh), which the
        # blocker does not reach: here they would only take time (the blocked command line is
        # tested above).
        "--ignore=test_cli_usage.py",
        "--ignore=test_cli.py",
        "--ignore=test_quick_suite.py",
        "--ignore=test_architecture.py",
        "--ignore=test_launch_script.py",
        "--ignore=test_quoting.py",
        "--ignore=test_setup_lines.py",
        "--ignore=test_remote_records.py",
        "--ignore=test_bounds.py",
        cwd=TESTS,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
