"""A TCP proxy on 127.0.0.1 that adds latency: this kernel has no ``netem``.

Each direction has a reader that stamps every chunk with its due time and a writer that sends it
then. Reading never waits for the delay, so the proxy behaves like a long link (latency without a
bandwidth cap): what is in flight is bounded only by the endpoints' windows, as on a real WAN.
With a ``rate``, each reader takes at most that many bytes a second, so a sender faster than the
link finds its socket full, as behind a slow uplink.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._host import LabHost
    from ._lab import Lab

__all__ = ["DelayProxy", "ssh_config_through"]

_READ = 1 << 18
_RATED_READ = 1 << 14  # a capped link reads small chunks, so its pace is even


class DelayProxy:
    """Forward ``127.0.0.1:port`` to ``target``, holding each chunk ``delay`` seconds each way.

    The round trip through the proxy grows by ``2 * delay``; ``rate`` (bytes a second, each
    way) caps the bandwidth. :meth:`close` ends every connection.
    """

    def __init__(
        self, target: tuple[str, int], delay: float = 0.0, *, rate: float | None = None
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive bytes a second, got {rate!r}")
        self.target = target
        self.delay = delay
        self.rate = rate
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
                for target, args in ((self._read, (source, chunks)), (self._write, (chunks, sink))):
                    thread = threading.Thread(target=target, args=args, daemon=True)
                    thread.start()
                    self._threads.append(thread)

    def _read(self, source: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        free = 0.0  # when the capped link has sent what it took so far (no credit when idle)
        size = _READ if self.rate is None else _RATED_READ
        try:
            while data := source.recv(size):
                now = time.monotonic()
                chunks.put((now + self.delay, data))
                if self.rate is not None:
                    free = max(free, now) + len(data) / self.rate
                    if free > now:
                        time.sleep(free - now)  # the fault itself: the link is busy with this chunk
        except OSError:
            pass  # reset or closed: pass on an end of stream
        chunks.put((time.monotonic() + self.delay, b""))

    def _write(self, chunks: queue.SimpleQueue[tuple[float, bytes]], sink: socket.socket) -> None:
        try:
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the fault itself: this chunk is still on the "wire"
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
        except OSError:
            return  # the other side is gone: this direction is done

    def close(self) -> None:
        """Stop accepting, end every connection and wait for the threads."""
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            # shutdown() wakes a thread blocked in recv() and sends the FIN; close() alone
            # would wait for that recv() to return.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)
        self._accepting.join(5)


def ssh_config_through(
    lab: Lab, host: LabHost, port: int, directory: Path, *, alias: str = "slow"
) -> Path:
    """Write an SSH config (and known_hosts) in ``directory`` where ``alias`` is ``host``
    reached through ``127.0.0.1:port`` (a :class:`DelayProxy` in front of its sshd).

    Returns:
        The config file's path.
    """
    known = directory / f"known_hosts_{alias}"
    keys = [Path(f"{key}.pub").read_text().split()[:2] for key in host.host_key_files]
    known.write_text("".join(f"[127.0.0.1]:{port} {kind} {data}\n" for kind, data in keys))
    config = directory / f"ssh_config_{alias}"
    config.write_text(
        f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {lab.user}\n"
        f"  IdentityFile {lab.identity_file}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
    )
    return config
