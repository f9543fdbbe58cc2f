"""Every way of logging in, each against a real sshd that allows only that way."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Answers, host_block, http, keygen, wait_for

from rjupyter import AuthenticationError, RemoteNotebook
from rjupyter._deadline import Deadline
from rjupyter._ssh._connection import SSHConnection, open_connection
from rjupyter._ssh._options import ConnectOptions
from rjupyter.testing import Lab, LabHost


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the keys a test names may log in: no ssh-agent of the person running the tests."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def user_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("user-ca") / "user_ca")


@pytest.fixture(scope="module")
def hosts(lab: Lab, user_ca: Path) -> Iterator[dict[str, LabHost]]:
    """One host per way of logging in (each allows only that way)."""
    built = {
        "password": lab.add_host("pw", auth_methods="password"),
        "kbd": lab.add_host("kbd", auth_methods="keyboard-interactive"),
        "key+kbd": lab.add_host("keykbd", auth_methods="publickey,keyboard-interactive"),
        "cert": lab.add_host("certs", trusted_user_ca=Path(f"{user_ca}.pub")),
    }
    yield built
    for host in built.values():
        host.stop()


def connect(config: Path, **options: Any) -> SSHConnection:
    return open_connection("target", ConnectOptions(ssh_config=config, **options), Deadline(20))


def config_for(tmp_path: Path, lab: Lab, host: LabHost, **overrides: str) -> Path:
    config = tmp_path / "ssh_config"
    config.write_text(host_block(lab, host, **overrides))
    return config


def logs_in(config: Path, **options: Any) -> None:
    connection = connect(config, **options)
    try:
        assert connection.is_active
    finally:
        connection.close()


TWO_ROUNDS = [[("Password: ", False)], [("Verification code: ", True)]]


def test_password_only(tmp_path: Path, lab: Lab, hosts: dict[str, LabHost]) -> None:
    config = config_for(tmp_path, lab, hosts["password"], IdentityFile="none")
    logs_in(config, password=lab.password)
    assert f"Accepted password for {lab.user}" in hosts["password"].sshd_log()
    with pytest.raises(AuthenticationError) as caught:
        connect(config, password="wrong-password")
    assert caught.value.methods_allowed == ("password",)
    assert "password" in caught.value.methods_tried
    assert "tried: password" in str(caught.value)
    assert "the server accepts: password" in str(caught.value)


def test_keyboard_interactive_two_prompts(
    tmp_path: Path, lab: Lab, hosts: dict[str, LabHost]
) -> None:
    config = config_for(tmp_path, lab, hosts["kbd"], IdentityFile="none")
    handler = Answers(lab, hosts["kbd"])
    logs_in(config, auth_handler=handler)
    assert handler.calls == TWO_ROUNDS, "one handler call per prompt round"
    wrong = Answers(
        lab, hosts["kbd"], code="000000" if hosts["kbd"].totp_code() != "000000" else "1"
    )
    with pytest.raises(AuthenticationError) as caught:
        connect(config, auth_handler=wrong)
    assert caught.value.methods_allowed == ("keyboard-interactive",)
    with pytest.raises(AuthenticationError, match="auth_handler"):
        connect(config, password=lab.password)  # two prompts need a handler


def test_publickey_then_otp_logs_in_once_per_notebook(
    tmp_path: Path, lab: Lab, hosts: dict[str, LabHost], nb_options: dict[str, Any]
) -> None:
    host = hosts["key+kbd"]
    config = config_for(tmp_path, lab, host)
    handler = Answers(lab, host)
    before = len(host.sshd_log())
    nb_options["ssh_config"] = config
    with RemoteNotebook("target", auth_handler=handler, **nb_options) as nb:
        assert http(f"{nb.base_url}api/status", token=nb.token)[0] == 200
    log = host.sshd_log()[before:]
    assert log.count("Connection from ") == 1, log
    assert "Partial publickey" in log
    assert "Accepted keyboard-interactive/pam" in log
    assert handler.calls == TWO_ROUNDS


KEY_FORMATS = [
    ("ed25519", ()),
    ("ecdsa", ()),
    ("ecdsa", ("-m", "PEM")),
    ("rsa", ()),
    ("rsa", ("-m", "PEM", "-b", "2048")),
]


@pytest.fixture
def authorized(lab: Lab) -> Iterator[list[Path]]:
    """Keys the test authorizes (for every lab host), unauthorized again afterwards."""
    original = lab.authorized_keys.read_text()
    keys: list[Path] = []
    yield keys
    lab.authorized_keys.write_text(original)


def authorize(lab: Lab, keys: list[Path], key: Path) -> None:
    keys.append(key)
    with lab.authorized_keys.open("a") as stream:
        stream.write(Path(f"{key}.pub").read_text())


@pytest.mark.parametrize(
    ("key_type", "options"),
    KEY_FORMATS,
    ids=[f"{t}-{'pem' if o else 'openssh'}" for t, o in KEY_FORMATS],
)
def test_key_types_and_formats(
    tmp_path: Path,
    lab: Lab,
    remote: LabHost,
    authorized: list[Path],
    key_type: str,
    options: tuple[str, ...],
) -> None:
    key = keygen(tmp_path / "key", key_type, *options)
    authorize(lab, authorized, key)
    if "PEM" in options:
        assert key.read_text().startswith(f"-----BEGIN {key_type.upper()[:2]}")
    logs_in(config_for(tmp_path, lab, remote, IdentityFile=str(key)))
    public = Path(f"{key}.pub").read_text().split()[1]
    assert public in lab.authorized_keys.read_text()


def test_encrypted_keys_with_passphrase(
    tmp_path: Path, lab: Lab, remote: LabHost, authorized: list[Path]
) -> None:
    openssh = keygen(tmp_path / "enc_ed25519", "ed25519", "-N", "open sesame")
    pem = keygen(tmp_path / "enc_rsa", "rsa", "-N", "pem pass", "-m", "PEM", "-b", "2048")
    for key in (openssh, pem):
        authorize(lab, authorized, key)
    logs_in(config_for(tmp_path, lab, remote, IdentityFile=str(openssh)), passphrase="open sesame")
    asked: list[str] = []

    def ask(path: str) -> str:
        asked.append(path)
        return "pem pass"

    logs_in(config_for(tmp_path, lab, remote, IdentityFile=str(pem)), passphrase=ask)
    assert asked == [str(pem)]
    with pytest.raises(AuthenticationError, match="no passphrase given"):
        connect(config_for(tmp_path, lab, remote, IdentityFile=str(openssh)))


def test_user_certificate(
    tmp_path: Path, lab: Lab, hosts: dict[str, LabHost], user_ca: Path
) -> None:
    key = keygen(tmp_path / "certified")  # not in authorized_keys: only the certificate counts
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(user_ca), "-I", "test-user", "-n", lab.user, f"{key}.pub"],
        check=True,
        capture_output=True,
    )
    certificate = tmp_path / "elsewhere-cert.pub"
    Path(f"{key}-cert.pub").rename(certificate)
    host = hosts["cert"]
    with pytest.raises(AuthenticationError):
        connect(config_for(tmp_path, lab, host, IdentityFile=str(key)))
    logs_in(
        config_for(tmp_path, lab, host, IdentityFile=str(key), CertificateFile=str(certificate))
    )
    assert 'Accepted certificate ID "test-user"' in host.sshd_log()


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real ssh-agent for this test only, stopped by PID."""
    socket_path = tmp_path / "agent.sock"
    process = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(socket_path.exists), "ssh-agent made no socket"
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        yield socket_path
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(10)


