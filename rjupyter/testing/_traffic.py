"""A traffic server on a lab host, and the clients that check what comes through a tunnel.

The server runs inside the host's network namespace (as root; else on this machine's loopback),
listens on its ``127.0.0.1`` and answers one command per connection, sent as a line:

- ``RANDOM n``: n random bytes, then their SHA-256 (32 bytes), then close;
- ``ZEROS n``: n bytes from a fixed buffer (throughput without hashing), then close;
- ``SINK``: read to EOF, then answer ``<count> <sha256 hex>\\n`` and close (the answer flows
  after the client's EOF: a half-close check); ``SINK n``: the same after n bytes, no EOF needed;
- ``ECHO``: send back what arrives until EOF.

Its :func:`main` prints the port, then serves until killed; given a path and a uid, it also
serves on a Unix socket there, owned by that user (mode 0600).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from ._errors import LabError
from ._host import LabHost
from ._procs import stop_popen

__all__ = ["TrafficServer", "download", "echo", "upload"]

_CHUNK = 1 << 20


class _Handler(socketserver.StreamRequestHandler):
    rbufsize = 0

    def handle(self) -> None:
        if self.request.family != socket.AF_UNIX:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        command, _, argument = _read_line(self.request).partition(" ")
        if command == "RANDOM":
            digest = hashlib.sha256()
            for size in _chunks(int(argument)):
                block = os.urandom(size)
                digest.update(block)
                self.request.sendall(block)
            self.request.sendall(digest.digest())
        elif command == "ZEROS":
            block = bytes(_CHUNK)
            for size in _chunks(int(argument)):
                self.request.sendall(block[:size])
        elif command == "SINK":
            digest, count = hashlib.sha256(), 0
            limit = int(argument) if argument else None
            while count != limit and (data := self.request.recv(_CHUNK)):
                digest.update(data)
                count += len(data)
            self.request.sendall(f"{count} {digest.hexdigest()}\n".encode())
        elif command == "ECHO":
            while data := self.request.recv(_CHUNK):
                self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = 1024


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = 1024


def _chunks(total: int) -> list[int]:
    return [min(_CHUNK, total - start) for start in range(0, total, _CHUNK)]


def _read_line(sock: socket.socket) -> str:
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return line.decode().strip()


def _receive(sock: socket.socket, size: int, keep: Callable[[bytes], object]) -> None:
    """Read exactly ``size`` bytes, handing each piece to ``keep``."""
    left = size
    while left:
        data = sock.recv(min(left, _CHUNK))
        if not data:
            raise ConnectionError(f"the connection ended {left} bytes short of {size}")
        left -= len(data)
        keep(data)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    parts: list[bytes] = []
    _receive(sock, size, parts.append)
    return b"".join(parts)


def download(port: int, size: int, *, verify: bool = True, timeout: float = 120) -> None:
    """Fetch ``size`` bytes through ``127.0.0.1:port``; with ``verify``, random bytes whose
    SHA-256 must match the server's.

    Raises:
        ConnectionError: Bytes were lost, changed, reordered or the stream ended early.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"{'RANDOM' if verify else 'ZEROS'} {size}\n".encode())
        received = hashlib.sha256()
        _receive(sock, size, received.update if verify else len)
        if verify and received.digest() != _recv_exactly(sock, 32):
            raise ConnectionError(f"the {size} bytes arrived changed or out of order")
        if sock.recv(1):
            raise ConnectionError("more bytes arrived than were sent")


def upload(port: int, size: int, *, half_close: bool = True, timeout: float = 120) -> None:
    """Send ``size`` random bytes and check the server's count and SHA-256. With
    ``half_close`` the client then shuts down its sending side and the server answers after
    that EOF; without, the server answers after ``size`` bytes.

    Raises:
        ConnectionError: Bytes were lost, changed or reordered, or the answer never came.
    """
    digest = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"SINK\n" if half_close else f"SINK {size}\n".encode())
        for chunk_size in _chunks(size):
            block = os.urandom(chunk_size)
            digest.update(block)
            sock.sendall(block)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while data := sock.recv(256):
            answer += data
    expected = f"{size} {digest.hexdigest()}\n".encode()
    if answer != expected:
        raise ConnectionError(f"the server saw {answer!r}, expected {expected!r}")


def echo(port: int, payload: bytes, *, rounds: int = 1, timeout: float = 30) -> None:
    """Open a connection, send ``payload`` and read it back ``rounds`` times.

    Raises:
        ConnectionError: The echo differed or the connection ended early.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"ECHO\n")
        for _ in range(rounds):
            sock.sendall(payload)
            if _recv_exactly(sock, len(payload)) != payload:
                raise ConnectionError("the echo came back changed")


class TrafficServer:
    """The traffic server running on ``host`` (in its namespace), stopped by PID on exit.

    Args:
        host: Where it runs.
        unix_socket: Also serve on a Unix socket at this path, owned by ``socket_owner``.
        socket_owner: The uid that owns the socket.

    Attributes:
        port: The port it listens on, on the host's ``127.0.0.1``.
    """

    def __init__(
        self, host: LabHost, *, unix_socket: str | None = None, socket_owner: int = 0
    ) -> None:
        self._host = host
        self._process: subprocess.Popen[bytes] | None = None
        self._socket = [] if unix_socket is None else [unix_socket, str(socket_owner)]
        self.port = 0

    def __enter__(self) -> TrafficServer:
        """Start the server and read its port.

        Raises:
            LabError: It did not start.
        """
        prefix = [] if self._host.netns is None else ["ip", "netns", "exec", self._host.netns]
        self._process = subprocess.Popen(  # noqa: S603 - an argv list, no shell
            [
                *prefix,
                sys.executable,
                "-c",
                "from rjupyter.testing._traffic import main; main()",
                *self._socket,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.__exit__(None, None, None)
            raise LabError(f"the traffic server did not start on {self._host.name}: {line!r}")
        self.port = int(line)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server by its PID."""
        if self._process is not None:
            stop_popen(self._process)
            if self._process.stdout is not None:
                self._process.stdout.close()


def main() -> None:
    """Serve on 127.0.0.1, printing the port first (and on ``argv[1]``, owned by ``argv[2]``)."""
    with _Server(("127.0.0.1", 0), _Handler) as server, contextlib.ExitStack() as stack:
        if len(sys.argv) == 3:
            path, owner = sys.argv[1], int(sys.argv[2])
            unix = stack.enter_context(_UnixServer(path, _Handler))
            stack.callback(os.unlink, path)
            os.chmod(path, 0o600)
            os.chown(path, owner, -1)
            threading.Thread(target=unix.serve_forever, daemon=True).start()
        sys.stdout.write(f"{server.server_address[1]}\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
