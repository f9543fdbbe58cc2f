"""A batch job holding a notebook: submit it, watch it while queued, learn where Jupyter runs.

Every command runs on the login node over the session's SSH connection, in the dialect of one
:class:`~._scheduler.Scheduler` (for Slurm: ``sbatch``, ``scontrol``, ``scancel``; no accounting
database is needed). The job's node comes from the poll script's state line; Jupyter's port and
token from the job's output file in the shared home, read by the same poll.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable

from .._deadline import Deadline
from .._errors import JobError, RJupyterError
from .._server._remote import failure_reason
from .._server._scripts import whole
from .._server._startup import ServerInfo, StartupParser, redact
from .._ssh._connection import ConnectionSlot
from ._follow import LineStream
from ._scheduler import OUTPUT_MARKER, JobStatus, Scheduler

__all__ = ["BatchJob"]

logger = logging.getLogger(__name__)

_TAIL_LINES = 40
#: Seconds one read of the follow waits for output (then deadlines and Ctrl-C are looked at).
_FOLLOW_WAIT = 0.25
#: Seconds a submit cut short may still take to register its job (looked for by name).
_SUBMIT_SETTLE = 3.0


class BatchJob:
    """One batch job, submitted by us or found again by its id (attach).

    Args:
        system: The batch system (and its options).
        slot: The login node's connection.
        host: The login node as the user named it (for messages).
        job_id: The id of an existing job; None until :meth:`submit`.
        options: The launch options by name (to explain an environment failure).
        wrap: Turns each script into the one sent (the user's login environment, where the
            batch system's commands are on the PATH); default: as it is.
    """

    def __init__(
        self,
        system: Scheduler,
        slot: ConnectionSlot,
        *,
        host: str,
        job_id: str | None = None,
        options: dict[str, str] | None = None,
        wrap: Callable[[str], str] = str,
    ) -> None:
        self._system = system
        self._wrap = wrap
        self._slot = slot
        self._host = host
        self.job_id = job_id
        self._options = options or {}
        self.status: JobStatus | None = None
        self._parser = StartupParser(gated=True)
        self._tail = ""
        self._lines: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._token = ""
        #: The job's name, chosen here: what finds it when its id never arrived.
        self.name = "" if job_id is not None else f"rjupyter-{secrets.token_hex(6)}"
        self._submitting = False

    def submit(self, batch_script: str) -> str:
        """Submit ``batch_script`` with the system's options; return the job id.

        The job is named by the client first, so that a submit cut short (Ctrl-C during the
        round trip) or misreported (a site wrapper's output, a non-zero exit after submitting)
        is still found and cancelled by :meth:`cancel`.

        Raises:
            JobError: The batch system refused the job (bad partition, account, QOS ...).
            SSHConnectError: The connection failed.
        """
        system = self._system
        script = system.submit_script(batch_script, self.name)
        self._submitting = True
        status, output = self._run(script, system.submit_args())
        self._submitting = False
        job_id = system.parse_submitted(output)
        if status != 0 or job_id is None:
            message = output.strip() or f"exit status {status}"
            self.job_id = job_id
            raise JobError(
                f"{system.submit_command} on {self._host} refused the job: {message}. "
                f"{system.refusal_hint()}",
                host=self._host,
                job_id=None,
                state="REJECTED",
                reason=message,
            )
        self.job_id = job_id
        logger.info("submitted %s job %s on %s", system.name, job_id, self._host)
        return job_id

    def _find_by_name(self) -> str | None:
        """The id of our job, found by its name (a submit that did not tell us its id)."""
        deadline = Deadline(_SUBMIT_SETTLE if self._submitting else 0.0)
        while True:
            _, output = self._run(self._system.named_script, [self.name])
            ids = [word for word in output.split() if word.isdigit()]
            if ids or deadline.expired:
                return ids[0] if ids else None
            time.sleep(min(0.25, deadline.remaining()))

    def _run(self, script: str, args: list[str]) -> tuple[int | None, str]:
        return self._slot.current.run(self._wrap(script), args)

    def look(self) -> JobStatus:
        """Ask the batch system about the job and read its output so far.

        Raises:
            SSHConnectError: The connection failed.
        """
        assert self.job_id is not None
        _, output = self._run(self._system.poll_script, [self.job_id])
        line, _, job_output = output.partition(f"\n{OUTPUT_MARKER}\n")
        self.status = self._system.parse_status(self.job_id, line)
        self._parser = StartupParser(gated=True)
        for text in job_output.splitlines():
            self._parser.feed(text)
        info = self._parser.info
        self._token = info.token if info is not None else self._token
        self._tail = "\n".join(job_output.splitlines()[-_TAIL_LINES:])
        return self.status

    def forget_if_ended(self) -> None:
        """Remove the output file of a job last seen ended (it ran out of time, or was
        cancelled from outside); nothing for a job that runs on.

        Raises:
            SSHConnectError: The connection failed.
        """
        if self.status is not None and not self.status.active:
            self._remove_output()

    def _remove_output(self) -> None:
        """The ended job's output file (it held the token) goes with it."""
        output = self.status.output_file if self.status is not None else ""
        if output:
            self._slot.current.run('rm -f -- "$1"\n', [output])

    def output_tail(self) -> str:
        """The last lines of the job's output, tokens redacted."""
        return redact(self._tail, self._token)

    def wait_ready(
        self,
        *,
        queue_timeout: float | None,
        start_timeout: float,
        poll: float,
        progress: Callable[[str, str], None],
    ) -> tuple[ServerInfo, str]:
        """Wait while queued, then until Jupyter printed its URL; return it and the node.

        One remote script follows the job (the scheduler's ``follow_script``): the job's
        output file as it grows and its state at each change arrive as events on one channel,
        so the URL is seen the moment the job prints it, with no sleep between looks; ``poll``
        is how often the remote side asks the batch system about the state.

        Raises:
            JobError: The job ended, Jupyter failed in it, or it stayed queued (or silent once
                running) longer than allowed.
            SSHConnectError: The connection failed.
        """
        assert self.job_id is not None
        system, mark = self._system, f"RJUPYTER-STATE-{secrets.token_hex(6)}"
        every = max(1, round(poll / system.follow_step))
        channel = self._slot.current.stream(
            # Whole: the follow reads its stdin (to see the channel close), and bash reads a
            # script on stdin byte by byte.
            self._wrap(whole([system.follow_script])),
            [self.job_id, mark, str(every)],
            timeout=15.0,
            hold_stdin=True,
        )
        stream = LineStream(channel, host=self._host)
        self._parser, self._lines = StartupParser(gated=True), collections.deque(maxlen=_TAIL_LINES)
        queued = Deadline(queue_timeout) if queue_timeout else None
        running: Deadline | None = None
        try:
            while True:
                for line in stream.read(_FOLLOW_WAIT):
                    self._take_event(line, mark, progress)
                status = self.status or JobStatus(self.job_id, "UNKNOWN", active=True)
                self._raise_if_failed(status)
                info, node = self._parser.info, self._parser.node or status.node
                if info is not None and node:
                    self.status = dataclasses.replace(status, state="RUNNING", node=node)
                    return info, node
                if status.state == "RUNNING" or self._parser.started:
                    running = running or Deadline(start_timeout)
                    if running.expired:
                        raise self._error(
                            status, f"Jupyter printed no URL within {start_timeout:.0f} s"
                        )
                elif queued is not None and queued.expired:
                    raise self._error(status, f"still queued after {queue_timeout:.0f} s")
                if stream.ended:
                    self._raise_if_failed(self.look())
                    raise self._error(
                        status, "could not be followed: the follow on the login node ended early"
                    )
        finally:
            stream.close()

    def _take_event(self, line: str, mark: str, progress: Callable[[str, str], None]) -> None:
        """One line of the follow: the job's state after ``mark`` (told to ``progress`` when it
        changed), else a line of the job's output file.

        Raises:
            JobError: The job ended, or Jupyter failed in it.
        """
        assert self.job_id is not None
        if mark not in line:
            self._take_output(line)
            return
        said = self.status.describe() if self.status is not None else ""
        status = self.status = self._system.parse_status(self.job_id, line.split(mark, 1)[1])
        if status.describe() != said:
            progress("queue", status.describe())
        if not status.active:
            # Its last lines (why it failed) may still be on their way: read the file's end.
            output = self._tail
            self.look()
            self._tail = self._tail or output
            status = self.status = dataclasses.replace(self.status, state=status.state)
        self._raise_if_failed(status)

    def _take_output(self, line: str) -> None:
        """One line of the job's output file, as the follow saw it."""
        self._parser.feed(line)
        info = self._parser.info
        self._token = info.token if info is not None else self._token
        self._lines.append(line)
        self._tail = "\n".join(self._lines)

    def check(self) -> None:
        """Raise if the job has ended (used while the notebook runs).

        Raises:
            JobError: The job ended or Jupyter in it exited.
            SSHConnectError: The connection failed.
        """
        self._raise_if_failed(self.look())

    def _raise_if_failed(self, status: JobStatus) -> None:
        parser = self._parser
        if parser.error_code is not None or (parser.exit_status and parser.info is None):
            reason, _ = failure_reason(parser, self._options)
            raise self._error(status, f"cannot start Jupyter on {status.node}: {reason}")
        if not status.active:
            raise self._error(status, self._system.ended_reasons.get(status.state, "ended"))

    def _error(self, status: JobStatus, what: str) -> JobError:
        reason = status.reason if status.reason not in ("", "None") else ""
        detail = f" (reason {reason})" if reason else ""
        return JobError(
            f"{self._system.name} job {self.job_id} on {self._host} {what}; "
            f"state {status.state}{detail}",
            host=self._host,
            job_id=self.job_id,
            state=status.state,
            reason=reason,
            output_tail=self.output_tail(),
        )

    def cancel(self, timeout: float = 60.0) -> None:
        """Cancel the job and wait until the system reports it ended (no longer completing).

        Raises:
            RJupyterError: The job did not end within ``timeout`` (or the connection failed);
                the message says how to cancel it by hand.
        """
        deadline = Deadline(timeout)
        try:
            if self.job_id is None and self.name:
                self.job_id = self._find_by_name()
            if self.job_id is None:
                return
            self._run(self._system.cancel_script, [self.job_id])
            while self.look().active:
                if deadline.expired:
                    raise RJupyterError(f"still {self.status.state if self.status else '?'}")
                time.sleep(min(0.25, deadline.remaining()))
            self._remove_output()
        except RJupyterError as exc:
            job = self.job_id or self.name
            raise RJupyterError(
                f"cannot cancel {self._system.name} job {job} on {self._host}: {exc}. "
                f"Log in there and run `{self._system.cancel_command(job)}`"
            ) from exc
        logger.info(
            "%s job %s on %s ended: %s", self._system.name, self.job_id, self._host, self.status
        )
