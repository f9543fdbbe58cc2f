"""Falling back to paramiko's public path, and a supervised pump, with no server: a paramiko
client and a paramiko server joined by a socket pair (AES-GCM), the server echoing what each
``direct-tcpip`` channel sends. A paramiko outside the tested range, an internal that is missing
or raises, and a pump thread that dies must each leave tunnels working or failing at once —
never a hang, a dead pump with a bound listener, or a raw AttributeError."""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paramiko
import pytest
from paramiko.common import AUTH_SUCCESSFUL, OPEN_FAILED_UNKNOWN_CHANNEL_TYPE, OPEN_SUCCEEDED

from rjupyter._errors import TunnelError
from rjupyter._forward._pump import Pump
from rjupyter._forward._windows import MAX_PACKET_SIZE, LinkEstimate
from rjupyter._paramiko import _fastpath, _fixes, _gate, _spliced
from rjupyter._paramiko._fixes import ReadAheadSocket
from rjupyter._paramiko._streamlocal import STREAMLOCAL, Address

TIMEOUT = 10.0
REMOTE = ("echo.invalid", 7)


class _EchoServer(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "none"

    def check_auth_none(self, username: str) -> int:
        return AUTH_SUCCESSFUL

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        return OPEN_SUCCEEDED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        # (paramiko's server takes any other kind here: a stream-local open, say)
        return OPEN_SUCCEEDED if kind == STREAMLOCAL else OPEN_FAILED_UNKNOWN_CHANNEL_TYPE


def _echo(channel: paramiko.Channel) -> None:
    with channel:
        while data := channel.recv(1 << 16):
            channel.sendall(data)
        channel.shutdown_write()


def _serve_channels(server: paramiko.Transport) -> None:
    while server.is_active():
        channel = server.accept(0.2)
        if channel is not None:
            threading.Thread(target=_echo, args=(channel,), daemon=True).start()


@dataclass
class Link:
    client: paramiko.Transport
    fast: _fastpath.FastPath | None
    fixed: bool


def _link() -> Iterator[Link]:
    """A logged-in client transport (prepared as rjupyter's connect prepares it) to an echo
    server."""
    client_sock, server_sock = socket.socketpair()
    client = paramiko.Transport(ReadAheadSocket.wrap(client_sock))
    fixed = _fixes.install(client)
    fast = _fastpath.install(client)
    client.get_security_options().ciphers = ("aes128-gcm@openssh.com",)
    server = paramiko.Transport(server_sock)
    server.add_server_key(paramiko.ECDSAKey.generate())
    started = threading.Thread(target=server.start_server, kwargs={"server": _EchoServer()})
    started.start()
    client.start_client(timeout=TIMEOUT)
    started.join(TIMEOUT)
    client.auth_none("tester")
    threading.Thread(target=_serve_channels, args=(server,), daemon=True).start()
    yield Link(client, fast, fixed)
    client.close()
    server.close()


@pytest.fixture(autouse=True)
def lean_path_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the lean path allowed (a test may switch it off)."""
    monkeypatch.setattr(_gate._SWITCH, "reason", None)


@pytest.fixture
def link() -> Iterator[Link]:
    yield from _link()


@pytest.fixture
def untested_paramiko(monkeypatch: pytest.MonkeyPatch) -> Iterator[Link]:
    """A link built as if paramiko were a release after the tested range."""
    monkeypatch.setattr(paramiko, "__version__", "5.2.0")
    yield from _link()


@pytest.fixture
def serve() -> Iterator[Callable[[Link], tuple[Pump, socket.socket]]]:
    pumps: list[tuple[Pump, socket.socket]] = []

    def start(link: Link, remote: Address = REMOTE) -> tuple[Pump, socket.socket]:
        pump = Pump("rjupyter-pump-test", remote, LinkEstimate(), MAX_PACKET_SIZE)
        pump.use_transport(link.client)
        listener = socket.create_server(("127.0.0.1", 0))
        pump.listen(listener)
        pumps.append((pump, listener))
        return pump, listener

    yield start
    for pump, listener in pumps:
        pump.close()
        listener.close()


def _round_trip(listener: socket.socket, payload: bytes = b"hello " * 40_000) -> bytes:
    """Send ``payload`` through the tunnel, end the sending side, read the echo to its end."""
    with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as client:

        def send() -> None:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        while data := client.recv(1 << 16):
            received += data
        sender.join(TIMEOUT)
    return bytes(received)


def _refused_or_closed(listener_address: tuple[str, int]) -> bool:
    """True if a connection to the address is refused, or closed without an answer at once."""
    try:
        with socket.create_connection(listener_address, timeout=2) as client:
            client.sendall(b"anyone there?")
            return client.recv(1) == b""
    except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False  # a hang: what must not happen


def test_the_lean_path_carries_data_in_the_tested_range(
    link: Link, serve: Callable[[Link], tuple[Pump, socket.socket]]
) -> None:
    assert link.fast is not None
    assert link.fixed
    _, listener = serve(link)
    payload = bytes(range(256)) * 4000
    assert _round_trip(listener, payload) == payload
    assert link.fast.packets_out > 0
    assert link.fast.packets_in > 0


def test_a_socket_target_takes_the_lean_path(
    link: Link, serve: Callable[..., tuple[Pump, socket.socket]]
) -> None:
    pump, listener = serve(link, "/run/echo.sock")
    payload = bytes(range(256)) * 4000
    assert _round_trip(listener, payload) == payload
    assert not pump._relays
    assert link.fast is not None
    assert link.fast.packets_out > 0


def test_a_socket_target_outside_the_tested_range_is_relayed(
    untested_paramiko: Link, serve: Callable[..., tuple[Pump, socket.socket]]
) -> None:
    pump, listener = serve(untested_paramiko, "/run/echo.sock")
    assert _round_trip(listener) == b"hello " * 40_000
    assert pump._relays  # opened by hand, copied by paramiko's public API


def test_outside_the_tested_range_nothing_lean_is_installed_and_data_flows(
    untested_paramiko: Link,
    serve: Callable[[Link], tuple[Pump, socket.socket]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = untested_paramiko
    assert link.fast is None
    assert not link.fixed
    assert _fastpath.sender(link.client) is None
    assert not isinstance(link.client.sock, ReadAheadSocket)
    pump, listener = serve(link)
    payload = b"public path " * 50_000
    assert _round_trip(listener, payload) == payload
    assert pump._relays  # served by paramiko's public API
    assert not pump._connections


def test_an_internal_missing_before_the_open_takes_the_public_path(
    link: Link,
    serve: Callable[[Link], tuple[Pump, socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (as if a release renamed one; deleting paramiko's would break its public path too)
    monkeypatch.setattr(
        _spliced, "_TRANSPORT_OPEN_STEPS", (*_spliced._TRANSPORT_OPEN_STEPS, "_renamed")
    )
    pump, listener = serve(link)
    assert _round_trip(listener) == b"hello " * 40_000
    assert pump._relays


def test_a_renamed_internal_raised_in_the_open_falls_back_and_the_pump_lives(
    link: Link,
    serve: Callable[[Link], tuple[Pump, socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = paramiko.Transport._sanitize_window_size  # type: ignore[attr-defined]

    def renamed(self: Any, window: int) -> int:
        # A release that renamed it: paramiko's own code uses the new name, ours the old one.
        if sys._getframe(1).f_globals["__name__"] == _spliced.__name__:
            raise AttributeError("'Transport' object has no attribute '_sanitize_window_size'")
        return real(self, window)  # type: ignore[no-any-return]

    monkeypatch.setattr(paramiko.Transport, "_sanitize_window_size", renamed)
    pump, listener = serve(link)
    with caplog.at_level(logging.WARNING, logger="rjupyter._paramiko._gate"):
        assert _round_trip(listener) == b"hello " * 40_000
        assert _round_trip(listener, b"again") == b"again"  # no second warning, same path
    assert pump._thread.is_alive()
    assert pump.error is None
    assert not _gate.lean_path_enabled()
    warnings = [r for r in caplog.records if r.name == "rjupyter._paramiko._gate"]
    assert len(warnings) == 1
    assert "public API" in warnings[0].getMessage()


def test_an_unexpected_error_in_an_open_ends_that_connection_at_once(
    link: Link,
    serve: Callable[[Link], tuple[Pump, socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = _spliced.Connection.open

    def broken(*args: Any, **kwargs: Any) -> None:
        raise AttributeError("a bug")

    monkeypatch.setattr(_spliced.Connection, "open", broken)
    pump, listener = serve(link)
    assert _refused_or_closed(listener.getsockname())
    assert pump._thread.is_alive()
    monkeypatch.setattr(_spliced.Connection, "open", original)
    assert _round_trip(listener, b"still serving") == b"still serving"


def test_a_dead_pump_refuses_connections_and_says_why(
    link: Link,
    serve: Callable[[Link], tuple[Pump, socket.socket]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pump, listener = serve(link)
    assert _round_trip(listener, b"before") == b"before"
    address = listener.getsockname()

    def crash(sock: socket.socket) -> None:
        raise RuntimeError("pump bug")

    pump._accept = crash  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.ERROR, logger="rjupyter._forward._pump"):
        assert _refused_or_closed(address)  # the connection that met the crash
        pump._thread.join(TIMEOUT)
    assert not pump._thread.is_alive()
    assert isinstance(pump.error, TunnelError)
    assert "pump bug" in str(pump.error)
    assert isinstance(pump.error.__cause__, RuntimeError)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2).close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1


def test_the_close_fix_never_raises_on_a_changed_paramiko(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paramiko.Transport, "_channel_handler_table", 5)  # not a table any more
    left, right = socket.socketpair()
    transport = paramiko.Transport(left)
    try:
        assert _fixes.install(transport) is False
    finally:
        transport.close()
        left.close()
        right.close()


def test_the_range_is_decided_in_one_place() -> None:
    assert _gate.parse_version("5.1.0") == (5, 1)
    assert _gate.parse_version("3.5.1") == (3, 5)
    assert _gate.parse_version("not a version") is None
    low, high = _gate.TESTED
    assert low <= _gate.parse_version(paramiko.__version__) < high  # type: ignore[operator]
    assert _gate.lean_path_enabled()
