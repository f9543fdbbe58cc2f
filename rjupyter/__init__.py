"""rjupyter: start a Jupyter server on a remote host over SSH and tunnel to it, in one line.

>>> from rjupyter import RemoteNotebook
>>> with RemoteNotebook("gpu-box", venv="~/project/.venv") as nb:  # doctest: +SKIP
...     print(nb.url)
...     print(nb.execute("1 + 1").text)
"""

import logging

from ._errors import (
    AuthenticationError,
    CellExecutionError,
    ExecutionTimeout,
    HostKeyError,
    JobError,
    KernelClosedError,
    KernelError,
    LaunchError,
    LaunchTimeout,
    NotebookClosedError,
    PathNotFoundError,
    RemoteExecutionError,
    RJupyterError,
    SSHConnectError,
    TransferError,
    TunnelError,
)
from ._forward._forwards import Forward
from ._forward._tunnel import Tunnel
from ._handle import ServerHandle
from ._jupyter._kernel import Kernel
from ._jupyter._runner import CellProgress, execute_notebook, parse_parameter_value
from ._launch._slurm import Slurm
from ._notebook import RemoteNotebook
from ._results import ExecutionResult
from ._server._inventory import ServerRecord, list_servers, stop_server

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "CellExecutionError",
    "CellProgress",
    "ExecutionResult",
    "ExecutionTimeout",
    "Forward",
    "HostKeyError",
    "JobError",
    "Kernel",
    "KernelClosedError",
    "KernelError",
    "LaunchError",
    "LaunchTimeout",
    "NotebookClosedError",
    "PathNotFoundError",
    "RJupyterError",
    "RemoteExecutionError",
    "RemoteNotebook",
    "SSHConnectError",
    "ServerHandle",
    "ServerRecord",
    "Slurm",
    "TransferError",
    "Tunnel",
    "TunnelError",
    "__version__",
    "execute_notebook",
    "list_servers",
    "parse_parameter_value",
    "stop_server",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
