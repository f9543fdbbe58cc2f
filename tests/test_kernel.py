"""Kernels on the lab's real Jupyter, driven through the tunnel: issue 7's execute acceptance
points (outputs, remote errors, state, interrupt, timeout, restart, shutdown), each checked from
outside where it can be (the server's own /api/kernels, the remote processes)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import PNG_BASE64, http, wait_for

from rjupyter import (
    ExecutionTimeout,
    Kernel,
    KernelClosedError,
    KernelError,
    NotebookClosedError,
    RemoteExecutionError,
    RemoteNotebook,
    RJupyterError,
)
from rjupyter.testing import Lab, LabHost


@pytest.fixture(scope="module")
def nb(lab: Lab, remote: LabHost) -> Iterator[RemoteNotebook]:
    """One notebook for the module: starting one per test would only repeat the login."""
    options: dict[str, Any] = {"ssh_config": lab.ssh_config, "venv": lab.jupyter_venv}
    with RemoteNotebook(remote.name, timeout=60.0, **options) as notebook:
        yield notebook


@pytest.fixture(scope="module")
def kernel(nb: RemoteNotebook) -> Iterator[Kernel]:
    with nb.kernel() as started:
        yield started


def server_kernel_ids(nb: RemoteNotebook) -> list[str]:
    status, body = http(f"{nb.base_url}api/kernels", token=nb.token)
    assert status == 200
    return [model["id"] for model in json.loads(body)]


def test_execute_returns_stdout_stderr_rich_outputs_and_the_value(kernel: Kernel) -> None:
    code = (
        "import sys\n"
        "from IPython.display import display\n"
        "print('to stdout')\n"
        "print('to stderr', file=sys.stderr)\n"
        f"display({{'image/png': '{PNG_BASE64}', 'text/plain': '<plot>'}}, raw=True)\n"
        "6 * 7"
    )
    result = kernel.execute(code)
    assert result.stdout == "to stdout\n"
    assert result.stderr == "to stderr\n"
    assert result.displays == [{"image/png": PNG_BASE64, "text/plain": "<plot>"}]
    assert result.execute_result == {"text/plain": "42"}
    assert result.text == "42"
    assert isinstance(result.execution_count, int)
    kinds = [output["output_type"] for output in result.outputs]
    assert kinds == ["stream", "stream", "display_data", "execute_result"]


def test_remote_exception_arrives_with_its_traceback(kernel: Kernel) -> None:
    with pytest.raises(RemoteExecutionError) as caught:
        kernel.execute("print('before')\ndef divide(a):\n    return a / 0\ndivide(1)")
    error = caught.value
    assert error.ename == "ZeroDivisionError"
    assert error.evalue == "division by zero"
    assert "\x1b[" not in error.traceback_text
    assert "return a / 0" in error.traceback_text
    assert "divide(1)" in error.traceback_text
    assert "ZeroDivisionError" in str(error)
    assert error.result is not None
    assert error.result.stdout == "before\n"
    assert error.result.outputs[-1]["output_type"] == "error"
    assert isinstance(error, RJupyterError)


def test_state_persists_between_executes(kernel: Kernel) -> None:
    kernel.execute("counter = 41")
    kernel.execute("counter += 1")
    assert kernel.execute("counter").text == "42"


def test_output_streams_live_to_the_callback(kernel: Kernel) -> None:
    arrivals: list[tuple[float, str]] = []
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.0)\nprint('second')"
    result = kernel.execute(
        code, on_output=lambda output: arrivals.append((time.monotonic(), output["text"]))
    )
    finished = time.monotonic()
    assert [text for _, text in arrivals] == ["first\n", "second\n"]
    assert finished - arrivals[0][0] > 0.5, "the first line came only at the end"
    assert result.stdout == "first\nsecond\n"


def test_interrupt_stops_a_busy_loop(kernel: Kernel) -> None:
    looping = threading.Event()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            kernel.execute(
                "print('looping', flush=True)\nwhile True: pass",
                on_output=lambda _output: looping.set(),
            )
        except BaseException as error:  # handed to the test thread
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    assert looping.wait(30), "the loop never started"
    kernel.interrupt()
    worker.join(30)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], RemoteExecutionError)
    assert outcome[0].ename == "KeyboardInterrupt"
    assert kernel.execute("'still alive'").text == "'still alive'"


def test_timeout_interrupts_and_raises(kernel: Kernel) -> None:
    kernel.execute("kept = 'yes'")
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout, match="longer than 1 s") as caught:
        kernel.execute("print('spinning', flush=True)\nwhile True: pass", timeout=1.0)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.result is not None
    assert caught.value.result.stdout == "spinning\n"
    assert time.monotonic() - started < 10
    assert "ready again" in str(caught.value)
    assert kernel.execute("kept").text == "'yes'", "the interrupted kernel keeps its state"


def test_restart_clears_state(nb: RemoteNotebook) -> None:
    with nb.kernel() as kernel:
        kernel.execute("x = 1")
        kernel.restart()
        with pytest.raises(RemoteExecutionError) as caught:
            kernel.execute("x")
        assert caught.value.ename == "NameError"
        assert kernel.execute("2").execution_count == 2, "the count starts again after restart"


def test_leaving_the_block_shuts_the_kernel_down(nb: RemoteNotebook) -> None:
    with nb.kernel("python3") as kernel:
        assert kernel.id in server_kernel_ids(nb)
        assert kernel.name == "python3"
        assert kernel.language == "python"
        assert kernel.id in repr(kernel)
    assert kernel.id not in server_kernel_ids(nb)
    assert kernel.closed
    with pytest.raises(KernelClosedError, match="shut down"):
        kernel.execute("1")
    with pytest.raises(KernelClosedError):
        kernel.interrupt()
    kernel.shutdown()  # idempotent


def test_a_kernel_without_with_lives_until_shutdown(nb: RemoteNotebook) -> None:
    kernel = nb.kernel()
    try:
        assert kernel.execute("1 + 1").text == "2"
        assert kernel.id in server_kernel_ids(nb)
    finally:
        kernel.shutdown()
    assert kernel.id not in server_kernel_ids(nb)


def test_cwd_is_the_kernels_working_directory(
    nb: RemoteNotebook, lab: Lab, remote: LabHost
) -> None:
    remote.run(["mkdir", "-p", f"{lab.home}/work dir"], check=True)
    with nb.kernel(cwd="~/work dir") as kernel:
        assert kernel.execute("import os; os.getcwd()").text == repr(f"{lab.home}/work dir")
        kernel.restart()
        assert kernel.execute("import os; os.getcwd()").text == repr(f"{lab.home}/work dir")
    before = server_kernel_ids(nb)
    with pytest.raises(KernelError, match="cannot enter '~/no-such-dir'"):
        nb.kernel(cwd="~/no-such-dir")
    assert server_kernel_ids(nb) == before, "a kernel that failed to start is shut down"


def test_unknown_kernel_name(nb: RemoteNotebook) -> None:
    with pytest.raises(KernelError, match="no-such-kernel"):
        nb.kernel("no-such-kernel")


def test_execute_shortcut_uses_one_default_kernel(nb: RemoteNotebook) -> None:
    nb.execute("shortcut = 'kept'")
    assert nb.execute("shortcut").text == "'kept'"
    assert nb.default_kernel.id in server_kernel_ids(nb)


def test_closing_the_notebook_shuts_its_kernels_down(
    lab: Lab, remote: LabHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)
    options: dict[str, Any] = {"ssh_config": lab.ssh_config, "venv": lab.jupyter_venv}
    with RemoteNotebook(remote.name, timeout=60.0, **options) as own:
        token, own_pid = own.token, own.remote_pid
        standalone = own.kernel()
        assert own.execute("import os; os.getpid()").text is not None
        default = own.default_kernel
        assert {standalone.id, default.id} <= set(server_kernel_ids(own))
    assert standalone.closed
    assert default.closed
    with pytest.raises(KernelClosedError):
        default.execute("1")
    with pytest.raises(NotebookClosedError):
        own.execute("1")
    kernel_ids = (standalone.id, default.id)
    assert wait_for(
        lambda: (
            not any(
                pid == own_pid or any(kid in " ".join(argv) for kid in kernel_ids)
                for pid, argv in remote.user_processes()
            )
        )
    ), "the server or a kernel outlived close()"
    assert token not in caplog.text
