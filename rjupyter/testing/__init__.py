"""A throwaway "remote host" on this machine for rjupyter's tests and demos.

`Lab` runs real OpenSSH sshd processes that a lab user logs in to: as root each host lives in its
own network namespace with its own `127.0.0.1`, and the user is created for the lab and deleted
afterwards. `ensure_jupyter_venv` builds (once, cached) the Jupyter the lab user runs.

Not imported by `rjupyter` itself. `python -m rjupyter.testing --help` lists the command line.
"""

from ._cleanup import cleanup_stale_labs
from ._delay import DelayProxy, ssh_config_through
from ._errors import LabError
from ._host import LabHost
from ._lab import Lab
from ._traffic import TrafficServer
from ._venv import JUPYTER_REQUIREMENTS, default_cache_dir, ensure_jupyter_venv

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_lab.py checks
    "DelayProxy",
    "JUPYTER_REQUIREMENTS",
    "Lab",
    "LabError",
    "LabHost",
    "TrafficServer",
    "cleanup_stale_labs",
    "default_cache_dir",
    "ensure_jupyter_venv",
    "ssh_config_through",
]
