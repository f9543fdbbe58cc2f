"""The login wrapper and the gated startup parser, without a server (issue 16, item 4).

The wrapper runs under real dash and bash as ``/bin/sh -s`` with the script on stdin, as the
remote host runs it; the login shell is this user's own (from the password database), started
as a login shell with ``HOME`` a temporary directory whose ``.profile`` the tests write.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from helpers import SHELLS, run_shell

from rjupyter._server._login import login_script
from rjupyter._server._remote import failure_reason
from rjupyter._server._scripts import whole
from rjupyter._server._startup import LOGIN_FAILED, StartupParser

URL = "http://127.0.0.1:8888/tree?token=abc123"


@pytest.mark.parametrize("shell", SHELLS)
def test_the_script_runs_after_the_profile_with_its_args_and_stdin(
    shell: str, tmp_path: Path
) -> None:
    (tmp_path / ".profile").write_text(
        'echo profile-out; echo profile-err >&2; read -r eaten && echo "ate: $eaten"\n'
        "export FROM_PROFILE=yes\n"
    )
    inner = whole(
        [
            'echo "args: $1|$2"',
            'echo "profile: ${FROM_PROFILE:-}"',
            'read -r line && echo "stdin: $line" || :',
        ]
    )
    result = run_shell(shell, login_script(inner) + "after the script\n", tmp_path, ["a b", "c"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "profile-out", "the profile runs first"
    assert "ate:" not in result.stdout, "the profile reads /dev/null, not the script"
    assert lines[1:3] == ["args: a b|c", "profile: yes"]
    # What followed the script on stdin is its stdin again (a follow reads its channel's end
    # there), unless the outer shell read it ahead (dash reads its script in blocks).
    assert lines[3:] in (["stdin: after the script"], []), lines
    assert "profile-err" in result.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_the_script_is_in_no_command_line(shell: str, tmp_path: Path) -> None:
    secret = secrets.token_hex(8)
    inner = whole(
        [
            f": {secret}",
            'for pid in $$ $PPID; do tr "\\0" " " < /proc/$pid/cmdline; echo; done',
        ]
    )
    result = run_shell(shell, login_script(inner), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "-l -c" in result.stdout, "the login shell runs the script"
    assert secret not in result.stdout


def test_the_gated_parser_reads_nothing_of_the_profiles() -> None:
    parser = StartupParser(gated=True)
    for noise in (URL, "RJUPYTER-PID 1", "RJUPYTER-EXIT 0", "RJUPYTER-ERROR jupyter"):
        assert parser.feed(noise) is None
    assert (parser.pid, parser.exit_status, parser.error_code) == (None, None, None)
    assert not parser.started
    for line in ("RJUPYTER-SHELL 41", "RJUPYTER-PID 42", URL):
        info = parser.feed(line)
    assert info is not None
    assert (info.pid, info.token, parser.shell_pid) == (42, "abc123", 41)
    ungated = StartupParser()
    ungated.feed(URL)
    ungated.feed("RJUPYTER-PID 7")
    assert ungated.info is not None


def test_a_login_shell_that_fails_or_never_runs_the_script_is_explained() -> None:
    failed = StartupParser(gated=True)
    failed.feed(f"RJUPYTER-ERROR {LOGIN_FAILED}")
    reason, status = failure_reason(failed, {})
    assert "login shell could not be started" in reason
    assert "login_shell=False" in reason
    assert status == 97
    silent = StartupParser(gated=True)
    silent.feed("Welcome! This is a login node.")
    reason, _ = failure_reason(silent, {})
    assert "launch script never ran" in reason
