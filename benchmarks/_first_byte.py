"""The rows of issue 18 ("full speed from the first byte"): AES-GCM as a reference, first
transfer against steady on 40 and 100 ms links, a jump host (fast and 40 ms), the tunnel
embedded in the process that makes the requests, memory through a jump host, and JupyterLab's
first load on slow links.

Groups (``--rows``): ``gcm``, ``first``, ``jump``, ``embedded``, ``jupyter-slow``.
"""

from __future__ import annotations

import argparse
import statistics
from contextlib import ExitStack
from pathlib import Path

from rjupyter import Tunnel
from rjupyter.testing import Lab, LabHost, TrafficServer

from . import _jupyter
from ._links import DELAYS, delayed, first_and_later, jump_links, steady
from ._report import Result
from ._rows import concurrent, cost
from ._suite import direct_endpoint
from ._tools import NOTEBOOK_FORWARD, OPENSSH_GCM, Endpoint, forwarding

GROUPS = ("gcm", "first", "jump", "embedded", "jupyter-slow")
PAIR = ("rjupyter", "openssh")


def measure_first_byte(
    lab: Lab, remote: LabHost, workdir: Path, args: argparse.Namespace, groups: set[str]
) -> list[Result]:
    """The rows of ``groups``, medians of ``args.repeat`` runs, tools interleaved."""
    repeat = args.repeat
    results: list[Result] = []
    fast = direct_endpoint(lab, remote)
    with TrafficServer(remote) as traffic:
        if "gcm" in groups:
            results.append(
                steady(
                    "bulk download, fast link, vs OpenSSH AES-GCM",
                    fast,
                    traffic.port,
                    args.fast_size,
                    repeat=repeat,
                    tools=("rjupyter", "openssh", OPENSSH_GCM),
                )
            )
        if "first" in groups:
            for label, delay in DELAYS.items():
                with delayed(lab, remote, workdir, delay) as slow:
                    rows = first_and_later(
                        f"bulk download, {label} RTT",
                        slow,
                        traffic.port,
                        args.slow_size,
                        repeat=repeat,
                        tools=PAIR,
                    )
                results += [rows.first, rows.later]
        if "embedded" in groups:
            results += _embedded(fast, traffic.port, repeat)
    if "jump" in groups:
        results += _jump(lab, workdir, args)
    if "jupyter-slow" in groups:
        results += _jupyter_slow(lab, remote, workdir, repeat)
    return results


def _embedded(endpoint: Endpoint, remote_port: int, repeat: int) -> list[Result]:
    """p99 of 200 concurrent requests: rjupyter.Tunnel in this process (whose threads make
    the requests), in a process of its own, and ``ssh -L``."""
    samples: dict[str, list[float]] = {"embedded": [], "rjupyter": [], "openssh": []}
    with ExitStack() as stack:
        ports = {
            tool: stack.enter_context(forwarding(tool, endpoint, remote_port)).port for tool in PAIR
        }
        tunnel = stack.enter_context(
            Tunnel(endpoint.alias, remote_port, ssh_config=endpoint.ssh_config)
        )
        ports["embedded"] = tunnel.local_port
        for port in ports.values():
            concurrent(port)  # warm
        for _ in range(repeat):
            for tool, port in ports.items():
                samples[tool].append(concurrent(port).p99 * 1e3)
    own = {tool: statistics.median(samples[tool]) for tool in PAIR}
    embedded = {
        "rjupyter": statistics.median(samples["embedded"]),
        "openssh": own["openssh"],
    }
    return [
        Result("200 concurrent, p99, tunnel in its own process", "ms", own),
        Result("200 concurrent, p99, tunnel in the requesting process", "ms", embedded),
    ]


def _jump(lab: Lab, workdir: Path, args: argparse.Namespace) -> list[Result]:
    """Through one jump host: bulk on the fast link, first and second transfer at 40 ms, and
    the forwarder's memory over ``args.cost_size`` bytes."""
    with jump_links(lab, workdir) as links, TrafficServer(links.target) as traffic:
        results = [
            steady(
                "bulk download through a jump host, fast link",
                links.fast,
                traffic.port,
                args.fast_size,
                repeat=args.repeat,
                tools=PAIR,
            )
        ]
        slow = first_and_later(
            "bulk download through a jump host, 40 ms RTT",
            links.slow,
            traffic.port,
            args.slow_size,
            repeat=args.repeat,
            tools=PAIR,
        )
        results += [slow.first, slow.later]
        with ExitStack() as stack:
            running = {
                tool: stack.enter_context(forwarding(tool, links.fast, traffic.port))
                for tool in PAIR
            }
            costs = {
                tool: cost(forwarder.port, forwarder.pid, args.cost_size)
                for tool, forwarder in running.items()
            }
        results.append(
            Result(
                "RSS growth moving 2 GiB through a jump host",
                "MiB",
                {tool: c.rss_growth_mib for tool, c in costs.items()},
            )
        )
    return results


#: The JupyterLab rows' tools: rjupyter as a notebook's own forward has it (with spare
#: channels: the "rjupyter" column), a plain ``Tunnel`` (no spares, like ``ssh -L``; its own
#: row), and ``ssh -L``, taking turns in each repeat.
_LAB_TOOLS = {"rjupyter": NOTEBOOK_FORWARD, "rjupyter Tunnel": "rjupyter", "openssh": "openssh"}


def _jupyter_slow(lab: Lab, remote: LabHost, workdir: Path, repeat: int) -> list[Result]:
    """JupyterLab's first page load in headless Chromium on a fresh tunnel, per slow link."""
    results = []
    with (
        _jupyter.lab_on_a_port(lab, remote) as nb,
        _jupyter.open_browser() as browser,
    ):
        port = nb.remote_port
        assert port is not None
        with forwarding("openssh", direct_endpoint(lab, remote), port) as warm:
            _jupyter.page_load(browser, warm.port, nb.token)  # the server's first builds
        for label, delay in DELAYS.items():
            samples: dict[str, list[float]] = {name: [] for name in _LAB_TOOLS}
            with delayed(lab, remote, workdir, delay) as slow:
                for _ in range(repeat):
                    for name, tool in _LAB_TOOLS.items():
                        with forwarding(tool, slow, port) as forwarder:
                            seconds = _jupyter.page_load(browser, forwarder.port, nb.token)
                        samples[name].append(seconds * 1e3)
            medians = {name: statistics.median(values) for name, values in samples.items()}
            name = f"JupyterLab first page load, {label} RTT"
            results.append(Result(name, "ms", medians))
            plain = {"rjupyter": medians["rjupyter Tunnel"], "openssh": medians["openssh"]}
            results.append(Result(f"{name}, Tunnel without spare channels", "ms", plain))
    return results
