"""Slurm, the pure part: job options, the batch script, the remote scripts, reading job states.

Nothing here touches the network. The batch script starts Jupyter on the compute node's loopback
with the same environment lines as a plain launch (``_scripts.environment_lines``: user strings
are data, ``setup`` lines are shell code by design) and prints the usual markers to the job's
output file. That file lies in rjupyter's state directory in the (shared) home and is created
with ``umask 077`` at submit time, so only its owner can read the token printed there.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._server._login import login_script
from .._server._scripts import (
    STATE_DIR,
    environment_lines,
    preamble_lines,
    server_command,
    socket_lines,
    whole,
)
from .._server._startup import EXIT_MARKER, NODE_MARKER, PID_MARKER
from ._scheduler import OUTPUT_MARKER, JobStatus, Scheduler

__all__ = [
    "ACTIVE_STATES",
    "CANCEL_SCRIPT",
    "FOLLOW_SCRIPT",
    "FOLLOW_STEP",
    "NAMED_SCRIPT",
    "POLL_SCRIPT",
    "Slurm",
    "batch_script",
    "parse_job",
    "submit_script",
]

#: States of a job that has not ended yet (``COMPLETING``: ended, still being cleaned up).
ACTIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "COMPLETING", "REQUEUED", "RESIZING"}
)
_FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z:/]*)=(\S*)")
_TIME = re.compile(r"(\d+-)?\d{1,2}(:\d{2}){0,2}|\d+|UNLIMITED|INFINITE")


#: ``sbatch --parsable`` prints ``id`` or ``id;cluster`` on a line of its own.
_PARSABLE = re.compile(r"^(\d+)(?:;\S+)?$", re.M)
_NAME = re.compile(r"[A-Za-z0-9-]+")
_POSITION = re.compile(r"^RJ-QUEUE-POSITION (\d+)$", re.M)

#: Args: job id. Prints the job's ``scontrol`` line, its place among the pending jobs (in
#: priority order) while it waits, then the tail of its output file.
POLL_SCRIPT = f"""\
line=$(scontrol show job -o "$1" 2>&1)
printf '%s\\n' "$line"
case "$line" in *JobState=PENDING*)
  pos=$(squeue -h -t PENDING --sort=-p,i -o %i 2>/dev/null | grep -n -x -- "$1" | cut -d: -f1)
  [ -n "$pos" ] && printf 'RJ-QUEUE-POSITION %s\\n' "$pos";;
esac
printf '%s\\n' {OUTPUT_MARKER}
out=$(printf '%s\\n' "$line" | sed -n 's/.* StdOut=\\([^ ]*\\).*/\\1/p')
[ -n "$out" ] && [ -r "$out" ] && tail -c 65536 -- "$out"
exit 0
"""

#: Seconds between a follow's looks at a file that is not there yet (cheap: no RPC).
FOLLOW_STEP = 0.1
_ACTIVE_CASE = "|".join(f"*JobState={state}[!A-Z_]*" for state in sorted(ACTIVE_STATES))

#: Args: job id, event mark, looks between state queries. Follows the job as events: the job's
#: output file from its first line as it grows (``tail -f``, which uses inotify where the file
#: system has it and looks every 0.1 s where not), from the moment it exists; and the job's
#: ``scontrol`` line (with its queue position while pending), printed after the mark whenever
#: its state, reason or node changes, at once when the output file appears. Once the job
#: ended it prints its last state line and exits. Its stdin stays open while rjupyter
#: follows: when the channel closes, the follow ends too.
FOLLOW_SCRIPT = f"""\
id=$1 mark=$2 every=$3
nap() {{ sleep {FOLLOW_STEP} 2>/dev/null || sleep 1; }}
exec 3<&0
cat <&3 >/dev/null 2>&1 & rj_eof=$!
exec 3<&-
out= follower= last= n=0 next=0
while kill -0 "$rj_eof" 2>/dev/null; do
  if [ -z "$follower" ] && [ -n "$out" ] && [ -e "$out" ]; then
    if tail -s 0.1 -n 0 /dev/null >/dev/null 2>&1; then
      tail -n +1 -f -s 0.1 -- "$out" 2>/dev/null & follower=$!
    else
      tail -n +1 -f -- "$out" 2>/dev/null & follower=$!
    fi
    next=$n
  fi
  if [ "$n" -ge "$next" ]; then
    line=$(scontrol show job -o "$id" 2>&1 | head -n 1)
    [ -n "$out" ] || out=$(printf '%s\\n' "$line" | sed -n 's/.* StdOut=\\([^ ]*\\).*/\\1/p')
    pos=
    case "$line" in *JobState=PENDING*)
      pos=$(squeue -h -t PENDING --sort=-p,i -o %i 2>/dev/null | grep -n -x -- "$id" \\
        | cut -d: -f1);;
    esac
    case "$line" in
      {_ACTIVE_CASE}) ;;
      *) [ -n "$follower" ] && sleep 0.3  # the follower prints the job's last lines first
         printf '%s %s\\n' "$mark" "$line"; break;;
    esac
    key=$(printf '%s\\n' "$line" | grep -o -E '(JobState|Reason|BatchHost)=[^ ]*' | tr '\\n' ' ')
    if [ "$key$pos" != "$last" ]; then
      last="$key$pos"
      printf '%s %s RjQueuePosition=%s\\n' "$mark" "$line" "$pos"
    fi
    next=$((n + every))
  fi
  nap; n=$((n + 1))
