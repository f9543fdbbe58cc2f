"""The Jupyter rows: time to ready, and JupyterLab's page load in headless Chromium."""

from __future__ import annotations

import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from rjupyter import RemoteNotebook
from rjupyter.testing import Lab, LabHost
from rjupyter.testing._browser import Chromium
from rjupyter.testing._procs import stop_popen

_URL = re.compile(rb"http://[^/\s]+:(\d+)/")
#: Lab is loaded when its shell, the status bar and the launcher of a fresh workspace are drawn.
LAB_READY = (
    "document.querySelector('.jp-LabShell') && document.querySelector('#jp-main-statusbar')"
    " && document.querySelector('.jp-Launcher')"
)


def _status_ok(url: str, token: str) -> bool:
    headers = {"Authorization": f"token {token}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http://, ours
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
            return int(reply.status) == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def _poll_status(url: str, token: str) -> None:
    # Readiness by asking, as a user's first request would; 10 ms between tries.
    while not _status_ok(url, token):
        time.sleep(0.01)


def ready_through_rjupyter(lab: Lab, host: LabHost) -> float:
    """Seconds from entering ``RemoteNotebook`` to ``/api/status`` 200 through ``nb.url``."""
    start = time.perf_counter()
    with RemoteNotebook(
        host.name, app="lab", ssh_config=lab.ssh_config, venv=lab.jupyter_venv
    ) as nb:
        _poll_status(f"{nb.base_url}api/status", nb.token)
        return time.perf_counter() - start


def ready_bare(lab: Lab, host: LabHost) -> float:
    """Seconds from starting ``jupyter lab`` on the host (no SSH) to ``/api/status`` 200, asked
    over the host's own network link."""
    token = secrets.token_hex(16)
    start = time.perf_counter()
    process = host.popen(
        [
            f"{lab.jupyter_venv}/bin/jupyter",
            "lab",
            "--no-browser",
            f"--ServerApp.ip={host.address}",
            "--port=0",
        ],
        env={"JUPYTER_TOKEN": token},
    )
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            match = _URL.search(line)
            if match and int(match.group(1)):
                port = int(match.group(1))
                break
        if port is None:
            raise RuntimeError("jupyter lab exited before printing its URL")
        _poll_status(f"http://{host.address}:{port}/api/status", token)
        return time.perf_counter() - start
    finally:
        stop_popen(process)
        if process.stderr is not None:
            process.stderr.close()


def lab_on_a_port(lab: Lab, host: LabHost) -> RemoteNotebook:
    """JupyterLab on a TCP port of ``host`` (what every tool compared can forward to), not
    started."""
    return RemoteNotebook(
        host.name, app="lab", unix_socket=False, ssh_config=lab.ssh_config, venv=lab.jupyter_venv
    )


def page_load(browser: Chromium, port: int, token: str) -> float:
    """Seconds from navigation start to a drawn JupyterLab, caches off, fresh workspace."""
    browser.goto("about:blank")
    browser.goto(f"http://127.0.0.1:{port}/lab?reset&token={token}")
    browser.wait_for(LAB_READY, timeout=120)
    return float(browser.evaluate("performance.now()")) / 1000


@contextmanager
def open_browser() -> Iterator[Chromium]:
    """A headless Chromium with its HTTP cache disabled (every load fetches every asset),
    stopped (with its whole process group) on exit."""
    with Chromium() as browser:
        browser.page("Network.enable")
        browser.page("Network.setCacheDisabled", cacheDisabled=True)
        yield browser
