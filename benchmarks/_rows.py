"""Measurements: each takes a local port (a running forwarder) and returns one number."""

from __future__ import annotations

import os
import socket
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rjupyter.testing._traffic import download, echo, upload

MiB = 1 << 20
GiB = 1 << 30


def bulk_download(port: int, size: int) -> float:
    """MB/s for one download of ``size`` bytes (no hashing: the client is not the bottleneck)."""
    start = time.perf_counter()
    download(port, size, verify=False, timeout=600)
    return size / (time.perf_counter() - start) / 1e6


def round_trip(port: int, rounds: int = 300) -> float:
    """Median seconds for a 64-byte request and its echo over one open connection."""
    payload = b"r" * 64
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"ECHO\n")
        for _ in range(rounds):
            start = time.perf_counter()
            sock.sendall(payload)
            received = 0
            while received < len(payload):
                received += len(sock.recv(4096))
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def new_connection(port: int, count: int = 60) -> float:
    """Median seconds to connect, ask and get the first byte back, on fresh connections."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        echo(port, b"1")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass(frozen=True)
class Burst:
    """200 connections at once: how many failed, and the 99th percentile of the others."""

    failures: int
    p99: float


def concurrent(port: int, connections: int = 200, threads: int = 64) -> Burst:
    """``connections`` request/responses (each on its own connection) from ``threads`` threads."""

    def one() -> float:
        start = time.perf_counter()
        echo(port, b"q" * 512, timeout=30)
        return time.perf_counter() - start

    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(one) for _ in range(connections)]
    times = sorted(job.result() for job in jobs if job.exception() is None)
    failures = connections - len(times)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))] if times else float("nan")
    return Burst(failures, p99)


@dataclass(frozen=True)
class Cost:
    """What moving data costs the forwarder process."""

    rss_growth_mib: float
    cpu_seconds_per_gib: float


def _rss_and_cpu(pid: int) -> tuple[int, float]:
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def cost(port: int, pid: int, total: int) -> Cost:
    """RSS growth and CPU time of process ``pid`` while ``total`` bytes go down through it."""
    download(port, 4 * MiB, verify=False)  # warm: threads and buffers exist before the baseline
    rss_before, cpu_before = _rss_and_cpu(pid)
    peak = rss_before
    moved = 0
    while moved < total:
        step = min(256 * MiB, total - moved)
        download(port, step, verify=False, timeout=600)
        moved += step
        peak = max(peak, _rss_and_cpu(pid)[0])
    _, cpu_after = _rss_and_cpu(pid)
    return Cost((peak - rss_before) / MiB, (cpu_after - cpu_before) / (total / GiB))


def check_intact(port: int, size: int, *, half_close: bool = True) -> int:
    """Random bytes both ways (SHA-256 checked), a burst of 40 echoes and, with ``half_close``,
    an answer that must still arrive after the client's EOF.

    Returns:
        How many of the burst's connections failed.

    Raises:
        ConnectionError: Something arrived changed, short, or not at all.
    """
    download(port, size)
    upload(port, size, half_close=False)
    if half_close:
        upload(port, 1024, half_close=True)
    return concurrent(port, connections=40, threads=20).failures


def median_of(repeat: int, measure: Callable[[], float]) -> float:
    """The median of ``repeat`` runs of ``measure``."""
    return statistics.median(measure() for _ in range(repeat))
