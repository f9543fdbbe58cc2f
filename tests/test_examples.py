"""The examples are part of the product: each runs here against the lab, as a user would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import EXAMPLES, http_server, run_example, wait_for

from rjupyter.testing import Lab, LabHost


def test_basic_example(lab: Lab, remote: LabHost) -> None:
    result = run_example(
        "basic.py", remote.name, "-F", str(lab.ssh_config), "--venv", lab.jupyter_venv
    )
    assert result.returncode == 0, result.stderr
    assert "notebook ready: http://127.0.0.1:" in result.stdout
    assert "it answers" in result.stdout
    assert remote.user_processes() == [] or all(
        argv[0].startswith("sshd") for _, argv in remote.user_processes()
    )


@pytest.mark.parametrize("spares", [[], ["--spare-channels", "2"]], ids=["plain", "spares"])
def test_tunnel_example(lab: Lab, remote: LabHost, spares: list[str]) -> None:
    # The remote's own sshd as seen from the remote: its banner comes through the tunnel (with
    # spare channels, the banner sshd sent a spare before the client came). The forwarded
    # connections are the ones sshd sees from its own address: one, or the spares (and a refill).
    def forwarded() -> int:
        return remote.sshd_log().count(f"Connection from {remote.address} ")

    before = forwarded()
    result = run_example(
        "tunnel.py",
        remote.name,
        str(remote.port),
        "--remote-host",
        remote.address,
        "-F",
        str(lab.ssh_config),
        "--probe",
        *spares,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("forwarding 127.0.0.1:")
    assert result.stdout.splitlines()[1].startswith("SSH-2.0-OpenSSH")
    assert wait_for(lambda: forwarded() - before >= (2 if spares else 1), 10)
    if not spares:
        assert forwarded() - before == 1


def test_forward_example(lab: Lab, remote: LabHost) -> None:
    with http_server(remote) as port:
        result = run_example(
            "forward.py",
            remote.name,
            str(port),
            "--venv",
            lab.jupyter_venv,
            "-F",
            str(lab.ssh_config),
            "--probe",
        )
        assert result.returncode == 0, result.stderr
        assert "/jupyter.sock of" in result.stdout, "on the Unix socket"
        assert result.stdout.splitlines()[-1] == "it answers: HTTP 200"
        served = [pid for pid, argv in remote.user_processes() if "http.server" in argv]
        assert wait_for(lambda: [pid for pid, _ in remote.user_processes()] == served, 10)


def test_basic_example_reports_errors_in_one_line(lab: Lab) -> None:
    result = run_example("basic.py", "nobody@127.0.0.1:2", "-F", str(lab.ssh_config))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")


def test_lab_demo(lab: Lab) -> None:
    # The README's first command runs this; it builds its own lab beside the session's.
    result = run_example("lab_demo.py", "--app", "notebook")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GET /api/status through the tunnel -> 200" in result.stdout
    assert "lab torn down" in result.stdout


def test_keep_running_then_attach_examples(lab: Lab, remote: LabHost) -> None:
    started = run_example(
        "keep_running.py", remote.name, "-F", str(lab.ssh_config), "--venv", lab.jupyter_venv
    )
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("PID=")[1].split()[0])
    assert pid in [p for p, _ in remote.user_processes()]
    attached = run_example("attach.py", remote.name, "--pid", str(pid), "-F", str(lab.ssh_config))
    assert attached.returncode == 0, attached.stderr
    assert "left it running" in attached.stdout
    assert pid in [p for p, _ in remote.user_processes()]
    stopped = run_example(
        "attach.py", remote.name, "--pid", str(pid), "-F", str(lab.ssh_config), "--stop"
    )
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped it" in stopped.stdout
    assert wait_for(lambda: remote.user_processes() == [], 10)


def lab_arguments(lab: Lab, remote: LabHost) -> list[str]:
    return [remote.name, "-F", str(lab.ssh_config), "--venv", lab.jupyter_venv]


def test_execute_example(lab: Lab, remote: LabHost) -> None:
    result = run_example("execute.py", *lab_arguments(lab, remote))
    assert result.returncode == 0, result.stderr
    assert "running on" in result.stdout
    assert "Out[2]: 45" in result.stdout
    assert "Out[3]: 90" in result.stdout

    failing = run_example("execute.py", *lab_arguments(lab, remote), "-c", "1 / 0")
    assert failing.returncode == 1
    assert "remote ZeroDivisionError: division by zero\n" in failing.stderr
    assert "----> 1 1 / 0" in failing.stderr, "the remote traceback, as plain text"


def test_run_notebook_example(lab: Lab, remote: LabHost, tmp_path: Path) -> None:
    output = tmp_path / "report.out.ipynb"
    result = run_example(
        "run_notebook.py",
        *lab_arguments(lab, remote),
        str(EXAMPLES / "report.ipynb"),
        "-o",
        str(output),
        "-p",
        "scale",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert "[5/5] cell 5 ... ok" in result.stdout
    executed = nbformat.read(output, as_version=4)
    nbformat.validate(executed)
    assert executed.cells[2].source == "# Parameters\nscale = 3\n"
    assert executed.cells[3].outputs[0].text == "squares [0, 3, 12, 27, 48, 75]\n"
    assert "image/png" in executed.cells[4].outputs[0].data
    assert executed.cells[5].outputs[0].data["text/plain"] == "165"


def test_repl_style_example_leaves_nothing(lab: Lab, remote: LabHost) -> None:
    result = run_example(
        "repl_style.py", remote.name, "-F", str(lab.ssh_config), "--venv", lab.jupyter_venv
    )
    assert result.returncode == 0, result.stderr
    assert "notebook ready: http://127.0.0.1:" in result.stdout
    assert "42" in result.stdout
    assert wait_for(lambda: remote.user_processes() == [], 5), remote.user_processes()
    assert not list((lab.home / ".local/state/rjupyter").glob("*"))


def test_repl_style_example_notices_a_dead_server(lab: Lab, remote: LabHost) -> None:
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    argv = [sys.executable, str(EXAMPLES / "repl_style.py"), remote.name, "--watch"]
    argv += ["-F", str(lab.ssh_config), "--venv", lab.jupyter_venv]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert "notebook ready" in ready, process.communicate()[1]
        pid = int(ready.rsplit("pid ", 1)[1].rstrip(")\n"))
        assert process.stdout.readline().strip() == "42"  # it ran code; now it watches
        os.kill(pid, signal.SIGKILL)  # the server dies under the open notebook
        out, err = process.communicate(timeout=60)
    assert "connected: False" in out
    assert process.returncode == 1
    assert "exited" in err
    assert wait_for(lambda: remote.user_processes() == [], 5), remote.user_processes()
