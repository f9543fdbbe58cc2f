"""RemoteNotebook's lifecycle and the keeper, with a fake session and fake connections (no lab).

The facade's own rules — close order, every step run whatever the others did, state
transitions, one SIGTERM hold per started notebook — and the keeper's backoff, in milliseconds.
What the real parts do is tested against the lab elsewhere.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import wait_for

from rjupyter import (
    LaunchError,
    NotebookClosedError,
    RemoteNotebook,
    RJupyterError,
    _notebook,
    _signals,
)
from rjupyter._deadline import Deadline
from rjupyter._errors import SSHConnectError, TunnelError
from rjupyter._server._startup import ServerInfo
from rjupyter._session import Session
from rjupyter._ssh._connection import ConnectionSlot
from rjupyter._ssh._keeper import Keeper


class FakeSession(Session):
    """A Session whose steps touch nothing: records each call in ``calls``."""

    calls: list[str]
    fail: set[str]

    def start(self, deadline: Deadline) -> ServerInfo:
        self.calls.append("start")
        if "start" in self.fail:
            raise LaunchError("jupyter exited", host="h")
        self.info = ServerInfo(port=20001, path="/tree", token="s3cret", pid=4242)
        self.forwarder = SimpleNamespace(local_port=12345, error=None)  # type: ignore[assignment]
        self.keeper = SimpleNamespace(connected=True, error=None)  # type: ignore[assignment]
        return self.info

    def _step(self, name: str, errors: list[BaseException]) -> None:
        self.calls.append(name)
        if name in self.fail:
            errors.append(RJupyterError(f"{name} failed"))

    def stop_keeper(self, errors: list[BaseException]) -> None:
        self._step("stop_keeper", errors)

    def shut_tunnel(self, errors: list[BaseException]) -> None:
        self._step("shut_tunnel", errors)

    def stop_server(
        self, errors: list[BaseException], *, stop_on_close: bool, started: bool = True
    ) -> None:
        self._step(f"stop_server(stop_on_close={stop_on_close}, started={started})", errors)

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    recorded: list[str] = []
    FakeSession.calls = recorded
    FakeSession.fail = set()
    monkeypatch.setattr(_notebook, "Session", FakeSession)

    def close_automation(self: RemoteNotebook, *, keep_kernels: bool) -> None:
        recorded.append(f"kernels(keep={keep_kernels})")
        if "kernels" in FakeSession.fail:
            raise RJupyterError("kernels failed")

    monkeypatch.setattr(RemoteNotebook, "_close_automation", close_automation)
    yield recorded
    assert _signals.holders() == 0, "every test releases the SIGTERM holds it took"


def test_close_runs_each_step_in_order(calls: list[str]) -> None:
    nb = RemoteNotebook("gpu-box").start()
    assert nb.local_port == 12345
    assert "s3cret" not in repr(nb)
    assert nb.close() is None
    assert calls == [
        "start",
        "stop_keeper",
        "kernels(keep=False)",
        "shut_tunnel",
        "stop_server(stop_on_close=True, started=True)",
        "close",
    ]
    assert nb.close() is None  # idempotent: nothing runs twice
    assert calls.count("close") == 1


def test_every_step_runs_when_others_fail_and_the_first_error_is_raised(
    calls: list[str],
) -> None:
    FakeSession.fail = {
        "stop_keeper",
        "kernels",
        "shut_tunnel",
        "stop_server(stop_on_close=True, started=True)",
    }
    nb = RemoteNotebook("gpu-box").start()
    with pytest.raises(RJupyterError, match="stop_keeper failed"):
        nb.close()
    assert calls[1:] == [
        "stop_keeper",
        "kernels(keep=False)",
        "shut_tunnel",
        "stop_server(stop_on_close=True, started=True)",
        "close",
    ]


def test_a_failed_start_stops_everything_and_closes(calls: list[str]) -> None:
    FakeSession.fail = {"start"}
    nb = RemoteNotebook("gpu-box")
    with pytest.raises(LaunchError, match="jupyter exited"):
        nb.start()
    assert calls == [
        "start",
        "stop_keeper",
        "kernels(keep=False)",
        "shut_tunnel",
        "stop_server(stop_on_close=True, started=False)",
        "close",
    ]
    with pytest.raises(NotebookClosedError):
        nb.start()


def test_keep_running_leaves_the_server_and_returns_its_handle(calls: list[str]) -> None:
    nb = RemoteNotebook("gpu-box", keep_running=True).start()
    handle = nb.close()
    assert handle is not None
    assert (handle.host, handle.pid, handle.remote_port) == ("gpu-box", 4242, 20001)
    assert "RemoteNotebook.attach('gpu-box', pid=4242)" in str(handle)
    assert "stop_server(stop_on_close=False, started=True)" in calls
    assert "kernels(keep=True)" in calls
    assert nb.close() is handle


def connected(nb: RemoteNotebook) -> bool:
    return nb.connected


def test_state_transitions(calls: list[str]) -> None:
    nb = RemoteNotebook("gpu-box")
    with pytest.raises(RuntimeError, match="not started"):
        _ = nb.url
    assert not connected(nb)
    with nb:
        assert nb.url == "http://127.0.0.1:12345/tree?token=s3cret"
        assert connected(nb)
        with pytest.raises(RuntimeError, match="already started"):
            nb.start()
    with pytest.raises(NotebookClosedError):
        _ = nb.url
    with pytest.raises(NotebookClosedError), nb:
        pass


def test_a_dead_tunnel_is_reported_not_hidden(calls: list[str]) -> None:
    with RemoteNotebook("gpu-box") as nb:
        session: Any = nb._session
        assert connected(nb)
        session.forwarder.error = TunnelError("the tunnel's pump thread died")
        assert not connected(nb)
        with pytest.raises(TunnelError, match="pump thread died"):
            _ = nb.url


@pytest.mark.skipif(
    signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, reason="SIGTERM has a handler already"
)
def test_only_a_started_notebook_releases_its_sigterm_hold(calls: list[str]) -> None:
    started = RemoteNotebook("gpu-box").start()
    assert _signals.holders() == 1
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    RemoteNotebook("other-box").close()  # never started: holds nothing, releases nothing
    assert _signals.holders() == 1
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    started.close()
    assert _signals.holders() == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# -- the keeper ------------------------------------------------------------------------------


class FakeConnection:
    def __init__(self, active: bool = True) -> None:
        self.is_active = active
        self.lost = None
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.is_active = False


class RecordingEvent(threading.Event):
    """The keeper's stop event, recording how long each wait was asked to be."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.waits.append(round(timeout, 6))
        return super().wait(timeout)