def test_agent_keys(
    tmp_path: Path, lab: Lab, remote: LabHost, authorized: list[Path], agent: Path
) -> None:
    key = keygen(tmp_path / "in_agent", "ecdsa")
    authorize(lab, authorized, key)
    subprocess.run(["ssh-add", "-q", str(key)], check=True, capture_output=True)
    key.unlink()  # only the agent holds it now
    config = config_for(tmp_path, lab, remote, IdentityFile="none", IdentitiesOnly="")
    logs_in(config)  # SSH_AUTH_SOCK
    other = tmp_path / "ssh_config_agent"
    other.write_text(
        host_block(lab, remote, IdentityFile="none", IdentitiesOnly="", IdentityAgent=str(agent))
    )
    os.environ.pop("SSH_AUTH_SOCK")
    logs_in(other)  # IdentityAgent


def test_secrets_stay_out_of_logs_and_reprs(
    tmp_path: Path, lab: Lab, hosts: dict[str, LabHost], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = Answers(lab, hosts["kbd"])
    code = hosts["kbd"].totp_code()
    logs_in(config_for(tmp_path, lab, hosts["kbd"], IdentityFile="none"), auth_handler=handler)
    logs_in(config_for(tmp_path, lab, hosts["password"]), password=lab.password)
    options = ConnectOptions(password=lab.password, passphrase="phrase-secret")
    nb = RemoteNotebook("target", password=lab.password, passphrase="phrase-secret")
    for text in (caplog.text, repr(options), repr(nb)):
        for secret in (lab.password, "phrase-secret"):
            assert secret not in text
    # As a number of its own: six digits can occur inside longer numbers and hex in the log.
    assert not re.search(rf"(?<![0-9]){code}(?![0-9])", caplog.text), "the code is not logged"
