"""Where JupyterLab's first load goes: ``python -m benchmarks._page_trace [--repeat N]``.

Per link (fast, 40 ms, 100 ms) and tool, a fresh tunnel and one page load as in the
``jupyter-slow`` rows (tools taking turns in each repeat), with Chromium's DevTools network
events recorded. Per tool it prints the medians of: the load time; the forwarder's CPU during
the load; the wait for ``/lab`` (request sent to response headers: two round trips where the
tunnel opens a channel first, one where the channel was open); the wait for the first response
on each new connection; the requests, the connections, the bytes on the wire and how many
responses were compressed; and the seconds when no request was in flight (the browser's and
the server's own work). ``--dump DIR`` keeps each load's events as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rjupyter.testing import Lab
from rjupyter.testing._browser import Chromium

from . import _jupyter
from ._links import DELAYS, delayed
from ._suite import direct_endpoint
from ._tools import NOTEBOOK_FORWARD, Endpoint, forwarding

TOOLS = ("rjupyter", NOTEBOOK_FORWARD, "openssh")  # ssh -L: the reference
_NAVIGATION = re.compile(r"http://127\.0\.0\.1:(\d+)/lab\?")


class _Recorder:
    """Stands in for the browser's DevTools socket and keeps the network events received."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.messages: list[dict[str, Any]] = []

    def recv(self) -> str:
        raw: str = self.sock.recv()
        message = json.loads(raw)
        if str(message.get("method", "")).startswith("Network."):
            self.messages.append(message)
        return raw

    def send(self, data: str) -> None:
        self.sock.send(data)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Trace:
    """One page load, as Chromium saw it (times in ms)."""

    load: float
    cpu: float = 0.0  # the forwarder's CPU (user + system) during the load
    lab_wait: float = 0.0
    new_waits: list[float] = field(default_factory=list)
    requests: int = 0
    connections: int = 0
    wire_bytes: int = 0
    compressed: int = 0
    idle: float = 0.0


def analyse(trace: Trace, messages: list[dict[str, Any]]) -> Trace:
    """Fill ``trace`` from one load's network events (those of its tunnel's port only)."""
    urls: dict[str, str] = {}
    sent: dict[str, float] = {}
    responses: dict[str, dict[str, Any]] = {}
    finished: dict[str, tuple[float, int]] = {}
    for message in messages:
        params, method = message.get("params", {}), message["method"]
        if method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
            sent[params["requestId"]] = params["timestamp"]
        elif method == "Network.responseReceived":
            responses[params["requestId"]] = params["response"]
        elif method == "Network.loadingFinished":
            size = int(params.get("encodedDataLength", 0))
            finished[params["requestId"]] = (params["timestamp"], size)
    navigation = max((r for r in urls if _NAVIGATION.match(urls[r])), key=sent.__getitem__)
    port = _NAVIGATION.match(urls[navigation]).group(1)  # type: ignore[union-attr]
    start = sent[navigation]
    spans, connections = [], set()
    for request_id, response in responses.items():
        timing = response.get("timing")
        if f":{port}/" not in urls.get(request_id, "") or not timing:
            continue
        wait = timing["receiveHeadersEnd"] - timing["sendStart"]
        if request_id == navigation:
            trace.lab_wait = wait
        elif timing.get("connectStart", -1) >= 0:
            trace.new_waits.append(wait)
        trace.requests += 1
        connections.add(response["connectionId"])
        end, size = finished.get(request_id, (timing["requestTime"], 0))
        trace.wire_bytes += size
        trace.compressed += bool({k.lower() for k in response["headers"]} & {"content-encoding"})
        began = (timing["requestTime"] - start) * 1e3 + timing["sendStart"]
        spans.append((began, (end - start) * 1e3))
    trace.connections = len(connections)
    trace.idle = _idle(sorted(spans))
    return trace


