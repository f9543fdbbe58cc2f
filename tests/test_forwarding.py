"""The forwarder's data path against the lab: bytes intact both ways, half-close, bursts of
connections, and windows that follow the link's round trip."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rjupyter import Tunnel
from rjupyter._link import MIN_WINDOW
from rjupyter.testing import DelayProxy, Lab, LabHost, TrafficServer, ssh_config_through
from rjupyter.testing._traffic import download, echo, upload

MiB = 1 << 20


@pytest.fixture(scope="module")
def traffic(lab: Lab, remote: LabHost) -> Iterator[TrafficServer]:
    with TrafficServer(remote) as server:
        yield server


@pytest.fixture
def tunnel(lab: Lab, remote: LabHost, traffic: TrafficServer) -> Iterator[Tunnel]:
    with Tunnel(remote.name, traffic.port, ssh_config=lab.ssh_config) as opened:
        yield opened


def test_bytes_arrive_intact_both_ways(tunnel: Tunnel) -> None:
    # Random data with a SHA-256 check: a lost, changed or reordered byte fails.
    download(tunnel.local_port, 48 * MiB)
    upload(tunnel.local_port, 48 * MiB)


def test_both_directions_at_once(tunnel: Tunnel) -> None:
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(download, tunnel.local_port, 8 * MiB) for _ in range(2)]
        jobs += [pool.submit(upload, tunnel.local_port, 8 * MiB) for _ in range(2)]
        for job in jobs:
            job.result()


def test_half_close_keeps_the_other_direction(tunnel: Tunnel) -> None:
    # The client's EOF reaches the server, whose answer still comes back afterwards.
    with socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=30) as sock:
        sock.sendall(b"SINK\nhello")
        sock.shutdown(socket.SHUT_WR)
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"5 2cf24dba")


def test_a_burst_of_200_connections(tunnel: Tunnel) -> None:
    # More than socketserver's backlog of 5 at once: every one is answered.
    with ThreadPoolExecutor(100) as pool:
        jobs = [pool.submit(echo, tunnel.local_port, b"x" * 512, rounds=3) for _ in range(200)]
        failures = [job.exception() for job in jobs if job.exception() is not None]
    assert failures == []


def test_window_grows_with_the_round_trip(
    tmp_path: Path, lab: Lab, remote: LabHost, traffic: TrafficServer
) -> None:
    proxy = DelayProxy((remote.address, remote.port), delay=0.02)
    try:
        config = ssh_config_through(lab, remote, proxy.port, tmp_path)
        with Tunnel("slow", traffic.port, ssh_config=config) as slow:
            download(slow.local_port, 4 * MiB)
            forwarder = slow._forwarder
            assert forwarder is not None
            assert (forwarder.link.round_trip or 0) >= 0.04
            assert forwarder.link.window() > 4 * MIN_WINDOW
    finally:
        proxy.close()
