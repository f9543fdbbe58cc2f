"""A real single-node Slurm for the lab: munged, slurmctld on the login host, slurmd on a node.

Debian's ``slurmctld``, ``slurmd`` and ``munge``, started by hand (no systemd) with everything in
the lab's workdir: config, munge key and socket, state, spool, logs and PID files. Nothing under
``/etc`` is touched: clients find the config through ``SLURM_CONF``, which the hosts' sshd sets
for every session. The controller runs in the login host's network namespace and slurmd in the
compute node's (entered with ``nsenter --net ... unshare --mount --uts``, which keeps the cgroup
mounts slurmd needs and gives the node its own host name). One munged in the root namespace
serves both: its socket is a file.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from ._errors import LabError
from ._host import LabHost
from ._procs import stop_popen, tail, wait_until

try:
    import pwd
except ImportError:  # not on Windows; the lab needs Linux (Lab says so)
    pwd = None  # type: ignore[assignment]

__all__ = ["SlurmCluster", "slurm_available", "start_slurm"]

logger = logging.getLogger(__name__)

_BINARIES = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch")
_READY_TIMEOUT = 30.0


def slurm_available() -> str | None:
    """Why the lab cannot run Slurm here, or None when it can."""
    missing = [path for path in _BINARIES if not Path(path).exists()]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install slurmctld slurmd munge)"
    return None


def _slurm_conf(directory: Path, controller: str, node: LabHost, node_name: str) -> str:
    cpus = os.cpu_count() or 1
    memory = 1024
    return "\n".join(
        [
            f"ClusterName=rjlab{node_name}",
            f"SlurmctldHost={socket.gethostname().split('.')[0]}({controller})",
            "SlurmUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={directory / 'munge' / 'munge.socket'}",
            f"StateSaveLocation={directory / 'state'}",
            f"SlurmdSpoolDir={directory / 'spool'}",
            f"SlurmctldPidFile={directory / 'slurmctld.pid'}",
            f"SlurmdPidFile={directory / 'slurmd.pid'}",
            f"SlurmctldLogFile={directory / 'slurmctld.log'}",
            f"SlurmdLogFile={directory / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/builtin",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            # Fast teardown and fast enforcement, for tests: a job that ended is forgotten after
            # MinJobAge; a cancelled or timed-out job gets SIGKILL KillWait s after SIGTERM.
            "MinJobAge=60",
            "KillWait=2",
            "InactiveLimit=0",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={node_name} NodeAddr={node.address} CPUs={cpus} "
            f"RealMemory={memory} State=UNKNOWN",
            f"PartitionName=debug Nodes={node_name} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


class SlurmCluster:
    """A running single-node Slurm: ``login`` runs slurmctld and the clients, ``node`` slurmd.

    Created by ``Lab.add_slurm``; the lab stops it (every daemon by PID) at teardown.
    """

    def __init__(self, *, directory: Path, login: LabHost, node: LabHost, node_name: str) -> None:
        self.directory = directory
        self.login = login
        self.node = node
        self.node_name = node_name
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def conf(self) -> Path:
        """The slurm.conf every client and daemon reads (``SLURM_CONF``)."""
        return self.directory / "slurm.conf"

    def run(self, argv: Sequence[str], *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command (``squeue``, ``sbatch``, ``scancel`` ...) on the login host.

        Raises:
            subprocess.TimeoutExpired: The command outlived ``timeout``.
        """
        return self.login.run(["env", f"SLURM_CONF={self.conf}", *argv], timeout=timeout)

    def jobs(self) -> list[str]:
        """Return ``"<id> <state>"`` for every job ``squeue`` still shows (any user).

        Raises:
            LabError: squeue failed.
        """
        result = self.run(["squeue", "-h", "-o", "%i %T"])
        if result.returncode != 0:
            raise LabError(f"squeue failed: {result.stderr.strip()}")
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    def logs(self) -> str:
        """The tails of slurmctld's and slurmd's logs (for failure reports)."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.directory / name
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {name} ---\n{tail(text, 30)}")
        return "\n".join(parts)

    def start(self) -> None:
        """Write the config, start munged, slurmctld and slurmd; return once the node is idle.

        Raises:
            LabError: A daemon did not start, or the node did not become idle in time.
        """
        munge = pwd.getpwnam("munge")
        munge_dir = self.directory / "munge"
        self.directory.mkdir(mode=0o755)
        for sub in ("state", "spool"):
            (self.directory / sub).mkdir(mode=0o700)
        munge_dir.mkdir(mode=0o755)
        os.chown(munge_dir, munge.pw_uid, munge.pw_gid)
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        os.chown(key, munge.pw_uid, munge.pw_gid)
        controller = self.node.link_peer_address
        if controller is None:
            raise LabError("the lab's Slurm node must sit in its own network namespace")
        self.conf.write_text(_slurm_conf(self.directory, controller, self.node, self.node_name))
        self._spawn(
            [
                *("setpriv", f"--reuid={munge.pw_uid}", f"--regid={munge.pw_gid}"),
                "--clear-groups",
                *("/usr/sbin/munged", "-F", "--force", f"--socket={munge_dir / 'munge.socket'}"),
                f"--key-file={key}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={munge_dir / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            "munged",
        )
        self._wait("munged", (munge_dir / "munge.socket").exists)
        env_conf = f"SLURM_CONF={self.conf}"
        login_ns = f"--net=/run/netns/{self.login.netns}"
        node_ns = f"--net=/run/netns/{self.node.netns}"
        self._spawn(["nsenter", login_ns, "--", "env", env_conf, "slurmctld", "-D"], "slurmctld")
        start_node = 'hostname "$1" && exec slurmd -D -N "$1"'
        self._spawn(
            [
                *("nsenter", node_ns, "--", "unshare", "--mount", "--uts", "--"),
                *("env", env_conf, "/bin/sh", "-c", start_node, "sh", self.node_name),
            ],
            "slurmd",
        )
        self._wait("the node to become idle", self._node_idle)
        logger.info("slurm up: node %s idle", self.node_name)

    def _node_idle(self) -> bool:
        result = self.run(["sinfo", "-h", "-N", "-o", "%T"], timeout=10)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _spawn(self, argv: list[str], name: str) -> None:
        log = (self.directory / f"{name}.out").open("ab")
        with log:
            process = subprocess.Popen(  # noqa: S603 - an argv list, no shell
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self._processes.append(process)

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        def check() -> bool:
            for process in self._processes:
                if process.poll() is not None:
                    raise LabError(f"{process.args!r} exited while waiting for {what}")
            return bool(ready())

        try:
            if not wait_until(check, _READY_TIMEOUT):
                raise LabError(f"timed out waiting for {what}")
        except LabError as exc:
            raise LabError(f"slurm did not start: {exc}\n{self.logs()}") from exc

    def stop(self) -> None:
        """Stop slurmd, slurmctld and munged (newest first), each by PID. Idempotent."""
        while self._processes:
            stop_popen(self._processes.pop())


def start_slurm(directory: Path, *, login: LabHost, node: LabHost) -> SlurmCluster:
    """Start a cluster whose controller runs on ``login`` and whose only node is ``node``.

    Raises:
        LabError: Slurm is not installed or did not come up (what started is stopped again).
    """
    if reason := slurm_available():
        raise LabError(f"cannot start slurm: {reason}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", node.name):
        raise LabError(f"node name {node.name!r} is not a valid Slurm node name")
    cluster = SlurmCluster(directory=directory, login=login, node=node, node_name=node.name)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