def _idle(spans: list[tuple[float, float]]) -> float:
    """Milliseconds between the first request and the last response with none in flight."""
    idle, reach = 0.0, spans[0][1]
    for began, ended in spans[1:]:
        idle += max(0.0, began - reach)
        reach = max(reach, ended)
    return idle


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Page:
    browser: Chromium
    recorder: _Recorder
    port: int
    token: str


@contextmanager
def _recording(port: int, token: str) -> Iterator[_Page]:
    with _jupyter.open_browser() as browser:
        recorder = _Recorder(browser._socket)
        browser._socket = recorder
        try:
            yield _Page(browser, recorder, port, token)
        finally:
            browser._socket = recorder.sock


def _load(page: _Page, tool: str, link: Endpoint) -> Trace:
    with forwarding(tool, link, page.port) as forwarder:
        page.recorder.messages.clear()
        cpu = _cpu_seconds(forwarder.pid)
        seconds = _jupyter.page_load(page.browser, forwarder.port, page.token)
        cpu = _cpu_seconds(forwarder.pid) - cpu
    return analyse(Trace(seconds * 1e3, cpu * 1e3), list(page.recorder.messages))


def summary(label: str, tool: str, traces: list[Trace], reference: list[Trace]) -> str:
    """One line of medians over ``traces``; the paired ratio is the median of the ratios of
    each load to ``reference``'s load in the same repeat (the machine's load drifts less
    within a repeat than across the run)."""

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    new_waits = [wait for trace in traces for wait in trace.new_waits]
    paired = median([t.load / r.load for t, r in zip(traces, reference, strict=True)])
    return (
        f"{label:7} {tool:17} load {median([t.load for t in traces]):5.0f} ms "
        f"(runs {', '.join(f'{t.load:.0f}' for t in traces)}; paired ratio {paired:.3f}); "
        f"forwarder CPU {median([t.cpu for t in traces]):.0f} ms; "
        f"/lab wait {median([t.lab_wait for t in traces]):.0f} ms; "
        f"new connections' first wait {median(new_waits):.0f} ms (n={len(new_waits)}); "
        f"no request in flight {median([t.idle for t in traces]):.0f} ms; "
        f"{traces[0].requests} requests on {traces[0].connections} connections, "
        f"{traces[0].wire_bytes / 1e6:.2f} MB, {traces[0].compressed} compressed"
    )


def main() -> None:
    """Trace the loads; print one summary line per link and tool."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--links", default="fast,40 ms,100 ms")
    parser.add_argument("--dump", type=Path, help="write each load's network events here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rjupyter-trace-") as workdir, Lab(workdir) as lab:
        remote = lab.add_host("remote")
        with _jupyter.lab_on_a_port(lab, remote) as nb:
            assert nb.remote_port is not None
            fast = direct_endpoint(lab, remote)
            with _recording(nb.remote_port, nb.token) as page:
                _load(page, "openssh", fast)  # the server's first builds
                for label in args.links.split(","):
                    link = (
                        nullcontext(fast)
                        if label == "fast"
                        else delayed(lab, remote, Path(workdir), DELAYS[label])
                    )
                    with link as endpoint:
                        traces = _trace_link(page, endpoint, label, args)
                    for tool in TOOLS:
                        print(summary(label, tool, traces[tool], traces["openssh"]), flush=True)


def _trace_link(
    page: _Page, endpoint: Endpoint, label: str, args: argparse.Namespace
) -> dict[str, list[Trace]]:
    traces: dict[str, list[Trace]] = {tool: [] for tool in TOOLS}
    for run in range(args.repeat):
        for tool in TOOLS:
            traces[tool].append(_load(page, tool, endpoint))
            if args.dump:
                args.dump.mkdir(parents=True, exist_ok=True)
                name = f"{label.replace(' ', '')}-{tool}-{run}.json"
                (args.dump / name).write_text(json.dumps(page.recorder.messages))
    return traces


if __name__ == "__main__":
    main()
