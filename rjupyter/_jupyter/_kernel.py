"""A kernel on the remote server, driven through the tunnel: REST to start and stop it, the
kernel WebSocket (token in the header) to run code.

jupyter_server's own gateway client sends no auth header on the WebSocket, and nbclient wants a
kernel manager of its own; this speaks the few messages an ``execute`` needs, on one connection.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._deadline import Deadline
from .._errors import ExecutionTimeout, KernelClosedError, KernelError, RemoteExecutionError
from .._lifecycle import add_note
from .._results import ExecutionResult
from ._messages import (
    Message,
    OutputCallback,
    OutputCollector,
    finish_execution,
    new_message,
    reports_death,
)
from ._wire import Endpoint, KernelSocket, refusal_error

__all__ = ["Kernel"]

logger = logging.getLogger(__name__)

#: How long an interrupted request may take to wind down before we give up waiting.
_INTERRUPT_GRACE = 10.0
#: How often the first ``kernel_info_request`` is repeated while the kernel starts.
_NUDGE_INTERVAL = 1.0


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class _DeadlinePassed(Exception):
    """Internal: no reply within the time allowed."""


class Kernel:
    """A kernel on the remote Jupyter server. Get one from :meth:`RemoteNotebook.kernel`.

    ``with nb.kernel() as k: k.execute("x = 1")`` — leaving the block shuts the kernel down.
    Without ``with``, call :meth:`shutdown` (closing the notebook also does).

    Attributes:
        id: The server's kernel id.
        name: The kernel spec's name, e.g. ``"python3"``.
        language_info: What the kernel said of its language (``name``, ``version``...).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        name: str | None = None,
        cwd: str | None = None,
        on_close: Callable[[Kernel], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._cwd = cwd
        self._on_close = on_close
        self.id = ""
        self.name = name or ""
        self.language_info: dict[str, Any] = {}
        self._socket: KernelSocket | None = None
        self._state = _State.NEW
        self._lock = threading.RLock()  # one request at a time

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Kernel:
        """Start the kernel, connect, and return once it answers (and is in ``cwd``).

        Raises:
            KernelError: The server refused (e.g. no such kernel spec) or the kernel did not
                answer within ``timeout`` seconds, or ``cwd`` could not be entered.
            RuntimeError: Already started.
        """
        with self._lock:
            if self._state is not _State.NEW:
                raise RuntimeError("this kernel was already started")
            body = {"name": self.name} if self.name else {}
            try:
                model = self._endpoint.call("POST", "api/kernels", body, timeout=timeout)
            except KernelError as error:
                clearer = refusal_error(self._endpoint, self.name, error)
                if clearer is error:
                    raise
                raise clearer from error
            self.id, self.name = model["id"], model["name"]
            self._state = _State.RUNNING
            try:
                self._connect(Deadline(timeout))
            except BaseException:
                self._shutdown_after_failure()
                raise
        logger.debug("kernel %s (%s) ready on %s", self.id, self.name, self._endpoint.host)
        return self

    def _connect(self, deadline: Deadline) -> None:
        self._socket = KernelSocket(self._endpoint, self.id, timeout=deadline.remaining(1.0))
        info = self._handshake(self._socket, deadline)
        self.language_info = dict(info.get("language_info", {}))
        if self._cwd is not None:
            self._enter(self._cwd)

    def _handshake(self, socket: KernelSocket, deadline: Deadline) -> dict[str, Any]:
        """Ask for kernel_info until both its reply and IOPub traffic arrive (IOPub connected)."""
        asked: set[str] = set()
        reply: dict[str, Any] | None = None
        iopub_seen = False
        while reply is None or not iopub_seen:
            if deadline.expired:
                raise KernelError(
                    f"kernel {self.id} on {self._endpoint.host} did not answer within "
                    f"{deadline.seconds:.0f} s",
                    kernel_id=self.id,
                )
            request = new_message(
                "kernel_info_request", {}, session=socket.session, channel="shell"
            )
            asked.add(request["header"]["msg_id"])
            socket.send(request)
            nudge = Deadline(min(_NUDGE_INTERVAL, deadline.remaining()))
            while (reply is None or not iopub_seen) and not nudge.expired:
                message = socket.receive(nudge.remaining())
                if message is None:
                    continue
                logger.debug(
                    "kernel %s: %s on %s", self.id, message["msg_type"], message.get("channel")
                )
                if message["parent_header"].get("msg_id") not in asked:
                    continue
                if message["msg_type"] == "kernel_info_reply":
                    reply = message["content"]
                elif message.get("channel") == "iopub":
                    iopub_seen = True
        return reply

    def _enter(self, cwd: str) -> None:
        if self.language != "python":
            raise KernelError(
                f"cwd= needs a Python kernel; {self.name} speaks {self.language or 'unknown'}",
                kernel_id=self.id,
            )
        code = f"import os as _rj_os; _rj_os.chdir(_rj_os.path.expanduser({cwd!r})); del _rj_os"
        try:
            self._run(code, silent=True, timeout=30.0, on_output=None)
        except RemoteExecutionError as error:
            raise KernelError(
                f"cannot enter {cwd!r} on {self._endpoint.host}: {error.ename}: {error.evalue}",
                kernel_id=self.id,
            ) from error

    def shutdown(self) -> None:
        """Shut the kernel down on the server and close the connection. Idempotent.

        Raises:
            KernelError: The server could not be asked (the connection is closed anyway).
        """
        with self._lock:
            if self._state is _State.CLOSED:
                return
            self._state = _State.CLOSED
        socket, self._socket = self._socket, None
        try:
            if self.id:
                self._endpoint.call("DELETE", f"api/kernels/{self.id}")
                logger.debug("kernel %s shut down", self.id)
        except KernelError as error:
            if "404" not in str(error):  # already gone: that is what we wanted
                raise
        finally:
            try:
                if socket is not None:
                    socket.close()
            finally:
                if self._on_close is not None:
                    self._on_close(self)

    def detach(self) -> None:
        """Close the connection but leave the kernel running on the server. Idempotent."""
        with self._lock:
            if self._state is _State.CLOSED:
                return
            self._state = _State.CLOSED
        socket, self._socket = self._socket, None
        try:
            if socket is not None:
                socket.close()
        finally:
            if self._on_close is not None:
                self._on_close(self)

    def _shutdown_after_failure(self) -> None:
        try:
            self.shutdown()
        except KernelError as error:
            logger.debug("kernel %s: shutdown after a failed start failed: %s", self.id, error)

    def __enter__(self) -> Kernel:
        if self._state is _State.NEW:
            self.start()
        self._live()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.shutdown()
        except KernelError as shutdown_error:
            if exc is None:
                raise
            add_note(exc, f"while shutting the kernel down: {shutdown_error}")

    def _live(self) -> KernelSocket:
        if self._state is _State.CLOSED:
            raise KernelClosedError(f"kernel {self.id} was shut down; start a new one")
        if self._state is _State.NEW or self._socket is None:
            raise RuntimeError("the kernel is not started; use nb.kernel()")
        return self._socket

    @property
    def language(self) -> str:
        """The kernel's language, e.g. ``"python"`` (from its ``kernel_info``)."""
        return str(self.language_info.get("name", ""))

    @property
    def closed(self) -> bool:
        """True once the kernel was shut down."""
        return self._state is _State.CLOSED

    def __repr__(self) -> str:
        return f"<Kernel id={self.id!r} name={self.name!r} state={self._state.value}>"

    # -- control -----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Interrupt what the kernel runs (like Ctrl-C); safe from another thread.

        Raises:
            KernelClosedError: The kernel was shut down.
            KernelError: The server refused.
        """
        self._live()
        self._endpoint.call("POST", f"api/kernels/{self.id}/interrupt")

    def restart(self, timeout: float = 60.0) -> None:
        """Restart the kernel: its variables are gone, ``execution_count`` starts again at 1.

        Waits for an ``execute`` running in another thread to end first (``interrupt()`` it).

        Raises:
            KernelClosedError: The kernel was shut down.
            KernelError: The restart failed or the kernel did not answer within ``timeout``.
        """
        with self._lock:
            socket = self._live()
            self._endpoint.call("POST", f"api/kernels/{self.id}/restart", timeout=timeout)
            self._socket = None
            socket.close()
            self._connect(Deadline(timeout))
        logger.debug("kernel %s restarted", self.id)

    # -- execution ---------------------------------------------------------------------------

    def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecutionResult:
        """Run ``code`` in the kernel and return what it printed, displayed and returned.

        Args:
            code: The code, as you would type it into a cell.
            timeout: Seconds allowed; then the kernel is interrupted and
                :class:`ExecutionTimeout` raised. None waits as long as it takes.
            on_output: Called with each output as it arrives (an nbformat output dict, e.g.
                ``{"output_type": "stream", "name": "stdout", "text": "..."}``).

        Returns:
            The result: ``stdout``, ``stderr``, ``outputs``, ``execute_result``...

        Raises:
            RemoteExecutionError: The code raised; carries ``ename``, ``evalue``, ``traceback``.
            ExecutionTimeout: ``timeout`` passed (also a ``TimeoutError``).
            KernelClosedError: The kernel was shut down.
            KernelError: The kernel died or the connection broke.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive; got {timeout}")
        return self._run(code, silent=False, timeout=timeout, on_output=on_output)

    def _run(
        self, code: str, *, silent: bool, timeout: float | None, on_output: OutputCallback | None
    ) -> ExecutionResult:
        with self._lock:
            socket = self._live()
            content = {
                "code": code,
                "silent": silent,
                "store_history": not silent,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            }
            request = new_message(
                "execute_request", content, session=socket.session, channel="shell"
            )
            msg_id = request["header"]["msg_id"]
            collector = OutputCollector(on_output)
            socket.discard_pending()  # nothing before this request belongs to it
            socket.send(request)
            deadline = None if timeout is None else Deadline(timeout)
            try:
                reply = self._collect(socket, msg_id, collector, deadline)
            except _DeadlinePassed:
                assert timeout is not None
                stopped = self._wind_down(socket, msg_id, collector)
                raise self._timed_out(timeout, stopped, collector.result) from None
            except KernelError:
                if self._state is _State.CLOSED:
                    raise KernelClosedError(f"kernel {self.id} was shut down") from None
                raise
            except BaseException:  # Ctrl-C here, or on_output failed: stop the remote side too
                self._wind_down(socket, msg_id, collector)
                raise
        return finish_execution(reply, collector.result, kernel_id=self.id)

    def _collect(
        self,
        socket: KernelSocket,
        msg_id: str,
        collector: OutputCollector,
        deadline: Deadline | None,
    ) -> dict[str, Any]:
        """Read until the request's reply and its ``idle`` status have both arrived."""
        reply: dict[str, Any] | None = None
        idle = False
        while reply is None or not idle:
            message = socket.receive(None if deadline is None else deadline.remaining())
            if message is None:
                raise _DeadlinePassed
            self._check_alive(message)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            msg_type, content = message["msg_type"], message["content"]
            if message.get("channel") == "shell":
                reply = content if msg_type == "execute_reply" else reply
            elif msg_type == "status":
                idle = content.get("execution_state") == "idle"
            else:
                collector.feed(msg_type, content)
        return reply

    def _check_alive(self, message: Message) -> None:
        if reports_death(message):
            raise KernelError(
                f"kernel {self.id} on {self._endpoint.host} died while running the code "
                "(the server restarts it: its variables are gone)",
                kernel_id=self.id,
            )

    def _wind_down(self, socket: KernelSocket, msg_id: str, collector: OutputCollector) -> bool:
        """Interrupt the running request and read it to its end; False if it did not stop."""
        try:
            self._endpoint.call("POST", f"api/kernels/{self.id}/interrupt")
            self._collect(socket, msg_id, collector, Deadline(_INTERRUPT_GRACE))
        except (_DeadlinePassed, KernelError) as error:
            logger.debug("kernel %s: interrupted request did not end: %r", self.id, error)
            return False
        return True

    def _timed_out(
        self, timeout: float, stopped: bool, result: ExecutionResult
    ) -> ExecutionTimeout:
        state = (
            "it was interrupted and is ready again"
            if stopped
            else f"it was interrupted but still had not stopped {_INTERRUPT_GRACE:.0f} s later; "
            "restart() it"
        )
        return ExecutionTimeout(
            f"the code ran longer than {timeout:g} s on kernel {self.id}; {state}",
            kernel_id=self.id,
            timeout=timeout,
            result=result,
        )
