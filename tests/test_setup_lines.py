"""Findings 3 and 11 (its first part) of issue 15: setup lines do not see the launch script on
their stdin, and a failing one is named by number and command word, never quoted whole.

The launch script is run by real dash and bash reading it on stdin (``sh -s``), as the remote
host runs it; bash reads stdin byte by byte, so a line that reads stdin would eat what follows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SHELLS, run_shell
from test_launch_script import make_venv, script

from rjupyter._server._remote import command_word, failure_reason
from rjupyter._server._startup import StartupParser

READERS = ["cat", "read x || :", "python3 -", "head -c 100000 >/dev/null", "sh -s"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("line", READERS)
def test_a_setup_line_that_reads_stdin_does_not_eat_the_script(
    shell: str, line: str, tmp_path: Path
) -> None:
    make_venv(tmp_path)
    result = run_shell(
        shell, script(venv=str(tmp_path / "venv"), setup=[line, "export LATER=1"]), tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "RJUPYTER-EXIT 0" in result.stderr, "the script went on past the setup line"
    assert "ARG=--no-browser" in result.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_setup_lines_still_change_the_shell_and_report_failures(shell: str, tmp_path: Path) -> None:
    make_venv(tmp_path)
    ok = run_shell(shell, script(venv=str(tmp_path / "venv"), setup=["cd /", "X=1 true"]), tmp_path)
    assert "PWD=/\n" in ok.stdout, "a setup line runs in the launching shell itself"
    bad = run_shell(shell, script(setup=["true", "false # a comment"]), tmp_path)
    assert "RJUPYTER-ERROR setup:2" in bad.stderr


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ("export HF_TOKEN=hf_secret", "export"),
        ("HF_TOKEN=hf_secret python -c 'x'", "python"),
        ("HF_TOKEN=hf_secret", "an assignment"),
        ("/opt/bin/login --password=hunter2", "login"),
        ("module load python/3.11", "module"),
    ],
)
def test_a_failing_setup_line_is_named_without_its_arguments(line: str, word: str) -> None:
    assert command_word(line) == word
    parser = StartupParser()
    parser.feed("RJUPYTER-ERROR setup:1")
    reason, status = failure_reason(parser, {"setup:1": line})
    assert status == 97
    assert f"setup line 1 ({word} ...)" in reason
    assert "hf_secret" not in reason
    assert "hunter2" not in reason
