"""Pure functions: host specs, startup output parsing, token redaction."""

from __future__ import annotations

import pytest

from rjupyter._server._inventory import app_of
from rjupyter._server._startup import StartupParser, redact, split_base_url
from rjupyter._ssh._hostspec import HostSpec, parse_host_spec

TOKEN = "3f73270c577f87a4334631d27a39192d9d11b958293d4d70"

SERVER2 = f"""\
RJUPYTER-PID 4111
[I 2026-11-22 01:24:00.293 ServerApp] The port 20111 is already in use, trying another port.
[I 2026-11-22 01:24:00.293 ServerApp] Serving notebooks from local directory: /tmp/jt
[I 2026-11-22 01:24:00.293 ServerApp] Jupyter Server 2.21.1 is running at:
[I 2026-11-22 01:24:00.293 ServerApp] http://127.0.0.1:20112/tree?token={TOKEN}
[C 2026-11-22 01:24:00.295 ServerApp]
        file:///home/u/.local/share/jupyter/runtime/jpserver-4111-open.html
"""
NOTEBOOK6 = f"""\
RJUPYTER-PID 77
[I 12:00:00.000 NotebookApp] Jupyter Notebook 6.5.4 is running at:
[I 12:00:00.000 NotebookApp] http://localhost:8888/?token={TOKEN}
[I 12:00:00.000 NotebookApp]  or http://127.0.0.1:8888/?token={TOKEN}
"""
NOTEBOOK5 = f"""\
RJUPYTER-PID 78
[I 10:00:00.000 NotebookApp] The Jupyter Notebook is running at: http://localhost:8890/?token={TOKEN}
"""
LAB_UNDER_BASE = f"""\
RJUPYTER-PID 79
[I 2026-11-22 01:24:00.036 ServerApp] http://127.0.0.1:20111/user/me/lab?token={TOKEN}
"""


def feed_all(text: str) -> StartupParser:
    parser = StartupParser()
    for line in text.splitlines():
        parser.feed(line)
    return parser


@pytest.mark.parametrize(
    ("output", "port", "path", "pid", "base"),
    [
        (SERVER2, 20112, "/tree", 4111, "/"),
        (NOTEBOOK6, 8888, "/", 77, "/"),
        (NOTEBOOK5, 8890, "/", 78, "/"),
        (LAB_UNDER_BASE, 20111, "/user/me/lab", 79, "/user/me/"),
    ],
)
def test_startup_output_of_each_jupyter_generation(
    output: str, port: int, path: str, pid: int, base: str
) -> None:
    info = feed_all(output).info
    assert info is not None
    assert (info.port, info.path, info.token, info.pid, info.base_url) == (
        port,
        path,
        TOKEN,
        pid,
        base,
    )
    assert TOKEN not in repr(info)


def test_masked_token_is_not_taken_for_a_token() -> None:
    parser = feed_all("RJUPYTER-PID 5\n[I ServerApp] http://127.0.0.1:8888/tree?token=...\n")
    assert parser.info is None
    assert parser.masked_url_seen


def test_a_server_on_a_unix_socket_is_read_from_its_http_unix_url() -> None:
    sock = "/home/me/.local/state/rjupyter/ab12/jupyter.sock"
    printed = f"http+unix://{sock.replace('/', '%2F')}/lab?token={TOKEN}"
    parser = feed_all(f"RJUPYTER-PID 7\n[I ServerApp] Jupyter Server 2 is running at:\n{printed}\n")
    info = parser.info
    assert info is not None
    assert (info.socket, info.port, info.path, info.token) == (sock, 0, "/lab", TOKEN)
    masked = feed_all(f"RJUPYTER-PID 7\n{printed.replace(TOKEN, '...')}\n")
    assert masked.info is None
    assert masked.masked_url_seen


def test_error_marker_is_recorded() -> None:
    parser = feed_all("RJUPYTER-PID 5\nRJUPYTER-ERROR venv\n")
    assert parser.error_code == "venv"
    assert parser.pid == 5
    assert parser.info is None


def test_url_before_pid_completes_when_pid_arrives() -> None:
    parser = StartupParser()
    assert parser.feed(f"http://127.0.0.1:1234/lab?token={TOKEN}") is None
    info = parser.feed("RJUPYTER-PID 9")
    assert info is not None
    assert info.port == 1234


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("gpu-box", HostSpec("gpu-box")),
        ("me@gpu-box", HostSpec("gpu-box", "me")),
        ("me@gpu-box:2222", HostSpec("gpu-box", "me", 2222)),
        ("gpu-box:22", HostSpec("gpu-box", None, 22)),
        ("[::1]:2200", HostSpec("::1", None, 2200)),
        ("me@[fe80::1]", HostSpec("fe80::1", "me")),
        ("a@b@host", HostSpec("host", "a@b")),
    ],
)
def test_host_specs(spec: str, expected: HostSpec) -> None:
    assert parse_host_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "me@", "host:0", "host:99999", "host:ssh"])
def test_bad_host_specs(spec: str) -> None:
    with pytest.raises(ValueError, match=r"host|port"):
        parse_host_spec(spec)


def test_redact_hides_token_parameters_and_named_secrets() -> None:
    line = f"GET /api/kernels?token={TOKEN}&x=1 and {TOKEN[:48]} alone"
    hidden = redact(line, TOKEN)
    assert TOKEN not in hidden
    assert "token=<redacted>&x=1" in hidden


@pytest.mark.parametrize(
    ("path", "base"),
    [("/tree", "/"), ("/lab", "/"), ("/", "/"), ("", "/"), ("/a/b/lab", "/a/b/"), ("/x/y", "/x/")],
)
def test_base_url_from_printed_path(path: str, base: str) -> None:
    assert split_base_url(path) == base


@pytest.mark.parametrize(
    ("command", "app"),
    [
        (
            "/var/cache/rjupyter-lab/venv/bin/python /opt/v/bin/jupyter-server --no-browser",
            "server",
        ),
        ("/usr/bin/python3 /home/u/.venv/bin/jupyter-lab --port=8888", "lab"),
        ("python -m jupyter notebook --no-browser", "notebook"),
        ("/usr/bin/python3 -m ipykernel_launcher -f x.json", None),
        ("", None),  # a process that ended between listing and reading its command line
    ],
)
def test_app_of_a_command_line(command: str, app: str | None) -> None:
    assert app_of(command) == app
