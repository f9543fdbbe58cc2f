"""The batch launcher: Jupyter in a batch job on a compute node, reached through the login node.

The job is submitted (or found again by its id) over the login node's connection and followed
there until Jupyter printed its URL; the node is then reached by one more SSH hop through the
same login (no second login to the login node). Heartbeats look at the job: once it ended, the
notebook is told. Stopping cancels the job. Everything batch-system specific comes from the
:class:`~._scheduler.Scheduler` (Slurm, or one more subclass for another system).
"""

from __future__ import annotations

import logging
import time

from .._deadline import Deadline
from .._errors import JobError, LaunchError, RJupyterError, SSHConnectError
from .._server._remote import RemoteServer
from .._ssh._connection import ConnectionSlot, SSHConnection
from .._ssh._node import open_node_connection
from ._base import OLD_JUPYTER, Launcher, LaunchSpec, socket_forwarded
from ._jobs import BatchJob
from ._scheduler import Scheduler

__all__ = ["BatchLauncher"]

logger = logging.getLogger(__name__)

#: Seconds a job may take to leave its active states after its Jupyter died (COMPLETING).
_JOB_SETTLE = 10.0


class BatchLauncher(Launcher):
    """Run Jupyter in a job of ``system``, submitted on ``spec.host`` (a login node).

    Args:
        spec: What to start and how to connect (``spec.host`` is the login node).
        system: The batch system and its options.
        job_id: An existing job to attach to instead of submitting one (a job still queued
            is waited for).
    """

    def __init__(self, spec: LaunchSpec, system: Scheduler, *, job_id: str | None = None):
        super().__init__(spec)
        self.system = system
        self.attaching = job_id is not None
        self._attach_job = job_id
        self.login: ConnectionSlot | None = None
        self.job: BatchJob | None = None
        self.node = ""

    @property
    def job_id(self) -> str | None:
        return self.job.job_id if self.job is not None else self._attach_job

    def start(self, deadline: Deadline) -> RemoteServer:
        spec = self.spec
        server = self._start(unix_socket=spec.unix_socket is not False)
        if spec.unix_socket is False or self.attaching or self.slot is None:
            return server
        info = server.info
        assert info is not None
        if socket_forwarded(self.slot.current, server, spec, Deadline(spec.timeout)):
            return server
        if info.socket is None:  # a Jupyter too old for sockets: on TCP already
            logger.info("Jupyter on %s listens on a TCP port: %s", self.node, OLD_JUPYTER)
            return server
        logger.info(
            "%s (%s's node) does not forward to Unix sockets (sshd's AllowStreamLocalForwarding): "
            "a new job runs Jupyter on a TCP port of the node's loopback instead",
            self.node,
            self.label,
        )
        self.stop()
        self.close()
        return self._start(unix_socket=False)

    def _start(self, *, unix_socket: bool) -> RemoteServer:
        spec, system = self.spec, self.system
        login = self.login = ConnectionSlot(spec.connect(Deadline(spec.timeout), hop=True))
        job = self.job = BatchJob(
            system,
            login,
            host=self.label,
            job_id=self._attach_job,
            options=spec.environment.described(),
            wrap=spec.environment.wrap,
        )
        if self._attach_job is None:
            spec.step("launch", f"jupyter {spec.app} in a {system.name} job")
            script = system.batch_script(
                app=spec.app,
                port=spec.pick_port(),
                **spec.environment.script_args(),
                unix_socket=unix_socket,
                login_shell=spec.environment.login_shell,
            )
            job.submit(script)
        else:
            spec.step("find", f"{system.name} job {self._attach_job}")
        info, self.node = job.wait_ready(
            queue_timeout=system.queue_timeout,
            start_timeout=spec.timeout,
            poll=system.poll,
            progress=spec.step,
        )
        node_deadline = Deadline(spec.timeout)
        spec.step("node", self.node)
        slot = self.slot = ConnectionSlot(self._connect_node(node_deadline))
        server = self.server = RemoteServer(slot, host=self.node, info=info)
        server.wait_listening(node_deadline)
        return server

    def _connect_node(self, deadline: Deadline) -> SSHConnection:
        """Reach the job's node through the login node (logging in there again if it dropped)."""
        login = self.login
        assert login is not None
        if not login.current.is_active:
            login.swap(self.spec.connect(deadline, hop=True))
        return open_node_connection(
            self.node,
            self.spec.options,
            deadline,
            login=login.current,
            host_key_policy=self.system.node_host_key_policy,
        )

    def reconnect(self, deadline: Deadline) -> SSHConnection:
        return self._connect_node(deadline)

    @property
    def heartbeat_period(self) -> float:
        return 2 * self.system.poll

    def heartbeat(self, connection: SSHConnection) -> None:
        """Raise JobError once the job has ended."""
        assert self.job is not None
        self.job.check()

    def explain_end(self, error: LaunchError) -> RJupyterError:
        """When the server died because its job ended (cancelled, time limit, node failure),
        say that: the job's end, as the heartbeat would have found it a little later."""
        job = self.job
        if job is None:
            return error
        deadline = Deadline(_JOB_SETTLE)
        try:
            while True:
                job.check()  # raises JobError once the job has ended
                if deadline.expired:
                    return error
                time.sleep(min(0.25, deadline.remaining()))
        except JobError as ended:
            return ended
        except SSHConnectError:
            return error

    def stop(self) -> None:
        job = self.job
        if job is None:
            return
        try:
            self._live(self.login, hop=True)
        except SSHConnectError as exc:
            which = job.job_id or job.name
            raise RJupyterError(
                f"cannot cancel {self.system.name} job {which} on {self.label}: {exc}. "
                f"Log in and run `{self.system.cancel_command(which)}`; it ends by "
                "itself at its time limit"
            ) from exc
        job.cancel()

    def describe_kept(self, pid: int, port: int) -> str:
        job_id, name, host = self.job_id, self.system.name, self.label
        return (
            f"{name} job {job_id} on {host} keeps running Jupyter; come back with "
            f"RemoteNotebook.attach({host!r}, job_id={job_id!r}) or `rjupyter "
            f"attach {host} --job {job_id}`; `{self.system.cancel_command(str(job_id))}` ends it"
        )

    def close(self) -> None:
        try:
            job, login = self.job, self.login
            if job is not None and login is not None and login.current.is_active:
                job.forget_if_ended()  # a kept job that ended: its output file goes too
        except RJupyterError as exc:
            logger.debug("could not remove the output of job %s: %s", self.job_id, exc)
        finally:
            super().close()
            if self.login is not None:
                self.login.close()