def keeper_for(
    slot: ConnectionSlot, reconnect: Any, adopt: Any, **options: Any
) -> tuple[Keeper, RecordingEvent]:
    keeper = Keeper(
        label="gpu-box",
        slot=slot,
        reconnect=reconnect,
        adopt=adopt,
        heartbeat=None,
        heartbeat_period=60.0,
        tick=0.001,
        **{"reconnect_timeout": 30.0, "backoff": (0.01, 0.04), **options},
    )
    keeper._stop = event = RecordingEvent()
    return keeper, event


def test_the_keeper_backs_off_doubling_up_to_its_cap_then_adopts() -> None:
    dropped = FakeConnection(active=False)
    slot = ConnectionSlot(dropped)  # type: ignore[arg-type]
    attempts: list[float] = []
    fresh = FakeConnection()
    adopted = threading.Event()
    changes: list[bool] = []

    def reconnect(deadline: Deadline) -> FakeConnection:
        attempts.append(deadline.seconds)
        if len(attempts) <= 4:
            raise SSHConnectError("refused", host="gpu-box")
        return fresh

    def adopt(connection: Any) -> None:
        slot.swap(connection)
        adopted.set()

    keeper, event = keeper_for(slot, reconnect, adopt, on_change=changes.append)
    keeper.start()
    try:
        assert adopted.wait(10)
    finally:
        keeper.stop()
    assert [wait for wait in event.waits if wait != 0.001] == [0.01, 0.02, 0.04, 0.04]
    current: Any = slot.current
    assert current is fresh
    assert dropped.closed
    assert keeper.reconnects == 1
    assert changes == [False, True]
    assert keeper.error is None


