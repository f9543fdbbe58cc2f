"""Finding 10 and the library side of finding 11 of issue 15, without the lab: the agent named
by ``IdentityAgent`` is asked without touching ``os.environ`` (a real ``ssh-agent``), and the
text of keyboard-interactive prompts reaches an ``auth_handler`` without control characters."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rjupyter._ssh import _auth
from rjupyter._ssh._auth import Credentials, strip_control


class WatchedEnviron(dict[str, str]):
    """``os.environ`` that fails the test on any change."""

    def __setitem__(self, key: str, value: str) -> None:
        raise AssertionError(f"os.environ[{key!r}] was set during a login")

    def __delitem__(self, key: str) -> None:
        raise AssertionError(f"os.environ[{key!r}] was deleted during a login")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent on a socket of its own, holding one key."""
    if shutil.which("ssh-agent") is None:
        pytest.skip("ssh-agent is not installed")
    sock = str(tmp_path / "agent.sock")
    process = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        key = tmp_path / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        for _ in range(50):
            added = subprocess.run(["ssh-add", key], env=env, capture_output=True, check=False)
            if added.returncode == 0:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            pytest.fail("ssh-agent did not take the key")
        yield sock
    finally:
        process.terminate()
        process.wait()


def test_the_agent_is_asked_without_touching_os_environ(agent: str) -> None:
    saved = os.environ
    setattr(os, "environ", WatchedEnviron(saved))  # noqa: B010 - only around the login
    try:
        credentials = Credentials(user="u", label="h", agent_socket=agent)
        with _auth._agent_keys(credentials) as keys:
            assert len(keys) == 1
            assert keys[0].get_name() == "ssh-ed25519"
    finally:
        setattr(os, "environ", saved)  # noqa: B010


def test_a_missing_agent_means_no_agent_keys(tmp_path: Path) -> None:
    credentials = Credentials(user="u", label="h", agent_socket=str(tmp_path / "none.sock"))
    with _auth._agent_keys(credentials) as keys:
        assert keys == []


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Password: ", "Password: "),
        ("\x1b]0;owned\x07Password: ", "Password: "),  # sets the terminal title
        ("\x1b[2J\x1b[8mVerification code: ", "Verification code: "),  # clears, hides
        ("OTP\r\x1b[KPassword", "OTPPassword"),
        ("line one\nline two\tend", "line one\nline two\tend"),
        ("\u202eevil\u202c code", "evil code"),  # bidi override
        ("bell\x07 and \x9b31m C1", "bell and 31m C1"),
    ],
)
def test_strip_control(raw: str, shown: str) -> None:
    assert strip_control(raw) == shown


class InteractiveTransport:
    """A transport whose server asks hostile keyboard-interactive prompts."""

    def auth_interactive(self, user: str, handler: Any) -> list[str]:
        handler("\x1b]0;title\x07Duo", "Enter \x1b[31mcode\x1b[0m", [("Code\x1b[8m: ", False)])
        return []

    def close(self) -> None:
        pass


def test_an_auth_handler_sees_prompt_text_without_control_characters() -> None:
    seen: list[tuple[str, str, list[tuple[str, bool]]]] = []

    def handler(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        seen.append((title, instructions, prompts))
        return ["123456"]

    credentials = Credentials(user="u", label="h", handler=handler)
    attempts = _auth._Attempts(InteractiveTransport(), credentials)  # type: ignore[arg-type]
    assert _auth._interactive(attempts)
    assert seen == [("Duo", "Enter code", [("Code: ", False)])]
