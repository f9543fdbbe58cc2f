"""Leaving a ``with`` block: close, and never let a close failure hide the block's own error."""

from __future__ import annotations

from types import TracebackType

from ._errors import RJupyterError

__all__ = ["ClosingContext", "add_note", "first_of"]


def add_note(exc: BaseException, note: str) -> None:
    """Attach ``note`` to ``exc`` (shown under its traceback) where Python supports notes."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)


def first_of(errors: list[BaseException]) -> BaseException:
    """The first of several failures, with each later one attached to it as a note."""
    first = errors[0]
    for later in errors[1:]:
        add_note(first, f"also: {type(later).__name__}: {later}")
    return first


class ClosingContext:
    """``__exit__`` for objects whose ``close()`` releases everything and may then raise.

    A close failure is raised when the block ended normally; when the block raised, its error
    wins and the close failure is attached to it as a note.
    """

    def close(self) -> object:
        """Release everything; idempotent."""
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except RJupyterError as close_error:
            if exc is None:
                raise
            add_note(exc, f"while closing: {close_error}")