done
[ -n "$follower" ] && kill "$follower" 2>/dev/null
kill "$rj_eof" 2>/dev/null
exit 0
"""

#: Args: job name. Prints the ids of the user's jobs of that name, one a line.
NAMED_SCRIPT = """\
squeue -h -u "$(id -un)" -n "$1" -o %i 2>/dev/null
exit 0
"""

#: Args: job id. Cancels the job (a job already ended is fine).
CANCEL_SCRIPT = """\
scancel "$1" 2>&1
exit 0
"""

_ENDED = {
    "CANCELLED": "was cancelled (scancel, or an administrator)",
    "TIMEOUT": "reached its time limit; ask for more with Slurm(time=...)",
    "FAILED": "failed",
    "COMPLETED": "ended: Jupyter exited",
    "NODE_FAIL": "ended because its node failed",
    "OUT_OF_MEMORY": "ran out of memory; ask for more with Slurm(mem=...)",
    "PREEMPTED": "was preempted by a job of higher priority",
    "BOOT_FAIL": "could not start: its node failed to boot",
    "DEADLINE": "reached its deadline",
    "GONE": "is no longer known to Slurm (it ended a while ago)",
}


@dataclass(frozen=True)
class Slurm(Scheduler):
    """Run the notebook in a Slurm batch job on a compute node, reached through the login node.

    Pass it as ``RemoteNotebook("login-node", scheduler=Slurm(...))``. Each option becomes the
    ``sbatch`` option of the same name; None leaves it to the site's default.

    Args:
        partition: ``--partition``.
        time: ``--time``, e.g. ``"02:00:00"`` or ``"30"`` (minutes).
        cpus: ``--cpus-per-task``.
        mem: ``--mem``, e.g. ``"8G"``.
        gres: ``--gres``, e.g. ``"gpu:1"``.
        account: ``--account``.
        qos: ``--qos``.
        extra: More ``sbatch`` arguments, one per item, e.g. ``["--constraint=a100"]``.
        queue_timeout: Seconds to wait while the job is queued; None (default) waits until
            it starts (Ctrl-C cancels the job).
        poll: Seconds between looks at the job's state: by the script on the login node that
            follows the job until Jupyter is ready (the output file is followed as it grows,
            with no wait), then from here while the notebook runs (every two ``poll``).
        node_host_key_policy: For the compute node only: ``"accept-new"`` accepts (and records
            in the local known_hosts) a node key that neither the local known_hosts nor the
            cluster's known hosts on the login node list; a key that mismatches either is
            still refused. ``"reject"`` refuses it. None (default) follows the connection's
            ``host_key_policy``. The login node's and jump hosts' checks are never changed.

    Raises:
        ValueError: An option is malformed (``time``, ``cpus``, a value with a newline ...).
    """

    partition: str | None = None
    time: str | None = None
    cpus: int | None = None
    mem: str | None = None
    gres: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: Sequence[str] = field(default=())
    queue_timeout: float | None = None
    poll: float = 1.0
    node_host_key_policy: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.extra, str):
            raise TypeError("extra takes a sequence of sbatch arguments; see Slurm.parse")
        object.__setattr__(self, "extra", tuple(self.extra))
        if self.time is not None and not _TIME.fullmatch(self.time):
            raise ValueError(f"time must look like 'MM', 'HH:MM:SS', 'D-HH'; got {self.time!r}")
        if self.cpus is not None and self.cpus < 1:
            raise ValueError(f"cpus must be at least 1; got {self.cpus}")
        if self.node_host_key_policy not in (None, "reject", "accept-new"):
            raise ValueError(
                "node_host_key_policy must be 'reject' or 'accept-new'; "
                f"got {self.node_host_key_policy!r}"
            )
        if not self.poll > 0 or (self.queue_timeout is not None and not self.queue_timeout > 0):
            raise ValueError("poll and queue_timeout must be positive")
        for value in self.sbatch_args():
            if "\n" in value or "\0" in value:
                raise ValueError(f"sbatch arguments cannot hold newlines: {value!r}")

    @classmethod
    def parse(cls, text: str) -> Slurm:
        """Options written as on the ``sbatch`` command line: ``"--partition=gpu --time=2:00:00"``.

        Raises:
            ValueError: ``text`` is not valid shell-like quoting.
        """
        return cls(extra=tuple(shlex.split(text)))

    def sbatch_args(self) -> list[str]:
        """The ``sbatch`` arguments for these options (each one argument, never shell code)."""
        named = {
            "partition": self.partition,
            "time": self.time,
            "cpus-per-task": None if self.cpus is None else str(self.cpus),
            "mem": self.mem,
            "gres": self.gres,
            "account": self.account,
            "qos": self.qos,
        }
        args = [f"--{name}={value}" for name, value in named.items() if value is not None]
        return args + list(self.extra)

    # -- the Scheduler dialect ---------------------------------------------------------------

    name = "Slurm"
    submit_command = "sbatch"
    poll_script = POLL_SCRIPT
    follow_script = FOLLOW_SCRIPT
    follow_step = FOLLOW_STEP
    cancel_script = CANCEL_SCRIPT
    ended_reasons = _ENDED

    def batch_script(
        self,
        *,
        app: str,
        port: int,
        workdir: str | None,
        venv: str | None,
        conda_env: str | None,
        setup: Sequence[str],
        jupyter: str,
        unix_socket: bool = False,
        login_shell: bool = True,
    ) -> str:
        return batch_script(
            app=app,
            port=port,
            workdir=workdir,
            venv=venv,
            conda_env=conda_env,
            setup=setup,
            jupyter=jupyter,
            unix_socket=unix_socket,
            login_shell=login_shell,
        )

    named_script = NAMED_SCRIPT

    def submit_script(self, batch_script: str, name: str) -> str:
        return submit_script(batch_script, name)

    def submit_args(self) -> list[str]:
        return self.sbatch_args()

    def parse_submitted(self, output: str) -> str | None:
        # The --parsable line, wherever it is: a site's wrapper may print before or after it.
        found = _PARSABLE.search(output)
        return found.group(1) if found else None

    def parse_status(self, job_id: str, text: str) -> JobStatus:
        return parse_job(job_id, text)

    def cancel_command(self, job_id: str) -> str:
        return f"scancel {job_id}" if job_id.isdigit() else f"scancel --name={job_id}"

    def refusal_hint(self) -> str:
        return (
            "Check the Slurm options (partition, account, qos, time) with `sinfo` and "
            "`sacctmgr show assoc` there"
        )


def parse_job(job_id: str, text: str) -> JobStatus:
    """Read one ``scontrol show job -o`` line (and the poll script's queue position line);
    ``GONE`` when Slurm does not know the job."""
    position = _POSITION.search(text)
    fields = dict(_FIELD.findall(_POSITION.sub("", text)))
    if "JobState" not in fields:
        return JobStatus(job_id=job_id, state="GONE", reason=text.strip()[:200])
    start = fields.get("StartTime", "")
    return JobStatus(
        job_id=job_id,
        state=fields["JobState"],
        active=fields["JobState"] in ACTIVE_STATES,
        reason=fields.get("Reason", ""),
        node=fields.get("BatchHost", "") if fields.get("BatchHost") != "(null)" else "",
        start_time=None if start in ("", "Unknown", "None", "(null)") else start,
        output_file=fields.get("StdOut", ""),
        exit_code=fields.get("ExitCode", ""),
        position=_position(position.group(1) if position else fields.get("RjQueuePosition")),
    )


def _position(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


#: Submits the batch script (on stdin, after the first line) with the arguments given; prints
#: the job id. ``umask 077`` first: Slurm creates the output file with the submitting umask.
def submit_script(job: str, name: str = "rjupyter") -> str:
    """The login-node script that submits ``job`` with ``sbatch --parsable "$@"``, named
    ``name`` (letters, digits and ``-``: found again by it if the submit is cut short).

    Raises:
        ValueError: ``name`` has other characters.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"a job name of letters, digits and '-' only; got {name!r}")
    end = f"RJUPYTER_JOB_{secrets.token_hex(8)}"
    return "\n".join(
        [
            "umask 077",
            f"rj_state={STATE_DIR}",
            'mkdir -p "$rj_state" || exit 96',
            f'sbatch --parsable --job-name={name} --output="$rj_state/slurm-%j.log" "$@" '
            f"<<'{end}'",
            job.rstrip("\n"),
            end,
            "",
        ]
    )


