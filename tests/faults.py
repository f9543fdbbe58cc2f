"""Real network faults for the session tests: packet drops and loss (nftables), added latency
(a userspace TCP proxy: this kernel has no netem). Each undoes itself when its block ends."""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dropping(address: str, percent: int = 100) -> Iterator[None]:
    """Drop ``percent`` % of packets to and from ``address`` (in the root namespace)."""
    table = f"rjupyter_fault_{secrets.token_hex(4)}"
    match = "" if percent >= 100 else f"numgen random mod 100 < {percent} "
    rules = f"""
table inet {table} {{
    chain out {{ type filter hook output priority 0; ip daddr {address} {match}drop; }}
    chain in {{ type filter hook input priority 0; ip saddr {address} {match}drop; }}
}}
"""
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that holds each chunk ``delay`` seconds in each direction."""

    def __init__(self, target: tuple[str, int], delay: float = 0.0) -> None:
        self.target = target
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
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
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.delay:
                    time.sleep(self.delay)  # the fault itself: latency on every chunk
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            return  # the other side is gone: this direction is done

    def close(self) -> None:
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
