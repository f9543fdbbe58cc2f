"""The ``rjupyter`` command: a thin shell over the library (nothing in the library imports it)."""

from ._main import main

__all__ = ["main"]
