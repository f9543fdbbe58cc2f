"""Teardown bookkeeping: a stack of undo steps that all run, newest first."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["UndoStack"]

logger = logging.getLogger(__name__)


class UndoStack:
    """Teardown steps, run newest first; every step runs even when an earlier one fails."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []

    def push(self, description: str, step: Callable[[], None]) -> None:
        """Add a step; `description` completes "could not ..." in failure reports."""
        self._steps.append((description, step))

    def close(self) -> list[str]:
        """Run and forget every step; return a line per failed step."""
        failures = []
        while self._steps:
            description, step = self._steps.pop()
            try:
                step()
            except Exception as exc:  # teardown goes on; failures are reported below
                logger.warning("lab teardown: could not %s", description, exc_info=True)
                failures.append(f"could not {description}: {exc}")
        return failures
