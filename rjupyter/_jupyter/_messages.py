"""Jupyter messaging protocol pieces: building requests and collecting what an execution shows.

Pure functions and plain data, no I/O: the kernel client (``_kernel.py``) feeds each message it
receives to an :class:`OutputCollector`, which turns the IOPub traffic of one request into
notebook-shaped outputs (``nbformat`` v4 output dicts) and an :class:`ExecutionResult`.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any

from .._errors import KernelError, RemoteExecutionError
from .._results import ExecutionResult, strip_ansi

__all__ = [
    "PROTOCOL_VERSION",
    "Message",
    "OutputCallback",
    "OutputCollector",
    "finish_execution",
    "new_message",
    "reports_death",
]

#: The messaging protocol version our requests claim (ipykernel 6+ speaks it).
PROTOCOL_VERSION = "5.3"

Message = dict[str, Any]
"""One protocol message as JSON: ``header``, ``parent_header``, ``content``, ``channel``..."""

OutputCallback = Callable[[dict[str, Any]], None]
"""Called with each output as it arrives, shaped like an nbformat v4 output dict."""

_OUTPUT_TYPES = frozenset({"stream", "display_data", "execute_result", "error"})


def new_message(msg_type: str, content: dict[str, Any], *, session: str, channel: str) -> Message:
    """Build a request for the kernel WebSocket (JSON form, as jupyter_server expects).

    Args:
        msg_type: e.g. ``"execute_request"``.
        content: The message content.
        session: The client session id (one per WebSocket connection).
        channel: ``"shell"`` or ``"control"``.

    Returns:
        The message, with a fresh ``msg_id`` in its header.
    """
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": session,
            "username": "rjupyter",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


class OutputCollector:
    """Turns the IOPub messages of one request into notebook outputs, as nbclient does.

    Consecutive stream output of one name is merged into one output; ``clear_output`` and
    ``update_display_data`` are honoured.

    Args:
        on_output: Called with each new output (before merging) as it arrives.
    """

    def __init__(self, on_output: OutputCallback | None = None) -> None:
        self.result = ExecutionResult()
        self._on_output = on_output
        self._clear_before_next = False
        self._display_ids: dict[str, list[int]] = {}

    def feed(self, msg_type: str, content: dict[str, Any]) -> None:
        """Take one IOPub message addressed to this request."""
        if msg_type == "clear_output":
            if content.get("wait"):
                self._clear_before_next = True
            else:
                self._clear()
        elif msg_type == "update_display_data":
            self._update_display(content)
        elif msg_type in _OUTPUT_TYPES:
            self._add(output_from_content(msg_type, content), content)

    def _clear(self) -> None:
        self.result.outputs.clear()
        self._display_ids.clear()
        self._clear_before_next = False

    def _add(self, output: dict[str, Any], content: dict[str, Any]) -> None:
        if self._clear_before_next:
            self._clear()
        if self._on_output is not None:
            self._on_output(dict(output))
        outputs = self.result.outputs
        if output["output_type"] == "execute_result":
            self.result.execution_count = output["execution_count"]
        last = outputs[-1] if outputs else None
        if (
            last is not None
            and output["output_type"] == "stream"
            and last["output_type"] == "stream"
            and last["name"] == output["name"]
        ):
            last["text"] += output["text"]
            return
        display_id = content.get("transient", {}).get("display_id")
        if display_id:
            self._display_ids.setdefault(display_id, []).append(len(outputs))
        outputs.append(output)

    def _update_display(self, content: dict[str, Any]) -> None:
        display_id = content.get("transient", {}).get("display_id")
        for index in self._display_ids.get(display_id or "", []):
            self.result.outputs[index]["data"] = content.get("data", {})
            self.result.outputs[index]["metadata"] = content.get("metadata", {})


def output_from_content(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """Shape one IOPub message's content as an nbformat v4 output dict.

    Args:
        msg_type: ``stream``, ``display_data``, ``execute_result`` or ``error``.
        content: The message's content.

    Returns:
        The output, e.g. ``{"output_type": "stream", "name": "stdout", "text": "hi\\n"}``.

    Raises:
        ValueError: ``msg_type`` is not an output message.
    """
    if msg_type == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if msg_type == "display_data":
        return {
            "output_type": "display_data",
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
        }
    if msg_type == "execute_result":
        return {
            "output_type": "execute_result",
            "execution_count": content.get("execution_count"),
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
        }
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": list(content.get("traceback", [])),
        }
    raise ValueError(f"not an output message: {msg_type!r}")


def reports_death(message: Message) -> bool:
    """True for the status the server sends when a kernel died (and is being restarted)."""
    state = message["content"].get("execution_state") if message["msg_type"] == "status" else None
    return state in ("restarting", "dead")


def finish_execution(
    reply: dict[str, Any], result: ExecutionResult, *, kernel_id: str
) -> ExecutionResult:
    """Complete ``result`` from the ``execute_reply``; raise when the code failed.

    Raises:
        RemoteExecutionError: The reply says the code raised.
        KernelError: The kernel aborted the request.
    """
    result.status = str(reply.get("status", "ok"))
    if reply.get("execution_count") is not None:
        result.execution_count = int(reply["execution_count"])
    if result.status == "ok":
        return result
    if result.status == "aborted":
        raise KernelError(
            f"kernel {kernel_id} aborted the request (an earlier one failed)", kernel_id=kernel_id
        )
    ename, evalue = str(reply.get("ename", "")), str(reply.get("evalue", ""))
    traceback = [str(line) for line in reply.get("traceback", [])]
    raise RemoteExecutionError(
        f"the code raised {ename}: {evalue}\n--- remote traceback ---\n"
        + strip_ansi("\n".join(traceback)),
        ename=ename,
        evalue=evalue,
        traceback=traceback,
        result=result,
    )
