"""What a batch system is to rjupyter: submit, follow, parse, cancel (pure, no I/O).

A :class:`Scheduler` subclass is the whole of a batch system's knowledge: the batch script that
runs Jupyter on a compute node, the submit script and its arguments, reading the job id and the
job's state, and cancelling. :class:`~._jobs.BatchJob` runs those over the login node's
connection; :class:`~._batch.BatchLauncher` puts them behind the Launcher interface. Slurm is one
subclass (:class:`~._slurm.Slurm`); PBS or LSF would each be one more.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "OUTPUT_MARKER",
    "JobStatus",
    "Scheduler",
]

#: Printed by a poll script between the job's state line(s) and the tail of its output file.
OUTPUT_MARKER = "RJUPYTER-JOB-OUTPUT"


@dataclass(frozen=True)
class JobStatus:
    """One look at a job.

    Attributes:
        job_id: The job's id.
        state: The batch system's state name (``PENDING``, ``RUNNING`` ...), or ``GONE`` when
            the system no longer knows the job.
        active: True until the job ended (and was cleaned up).
        reason: Why it waits or ended.
        node: The node running the batch script, once it runs.
        start_time: When it started, or is expected to start (None when not told).
        output_file: The job's output file.
        exit_code: The exit code as the batch system reports it.
        position: While pending: its place among the pending jobs in priority order (1 is
            next), when the system tells.
    """

    job_id: str
    state: str
    active: bool = False
    reason: str = ""
    node: str = ""
    start_time: str | None = None
    output_file: str = ""
    exit_code: str = ""
    position: int | None = None

    def describe(self) -> str:
        """E.g. ``"job 12 PENDING (Resources), position 2 in the queue, expected start ..."``."""
        text = f"job {self.job_id} {self.state}"
        if self.reason and self.reason != "None":
            text += f" ({self.reason})"
        if self.state == "PENDING" and self.position is not None:
            text += f", position {self.position} in the queue"
        if self.state == "PENDING" and self.start_time:
            text += f", expected start {self.start_time}"
        elif self.state == "RUNNING" and self.node:
            text += f" on {self.node}"
        return text


class Scheduler(abc.ABC):
    """A batch system: its options (a frozen dataclass in subclasses) and its dialect.

    Attributes:
        name: How messages name it (``"Slurm"``).
        submit_command: The command that submits (``"sbatch"``), for messages.
        poll: Seconds between looks at the job's state.
        queue_timeout: Seconds to wait while queued; None waits until the job starts.
        poll_script: Args: job id. Prints the state line(s), :data:`OUTPUT_MARKER`, then the
            tail of the job's output file.
        follow_script: Args: job id, an event mark, how many ``follow_step`` s between
            looks at the job's state. Prints the job's output file as it grows and, after the
            mark, the job's state line at each change; ends once the job did, or when its
            stdin closes.
        follow_step: Seconds of one step of the follow script.
        cancel_script: Args: job id. Cancels the job (one already ended is fine).
        named_script: Args: job name. Prints the ids of the user's jobs of that name.
        ended_reasons: For a final state, what happened, in words.
        node_host_key_policy: The host-key policy for the compute node only (None: the
            connection's); see :class:`~._slurm.Slurm`.
    """

    name: str
    submit_command: str
    poll: float
    queue_timeout: float | None
    poll_script: str
    follow_script: str
    follow_step: float
    cancel_script: str
    named_script: str
    ended_reasons: Mapping[str, str]
    node_host_key_policy: str | None = None

    @abc.abstractmethod
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
        """The job script: enter the environment (the user's login environment, with
        ``login_shell``), run Jupyter on the node's loopback (or, with ``unix_socket``, on a
        socket in a private directory of the node), print the node's name after
        ``NODE_MARKER``, wait."""

    @abc.abstractmethod
    def submit_script(self, batch_script: str, name: str) -> str:
        """The login-node script that submits ``batch_script`` with :meth:`submit_args`, as a
        job named ``name`` (so that a submit cut short can be found and cancelled)."""

    @abc.abstractmethod
    def submit_args(self) -> list[str]:
        """The submit command's arguments (each one argument, never shell code)."""

    @abc.abstractmethod
    def parse_submitted(self, output: str) -> str | None:
        """The job id from the submit script's output; None when there is none."""

    @abc.abstractmethod
    def parse_status(self, job_id: str, text: str) -> JobStatus:
        """The job's status from the poll script's state line(s)."""

    @abc.abstractmethod
    def cancel_command(self, job_id: str) -> str:
        """What a user types to cancel the job by hand (for messages)."""

    @abc.abstractmethod
    def refusal_hint(self) -> str:
        """What to check when the submit command refuses a job (for messages)."""
