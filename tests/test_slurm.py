"""Notebooks in Slurm jobs, against a real single-node Slurm in the lab.

The login host runs slurmctld and the clients; the compute node (slurmd, its own sshd) sits in a
network namespace reachable only from the login host, so a passing test proves the login ->
compute hop. Figures (submit to ready, cancel and failure latencies) are logged at INFO.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from helpers import http, keygen, run_example, run_in_kernel, wait_for

from benchmarks._slurm import ROW, slurm_rows
from rjupyter import HostKeyError, JobError, RemoteNotebook, Slurm
from rjupyter._launch._slurm import parse_job
from rjupyter._ssh._connection import SSHConnection
from rjupyter.testing import Lab
from rjupyter.testing._slurm import SlurmCluster, slurm_available

logger = logging.getLogger(__name__)
NODE_LOGGER = "rjupyter._ssh._node"


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> SlurmCluster:
    if (reason := slurm_available()) is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm tests, but {reason}")
        pytest.skip(reason)
    return lab.slurm or lab.add_slurm()


@pytest.fixture(autouse=True)
def node_access(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Log the way each node connection of the test was made (``direct hop through login`` or
    ``login-node ssh on login``), for the record; commands run in a subprocess (the CLI, the
    example) are not seen here."""
    caplog.set_level(logging.DEBUG, logger=NODE_LOGGER)
    caplog.set_level(logging.DEBUG, logger="rjupyter._ssh._knownhosts")
    yield
    seen = paths_seen(caplog, "call")
    logger.info("node access: %s", seen or "no node connection in this process")


def paths_seen(caplog: pytest.LogCaptureFixture, phase: str | None = None) -> list[str]:
    records = caplog.records if phase is None else caplog.get_records(phase)  # type: ignore[arg-type]
    return [
        record.getMessage().partition(": ")[2]
        for record in records
        if record.name == NODE_LOGGER and record.getMessage().startswith("node access path")
    ]


@pytest.fixture
def job_options(lab: Lab, cluster: SlurmCluster) -> Iterator[dict[str, Any]]:
    yield {"ssh_config": lab.ssh_config, "venv": lab.jupyter_venv, "timeout": 60.0}
    leftover = cluster.jobs()
    if leftover:
        cluster.run(["scancel", "-u", lab.user])
    assert leftover == [], f"jobs left behind: {leftover}"


def job_and_host_in_a_kernel(nb: RemoteNotebook) -> list[str]:
    """``SLURM_JOB_ID`` and the host name, as a new kernel of ``nb`` sees them."""
    status, body = http(f"{nb.base_url}api/kernels", token=nb.token, method="POST")
    assert status == 201
    printed = run_in_kernel(
        nb.base_url,
        nb.token,
        json.loads(body)["id"],
        "import os, socket; print(os.environ['SLURM_JOB_ID'], socket.gethostname())",
    )
    return printed.split()


