"""Many open/close cycles leave nothing behind: no local threads or file descriptors, no remote
processes or files. CI runs 10 full start/stop cycles and 200 attach/close cycles (a full start
costs ~2.5 s of Jupyter start-up); RJUPYTER_LAUNCH_CYCLES=200 runs the full soak."""

from __future__ import annotations

import gc
import os
import threading
from typing import Any

from helpers import http, wait_for

from rjupyter import RemoteNotebook, stop_server
from rjupyter.testing import Lab, LabHost


def local_resources() -> tuple[int, int]:
    gc.collect()
    return threading.active_count(), len(os.listdir("/proc/self/fd"))


def settled(baseline: tuple[int, int]) -> bool:
    threads, fds = local_resources()
    return threads <= baseline[0] and fds <= baseline[1]


def test_launch_cycles(lab: Lab, remote: LabHost, nb_options: dict[str, Any]) -> None:
    cycles = int(os.environ.get("RJUPYTER_LAUNCH_CYCLES", "10"))
    with RemoteNotebook(remote.name, app="server", **nb_options):
        pass  # warm-up: imports, lazily created objects
    baseline = local_resources()
    for _ in range(cycles):
        with RemoteNotebook(remote.name, app="server", **nb_options) as nb:
            assert http(f"{nb.base_url}api/status", token=nb.token)[0] == 200
    assert wait_for(lambda: settled(baseline), 15), (baseline, local_resources())
    print(f"{cycles} launch cycles: threads/fds before {baseline}, after {local_resources()}")
    assert wait_for(lambda: remote.user_processes() == [], 15), remote.user_processes()
    assert not list((lab.home / ".local/state/rjupyter").glob("*"))


def test_attach_cycles(lab: Lab, remote: LabHost, nb_options: dict[str, Any]) -> None:
    cycles = int(os.environ.get("RJUPYTER_ATTACH_CYCLES", "200"))
    with RemoteNotebook(remote.name, app="server", keep_running=True, **nb_options) as nb:
        pid = nb.remote_pid
    server_processes = len(remote.user_processes())
    with RemoteNotebook.attach(remote.name, pid=pid, ssh_config=lab.ssh_config):
        pass
    baseline = local_resources()
    for _ in range(cycles):
        with RemoteNotebook.attach(remote.name, pid=pid, ssh_config=lab.ssh_config) as again:
            assert http(f"{again.base_url}api/status", token=again.token)[0] == 200
    assert wait_for(lambda: settled(baseline), 15), (baseline, local_resources())
    print(f"{cycles} attach cycles: threads/fds before {baseline}, after {local_resources()}")
    assert wait_for(lambda: len(remote.user_processes()) <= server_processes, 15)
    stop_server(remote.name, pid=pid, ssh_config=lab.ssh_config)
    assert wait_for(lambda: remote.user_processes() == [], 15)
