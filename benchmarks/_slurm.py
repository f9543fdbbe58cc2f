"""The Slurm row: submit to ready through rjupyter, against a bare ``sbatch`` Jupyter reached the
same way (issue 16, item 6).

Both sides start from nothing (no connection open) and end when ``/api/status`` answers 200
through the compute node, reached by a ``direct-tcpip`` hop through the login connection:

- **bare sbatch**: log in to the login node once; one remote script submits ``jupyter server``
  with ``sbatch`` and follows its output file with ``tail -F`` (as a user types ``sbatch`` and
  ``tail -F``; no polling of ``squeue`` at all); the URL read from it; log in to the node through
  the login connection; ask ``/api/status`` on a channel through it until it answers 200. The
  node's name is given (a user would ask ``squeue`` for it: the reference does not pay for that).
- **rjupyter**: ``RemoteNotebook("login", scheduler=Slurm(...), app="server")`` until
  ``/api/status`` answers 200 through ``nb.url`` (its local tunnel included), in the user's login
  environment (the default).

Runs alternate (bare, rjupyter) and each waits until the job before it has left the queue.
"""

from __future__ import annotations

import re
import statistics
import time

from rjupyter import RemoteNotebook, Slurm
from rjupyter._deadline import Deadline
from rjupyter._ssh._connection import SSHConnection, open_connection
from rjupyter._ssh._node import open_node_connection
from rjupyter._ssh._options import connect_options
from rjupyter.testing import Lab
from rjupyter.testing._slurm import SlurmCluster

from ._jupyter import _poll_status
from ._report import Result

ROW = "Slurm submit to ready (to /api/status 200)"
_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/\S*\?token=(\w+)")
#: Args: the jupyter command. Submits it and follows its output file from the first line.
_BARE = """\
umask 077
out="$HOME/.rjbench-slurm-$$.log"
id=$(sbatch --parsable --time=10 --output="$out" --wrap "exec $1 server --no-browser \
--ip=127.0.0.1 --port=0") || exit 1
echo "JOB $id"
exec tail -n +1 -F -s 0.1 -- "$out" 2>/dev/null
"""


def _status_through(node: SSHConnection, port: int, token: str) -> bool:
    """One ``GET /api/status`` on a fresh channel through ``node``; True on 200."""
    channel = node.transport.open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0))
    try:
        request = f"GET /api/status HTTP/1.0\r\nAuthorization: token {token}\r\n\r\n"
        channel.sendall(request.encode())
        return channel.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        channel.close()


def ready_bare(lab: Lab, cluster: SlurmCluster) -> float:
    """Seconds from nothing to ``/api/status`` 200 for a bare sbatch Jupyter (see above)."""
    options = connect_options(ssh_config=lab.ssh_config)
    start = time.perf_counter()
    login = open_connection("login", options, Deadline(60))
    job = ""
    try:
        channel = login.stream(
            _BARE, [f"{lab.jupyter_venv}/bin/jupyter"], timeout=15, hold_stdin=True
        )
        channel.settimeout(120)
        text, found = "", None
        while found is None:
            data = channel.recv(65536)
            if not data:
                raise RuntimeError(f"the bare job ended before its URL: {text[-2000:]}")
            text += data.decode(errors="replace")
            job = job or (re.findall(r"JOB (\d+)", text) or [""])[0]
            found = _URL.search(text)
        channel.close()
        port, token = int(found.group(1)), found.group(2)
        # The node as a cluster user reaches it: only the login node is in the ssh_config.
        node = open_node_connection(cluster.node_name, options, Deadline(60), login=login)
        try:
            while True:
                try:
                    if _status_through(node, port, token):
                        return time.perf_counter() - start
                except OSError:
                    pass
                time.sleep(0.01)
        finally:
            node.close()
    finally:
        if job:
            login.run('scancel "$1"; rm -f "$HOME"/.rjbench-slurm-*.log\n', [job])
        login.close()
        _wait_empty(cluster)


def ready_rjupyter(lab: Lab, cluster: SlurmCluster) -> float:
    """Seconds from entering the notebook to ``/api/status`` 200 through ``nb.url``."""
    start = time.perf_counter()
    try:
        with RemoteNotebook(
            "login",
            scheduler=Slurm(time="10"),
            app="server",
            ssh_config=lab.ssh_config,
            venv=lab.jupyter_venv,
        ) as nb:
            _poll_status(f"{nb.base_url}api/status", nb.token)
            return time.perf_counter() - start
    finally:
        _wait_empty(cluster)


def _wait_empty(cluster: SlurmCluster) -> None:
    end = time.monotonic() + 60
    while cluster.jobs() and time.monotonic() < end:
        time.sleep(0.1)


def slurm_rows(lab: Lab, repeat: int) -> tuple[list[Result], dict[str, list[float]]]:
    """The Slurm row (medians of ``repeat`` alternating runs, after one warm-up each) and the
    samples."""
    cluster = lab.slurm or lab.add_slurm()
    ready_bare(lab, cluster)  # warm-up: the node's first Jupyter imports, both sides
    ready_rjupyter(lab, cluster)
    samples: dict[str, list[float]] = {"rjupyter": [], "bare sbatch": []}
    for _ in range(repeat):
        samples["bare sbatch"].append(ready_bare(lab, cluster))
        samples["rjupyter"].append(ready_rjupyter(lab, cluster))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return [Result(ROW, "s", medians, reference="bare sbatch")], samples