def raised_within(seconds: float, probe: Any) -> JobError:
    """Call ``probe`` until it raises JobError; fail after ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            probe()
        except JobError as error:
            return error
        time.sleep(0.1)
    pytest.fail(f"no JobError within {seconds} s")


def test_notebook_runs_in_a_job_on_the_node(
    cluster: SlurmCluster, job_options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    steps: list[tuple[str, str]] = []
    began = time.monotonic()
    with RemoteNotebook(
        "login",
        scheduler=Slurm(time="10", cpus=1),
        progress=lambda step, detail: steps.append((step, detail)),
        **job_options,
    ) as nb:
        logger.info("slurm: submit to ready in %.1f s", time.monotonic() - began)
        job_id = nb.server.job_id
        assert job_id is not None
        assert http(nb.url)[0] == 200
        assert job_and_host_in_a_kernel(nb) == [job_id, cluster.node_name]
        # Jupyter listens on a private socket of the node, forwarded by the node's sshd.
        sock = nb.remote_socket
        assert sock is not None
        assert nb.remote_port is None
        assert stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode) == 0o700
        assert f"{job_id} RUNNING" in cluster.jobs()
        leaving = time.monotonic()
    logger.info("slurm: leaving the block took %.1f s", time.monotonic() - leaving)
    assert cluster.jobs() == []
    assert wait_for(lambda: not os.path.exists(os.path.dirname(sock)), 10), "the job's dir"
    queue = [detail for step, detail in steps if step == "queue"]
    assert any(detail.startswith(f"job {job_id} RUNNING on node") for detail in queue), queue
    assert ("node", cluster.node_name) in steps
    # The client's ssh_config names only the login host: the node was reached with the login's
    # user and key, its host key found in the user's known_hosts on the login host.
    assert paths_seen(caplog) == ["direct hop through login"]
    assert "found in the known hosts of login" in caplog.text


@pytest.mark.parametrize("login_shell", [True, False])
def test_ready_is_followed_as_events_not_at_the_poll_period(
    cluster: SlurmCluster, job_options: dict[str, Any], login_shell: bool
) -> None:
    # With a state look only every 60 s, a launch that waited for looks would take a minute;
    # the job's output file is followed as it grows, so Jupyter's URL is seen when printed.
    began = time.monotonic()
    with RemoteNotebook(
        "login", scheduler=Slurm(time="5", poll=60), login_shell=login_shell, **job_options
    ) as nb:
        took = time.monotonic() - began
        assert http(nb.url)[0] == 200
    logger.info("slurm: ready in %.1f s with poll=60", took)
    assert took < 30
    assert cluster.jobs() == []


def test_pending_job_shows_its_queue_state_and_ctrl_c_cancels_it(
    lab: Lab, cluster: SlurmCluster, job_options: dict[str, Any]
) -> None:
    cpus = os.cpu_count() or 1
    blocker = cluster.run(
        [
            *("sbatch", "--parsable", f"--cpus-per-task={cpus}", "--time=5"),
            *("-o", "/dev/null", "--wrap", "sleep 300"),
        ]
    ).stdout.strip()
    assert blocker.isdigit()
    seen: list[str] = []
    interrupted: list[float] = []

    def on_step(step: str, detail: str) -> None:
        if step == "queue":
            seen.append(detail)
            if "PENDING (Resources)" in detail and not interrupted:
                interrupted.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C

    try:
        with (
            pytest.raises(KeyboardInterrupt),
            RemoteNotebook("login", scheduler=Slurm(poll=0.5), progress=on_step, **job_options),
        ):
            pytest.fail("the notebook started although the node was busy")
        logger.info("slurm: Ctrl-C to job ended in %.1f s", time.monotonic() - interrupted[0])
        assert cluster.jobs() == [f"{blocker} RUNNING"], seen
        assert any("PENDING (Resources)" in detail for detail in seen), seen
        assert any("position 1 in the queue" in detail for detail in seen), seen
    finally:
        cluster.run(["scancel", blocker])
        end = time.monotonic() + 30
        while cluster.jobs() and time.monotonic() < end:
            time.sleep(0.2)


def test_job_cancelled_from_outside_raises_job_error(
    cluster: SlurmCluster, job_options: dict[str, Any]
) -> None:
    with (  # noqa: PT012
        pytest.raises(JobError) as caught,
        RemoteNotebook("login", scheduler=Slurm(time="10", poll=0.5), **job_options) as nb,
    ):
        job_id = nb.server.job_id
        assert job_id is not None
        cancelled = time.monotonic()
        cluster.run(["scancel", job_id], timeout=10)
        error = raised_within(30, lambda: nb.url)
        logger.info("slurm: scancel to JobError in %.1f s", time.monotonic() - cancelled)
        raise error
    assert caught.value.state == "CANCELLED"
    assert caught.value.job_id == job_id
    assert cluster.jobs() == []


def test_refused_job_and_jupyter_crash_in_the_job(
    cluster: SlurmCluster, job_options: dict[str, Any]
) -> None:
    with pytest.raises(JobError, match="refused") as refused:
        RemoteNotebook("login", scheduler=Slurm(partition="nonesuch"), **job_options).start()
    assert refused.value.state == "REJECTED"
    assert refused.value.job_id is None
    assert "partition" in refused.value.reason
    with pytest.raises(JobError, match="cannot start Jupyter") as crashed:
        RemoteNotebook(
            "login", scheduler=Slurm(time="5", poll=0.5), setup=["false"], **job_options
        ).start()
    assert crashed.value.job_id is not None
    assert "setup line 1" in str(crashed.value)


def test_keep_running_then_attach_by_job_id_until_the_time_limit(
    cluster: SlurmCluster, job_options: dict[str, Any]
) -> None:
    with RemoteNotebook(
        "login", scheduler=Slurm(time="1", poll=0.5), keep_running=True, **job_options
    ) as nb:
        started = time.monotonic()
        job_id = nb.server.job_id
        assert job_id is not None
    handle = nb.close()
    assert handle is not None
    assert f"job_id={job_id!r}" in str(handle)
    assert f"{job_id} RUNNING" in cluster.jobs()
    with (  # noqa: PT012
        pytest.raises(JobError) as caught,
        RemoteNotebook.attach("login", job_id=job_id, ssh_config=job_options["ssh_config"]) as (
            again
        ),
    ):
        assert again.server.job_id == job_id
        assert http(again.url)[0] == 200
        error = raised_within(150, lambda: again.url)
        elapsed = time.monotonic() - started
        logger.info("slurm: 1-minute job raised %s after %.0f s", error.state, elapsed)
        raise error
    assert caught.value.state == "TIMEOUT"
    assert "time limit" in str(caught.value)
    assert cluster.jobs() == []


def test_slurm_example(lab: Lab, cluster: SlurmCluster) -> None:
    local = lab.known_hosts.read_text()
    result = run_example(
        "slurm.py",
        "login",
        "--slurm",
        "--time=5 --job-name=example",
        "--venv",
        lab.jupyter_venv,
        "-F",
        str(lab.ssh_config),
        "--node-host-key-policy",
        "accept-new",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "queue: job" in result.stdout
    # The node's key is known on the login host: kept there, nothing recorded locally.
    assert lab.known_hosts.read_text() == local
    assert "answers: 0 kernels" in result.stdout
    assert cluster.jobs() == []


def test_cli_start_with_slurm_flag_and_profile(
    tmp_path: Path, lab: Lab, cluster: SlurmCluster, job_options: dict[str, Any]
) -> None:
    rjupyter = str(Path(sys.executable).with_name("rjupyter"))
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    profile = tmp_path / "config.toml"
    profile.write_text(
        f'[hosts.login]\nvenv = "{lab.jupyter_venv}"\nslurm = "--time=10"\n'
        'node_host_key_policy = "reject"\n'  # the node is known on the login host
    )
    env["RJUPYTER_CONFIG"] = str(profile)
    for number, extra in enumerate(
        [[], ["--slurm", "--time=10 --job-name=from-flag", "--node-host-key-policy", "accept-new"]]
    ):
        log = tmp_path / f"stderr-{number}"  # a file: -vv writes more than a pipe holds
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [rjupyter, "-vv", "start", "login", "-F", str(lab.ssh_config), "--json", *extra],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        assert process.stdout is not None
        facts = json.loads(process.stdout.readline())
        assert http(facts["url"])[0] == 200
        assert len(cluster.jobs()) == 1
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
        err = log.read_text()
        assert process.returncode == 130, err[-3000:]
        assert cluster.jobs() == []
        assert "node access path for node: direct hop through login" in err
        assert facts["url"].partition("token=")[2] not in err  # -vv logs no token


@pytest.fixture
def cluster_key(lab: Lab) -> Iterator[Path]:
    """A key in the user's home on the login host only, which the hosts accept meanwhile."""
    key = lab.user_key
    before = lab.authorized_keys.read_text()
    lab.authorized_keys.write_text(before + key.with_name("id_ed25519.pub").read_text())
    yield key
    lab.authorized_keys.write_text(before)


