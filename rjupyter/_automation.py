"""Running code and notebooks on the remote kernel, and moving files.

:class:`NotebookAutomation` is a mixin of :class:`~rjupyter.RemoteNotebook`; it relies on the
notebook's ``base_url``, ``token``, ``host`` and ``_transport`` (the live paramiko transport).
The kernels it starts are shut down by :meth:`NotebookAutomation._close_automation`, which
``RemoteNotebook.close()`` calls first, while the tunnel is still up.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import RJupyterError
from ._kernel import Kernel
from ._messages import ExecutionResult, OutputCallback
from ._wire import Endpoint

if TYPE_CHECKING:
    import paramiko

__all__ = ["NotebookAutomation"]

logger = logging.getLogger(__name__)

_STATE_LOCK = threading.Lock()  # guards only the lazy creation of each notebook's state


@dataclass
class _AutomationState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    starting: threading.Lock = field(default_factory=threading.Lock)  # the default kernel's
    kernels: list[Kernel] = field(default_factory=list)
    default_kernel: Kernel | None = None


class NotebookAutomation:
    """Automation methods of a running notebook: kernels, execute, run_notebook, files."""

    if TYPE_CHECKING:
        host: str

        @property
        def base_url(self) -> str: ...
        @property
        def token(self) -> str: ...
        @property
        def _transport(self) -> paramiko.Transport: ...

    def _automation(self) -> _AutomationState:
        with _STATE_LOCK:
            state: _AutomationState = self.__dict__.setdefault(
                "_automation_state", _AutomationState()
            )
        return state

    # -- kernels -----------------------------------------------------------------------------

    def kernel(
        self, name: str | None = None, *, cwd: str | None = None, timeout: float = 60.0
    ) -> Kernel:
        """Start a kernel on the remote server and return it, connected and ready.

        ``with nb.kernel() as k:`` shuts it down when the block ends; otherwise call
        ``k.shutdown()`` (closing the notebook shuts down every kernel it started).

        Args:
            name: The kernel spec, e.g. ``"python3"``; None takes the server's default.
            cwd: Remote working directory for the kernel (``~`` is the remote home); None keeps
                the notebook's directory. Needs a Python kernel.
            timeout: Seconds for starting and answering.

        Returns:
            The running kernel.

        Raises:
            KernelError: The server refused (e.g. no such kernel spec), the kernel did not
                answer in time, or ``cwd`` could not be entered.
            NotebookClosedError: The notebook is closed.
        """
        state = self._automation()
        endpoint = Endpoint(self.base_url, self.token, self.host)
        kernel = Kernel(endpoint, name=name, cwd=cwd, on_close=self._forget_kernel)
        with state.lock:
            state.kernels.append(kernel)
        try:
            return kernel.start(timeout)
        except BaseException:
            self._forget_kernel(kernel)
            raise

    def _forget_kernel(self, kernel: Kernel) -> None:
        state = self._automation()
        with state.lock:
            if kernel in state.kernels:
                state.kernels.remove(kernel)
            if state.default_kernel is kernel:
                state.default_kernel = None

    def execute(
        self, code: str, *, timeout: float | None = None, on_output: OutputCallback | None = None
    ) -> ExecutionResult:
        """Run ``code`` on the notebook's default kernel (started on first use, kept until close).

        Args:
            code: The code to run.
            timeout: Seconds allowed; then the kernel is interrupted and ``ExecutionTimeout``
                raised.
            on_output: Called with each output as it arrives.

        Returns:
            The result (``stdout``, ``stderr``, ``outputs``, ``execute_result``...).

        Raises:
            RemoteExecutionError: The code raised remotely.
            ExecutionTimeout: ``timeout`` passed.
            KernelError: The kernel could not be started, died, or the connection broke.
            NotebookClosedError: The notebook is closed.
        """
        return self.default_kernel.execute(code, timeout=timeout, on_output=on_output)

    @property
    def default_kernel(self) -> Kernel:
        """The kernel :meth:`execute` uses; started on first use (to interrupt or restart it).

        Raises:
            KernelError: It could not be started.
            NotebookClosedError: The notebook is closed.
        """
        state = self._automation()
        with state.starting:
            kernel = state.default_kernel
            if kernel is None or kernel.closed:
                kernel = self.kernel()
                with state.lock:
                    state.default_kernel = kernel
            return kernel

    def _close_automation(self) -> None:
        """Shut down every kernel this notebook started (called first by ``close()``).

        Raises:
            RJupyterError: A kernel could not be shut down (all were tried).
        """
        state = self._automation()
        with state.lock:
            kernels, state.kernels, state.default_kernel = state.kernels, [], None
        errors: list[RJupyterError] = []
        for kernel in kernels:
            try:
                kernel.shutdown()
            except RJupyterError as error:
                errors.append(error)
        if errors:
            raise errors[0]
