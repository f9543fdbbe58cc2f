"""The links of issue 18's table: slow links (40 and 100 ms), a jump host (fast and 40 ms),
and what each tool does on the *first* transfer of a fresh tunnel versus later ones.

Every link is a :class:`~benchmarks._tools.Endpoint` the tools reach by an SSH config alias:
``slow`` and ``slower`` put a :class:`~rjupyter.testing.DelayProxy` in front of the remote's
sshd; ``jump`` is a lab host ``behind`` reachable only through the lab host ``jump``
(``ProxyJump``); ``slow-jump`` is the same with the delaying proxy in front of the jump host.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from rjupyter.testing import DelayProxy, Lab, LabHost, ssh_config_through

from ._report import Result
from ._rows import bulk_download
from ._tools import Endpoint, forwarding

#: One-way delays: 20 ms each way (a 40 ms round trip) and 50 ms (100 ms).
DELAYS = {"40 ms": 0.020, "100 ms": 0.050}


@dataclass(frozen=True)
class JumpLab:
    """A host reachable only through a jump host, and the endpoints that reach it."""

    target: LabHost
    fast: Endpoint
    slow: Endpoint


def endpoint_for(lab: Lab, host: LabHost, alias: str, config: Path) -> Endpoint:
    """The endpoint that reaches ``host`` as ``alias`` in ``config``."""
    return Endpoint(
        alias,
        config,
        host.address,
        host.port,
        lab.user,
        lab.identity_file,
        Path(f"{host.host_key_files[0]}.pub"),
    )


@contextmanager
def delayed(lab: Lab, remote: LabHost, workdir: Path, delay: float) -> Iterator[Endpoint]:
    """``remote``'s sshd behind a proxy adding ``delay`` seconds each way."""
    proxy = DelayProxy((remote.address, remote.port), delay=delay)
    try:
        alias = f"slow{int(delay * 2000)}"
        config = ssh_config_through(lab, remote, proxy.port, workdir, alias=alias)
        yield Endpoint(
            alias,
            config,
            "127.0.0.1",
            proxy.port,
            lab.user,
            lab.identity_file,
            Path(f"{remote.host_key_files[0]}.pub"),
        )
    finally:
        proxy.close()


def add_jump_hosts(lab: Lab) -> LabHost:
    """The lab hosts ``jump`` and ``behind`` (reachable from ``jump`` only); returns ``behind``."""
    jump = lab.hosts.get("jump") or lab.add_host("jump")
    return lab.hosts.get("behind") or lab.add_host("behind", reachable_from=jump.name)


@contextmanager
def jump_links(
    lab: Lab, workdir: Path, delay: float = DELAYS["40 ms"], *, rate: float | None = None
) -> Iterator[JumpLab]:
    """``behind`` through ``jump`` as the lab's config has it, and with a proxy adding
    ``delay`` each way in front of ``jump``'s sshd (and capping its bandwidth at ``rate``
    bytes a second, if given)."""
    target = add_jump_hosts(lab)
    jump = lab.hosts["jump"]
    proxy = DelayProxy((jump.address, jump.port), delay=delay, rate=rate)
    try:
        jump_config = ssh_config_through(lab, jump, proxy.port, workdir, alias="slow-jump-host")
        config = workdir / "ssh_config_slow_jump"
        config.write_text(
            jump_config.read_text()
            + f"\nHost slow-jump\n  HostName {target.address}\n  Port {target.port}\n"
            f"  User {lab.user}\n  IdentityFile {lab.identity_file}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {lab.known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n  ProxyJump slow-jump-host\n"
        )
        yield JumpLab(
            target,
            endpoint_for(lab, target, target.name, lab.ssh_config),
            endpoint_for(lab, target, "slow-jump", config),
        )
    finally:
        proxy.close()


@dataclass(frozen=True)
class FirstAndLater:
    """MB/s of the first transfer on fresh tunnels, and of the second on the same tunnels."""

    first: Result
    later: Result


def first_and_later(
    name: str,
    endpoint: Endpoint,
    remote_port: int,
    size: int,
    *,
    repeat: int,
    tools: tuple[str, ...],
) -> FirstAndLater:
    """Per repeat and tool: a fresh tunnel, one download of ``size`` right away (the first
    transfer, what a user meets), then another on the same tunnel."""
    first: dict[str, list[float]] = {tool: [] for tool in tools}
    later: dict[str, list[float]] = {tool: [] for tool in tools}
    for _ in range(repeat):
        for tool in tools:
            with forwarding(tool, endpoint, remote_port) as forwarder:
                first[tool].append(bulk_download(forwarder.port, size))
                later[tool].append(bulk_download(forwarder.port, size))
    return FirstAndLater(
        Result(f"{name}, first transfer", "MB/s", _medians(first)),
        Result(f"{name}, second transfer", "MB/s", _medians(later)),
    )


def steady(
    name: str,
    endpoint: Endpoint,
    remote_port: int,
    size: int,
    *,
    repeat: int,
    tools: tuple[str, ...],
) -> Result:
    """MB/s on one tunnel per tool kept open for every repeat (after a warm-up transfer)."""
    samples: dict[str, list[float]] = {tool: [] for tool in tools}
    with ExitStack() as stack:
        ports = {
            tool: stack.enter_context(forwarding(tool, endpoint, remote_port)).port
            for tool in tools
        }
        for port in ports.values():
            bulk_download(port, min(size, 16 << 20))
        for _ in range(repeat):
            for tool in tools:
                samples[tool].append(bulk_download(ports[tool], size))
    return Result(name, "MB/s", _medians(samples), reference=tools[-1])


def _medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {tool: statistics.median(values) for tool, values in samples.items()}