def batch_script(
    *,
    app: str,
    port: int,
    workdir: str | None,
    venv: str | None,
    conda_env: str | None,
    setup: Sequence[str],
    jupyter: str,
    unix_socket: bool = False,
    login_shell: bool = True,
) -> str:
    """The batch script: enter the environment, run Jupyter on the node's loopback, wait.

    With ``unix_socket`` Jupyter listens on a socket in a private (0700) directory of the
    node's ``$TMPDIR`` (node-local; a shared home is no place for sockets), removed at the end.
    Jupyter's output, with rjupyter's markers, goes to the job's output file; the job ends
    when Jupyter does, and ``scancel`` (SIGTERM to the whole job) stops it cleanly. With
    ``login_shell`` it runs in the user's login environment on the node (``_server._login``),
    as a job script starting ``#!/bin/bash -l`` would.

    Raises:
        ValueError: ``app`` is not a known Jupyter front end.
    """
    lines = [
        *preamble_lines(),
        f"printf '%s %s\\n' {NODE_MARKER} \"${{SLURMD_NODENAME:-}}\" >&2",
        *environment_lines(
            workdir=workdir, venv=venv, conda_env=conda_env, setup=setup, jupyter=jupyter
        ),
        *(_socket_dir_lines(port) if unix_socket else []),
        f"{server_command(app, jupyter, port, unix_socket=unix_socket)} &",
        "rj_pid=$!",
        f"printf '%s %s\\n' {PID_MARKER} \"$rj_pid\" >&2",
        "trap 'kill -TERM \"$rj_pid\" 2>/dev/null' TERM INT",
        'wait "$rj_pid"; rj_status=$?',
        'while kill -0 "$rj_pid" 2>/dev/null; do wait "$rj_pid"; rj_status=$?; done',
        *(['[ -z "$rj_run" ] || rm -rf -- "$rj_run"'] if unix_socket else []),
        f"printf '%s %s\\n' {EXIT_MARKER} \"$rj_status\" >&2",
        'exit "$rj_status"',
    ]
    script = whole(lines)
    return "#!/bin/sh\n" + (login_script(script) if login_shell else script)


def _socket_dir_lines(port: int) -> list[str]:
    """A private directory for the socket (``$rj_run``); where none can be made, the port."""
    return [
        'rj_run=$(mktemp -d "${TMPDIR:-/tmp}/rjupyter-XXXXXXXX" 2>/dev/null) || rj_run=',
        *socket_lines("$rj_run", port),
        '[ -n "$rj_run" ] || rj_listen=--port=' + str(int(port)),
    ]