def test_a_node_refusing_the_clients_key_is_reached_by_the_login_nodes_ssh(
    tmp_path: Path,
    cluster: SlurmCluster,
    job_options: dict[str, Any],
    cluster_key: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The user's config names a key for the node that the node refuses: the client's hop
    # fails, and the login host's own ssh, with the key in the home there, gets in.
    refused = keygen(tmp_path / "refused")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host node\n  IdentityFile {refused}\n  IdentitiesOnly yes\n\n"
        + job_options["ssh_config"].read_text()
    )
    options = {**job_options, "ssh_config": config}
    with RemoteNotebook("login", scheduler=Slurm(time="10"), **options) as nb:
        job_id = nb.server.job_id
        assert job_and_host_in_a_kernel(nb) == [job_id, cluster.node_name]
        assert http(nb.url)[0] == 200
    assert paths_seen(caplog) == ["login-node ssh on login"]
    assert cluster.jobs() == []
    assert wait_for(  # the private sshd ends with the session
        lambda: not [argv for _, argv in cluster.node.user_processes() if "hop" in str(argv)]
    )


def test_node_host_key_policy_never_weakens_the_login_hosts_check(
    tmp_path: Path, cluster: SlurmCluster, job_options: dict[str, Any]
) -> None:
    unknown = tmp_path / "known_hosts"
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host login\n  UserKnownHostsFile {unknown}\n\n" + job_options["ssh_config"].read_text()
    )
    notebook = RemoteNotebook(
        "login",
        scheduler=Slurm(time="10", node_host_key_policy="accept-new"),
        **{**job_options, "ssh_config": config},
    )
    with pytest.raises(HostKeyError, match="is not known") as caught:
        notebook.start()
    assert caught.value.host == "login"
    assert not unknown.exists()  # nothing accepted for the login host
    assert cluster.jobs() == []


_WHERE = "import os, socket; print('ran-in', os.environ.get('SLURM_JOB_ID'), socket.gethostname())"


