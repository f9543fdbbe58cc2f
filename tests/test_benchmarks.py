"""The benchmark's correctness pass (what CI runs of it): tiny sizes, every tool, both links,
directly and through a jump host, bytes checked; no timings."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import main as benchmarks_main
from benchmarks._page_trace import Trace, analyse
from benchmarks._report import Result, render_table
from benchmarks._slurm import ROW
from benchmarks._suite import check
from rjupyter.testing import Lab, LabHost


def test_every_tool_carries_bytes_intact(tmp_path: Path, lab: Lab, remote: LabHost) -> None:
    done = check(lab, remote, tmp_path, size=256 * 1024)
    # 3 tools x 2 links, rjupyter to a Unix socket x 2 links, rjupyter and ssh x 2 jump links
    assert len(done) == 12, done
    assert sum("through a jump host" in line for line in done) == 4, done


def test_the_table_shows_ratios_and_verdicts() -> None:
    rows = [
        Result(
            "bulk download, fast link", "MB/s", {"rjupyter": 450, "openssh": 500, "sshtunnel": 250}
        ),
        Result(
            "200 concurrent, p99",
            "ms",
            {"rjupyter": 24, "openssh": 25, "sshtunnel": 1400},
            failures={"rjupyter": 0, "openssh": 0, "sshtunnel": 109},  # the reference's own
        ),
        Result(
            "time to ready (enter to /api/status 200)",
            "s",
            {"rjupyter": 2.6, "bare jupyter": 2.0},
            reference="bare jupyter",
        ),
        Result(
            "200 concurrent, p99",
            "ms",
            {"rjupyter": 20, "openssh": 25, "sshtunnel": 1400},
            failures={"rjupyter": 1, "openssh": 0, "sshtunnel": 0},
        ),
        Result("RSS growth moving 2 GiB", "MiB", {"rjupyter": 0.3, "openssh": 0, "sshtunnel": 1}),
    ]
    table = render_table(rows).splitlines()
    assert "| 0.90x | 0.50x | >= 0.9x | met |" in table[2]
    assert "| 0.96x | 56.00x | <= 1x | met |" in table[3]
    assert "1.30x |  | <= 1.15x | NOT met |" in table[4]
    assert table[5].endswith("| 0.80x | 56.00x | <= 1x | NOT met |")  # rjupyter failed one
    assert "nan" not in table[6]


def test_the_slurm_row_is_held_to_its_target() -> None:
    met = Result(ROW, "s", {"rjupyter": 3.2, "bare sbatch": 3.0}, reference="bare sbatch")
    missed = Result(ROW, "s", {"rjupyter": 4.1, "bare sbatch": 3.0}, reference="bare sbatch")
    table = render_table([met, missed]).splitlines()
    assert "| 3.2 | 3 (bare sbatch) |  | 1.07x |  | <= 1.15x | met |" in table[2]
    assert table[3].endswith("| 1.37x |  | <= 1.15x | NOT met |")


def _request(request_id: str, url: str, at: float) -> dict[str, Any]:
    return {
        "method": "Network.requestWillBeSent",
        "params": {"requestId": request_id, "request": {"url": url}, "timestamp": at},
    }


def _response(
    request_id: str, connection: int, at: float, wait_ms: float, *, new: bool, **headers: str
) -> list[dict[str, Any]]:
    timing = {
        "requestTime": at,
        "connectStart": 0.0 if new else -1,
        "sendStart": 1.0,
        "receiveHeadersEnd": 1.0 + wait_ms,
    }
    response = {"timing": timing, "connectionId": connection, "headers": headers}
    done = {"requestId": request_id, "timestamp": at + (2 + wait_ms) / 1e3}
    return [
        {
            "method": "Network.responseReceived",
            "params": {"requestId": request_id, "response": response},
        },
        {"method": "Network.loadingFinished", "params": {**done, "encodedDataLength": 1000}},
    ]


def test_the_page_trace_reads_the_waits_from_network_events() -> None:
    base = "http://127.0.0.1:8000"
    events = [
        _request("old", "http://127.0.0.1:7000/lab?token=t", 0.0),  # an earlier load's
        _request("nav", f"{base}/lab?reset&token=t", 10.0),
        *_response("nav", 1, 10.0, 200, new=False),
        _request("js", f"{base}/static/a.js", 10.5),
        *_response("js", 2, 10.5, 250, new=True, **{"Content-Encoding": "gzip"}),
        _request("api", f"{base}/api/me", 10.8),
        *_response("api", 1, 10.8, 100, new=False),
    ]
    trace = analyse(Trace(load=1000.0), events)
    assert trace.lab_wait == 200
    assert trace.new_waits == [250]
    assert (trace.requests, trace.connections, trace.compressed) == (3, 2, 1)
    assert trace.wire_bytes == 3000
    # In flight: 1..202 ms, 501..752 ms, 801..902 ms after the navigation.
    assert abs(trace.idle - (299 + 49)) < 1e-6


def test_a_chart_without_matplotlib_fails_before_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "matplotlib" else real(name, *args),
    )
    with pytest.raises(SystemExit) as exit_info:
        benchmarks_main(["--plot", "chart.png"])  # (no lab is built: it exits at once)
    assert exit_info.value.code == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
