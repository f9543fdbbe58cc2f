"""Launchers: how a Jupyter server comes to run (on the host, or in a batch job).

:func:`launcher_for` picks one for a notebook; :class:`~._base.Launcher` is the interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._base import Environment, Launcher, LaunchSpec, check_arguments
from ._batch import BatchLauncher
from ._host import HostLauncher
from ._scheduler import Scheduler
from ._slurm import Slurm

__all__ = [
    "AttachTarget",
    "Environment",
    "LaunchSpec",
    "Launcher",
    "Scheduler",
    "attach_target",
    "check_arguments",
    "launcher_for",
]


@dataclass(frozen=True)
class AttachTarget:
    """The running server ``RemoteNotebook.attach`` names: by pid or port, or by its job."""

    pid: int | None = None
    port: int | None = None
    job_id: str | None = None


def attach_target(*, pid: int | None, port: int | None, job_id: str | int | None) -> AttachTarget:
    """The target of an attach; a job id wins over pid and port.

    Raises:
        ValueError: ``job_id`` is not a job number.
    """
    if job_id is None:
        return AttachTarget(pid=pid, port=port)
    if not str(job_id).isdigit():
        raise ValueError(f"job_id must be a batch job number; got {job_id!r}")
    return AttachTarget(job_id=str(job_id))


def launcher_for(
    spec: LaunchSpec, *, scheduler: Scheduler | None = None, target: AttachTarget | None = None
) -> Launcher:
    """The launcher for a notebook: a batch job when a scheduler or a job id is given (a job id
    alone means a Slurm job), else the host itself (with a target: attach to a running server)."""
    job_id = target.job_id if target is not None else None
    if scheduler is not None or job_id is not None:
        return BatchLauncher(spec, scheduler or Slurm(), job_id=job_id)
    find = (target.pid, target.port) if target is not None else None
    return HostLauncher(spec, find=find)
