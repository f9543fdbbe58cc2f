"""rjupyter: start a Jupyter server on a remote host over SSH and tunnel to it, in one line.

>>> from rjupyter import RemoteNotebook
>>> with RemoteNotebook("gpu-box", venv="~/project/.venv") as nb:  # doctest: +SKIP
...     print(nb.url)
"""

import logging

from ._api import RemoteNotebook, ServerHandle
from ._errors import (
    AuthenticationError,
    HostKeyError,
    JobError,
    LaunchError,
    LaunchTimeout,
    NotebookClosedError,
    RJupyterError,
    SSHConnectError,
    TunnelError,
)
from ._forward import Tunnel
from ._servers import ServerRecord, list_servers, stop_server
from ._slurm import Slurm

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "HostKeyError",
    "JobError",
    "LaunchError",
    "LaunchTimeout",
    "NotebookClosedError",
    "RJupyterError",
    "RemoteNotebook",
    "SSHConnectError",
    "ServerHandle",
    "ServerRecord",
    "Slurm",
    "Tunnel",
    "TunnelError",
    "__version__",
    "list_servers",
    "stop_server",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
