"""The three tools under test, each a separate process forwarding a local port to the remote."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rjupyter._forward._spares import NOTEBOOK_SPARES
from rjupyter.testing._procs import stop_popen

TOOLS = ("rjupyter", "openssh", "sshtunnel")
#: OpenSSH with the cipher rjupyter prefers (its default is chacha20-poly1305): a reference only.
OPENSSH_GCM = "openssh-gcm"
_GCM = "aes128-gcm@openssh.com"
#: rjupyter as a notebook's own forward has it: with spare channels (``RemoteNotebook`` keeps
#: them for its server; ``Tunnel(spare_channels=...)`` is how the benchmark's process asks).
NOTEBOOK_FORWARD = "rjupyter-notebook"


@dataclass(frozen=True)
class Endpoint:
    """How every tool reaches the remote sshd (directly, or through the delaying proxy)."""

    alias: str
    ssh_config: Path
    address: str
    port: int
    user: str
    identity: Path
    host_key: Path


@dataclass(frozen=True)
class Forwarding:
    """A running forwarder: its local port and the PID whose resources it uses."""

    port: int
    pid: int


@contextmanager
def forwarding(tool: str, endpoint: Endpoint, remote_port: int | str) -> Iterator[Forwarding]:
    """Start ``tool`` forwarding ``127.0.0.1:<port>`` to the remote's ``127.0.0.1:remote_port``
    (rjupyter and OpenSSH: or to the Unix socket at that path); stop it by PID afterwards."""
    if tool in ("openssh", OPENSSH_GCM):
        cipher = _GCM if tool == OPENSSH_GCM else None
        with _openssh(endpoint, remote_port, cipher) as opened:
            yield opened
        return
    spares = NOTEBOOK_SPARES if tool == NOTEBOOK_FORWARD else 0
    command = [
        sys.executable,
        "-m",
        "benchmarks._forward",
        "rjupyter" if tool == NOTEBOOK_FORWARD else tool,
        f"--ssh-config={endpoint.ssh_config}",
        f"--alias={endpoint.alias}",
        f"--address={endpoint.address}",
        f"--port={endpoint.port}",
        f"--user={endpoint.user}",
        f"--identity={endpoint.identity}",
        f"--host-key={endpoint.host_key}",
        f"--remote-port={remote_port}",
        f"--spare-channels={spares}",
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"{tool} did not start: {line!r}")
        yield Forwarding(int(line), process.pid)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(10)
        finally:
            stop_popen(process)
            if process.stdout is not None:
                process.stdout.close()


def _free_port() -> int:
    # ssh -L cannot report a port it chose: pick one, and retry if ssh then fails to bind it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _openssh(
    endpoint: Endpoint, remote_port: int | str, cipher: str | None
) -> Iterator[Forwarding]:
    target = remote_port if isinstance(remote_port, str) else f"127.0.0.1:{remote_port}"
    options = [] if cipher is None else ["-c", cipher]
    for _ in range(5):
        port = _free_port()
        process = subprocess.Popen(
            [
                "/usr/bin/ssh",
                "-F",
                str(endpoint.ssh_config),
                "-N",
                "-v",
                "-o",
                "ExitOnForwardFailure=yes",
                "-o",
                "BatchMode=yes",
                *options,
                "-L",
                f"127.0.0.1:{port}:{target}",
                endpoint.alias,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if _wait_ready(process, port):
                yield Forwarding(port, process.pid)
                return
        finally:
            stop_popen(process)
            if process.stderr is not None:
                process.stderr.close()
    raise RuntimeError("ssh -L did not start in five tries")


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    """Read ssh's -v log until it listens on ``port`` with the session up; then keep draining
    it in a thread. (With ProxyJump the jump's ``ssh -W`` logs its own session first.)"""
    assert process.stderr is not None
    listening = f"Local forwarding listening on 127.0.0.1 port {port}".encode()
    seen = False
    for line in process.stderr:
        seen = seen or listening in line
        if seen and b"Entering interactive session" in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return True
    return False
