"""Running code and notebooks on the remote kernel, and moving files (filled in by issue 7).

:class:`NotebookAutomation` is a mixin of :class:`~rjupyter.RemoteNotebook`; it relies on the
notebook's ``base_url``, ``token``, ``host`` and ``_transport`` (the live paramiko transport).
"""

from __future__ import annotations

__all__ = ["NotebookAutomation"]


class NotebookAutomation:
    """Automation methods of a running notebook: kernels, execute, run_notebook, files."""
