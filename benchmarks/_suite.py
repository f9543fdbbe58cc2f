"""The benchmark itself: endpoints, the correctness pass, and every row of the table."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rjupyter.testing import DelayProxy, Lab, LabHost, TrafficServer, ssh_config_through

from . import _jupyter, _rows
from ._links import jump_links
from ._report import Result
from ._tools import TOOLS, Endpoint, forwarding

MiB = _rows.MiB
#: One-way delay of the slow link: 20 ms each way, a 40 ms round trip.
ONE_WAY_DELAY = 0.020


def direct_endpoint(lab: Lab, remote: LabHost) -> Endpoint:
    """The remote's sshd as the lab's SSH config names it, with no proxy in between."""
    host_key = Path(f"{remote.host_key_files[0]}.pub")
    return Endpoint(
        remote.name,
        lab.ssh_config,
        remote.address,
        remote.port,
        lab.user,
        lab.identity_file,
        host_key,
    )


@contextmanager
def endpoints(lab: Lab, remote: LabHost, workdir: Path) -> Iterator[dict[str, Endpoint]]:
    """The remote's sshd reached directly ("fast") and through a 40 ms RTT proxy ("slow")."""
    fast = direct_endpoint(lab, remote)
    proxy = DelayProxy((remote.address, remote.port), delay=ONE_WAY_DELAY)
    try:
        config = ssh_config_through(lab, remote, proxy.port, workdir)
        slow = Endpoint(
            "slow", config, "127.0.0.1", proxy.port, lab.user, lab.identity_file, fast.host_key
        )
        yield {"fast": fast, "slow": slow}
    finally:
        proxy.close()


def check(
    lab: Lab, remote: LabHost, workdir: Path, size: int = 1 * MiB, tools: tuple[str, ...] = TOOLS
) -> list[str]:
    """The correctness pass: bytes intact through ``tools`` on both links, directly and through
    a jump host; what ran.

    Raises:
        ConnectionError: Some bytes arrived changed or not at all.
    """
    done = []
    with _traffic_server(lab, remote) as traffic, endpoints(lab, remote, workdir) as links:
        named = {f"{name} link": endpoint for name, endpoint in links.items()}
        done += _check_links(named, tools, traffic.port, size)
        if "rjupyter" in tools:  # the lean path over direct-streamlocal channels
            for link, endpoint in named.items():
                with forwarding("rjupyter", endpoint, socket_path(lab)) as forwarder:
                    failed = _rows.check_intact(forwarder.port, size)
                if failed:
                    raise ConnectionError(f"rjupyter to a Unix socket: {failed} of 40 failed")
                done.append(f"rjupyter to a Unix socket over the {link}: bytes intact")
    # Through a jump host (ProxyJump) on both links; stock sshtunnel has no jump hosts.
    with jump_links(lab, workdir) as jump, TrafficServer(jump.target) as traffic:
        through = {
            "fast link through a jump host": jump.fast,
            "40 ms link through a jump host": jump.slow,
        }
        jump_tools = tuple(tool for tool in tools if tool != "sshtunnel")
        done += _check_links(through, jump_tools, traffic.port, size)
    return done


def _check_links(
    links: dict[str, Endpoint], tools: tuple[str, ...], remote_port: int, size: int
) -> list[str]:
    """:func:`check` for each of ``links`` and ``tools``."""
    done = []
    for link, endpoint in links.items():
        for tool in tools:
            # Stock sshtunnel closes the whole channel at the client's EOF (no half-close)
            # and now and then drops a connection of a burst: limits of the reference,
            # reported, not failed on.
            reference = tool == "sshtunnel"
            with forwarding(tool, endpoint, remote_port) as forwarder:
                started = time.perf_counter()
                try:
                    failed = _rows.check_intact(forwarder.port, size, half_close=not reference)
                except ConnectionError as error:
                    raise ConnectionError(f"{tool} over the {link}: {error}") from error
            if failed and not reference:
                raise ConnectionError(f"{tool} over the {link}: {failed} of 40 failed")
            seconds = time.perf_counter() - started
            done.append(
                f"{tool} over the {link}: {size} bytes each way intact "
                f"({seconds:.1f} s with hashing), {failed} of 40 burst failed"
            )
    return done


def socket_path(lab: Lab) -> str:
    """Where the traffic server's Unix socket is (in the lab user's home)."""
    return str(lab.home / "traffic.sock")


def _traffic_server(lab: Lab, remote: LabHost) -> TrafficServer:
    """The traffic server, also on a Unix socket the lab user owns."""
    return TrafficServer(remote, unix_socket=socket_path(lab), socket_owner=lab.uid)


