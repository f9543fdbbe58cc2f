"""Launchers: how a Jupyter server comes to run (on the host, or in a batch job).

:func:`launcher_for` picks one for a notebook; :class:`~._base.Launcher` is the interface.
"""

from __future__ import annotations

from ._base import Environment, Launcher, LaunchSpec
from ._batch import BatchLauncher
from ._host import HostLauncher
from ._scheduler import Scheduler
from ._slurm import Slurm

__all__ = ["Environment", "LaunchSpec", "Launcher", "Scheduler", "launcher_for"]


def launcher_for(
    spec: LaunchSpec,
    *,
    scheduler: Scheduler | None = None,
    find: tuple[int | None, int | None] | None = None,
    job_id: str | None = None,
) -> Launcher:
    """The launcher for a notebook: a batch job when a scheduler or a job id is given (a job id
    alone means a Slurm job), else the host itself (``find``: attach to a running server)."""
    if scheduler is not None or job_id is not None:
        return BatchLauncher(spec, scheduler or Slurm(), job_id=job_id)
    return HostLauncher(spec, find=find)
