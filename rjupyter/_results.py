"""What an execution on a remote kernel produced, and how its text is cleaned (a leaf)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExecutionResult", "strip_ansi"]

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    """Remove the terminal colour codes IPython puts in tracebacks."""
    return _ANSI_ESCAPE.sub("", text)


@dataclass
class ExecutionResult:
    """What one ``execute`` produced.

    Attributes:
        outputs: Every output in order, as a notebook cell stores them (nbformat v4 dicts:
            ``stream``, ``display_data``, ``execute_result``, ``error``).
        execution_count: The kernel's ``In [n]`` number for this execution.
        status: ``"ok"``, ``"error"`` or ``"aborted"`` (from the kernel's reply).
    """

    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    status: str = "ok"

    def _stream(self, name: str) -> str:
        return "".join(
            output["text"]
            for output in self.outputs
            if output["output_type"] == "stream" and output["name"] == name
        )

    @property
    def stdout(self) -> str:
        """Everything printed to standard output."""
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        """Everything printed to standard error (warnings included)."""
        return self._stream("stderr")

    @property
    def displays(self) -> list[dict[str, Any]]:
        """The MIME bundles shown with ``display()`` (e.g. ``{"image/png": "<base64>"}``)."""
        return [
            output["data"] for output in self.outputs if output["output_type"] == "display_data"
        ]

    @property
    def execute_result(self) -> dict[str, Any] | None:
        """The MIME bundle of the last expression's value (``Out[n]``), or None."""
        for output in self.outputs:
            if output["output_type"] == "execute_result":
                return dict(output["data"])
        return None

    @property
    def text(self) -> str | None:
        """The ``text/plain`` form of :attr:`execute_result`, or None."""
        bundle = self.execute_result
        return None if bundle is None else bundle.get("text/plain")