def measure(lab: Lab, remote: LabHost, workdir: Path, args: argparse.Namespace) -> list[Result]:
    """Every row of the table, medians of ``args.repeat`` runs, tools interleaved."""
    repeat = args.repeat
    results: list[Result] = []
    with _traffic_server(lab, remote) as traffic, endpoints(lab, remote, workdir) as links:
        results += _socket_rows(links["fast"], traffic.port, socket_path(lab), args, repeat)
        with contextlib.ExitStack() as stack:
            fast = {
                tool: stack.enter_context(forwarding(tool, links["fast"], traffic.port))
                for tool in TOOLS
            }
            ports = {tool: forwarder.port for tool, forwarder in fast.items()}
            results.append(
                _per_tool(
                    "bulk download, fast link",
                    "MB/s",
                    repeat,
                    ports,
                    lambda p: _rows.bulk_download(p, args.fast_size),
                )
            )
            results.append(
                _per_tool(
                    "small request/response",
                    "ms",
                    repeat,
                    ports,
                    lambda p: _rows.round_trip(p) * 1e3,
                )
            )
            results.append(
                _per_tool(
                    "new connection + first byte",
                    "ms",
                    repeat,
                    ports,
                    lambda p: _rows.new_connection(p) * 1e3,
                )
            )
            bursts = {
                tool: [_rows.concurrent(ports[tool]) for _ in range(repeat)] for tool in TOOLS
            }
            results.append(
                Result(
                    "200 concurrent, p99",
                    "ms",
                    {
                        tool: statistics.median(b.p99 for b in runs) * 1e3
                        for tool, runs in bursts.items()
                    },
                    failures={tool: sum(b.failures for b in runs) for tool, runs in bursts.items()},
                )
            )
            costs = {
                tool: _rows.cost(ports[tool], fast[tool].pid, args.cost_size) for tool in TOOLS
            }
            results.append(
                Result(
                    "RSS growth moving 2 GiB",
                    "MiB",
                    {tool: c.rss_growth_mib for tool, c in costs.items()},
                )
            )
            results.append(
                Result(
                    "CPU per GiB", "s", {tool: c.cpu_seconds_per_gib for tool, c in costs.items()}
                )
            )
        with contextlib.ExitStack() as stack:
            slow = {
                tool: stack.enter_context(forwarding(tool, links["slow"], traffic.port)).port
                for tool in TOOLS
            }
            results.append(
                _per_tool(
                    "bulk download, 40 ms RTT",
                    "MB/s",
                    repeat,
                    slow,
                    lambda p: _rows.bulk_download(p, args.slow_size),
                )
            )
    if not args.no_jupyter:
        results += _jupyter_rows(lab, remote, repeat)
    return results


def _socket_rows(
    endpoint: Endpoint, port: int, path: str, args: argparse.Namespace, repeat: int
) -> list[Result]:
    """rjupyter to a Unix socket against rjupyter to a TCP port, on the fast link (the ratio is
    the socket's: at least parity is the target)."""
    with (
        forwarding("rjupyter", endpoint, port) as tcp,
        forwarding("rjupyter", endpoint, path) as unix,
    ):
        ports = {"rjupyter TCP": tcp.port, "rjupyter": unix.port}
        rows: list[tuple[str, str, Callable[[int], float]]] = [
            (
                "bulk download to a Unix socket",
                "MB/s",
                lambda p: _rows.bulk_download(p, args.fast_size),
            ),
            ("small request/response to a Unix socket", "ms", lambda p: _rows.round_trip(p) * 1e3),
        ]
        results = []
        for name, unit, run in rows:
            samples: dict[str, list[float]] = {tool: [] for tool in ports}
            for _ in range(repeat):
                for tool, local in ports.items():
                    samples[tool].append(run(local))
            medians = {tool: statistics.median(values) for tool, values in samples.items()}
            results.append(Result(name, unit, medians, reference="rjupyter TCP"))
    return results


def _per_tool(
    name: str, unit: str, repeat: int, ports: dict[str, int], run: Callable[[int], float]
) -> Result:
    samples: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    for _ in range(repeat):
        for tool in TOOLS:
            samples[tool].append(run(ports[tool]))
    return Result(name, unit, {tool: statistics.median(values) for tool, values in samples.items()})


def _jupyter_rows(lab: Lab, remote: LabHost, repeat: int) -> list[Result]:
    ready: dict[str, list[float]] = {"rjupyter": [], "bare jupyter": []}
    for _ in range(repeat):
        ready["bare jupyter"].append(_jupyter.ready_bare(lab, remote))
        ready["rjupyter"].append(_jupyter.ready_through_rjupyter(lab, remote))
    results = [
        Result(
            "time to ready (enter to /api/status 200)",
            "s",
            {name: statistics.median(values) for name, values in ready.items()},
            reference="bare jupyter",
        )
    ]
    endpoint = direct_endpoint(lab, remote)
    with (
        _jupyter.lab_on_a_port(lab, remote) as nb,
        contextlib.ExitStack() as stack,
    ):
        ports = {
            tool: stack.enter_context(forwarding(tool, endpoint, nb.remote_port or 0)).port
            for tool in TOOLS
        }
        browser = stack.enter_context(_jupyter.open_browser())
        for port in ports.values():  # warm the server (first builds of its templates)
            _jupyter.page_load(browser, port, nb.token)
        results.append(
            _per_tool(
                "JupyterLab page load",
                "ms",
                repeat,
                ports,
                lambda p: _jupyter.page_load(browser, p, nb.token) * 1e3,
            )
        )
    return results
