"""Running code and notebooks on the remote kernel, and moving files.

:class:`NotebookAutomation` is a mixin of :class:`~rjupyter.RemoteNotebook`; it relies on the
notebook's ``base_url``, ``token``, ``host`` and ``_connection`` (the live SSH connection).
The kernels it starts are shut down by :meth:`NotebookAutomation._close_automation`, which
``RemoteNotebook.close()`` calls first, while the tunnel is still up.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import CellExecutionError, ExecutionTimeout, RJupyterError
from .._lifecycle import add_note
from .._results import ExecutionResult
from . import _files
from ._kernel import Kernel
from ._messages import OutputCallback
from ._runner import (
    ProgressCallback,
    execute_notebook,
    inject_parameters,
    read_notebook,
    record_kernel,
    write_notebook,
)
from ._wire import Endpoint

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from .._ssh._connection import SSHConnection

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
        def _connection(self) -> SSHConnection: ...

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

    def _close_automation(self, *, keep_kernels: bool = False) -> None:
        """Shut down every kernel this notebook started (called first by ``close()``).

        With ``keep_kernels`` (a server left running) only their connections are closed: the
        kernels and their state stay for the next ``attach``.

        Raises:
            RJupyterError: A kernel could not be shut down (all were tried).
        """
        state = self._automation()
        with state.lock:
            kernels, state.kernels, state.default_kernel = state.kernels, [], None
        errors: list[RJupyterError] = []
        for kernel in kernels:
            try:
                kernel.detach() if keep_kernels else kernel.shutdown()
            except RJupyterError as error:
                errors.append(error)
        if errors:
            raise errors[0]

    # -- notebooks ---------------------------------------------------------------------------

    def run_notebook(
        self,
        path: str | os.PathLike[str],
        output_path: str | os.PathLike[str] | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        kernel_name: str | None = None,
        cwd: str | None = None,
        timeout_per_cell: float | None = None,
        allow_errors: bool = False,
        progress: ProgressCallback | None = None,
    ) -> NotebookNode:
        """Run a local ``.ipynb`` cell by cell on a fresh remote kernel; write the result locally.

        Args:
            path: The local notebook.
            output_path: Where to write the executed notebook (also when a cell fails); None
                writes nothing, the result is returned.
            parameters: Injected papermill-style into a cell tagged ``injected-parameters``,
                after the cell tagged ``parameters`` (or first).
            kernel_name: The kernel spec; None takes the notebook's own, else the server's
                default.
            cwd: Remote working directory of the kernel; None is the notebook server's.
            timeout_per_cell: Seconds each cell may take; None for no limit.
            allow_errors: Record failing cells' errors and go on instead of raising.
            progress: Called with a ``CellProgress`` before and after each code cell.

        Returns:
            The executed notebook (an ``nbformat.NotebookNode``).

        Raises:
            CellExecutionError: A cell raised (``cell_index``, ``ename``, ``evalue``,
                ``traceback``); the partial notebook was written to ``output_path``.
            ExecutionTimeout: A cell ran past ``timeout_per_cell``; the partial notebook was
                written.
            KernelError: The kernel could not be started or died.
            ValueError: A parameter is not a Python literal, or the file is not a notebook.
            FileNotFoundError: No notebook at ``path``.
        """
        notebook = read_notebook(path)
        if parameters:
            inject_parameters(notebook, parameters)
        name = kernel_name or notebook.metadata.get("kernelspec", {}).get("name")
        with self.kernel(name, cwd=cwd) as kernel:
            record_kernel(notebook, kernel)
            try:
                execute_notebook(
                    kernel,
                    notebook,
                    timeout_per_cell=timeout_per_cell,
                    allow_errors=allow_errors,
                    progress=progress,
                )
            except (CellExecutionError, ExecutionTimeout) as error:
                if output_path is not None:
                    write_notebook(notebook, output_path)
                    add_note(error, f"the notebook as executed so far is in {output_path}")
                raise
        if output_path is not None:
            write_notebook(notebook, output_path)
        return notebook

    # -- files -------------------------------------------------------------------------------

    def upload(
        self,
        local: str | os.PathLike[str],
        remote: str,
        *,
        progress: _files.Progress | None = None,
    ) -> str:
        """Copy a local file or directory (recursively) to the remote host over SFTP.

        ``remote`` is the path the copy gets; ending it with ``/`` copies *into* that directory.
        Missing parents are created; ``~`` and relative paths start at the remote home.

        Args:
            local: The local file or directory.
            remote: The remote destination.
            progress: ``progress(bytes_done, bytes_total)`` over the whole transfer.

        Returns:
            The absolute remote path written.

        Raises:
            PathNotFoundError: ``local`` does not exist.
            TransferError: The remote side could not be written (the message says why).
            NotebookClosedError: The notebook is closed.
        """
        return _files.upload(self._connection, local, remote, host=self.host, progress=progress)

    def download(
        self,
        remote: str,
        local: str | os.PathLike[str],
        *,
        progress: _files.Progress | None = None,
    ) -> Path:
        """Copy a remote file or directory (recursively) to this machine over SFTP.

        ``local`` is the path the copy gets; ending it with ``/`` copies *into* that directory.
        Missing parents are created; ``~`` and relative remote paths start at the remote home.

        Args:
            remote: The remote source.
            local: The local destination.
            progress: ``progress(bytes_done, bytes_total)`` over the whole transfer.

        Returns:
            The local path written.

        Raises:
            PathNotFoundError: ``remote`` does not exist.
            TransferError: A file could not be read or written (the message says why).
            NotebookClosedError: The notebook is closed.
        """
        return _files.download(self._connection, remote, local, host=self.host, progress=progress)
