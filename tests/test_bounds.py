"""Finding 9 of issue 15: nothing grows without bound. The launch reader keeps lines of at most
``MAX_LINE`` bytes (a ``\\r`` progress bar is one line that never ends); the remote log is cut
past its limit (its start kept); a kernel socket keeps at most ``INBOX_LIMIT`` unread messages
and drops those that arrived between requests; a tunnel holds at most ``max_connections``."""

from __future__ import annotations

import queue
import socket
import time
from pathlib import Path
from typing import cast

import paramiko
import pytest
from helpers import SHELLS, run_shell
from test_launch_script import make_venv, script

from rjupyter._forward._pump import Pump
from rjupyter._forward._windows import LinkEstimate
from rjupyter._jupyter._wire import INBOX_LIMIT, KernelSocket
from rjupyter._server._remote import MAX_LINE, RemoteServer
from rjupyter._ssh._connection import ConnectionSlot, SSHConnection


class EndlessLine:
    """A channel that sends ``total`` bytes of one line that never ends (``\\r`` only)."""

    closed = False

    def __init__(self, total: int) -> None:
        self.left = total

    def recv(self, size: int) -> bytes:
        chunk = min(size, self.left)
        self.left -= chunk
        return b"50%\r" * (chunk // 4)

    def close(self) -> None:
        self.closed = True


def test_an_endless_line_of_output_is_read_in_bounded_pieces() -> None:
    server = RemoteServer(ConnectionSlot(cast(SSHConnection, None)), host="h")
    started = time.monotonic()
    server._read(cast(paramiko.Channel, EndlessLine(16 << 20)))
    assert time.monotonic() - started < 10
    assert server._tail, "the output was taken"
    assert max(len(line) for line in server._tail) <= 2010
    assert MAX_LINE <= 1 << 16


def test_the_kernel_inbox_is_bounded_and_drained_before_a_request() -> None:
    socket_ = KernelSocket.__new__(KernelSocket)
    socket_.kernel_id = "k"
    socket_._inbox = queue.Queue()
    socket_._dropped = 0
    for number in range(INBOX_LIMIT + 50):
        socket_._put({"header": {"msg_id": str(number)}})
    assert socket_._inbox.qsize() == INBOX_LIMIT
    assert socket_._dropped == 50
    socket_._inbox.put(OSError("gone"))
    assert socket_.discard_pending() == INBOX_LIMIT
    with pytest.raises(Exception, match="broke"):
        socket_.receive(0.1)


def test_a_tunnel_refuses_connections_past_its_limit() -> None:
    pump = Pump("rjupyter-pump-test", ("127.0.0.1", 9), LinkEstimate(), 32768, max_connections=3)
    listener = socket.create_server(("127.0.0.1", 0))
    clients: list[socket.socket] = []
    try:
        pump.listen(listener)  # no transport: accepted connections wait for the link
        for _ in range(5):
            clients.append(socket.create_connection(listener.getsockname(), timeout=5))
        for client in clients[3:]:
            assert client.recv(1) == b"", "a connection past the limit is closed at once"
        for client in clients[:3]:
            client.settimeout(0.3)
            with pytest.raises(TimeoutError):
                client.recv(1)  # still open, waiting for the link
    finally:
        for client in clients:
            client.close()
        pump.close()
        listener.close()


@pytest.mark.parametrize("shell", SHELLS[:1])
def test_the_remote_log_is_cut_past_its_limit(shell: str, tmp_path: Path) -> None:
    venv = make_venv(tmp_path)
    noisy = "#!/bin/sh\nyes x | head -c 400000\nsleep 3\n"
    (venv / "bin" / "jupyter").write_text(noisy)
    text = script(venv=str(venv), run_id="noisy", abandon=6, log_limit=100_000)
    run_shell(shell, text, tmp_path)
    run = tmp_path / ".local/state/rjupyter/noisy"
    assert (run / "status").exists(), "the server ran to its end"
    assert (run / "log").stat().st_size < 100_000
    assert "the server log passed 100000 bytes" in (run / "log").read_text()
    assert (run / "log.start").read_text().startswith("x\n" * 1000), "the log's start is kept"