def test_cli_run_and_exec_run_in_a_job_by_flag_and_by_profile(
    tmp_path: Path, lab: Lab, cluster: SlurmCluster, job_options: dict[str, Any]
) -> None:
    rjupyter = str(Path(sys.executable).with_name("rjupyter"))
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    notebook = tmp_path / "where.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_WHERE)]), notebook)
    with_slurm = tmp_path / "slurm.toml"
    with_slurm.write_text(f'[hosts.login]\nvenv = "{lab.jupyter_venv}"\nslurm = "--time=10"\n')
    without = tmp_path / "plain.toml"
    without.write_text(f'[hosts.login]\nvenv = "{lab.jupyter_venv}"\n')
    flag = ["--slurm", "--time=10 --job-name=from-flag"]
    output = tmp_path / "where.out.ipynb"
    commands = {
        "exec": ["-c", _WHERE],
        "run": [str(notebook), "-o", str(output)],
    }
    for command, args in commands.items():
        for profile, extra in ((with_slurm, []), (without, flag)):
            began = time.monotonic()
            result = subprocess.run(
                [rjupyter, command, "login", "-F", str(lab.ssh_config), *args, *extra],
                capture_output=True,
                text=True,
                env={**env, "RJUPYTER_CONFIG": str(profile)},
                stdin=subprocess.DEVNULL,
                timeout=120,
                check=False,
            )
            logger.info("slurm: %s %s took %.1f s", command, extra, time.monotonic() - began)
            assert result.returncode == 0, result.stdout + result.stderr
            if command == "run":
                cell = nbformat.read(output, as_version=4).cells[0]
                printed = "".join(out.get("text", "") for out in cell.outputs)
            else:
                printed = result.stdout
            word, job_id, host = printed.split()
            assert (word, host) == ("ran-in", cluster.node_name), printed
            assert job_id.isdigit()
            assert cluster.jobs() == []


def test_parse_job_reads_the_queue_position() -> None:
    line = (
        "JobId=7 JobName=rjupyter JobState=PENDING Reason=Priority StartTime=Unknown "
        "StdOut=/h/slurm-7.log\nRJ-QUEUE-POSITION 3"
    )
    status = parse_job("7", line)
    assert (status.state, status.reason, status.position) == ("PENDING", "Priority", 3)
    assert status.describe() == "job 7 PENDING (Priority), position 3 in the queue"
    assert status.output_file == "/h/slurm-7.log"


@pytest.mark.parametrize(
    ("output", "job_id"),
    [
        ("12345\n", "12345"),
        ("12345;cluster\n", "12345"),
        ("site: accounting checked\n12345\nsite: have a nice day\n", "12345"),
        ("warning: old option\n77;gpu\n", "77"),
        ("sbatch: error: invalid partition\n", None),
        ("", None),
        ("job 12 submitted\n", None),
    ],
)
def test_the_job_id_is_read_from_the_parsable_line(output: str, job_id: str | None) -> None:
    assert Slurm().parse_submitted(output) == job_id


def test_a_job_whose_submit_reports_failure_after_submitting_is_cancelled(
    cluster: SlurmCluster, job_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A site's sbatch wrapper: prints after the id, then exits non-zero. The job exists all the
    # same; the failed start cancels it (job_options checks that no job is left).
    real = Slurm.submit_script

    def wrapped(self: Slurm, batch_script: str, name: str) -> str:
        return real(self, batch_script, name) + "echo 'site: quota warning'\nexit 3\n"

    monkeypatch.setattr(Slurm, "submit_script", wrapped)
    with pytest.raises(JobError, match="refused"):
        RemoteNotebook("login", scheduler=Slurm(time="10"), **job_options).start()


def test_ctrl_c_during_the_submit_round_trip_leaves_no_job(
    cluster: SlurmCluster, job_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C just as sbatch's answer is on its way: the job exists, its id never arrived. It is
    # found by the name the client gave it and cancelled.
    real = SSHConnection.run

    def interrupted(self: SSHConnection, script: str, *args: Any, **kwargs: Any) -> Any:
        result = real(self, script, *args, **kwargs)
        if "sbatch --parsable" in script:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(SSHConnection, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        RemoteNotebook("login", scheduler=Slurm(time="10"), **job_options).start()
    assert cluster.jobs() == []


def test_the_slurm_benchmark_runs_as_users_reach_the_node(lab: Lab, cluster: SlurmCluster) -> None:
    """``python -m benchmarks --slurm`` against the lab's login-only ssh_config: both sides reach
    the node and come back with a time (a smoke run; the ratio is the benchmark's business)."""
    rows, samples = slurm_rows(lab, 1)
    assert [row.name for row in rows] == [ROW]
    assert all(len(values) == 1 and values[0] > 0 for values in samples.values()), samples
    assert cluster.jobs() == []
