"""Opening a notebook in the local browser without putting its token on a command line.

``webbrowser.open(url)`` starts ``xdg-open URL`` (or ``firefox URL``): every local user can read
that argv in ``/proc/*/cmdline`` for as long as the browser runs. Jupyter's own answer
(``use_redirect_file``) is used here too: the token URL goes into a page in a private directory
(0700, the page 0600) and the browser is given only the page's path; the page forwards to the
notebook. The directory is removed when the notebook closes.
"""

from __future__ import annotations

import html
import logging
import os
import shutil
import tempfile
import threading
import webbrowser
from pathlib import Path

from .._errors import RJupyterError

__all__ = ["BrowserRedirect"]

logger = logging.getLogger(__name__)

_PAGE = """\
<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="0;url={url}">
<title>Opening Jupyter</title>
</head>
<body>
<p>This page should take you to Jupyter. If it does not, <a href="{url}">open Jupyter</a>.</p>
</body>
</html>
"""


class BrowserRedirect:
    """A private redirect page for one notebook; :meth:`close` removes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._directory: Path | None = None

    @property
    def path(self) -> Path | None:
        """The page's path while it exists."""
        directory = self._directory
        return directory / "open.html" if directory is not None else None

    def write(self, url: str) -> Path:
        """Write (or rewrite) the page that forwards to ``url``; return its path.

        Raises:
            RJupyterError: The page cannot be written (the temp directory is not writable).
        """
        with self._lock:
            try:
                if self._directory is None:
                    self._directory = Path(tempfile.mkdtemp(prefix="rjupyter-"))  # mode 0700
                page = self._directory / "open.html"
                page.unlink(missing_ok=True)
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                with os.fdopen(os.open(page, flags, 0o600), "w", encoding="utf-8") as stream:
                    stream.write(_PAGE.format(url=html.escape(url, quote=True)))
            except OSError as exc:
                raise RJupyterError(
                    f"cannot write the browser's redirect page in {tempfile.gettempdir()}: "
                    f"{exc}; set TMPDIR to a writable private directory"
                ) from exc
            return page

    def open(self, url: str) -> bool:
        """Open ``url`` in the local browser through the page; False when none could start.

        Raises:
            RJupyterError: The page cannot be written.
        """
        page = self.write(url)
        logger.debug("opening the browser on %s", page)
        return webbrowser.open(page.as_uri())

    def close(self) -> None:
        """Remove the page and its directory (idempotent)."""
        with self._lock:
            directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
