"""The real `rjupyter` executable, driven as a subprocess against the lab (and under tmux)."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from helpers import http, http_server, port_is_closed, wait_for

from rjupyter import RemoteNotebook
from rjupyter.testing import Lab, LabHost

RJUPYTER = str(Path(sys.executable).with_name("rjupyter"))


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    env["RJUPYTER_CONFIG"] = str(tmp_path / "no-profile.toml")
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RJUPYTER, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [RJUPYTER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line, f"no output; exit {process.wait(5)}; stderr: {process.communicate()[1]}"
    return line


def interrupt(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


@pytest.fixture
def lab_args(lab: Lab) -> list[str]:
    return ["-F", str(lab.ssh_config)]


def test_start_prints_a_url_and_ctrl_c_stops_everything(
    lab: Lab, remote: LabHost, lab_args: list[str], cli_env: dict[str, str]
) -> None:
    process = spawn(
        ["start", remote.name, *lab_args, "--venv", lab.jupyter_venv, "--no-open"], cli_env
    )
    url = first_line(process)
    assert url.startswith("http://127.0.0.1:")
    assert http(url)[0] == 200
    local_port = int(url.split(":")[2].split("/")[0])
    status, err = interrupt(process)
    assert status == 130, err
    for step in ("connecting", "authenticating", "starting Jupyter", "tunnel ready"):
        assert step in err
    assert wait_for(lambda: remote.user_processes() == [], 10)
    assert port_is_closed(local_port)


def test_start_json_and_profile(
    tmp_path: Path, lab: Lab, remote: LabHost, lab_args: list[str], cli_env: dict[str, str]
) -> None:
    profile = tmp_path / "config.toml"
    profile.write_text(
        f'[defaults]\napp = "notebook"\n\n[hosts.{remote.name}]\nvenv = "{lab.jupyter_venv}"\n'
        'app = "lab"\nopen = false\n'
    )
    env = {**cli_env, "RJUPYTER_CONFIG": str(profile)}
    process = spawn(["start", remote.name, *lab_args, "--json"], env)
    facts: dict[str, Any] = json.loads(first_line(process))
    assert set(facts) >= {"url", "local_port", "remote_port", "pid"}
    assert "/lab?token=" in facts["url"], "the profile's app"
    assert http(facts["url"])[0] == 200
    assert interrupt(process)[0] == 130
    assert wait_for(lambda: remote.user_processes() == [], 10)


def test_start_with_a_forward_beside_the_notebook(
    lab: Lab, remote: LabHost, lab_args: list[str], cli_env: dict[str, str]
) -> None:
    with http_server(remote, 8765):
        process = spawn(
            ["start", remote.name, *lab_args, "--venv", lab.jupyter_venv, "--json", "-L", "8765"],
            cli_env,
        )
        facts = json.loads(first_line(process))
        assert facts["remote_port"] is None
        assert facts["remote_socket"].endswith("/jupyter.sock")
        (forward,) = facts["forwards"]
        assert forward["remote"] == 8765
        assert http(f"http://127.0.0.1:{forward['local_port']}/hello.txt")[0] == 200
        assert http(facts["url"])[0] == 200
        status, err = interrupt(process)
        assert status == 130, err
        assert port_is_closed(forward["local_port"])
        assert port_is_closed(facts["local_port"])
        served = [pid for pid, argv in remote.user_processes() if "http.server" in argv]
        assert wait_for(lambda: [p for p, _ in remote.user_processes()] == served, 10)
        assert not os.path.exists(facts["remote_socket"])


def test_start_tcp_puts_jupyter_on_a_port(
    lab: Lab, remote: LabHost, lab_args: list[str], cli_env: dict[str, str]
) -> None:
    process = spawn(
        ["start", remote.name, *lab_args, "--venv", lab.jupyter_venv, "--json", "--tcp"], cli_env
    )
    facts = json.loads(first_line(process))
    assert facts["remote_socket"] is None
    assert ("127.0.0.1", facts["remote_port"]) in remote.listeners()
    assert facts["forwards"] == []
    assert interrupt(process)[0] == 130
    assert wait_for(lambda: remote.user_processes() == [], 10)


def test_tunnel_attach_list_stop(
    lab: Lab,
    remote: LabHost,
    lab_args: list[str],
    cli_env: dict[str, str],
    nb_options: dict[str, Any],
) -> None:
    with RemoteNotebook(remote.name, keep_running=True, **nb_options) as nb:
        pid, sock, token = nb.remote_pid, str(nb.remote_socket), nb.token

    logins = remote.sshd_log().count("Accepted publickey")
    # Two forwards like ssh -L (to the server's Unix socket), over one login; global flags
    # after the command.
    tunnel = spawn(["tunnel", remote.name, "-L", sock, "-L", sock, *lab_args, "-q"], cli_env)
    first = first_line(tunnel)
    second = first_line(tunnel)
    assert first != second
    for local in (first, second):
        assert http(f"{local}/api/status", token=token)[0] == 200
    assert interrupt(tunnel)[0] == 130
    assert remote.sshd_log().count("Accepted publickey") == logins + 1, "one login, two ports"

    # attach takes -L too: here the server's own socket once more, beside the notebook's port.
    attach = spawn(
        ["attach", remote.name, "--pid", str(pid), "--no-open", "--json", "-L", sock, *lab_args],
        cli_env,
    )
    facts = json.loads(first_line(attach))
    assert http(facts["url"])[0] == 200
    assert facts["forwards"] == [{"local_port": facts["forwards"][0]["local_port"], "remote": sock}]
    forwarded = f"http://127.0.0.1:{facts['forwards'][0]['local_port']}/api/status"
    assert http(forwarded, token=token)[0] == 200
    assert interrupt(attach)[0] == 130
    assert pid in [p for p, _ in remote.user_processes()], "attach leaves the server running"

    listed = run(["list", remote.name, "--json", *lab_args], cli_env)
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [(r["pid"], r["socket"], r["port"]) for r in records if not r["stale"]] == [
        (pid, sock, None)
    ]
    assert "token" not in listed.stdout
    table = run(["list", remote.name, *lab_args], cli_env)
    assert str(pid) in table.stdout

    stopped = run(["stop", remote.name, "--pid", str(pid), *lab_args], cli_env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped pid {pid}" in stopped.stdout
    assert wait_for(lambda: remote.user_processes() == [], 10)
    again = run(["stop", remote.name, "--all-mine", *lab_args], cli_env)
    assert "no running Jupyter servers" in again.stdout


def test_stop_all_mine_logs_in_once(
    remote: LabHost, lab_args: list[str], cli_env: dict[str, str], nb_options: dict[str, Any]
) -> None:
    pids = []
    for _ in range(2):
        with RemoteNotebook(remote.name, keep_running=True, **nb_options) as nb:
            pids.append(nb.remote_pid)
    logins = remote.sshd_log().count("Accepted publickey")
    stopped = run(["stop", remote.name, "--all-mine", *lab_args], cli_env)
    assert stopped.returncode == 0, stopped.stderr
    for pid in pids:
        assert f"stopped pid {pid}" in stopped.stdout
    assert remote.sshd_log().count("Accepted publickey") == logins + 1
    assert wait_for(lambda: remote.user_processes() == [], 10)


def test_run_and_exec_use_a_running_server(
    tmp_path: Path,
    lab: Lab,
    remote: LabHost,
    lab_args: list[str],
    cli_env: dict[str, str],
    nb_options: dict[str, Any],
) -> None:
    with RemoteNotebook(remote.name, keep_running=True, **nb_options) as nb:
        pid = nb.remote_pid
    try:
        base = ["exec", remote.name, "--attach", str(pid), *lab_args]
        ok = run([*base, "-c", "import os; os.getppid()", "--workdir", "/tmp"], cli_env)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == str(pid), "the kernel is a child of the named server"
        source = Path(__file__).resolve().parent.parent / "examples" / "report.ipynb"
        out = tmp_path / "out.ipynb"
        ran = run(
            ["run", remote.name, str(source), "-o", str(out), "--attach", str(pid), *lab_args],
            cli_env,
        )
        assert ran.returncode == 0, ran.stderr
        assert out.exists()
        alive = [p for p, _ in remote.user_processes()]
        assert pid in alive, "the server is left running"
    finally:
        stopped = run(["stop", remote.name, "--pid", str(pid), *lab_args], cli_env)
        assert stopped.returncode == 0, stopped.stderr
    assert wait_for(lambda: remote.user_processes() == [], 10)


def test_bad_host_is_one_line_and_exit_255(cli_env: dict[str, str]) -> None:
    result = run(["start", "nobody@127.0.0.1:2", "--no-open"], cli_env)
    assert result.returncode == 255, "a connection failure, as ssh reports it"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rjupyter: error: connection to 127.0.0.1:2")


def test_usage_errors_and_version(cli_env: dict[str, str]) -> None:
    assert run(["--version"], cli_env).stdout.startswith("rjupyter, version ")
    result = run(["stop", "somewhere"], cli_env)
    assert result.returncode == 2
    assert "exactly one of --port, --pid, --all-mine" in result.stderr
    for command in ("start", "tunnel", "attach", "list", "stop", "run", "exec", "completion"):
        assert "Examples:" in run([command, "--help"], cli_env).stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str, cli_env: dict[str, str]) -> None:
    result = run(["completion", shell], cli_env)
    assert result.returncode == 0
    assert "_RJUPYTER_COMPLETE" in result.stdout
    if shell == "bash":
        checked = subprocess.run(["bash", "-n"], input=result.stdout, text=True, check=False)
        assert checked.returncode == 0


def test_python_dash_m(cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rjupyter", "--version"],
        capture_output=True,
        text=True,
        env=cli_env,
        check=False,
    )
    assert result.stdout.startswith("rjupyter, version ")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the tmux test; ./dev test installs tmux")
        pytest.skip("tmux is not installed")
    socket_name = f"rjupyter-test-{secrets.token_hex(4)}"
    base = ["tmux", "-L", socket_name]
    yield base
    subprocess.run([*base, "kill-server"], check=False, capture_output=True)


def pane(base: list[str]) -> str:
    return subprocess.run(
        [*base, "capture-pane", "-p", "-t", "demo"], capture_output=True, text=True, check=False
    ).stdout


def test_terminal_session_under_tmux(
    tmp_path: Path, tmux: list[str], lab: Lab, remote: LabHost, cli_env: dict[str, str]
) -> None:
    command = shlex.join(
        [
            RJUPYTER,
            "start",
            remote.name,
            "-F",
            str(lab.ssh_config),
            "--venv",
            lab.jupyter_venv,
            "--no-open",
        ]
    )
    env_args = [f"{key}={cli_env[key]}" for key in ("PATH", "RJUPYTER_CONFIG", "HOME")]
    # bash, not sh: after Ctrl-C bash goes on when its child handled SIGINT (dash does not).
    script = f"{command}; echo EXIT=$?; exec sleep 600"
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-s",
            "demo",
            "-x",
            "110",
            "-y",
            "30",
            "env",
            *env_args,
            "bash",
            "-c",
            script,
        ],
        check=True,
    )
    assert wait_for(lambda: "kernels 0" in pane(tmux), 60), pane(tmux)
    screen = pane(tmux)
    (tmp_path / "screen-running.txt").write_text(screen)
    for step in ("connecting", "authenticating", "starting Jupyter", "tunnel ready"):
        assert step in screen
    assert "http://127.0.0.1:" in screen
    assert "connected" in screen
    assert "up 0:00:0" in screen
    subprocess.run([*tmux, "send-keys", "-t", "demo", "C-c"], check=True)
    # Stopping Jupyter takes seconds, more on a loaded machine.
    assert wait_for(lambda: "EXIT=" in pane(tmux), 90), pane(tmux)
    assert "EXIT=130" in pane(tmux)
    assert wait_for(lambda: remote.user_processes() == [], 10)


def comparable(notebook: Any) -> list[tuple[str, str, list[Any]]]:
    """What must match between two runs: sources and outputs (not timings or ids)."""
    return [
        (cell.cell_type, cell.source, [dict(output) for output in cell.get("outputs", [])])
        for cell in notebook.cells
    ]


def test_run_gives_the_same_notebook_as_the_api(
    tmp_path: Path,
    lab: Lab,
    remote: LabHost,
    lab_args: list[str],
    cli_env: dict[str, str],
    nb_options: dict[str, Any],
) -> None:
    source = Path(__file__).resolve().parent.parent / "examples" / "report.ipynb"
    by_cli = tmp_path / "cli.ipynb"
    result = run(
        [
            "run",
            remote.name,
            str(source),
            "-o",
            str(by_cli),
            "-p",
            "scale",
            "3",
            "--venv",
            lab.jupyter_venv,
            *lab_args,
        ],
        cli_env,
    )
    assert result.returncode == 0, result.stderr
    assert "executed" in result.stdout
    assert "✓ [1/" in result.stderr, "per-cell progress"
    with RemoteNotebook(remote.name, **nb_options) as nb:
        by_api = nb.run_notebook(source, tmp_path / "api.ipynb", parameters={"scale": 3})
    assert comparable(nbformat.read(by_cli, as_version=4)) == comparable(by_api)


def test_exec_streams_output_and_reports_remote_errors(
    lab: Lab, remote: LabHost, lab_args: list[str], cli_env: dict[str, str]
) -> None:
    base = ["exec", remote.name, "--venv", lab.jupyter_venv, *lab_args]
    ok = run([*base, "-c", "import os\nprint('uid', os.getuid())\n6 * 7"], cli_env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"uid {lab.uid}", "42"]
    failing = run([*base, "-c", "1 / 0"], cli_env)
    assert failing.returncode == 1
    assert "ZeroDivisionError" in failing.stderr
    assert "rjupyter: error: remote ZeroDivisionError: division by zero" in failing.stderr
    assert wait_for(lambda: remote.user_processes() == [], 10)


def test_quiet_verbose_and_the_browser(
    tmp_path: Path, lab: Lab, remote: LabHost, lab_args: list[str], cli_env: dict[str, str]
) -> None:
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {opened}\n")
    browser.chmod(0o755)
    env = {**cli_env, "BROWSER": str(browser)}
    process = spawn(
        ["-q", "start", remote.name, *lab_args, "--venv", lab.jupyter_venv, "--open"], env
    )
    url = first_line(process)
    assert wait_for(opened.exists, 10)
    # --open goes through open_browser(): the browser gets a private page, not the token.
    page = opened.read_text()
    assert page.startswith("file://")
    assert url.split("token=")[1] not in page, "the token is on the browser's command line"
    assert f'url={url}"' in Path(page[len("file://") :]).read_text(), "the page leads to the URL"
    status, err = interrupt(process)
    assert status == 130
    assert err.strip() == "", "--quiet: nothing but the URL"
    assert wait_for(lambda: remote.user_processes() == [], 10)
    loud = run(["-vv", "start", "nobody@127.0.0.1:2"], cli_env)
    assert loud.returncode == 1, "with -vv the traceback, as Python prints it"
    assert "Traceback" in loud.stderr
    assert "DEBUG" in loud.stderr


def test_ctrl_c_at_a_hidden_prompt_restores_echo(
    tmux: list[str], lab: Lab, cli_env: dict[str, str]
) -> None:
    """The password prompt runs in paramiko's thread with echo off; Ctrl-C ends the command
    from the main thread, and the terminal must come back with echo on."""
    host = lab.add_host("clikbd", auth_methods="keyboard-interactive")
    try:
        command = shlex.join([RJUPYTER, "list", host.name, "-F", str(lab.ssh_config)])
        env_args = [f"{key}={cli_env[key]}" for key in ("PATH", "RJUPYTER_CONFIG", "HOME")]
        env_args += [f"PYTHONPATH={cli_env['PYTHONPATH']}"] if "PYTHONPATH" in cli_env else []
        script = f"{command}; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -e echo -e -echo"
        subprocess.run(
            [
                *tmux,
                "new-session",
                "-d",
                "-s",
                "demo",
                "-x",
                "110",
                "-y",
                "30",
                "env",
                *env_args,
                "bash",
                "-c",
                f"{script}; exec sleep 600",
            ],
            check=True,
        )
        assert wait_for(lambda: "Password" in pane(tmux), 30), pane(tmux)
        subprocess.run([*tmux, "send-keys", "-t", "demo", "C-c"], check=True)
        assert wait_for(lambda: pane(tmux).rstrip().endswith("echo"), 30), pane(tmux)
        screen = pane(tmux)
        assert "EXIT=130" in screen
        assert screen.rstrip().splitlines()[-1] == "echo", "not -echo: " + screen
    finally:
        host.stop()
