"""Small clients the integration tests use to look at a notebook from the outside."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket  # websocket-client

from rjupyter.testing._procs import stop_popen

#: A 1x1 PNG as base64: what a plot's ``image/png`` output carries.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
    "RU5ErkJggg=="
)


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, a throwaway user)"
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ip") is None:
        return "the lab needs openssh-server and iproute2 (./dev test installs them)"
    return None


def require_lab() -> None:
    """Skip a lab test where the lab cannot run; in CI, fail instead: CI must run them all."""
    reason = lab_unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the lab tests, but {reason}")
        pytest.skip(reason)


def http(
    url: str, *, token: str | None = None, method: str = "GET", body: bytes | None = None
) -> tuple[int, bytes]:
    """One HTTP request (``body`` is sent as JSON); returns (status, body) also for error
    statuses."""
    headers = {"Authorization": f"token {token}"} if token else {}
    headers["Content-Type"] = "application/json"
    data = body if body is not None else (b"{}" if method == "POST" else None)
    request = urllib.request.Request(url, headers=headers, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_in_kernel(base_url: str, token: str, kernel_id: str, code: str) -> str:
    """Execute ``code`` over the kernel WebSocket and return what it printed to stdout."""
    ws_url = base_url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
    conn = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=30)
    try:
        msg_id = uuid.uuid4().hex
        conn.send(json.dumps(_execute_request(msg_id, code)))
        printed = []
        while True:
            message: dict[str, Any] = json.loads(conn.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                printed.append(message["content"]["text"])
            elif kind == "error":
                raise AssertionError(f"remote error: {message['content']['evalue']}")
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                return "".join(printed)
    finally:
        conn.close()


def _execute_request(msg_id: str, code: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False},
        "channel": "shell",
    }


def local_listeners() -> list[tuple[str, int]]:
    """TCP listeners in this (the root) network namespace."""
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    result = []
    for line in out.splitlines():
        address, _, port = line.split()[3].rpartition(":")
        result.append((address.strip("[]"), int(port)))
    return result


def port_is_closed(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing accepts connections on host:port."""
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) != 0


def non_daemon_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if not thread.daemon and thread is not threading.main_thread()
    ]


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (state checks, not readiness)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def host_block(lab: Any, host: Any, alias: str = "target", **overrides: str) -> str:
    """An ssh_config ``Host`` block reaching a lab host as the lab user with the lab's key.

    ``overrides`` replace or add keywords (``IdentityFile="none"`` and the like); a value of
    ``""`` drops the keyword.
    """
    settings = {
        "HostName": host.address,
        "Port": str(host.port),
        "User": lab.user,
        "IdentityFile": str(lab.identity_file),
        "IdentitiesOnly": "yes",
        "UserKnownHostsFile": str(lab.known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes",
    }
    settings.update(overrides)
    body = "".join(f"  {key} {value}\n" for key, value in settings.items() if value)
    return f"Host {alias}\n{body}"


def keygen(path: Path, key_type: str = "ed25519", *options: str) -> Path:
    """Write a key pair with ssh-keygen (no passphrase unless ``-N`` is among ``options``)."""
    passphrase = [] if "-N" in options else ["-N", ""]
    argv = ["ssh-keygen", "-q", "-t", key_type, *passphrase, *options, "-f", str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    return path


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` as a user would (no ssh-agent), and return what it printed."""
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


#: The POSIX shells the remote scripts are tested under (dash is Debian's /bin/sh; bash is
#: /bin/sh on RHEL-family hosts and reads a script on stdin byte by byte).
SHELLS = [shell for shell in ("dash", "bash") if shutil.which(shell)]


def run_shell(
    shell: str, text: str, home: Path, args: list[str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``text`` as a remote host does (``shell -s`` with the script on stdin) in ``home``."""
    return subprocess.run(
        [shell, "-s", *(args or [])],
        input=text,
        capture_output=True,
        text=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        cwd=home,
        check=False,
        timeout=timeout,
    )


@contextlib.contextmanager
def http_server(host: Any, port: int | None = None) -> Iterator[int]:
    """``python -m http.server`` as the lab user on a lab host's loopback, serving
    ``hello.txt``; stopped by PID. Yields its port (``port``, or a random free-looking one)."""
    directory = tempfile.mkdtemp(prefix="rjupyter-served-")  # readable by the lab user
    Path(directory, "hello.txt").write_text("hello from the remote\n")
    os.chmod(directory, 0o755)
    os.chmod(Path(directory, "hello.txt"), 0o644)
    port = port or random.randint(30000, 39000)
    process = host.popen(
        ["/usr/bin/python3", "-m", "http.server", "-b", "127.0.0.1", "-d", directory, str(port)]
    )
    try:
        assert wait_for(lambda: ("127.0.0.1", port) in host.listeners(), 10)
        yield port
    finally:
        stop_popen(process)
        if process.stderr is not None:
            process.stderr.close()
        Path(directory, "hello.txt").unlink()
        os.rmdir(directory)


class Answers:
    """An auth_handler answering the lab's PAM prompts: the password, then the TOTP code."""

    def __init__(self, lab: Any, host: Any, code: str | None = None) -> None:
        self.lab, self.host, self.code = lab, host, code
        self.calls: list[list[tuple[str, bool]]] = []

    def __call__(self, title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        self.calls.append(prompts)
        return [self._answer(prompt) for prompt, _ in prompts]

    def _answer(self, prompt: str) -> str:
        if prompt.startswith("Password"):
            return str(self.lab.password)
        return self.code or str(self.host.totp_code())