def test_the_keeper_gives_up_after_the_reconnect_timeout() -> None:
    slot = ConnectionSlot(FakeConnection(active=False))  # type: ignore[arg-type]

    def reconnect(deadline: Deadline) -> FakeConnection:
        raise SSHConnectError("no route to host", host="gpu-box")

    keeper, _ = keeper_for(slot, reconnect, slot.swap, reconnect_timeout=0.05)
    keeper.start()
    keeper._thread.join(10)
    assert not keeper._thread.is_alive()
    assert isinstance(keeper.error, SSHConnectError)
    assert "could not reconnect within" in str(keeper.error)
    assert "no route to host" in str(keeper.error)


def test_the_keeper_gives_up_when_the_server_is_gone_and_closes_the_new_connection() -> None:
    slot = ConnectionSlot(FakeConnection(active=False))  # type: ignore[arg-type]
    fresh = FakeConnection()

    def adopt(connection: Any) -> None:
        raise RJupyterError("the Jupyter server ended while the connection was down")

    keeper, _ = keeper_for(slot, lambda deadline: fresh, adopt)
    keeper.start()
    keeper._thread.join(10)
    assert keeper.error is not None
    assert "ended while the connection was down" in str(keeper.error)
    assert fresh.closed


class FakeLauncher:
    def __init__(self, attaching: bool) -> None:
        self.attaching = attaching
        self.stopped = 0

    def stop(self) -> None:
        self.stopped += 1


@pytest.mark.parametrize(
    ("stop_on_close", "started", "attaching", "stops"),
    [
        (True, True, False, True),  # closed: stopped
        (False, True, False, False),  # keep_running: left running
        (False, False, False, True),  # a start that failed stops what it launched, kept or not
        (False, False, True, False),  # ... never a server it found (attach)
        (True, False, True, True),  # attach with stop_on_close
    ],
)
def test_which_servers_close_stops(
    stop_on_close: bool, started: bool, attaching: bool, stops: bool
) -> None:
    launcher = FakeLauncher(attaching)
    errors: list[BaseException] = []
    session = Session(launcher, local_port=0, reconnect_timeout=1, on_change=None)  # type: ignore[arg-type]
    session.stop_server(errors, stop_on_close=stop_on_close, started=started)
    assert launcher.stopped == int(stops)
    assert errors == []


def test_close_reports_every_failure(calls: list[str]) -> None:
    FakeSession.fail = {"stop_keeper", "shut_tunnel"}
    nb = RemoteNotebook("gpu-box").start()
    with pytest.raises(RJupyterError, match="stop_keeper failed") as raised:
        nb.close()
    assert "also: RJupyterError: shut_tunnel failed" in getattr(raised.value, "__notes__", [])


def test_stopping_the_keeper_never_adopts_a_reconnect_in_flight() -> None:
    slot = ConnectionSlot(FakeConnection(active=False))  # type: ignore[arg-type]
    entered, proceed = threading.Event(), threading.Event()
    fresh = FakeConnection()
    adopted: list[Any] = []

    def reconnect(deadline: Deadline) -> FakeConnection:
        entered.set()
        proceed.wait(10)
        return fresh

    keeper, _ = keeper_for(slot, reconnect, adopted.append)
    keeper.start()
    assert entered.wait(10)
    stopping = threading.Thread(target=keeper.stop)
    stopping.start()
    assert wait_for(keeper._stop.is_set)
    proceed.set()
    stopping.join(10)
    assert not keeper._thread.is_alive()
    assert adopted == []
    assert fresh.closed, "the connection made too late is closed, not leaked"
