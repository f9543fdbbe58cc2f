"""The launch script, run by a real /bin/sh against a fake `jupyter` (no SSH needed).

These prove the quoting: user strings reach the shell as data, `~` means the home directory.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from rjupyter._server._scripts import WATCH_SCRIPT, build_script, remote_path, whole

HOSTILE = [
    "it's a dir",
    'quote" and ; touch PWNED',
    "$(touch PWNED)",
    "`touch PWNED`",
    "line\ntouch PWNED",
    "-starts-with-dash",
]

FAKE_JUPYTER = """#!/bin/sh
printf 'PWD=%s\\n' "$PWD"
printf 'VENV=%s\\n' "$VIRTUAL_ENV"
for arg in "$@"; do printf 'ARG=%s\\n' "$arg"; done
"""


def make_venv(root: Path) -> Path:
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    jupyter = venv / "bin" / "jupyter"
    jupyter.write_text(FAKE_JUPYTER)
    jupyter.chmod(0o755)
    return venv


def run(script: str, home: Path, shell: str = "/bin/sh") -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [shell, "-s"],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        check=False,
        timeout=10,
    )


def script(**options: object) -> str:
    defaults: dict[str, object] = {
        "app": "lab",
        "port": 20001,
        "workdir": None,
        "venv": None,
        "conda_env": None,
        "setup": (),
        "jupyter": "jupyter",
        "run_id": secrets.token_hex(8),  # each launch names its own run dir, as the client does
    }
    defaults.update(options)
    return build_script(**defaults)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_workdir_and_venv_are_paths(tmp_path: Path, name: str) -> None:
    workdir = tmp_path / name
    workdir.mkdir()
    venv = make_venv(workdir)
    result = run(script(workdir=str(workdir), venv=str(venv)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"PWD={workdir}\n" in result.stdout
    assert f"VENV={venv}\n" in result.stdout
    assert not list(tmp_path.rglob("PWNED"))
    assert "RJUPYTER-PID" in result.stderr


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_missing_workdir_fails_cleanly(tmp_path: Path, name: str) -> None:
    result = run(script(workdir=str(tmp_path / name)), tmp_path)
    assert result.returncode == 97
    assert "RJUPYTER-ERROR workdir" in result.stderr
    assert not list(tmp_path.rglob("PWNED"))


def test_tilde_means_home(tmp_path: Path) -> None:
    (tmp_path / "proj dir").mkdir()
    make_venv(tmp_path / "proj dir")
    result = run(script(workdir="~/proj dir", venv="~/proj dir/venv"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"PWD={tmp_path}/proj dir\n" in result.stdout


def test_jupyter_arguments(tmp_path: Path) -> None:
    make_venv(tmp_path)
    result = run(script(venv=str(tmp_path / "venv"), app="notebook", port=23456), tmp_path)
    args = [line[4:] for line in result.stdout.splitlines() if line.startswith("ARG=")]
    assert args == [
        "notebook",
        "--no-browser",
        "--ip=127.0.0.1",
        "--port=23456",
        "--port-retries=50",
    ]


def test_missing_venv_and_missing_jupyter(tmp_path: Path) -> None:
    assert "RJUPYTER-ERROR venv" in run(script(venv="~/nope"), tmp_path).stderr
    result = run(script(jupyter="/nonexistent/jupyter"), tmp_path)
    assert "RJUPYTER-ERROR jupyter" in result.stderr


def test_setup_lines_run_as_shell_code_and_failures_name_the_line(tmp_path: Path) -> None:
    make_venv(tmp_path)
    ok = run(script(venv=str(tmp_path / "venv"), setup=["export X=1", "cd /"]), tmp_path)
    assert "PWD=/\n" in ok.stdout
    bad = run(script(setup=["true", "false"]), tmp_path)
    assert "RJUPYTER-ERROR setup:2" in bad.stderr


def test_conda_env_name_is_quoted(tmp_path: Path) -> None:
    text = script(conda_env="x; touch PWNED")
    assert "conda activate 'x; touch PWNED'" in text
    result = run(text, tmp_path)
    assert "RJUPYTER-ERROR conda" in result.stderr
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("~", '"$HOME"'),
        ("~/", '"$HOME"/'),
        ("~/a b", "\"$HOME\"/'a b'"),
        ("~bob/x", "~bob/x"),
        ("~bob;rm/x", "'~bob;rm/x'"),
        ("/abs/p", "/abs/p"),
        ("rel ative", "'rel ative'"),
    ],
)
def test_remote_path_words(path: str, word: str) -> None:
    assert remote_path(path) == word


def test_unknown_app_is_refused() -> None:
    with pytest.raises(ValueError, match="app must be one of"):
        script(app="voila")


def test_script_prints_its_pid_first(tmp_path: Path) -> None:
    result = run(script(jupyter="/nonexistent"), tmp_path)
    first = result.stderr.splitlines()[0]
    assert first.startswith("RJUPYTER-SHELL ")
    assert int(first.split()[1]) > 0
    assert os.getpid() != int(first.split()[1])


def test_server_runs_under_a_supervisor_with_a_private_run_dir(tmp_path: Path) -> None:
    make_venv(tmp_path)
    result = run(script(venv=str(tmp_path / "venv"), run_id="abc123"), tmp_path)
    run_dir = tmp_path / ".local/state/rjupyter/abc123"
    markers = dict(
        line.split(" ", 1) for line in result.stderr.splitlines() if line.startswith("RJUPYTER-")
    )
    assert markers["RJUPYTER-RUN"] == str(run_dir)
    assert int(markers["RJUPYTER-PID"]) > 0
    assert markers["RJUPYTER-EXIT"] == "0", "the fake jupyter exits 0; its status comes back"
    assert "ARG=--no-browser" in result.stdout, "the server's output is followed on the channel"
    assert (run_dir.stat().st_mode & 0o777) == 0o700
    assert (run_dir / "status").read_text().strip() == "0"
    assert (run_dir / "log").exists()


#: dash (Debian's /bin/sh) reads a script in blocks; bash (RHEL's /bin/sh) a byte at a time.
SHELLS = ["/bin/dash", "/bin/bash"]


@pytest.mark.parametrize("shell", SHELLS)
def test_setup_lines_that_read_stdin_do_not_eat_the_script(tmp_path: Path, shell: str) -> None:
    make_venv(tmp_path)
    setup = ['cat > "$HOME/seen"', "read line || true", "head -c 10 >/dev/null"]
    result = run(script(venv=str(tmp_path / "venv"), setup=setup), tmp_path, shell)
    assert "ARG=--no-browser" in result.stdout, result.stderr  # the launch went on to Jupyter
    assert (tmp_path / "seen").read_text() == ""


@pytest.mark.parametrize("shell", SHELLS)
def test_a_script_cut_short_runs_nothing(tmp_path: Path, shell: str) -> None:
    # The client was interrupted while sending: what arrived is one unfinished function.
    whole = script(setup=['touch "$HOME/ran"'])
    for cut in (whole.rsplit("rj_main", 1)[0], whole[: len(whole) // 2]):
        run(cut, tmp_path, shell)
        assert not (tmp_path / "ran").exists()
        assert not (tmp_path / ".local/state/rjupyter").exists()


def test_the_run_dir_is_named_by_the_client_and_removed_on_failure(tmp_path: Path) -> None:
    result = run(script(run_id="c0ffee", setup=["false"]), tmp_path)
    assert "RJUPYTER-ERROR setup:1" in result.stderr
    assert not (tmp_path / ".local/state/rjupyter/c0ffee").exists()


def watch(shell: str, pid: int) -> subprocess.Popen[str]:
    """WATCH_SCRIPT for ``pid``, its stdin held open as rjupyter holds the channel."""
    process = subprocess.Popen(
        [shell, "-s", "--", "", str(pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(whole([WATCH_SCRIPT]))
    process.stdin.flush()
    return process


@pytest.mark.parametrize("shell", SHELLS)
def test_the_watch_reports_the_end_and_ends_with_its_channel(shell: str) -> None:
    with subprocess.Popen(["sleep", "30"]) as server:
        watcher = watch(shell, server.pid)
        server.kill()
        server.wait()
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("RJUPYTER-EXIT")  # its stdin still open
        watcher.communicate(timeout=10)
    with subprocess.Popen(["sleep", "30"]) as server:
        watcher = watch(shell, server.pid)
        assert watcher.stdin is not None
        watcher.stdin.close()  # the notebook closed: the watch must not outlive it
        assert watcher.wait(10) == 0
        assert watcher.stdout is not None
        assert "RJUPYTER-EXIT" not in watcher.stdout.read()
        watcher.stdout.close()
        server.kill()
