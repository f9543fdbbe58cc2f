"""Run a notebook in a Slurm batch job on a compute node, reached through the login node.

    python examples/slurm.py LOGIN_NODE [--slurm "--partition=gpu --time=1:00:00"] [--venv PATH]
                             [-F SSH_CONFIG] [--node-host-key-policy accept-new]

Shows the job's queue state while it waits (Ctrl-C cancels the job), runs one request against the
notebook, and cancels the job on the way out. The SSH config needs to name the login node only:
the compute node is reached with the login's user and keys, its host key checked against your
known_hosts, then the cluster's own known hosts on the login node (``--node-host-key-policy
accept-new`` accepts a node key known in neither; never the login node's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import urllib.request

from rjupyter import JobError, RemoteNotebook, RJupyterError, Slurm


def show(step: str, detail: str) -> None:
    print(f"{step}: {detail}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("login_node")
    parser.add_argument("--slurm", default="--time=10", help="sbatch options, as one string")
    parser.add_argument("--venv", help="virtual environment to enter on the compute node")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    parser.add_argument(
        "--node-host-key-policy",
        choices=["reject", "accept-new"],
        help="for a compute node key known neither locally nor on the login node",
    )
    args = parser.parse_args(argv)
    try:
        with RemoteNotebook(
            args.login_node,
            scheduler=dataclasses.replace(
                Slurm.parse(args.slurm), node_host_key_policy=args.node_host_key_policy
            ),
            venv=args.venv,
            ssh_config=args.ssh_config,
            progress=show,
        ) as nb:
            print(f"notebook ready: {nb.url}")
            request = urllib.request.Request(
                nb.base_url + "api/status", headers={"Authorization": f"token {nb.token}"}
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                status = json.load(reply)
            print(f"job {nb.server.job_id} answers: {status['kernels']} kernels")
        print("job cancelled")
    except JobError as error:
        print(f"error: job {error.job_id} {error.state}: {error}", file=sys.stderr)
        return 1
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
