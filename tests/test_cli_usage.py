"""The command line's surface through the real executable, with no lab: exit statuses, usage
errors in CLI terms, global flags anywhere, old spellings, strict profiles, completion."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from rich.console import Console

from rjupyter import Slurm
from rjupyter._cli._common import cli, merge, notebook_for
from rjupyter._cli._forwards import FORWARD, Forward
from rjupyter._cli._main import main
from rjupyter._cli._ui import Progress, StatusLine, printable

RJUPYTER = str(Path(sys.executable).with_name("rjupyter"))
REFUSED = "nobody@127.0.0.1:2"  # nothing listens on port 2: a connection failure


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    values = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    values.update(HOME=str(home), RJUPYTER_CONFIG=str(tmp_path / "none.toml"), COLUMNS="100")
    values.pop("XDG_CONFIG_HOME", None)
    return values


def run(args: list[str], env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RJUPYTER, *args],
        capture_output=True,
        text=True,
        env={**env, **extra},
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def profile(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_a_connection_failure_exits_255_like_ssh(env: dict[str, str]) -> None:
    result = run(["start", REFUSED, "--no-open"], env)
    assert result.returncode == 255
    assert result.stderr.startswith("rjupyter: error: connection to 127.0.0.1:2")
    assert run(["list", REFUSED], env).returncode == 255
    assert run(["stop", REFUSED, "--all-mine"], env).returncode == 255


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "h", "--remote-port", "70000"], "'--remote-port': 70000 is not in the range"),
        (["start", "h", "--port", "0"], "'--port': 0 is not in the range"),
        (["start", "h", "--timeout", "0"], "'--timeout': 0.0 is not in the range x>0"),
        (["list", "h", "--timeout", "-1"], "'--timeout': -1.0 is not in the range x>0"),
        (["tunnel", "h", "-L", "8889", "--timeout", "-5"], "'--timeout'"),
        (["start", "h", "--abandon-timeout", "-1"], "'--abandon-timeout'"),
        (["attach", "h", "--pid", "1", "--port", "2"], "--port and --pid exclude each other"),
        (["attach", "h", "--job", "12", "--pid", "3"], "--pid and --job-id exclude each other"),
        (["stop", "h", "--pid", "1", "--all-mine"], "--pid and --all-mine exclude each other"),
        (["stop", "h"], "exactly one of --port, --pid, --all-mine"),
        (["start", "h", "--venv", "a", "--conda", "b"], "--venv and --conda-env exclude"),
        (["start", "h", "--dir", "a", "--workdir", "b"], "--dir is the old name of --workdir"),
        (["exec", "h", "-c", "1", "-f", "/dev/null"], "--code and --file exclude each other"),
        (["exec", "h"], "exactly one of -c CODE or -f FILE"),
        (["exec", "h", "-c", "1", "--attach", "7", "--venv", "v"], "--attach and --venv"),
        (["tunnel", "h"], "name the port to forward"),
        (["tunnel", "h", "-L", "1:2", "--local-port", "3"], "--local-port applies to a single"),
        (["tunnel", "h", "8889", "-L", "1"], "with -L only"),
        (["tunnel", "h", "-L", "99999"], "'99999' in '99999' is not a port"),
        (["start", "h", "--slurm", "--x='open"], "not valid sbatch options"),
        (["start", "h", "--node-host-key-policy", "no"], "'no' is not one of 'reject'"),
    ],
)
def test_usage_errors_name_the_flag_and_exit_2(
    args: list[str], message: str, env: dict[str, str]
) -> None:
    result = run(args, env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "remote_port" not in result.stderr, "CLI terms, not Python parameter names"


def test_global_flags_anywhere(env: dict[str, str]) -> None:
    for args in (
        ["-vv", "start", REFUSED],
        ["start", REFUSED, "-vv"],
        ["start", REFUSED, "--verbose", "--verbose"],
        ["-v", "start", REFUSED, "-v"],
    ):
        result = run([*args, "--no-open", "--timeout", "5"], env)
        assert "Traceback" in result.stderr, args
        assert "DEBUG" in result.stderr, args
    quiet = run(["stop", REFUSED, "--pid", "1", "-q"], env)
    assert quiet.returncode == 255


def test_old_spellings_work_but_are_hidden(env: dict[str, str]) -> None:
    hidden = {
        "start": ["--dir", "--conda", "--port"],
        "attach": ["--job", "--stop-on-exit"],
        "run": ["--cwd", "--kernel", "--dir"],
        "exec": ["--exec-timeout", "--kernel"],
    }
    for command, spellings in hidden.items():
        flags = set(re.findall(r"--[\w-]+", run([command, "--help"], env).stdout))
        assert not flags & set(spellings), command
    both = run(["attach", "h", "--stop-on-exit", "--stop-on-close"], env)
    assert "--stop-on-exit is the old name of --stop-on-close" in both.stderr
    for text in (run(["tunnel", "--help"], env).stdout, run(["--help"], env).stdout):
        assert "jpt" not in text


def test_help_names_the_exit_statuses(env: dict[str, str]) -> None:
    text = " ".join(run(["--help"], env).stdout.split())
    assert "255 the SSH connection failed" in text
    assert "2 a usage or profile error" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[defualts]\napp = "lab"\n', "unknown table or key defualts"),
        ("hosts = 5\n", "hosts must hold tables"),
        ('[hosts.h]\napp = "jupyterlab"\n', "'app' in [hosts.h]: 'jupyterlab' is not one of"),
        ('[hosts.h]\nremote_port = "8888"\n', "'remote_port' in [hosts.h] must be int"),
        ("[hosts.h]\nport = 70000\n", "'port' in [hosts.h]: 70000 is not in the range"),
        ("[hosts.h]\ntimeout = 0\n", "'timeout' in [hosts.h]: 0.0 is not in the range"),
        ("[hosts.other]\nvenv = 3\n", "'venv' in [hosts.other] must be str"),
        ('[defaults]\nslurm = "--x=\'open"\n', "'slurm' in [defaults]: \"--x='open\" is not"),
        ('[hosts.h]\nvenv = "a"\nconda = "b"\n', "sets both venv and conda_env"),
        ('[hosts.h]\nnode_host_key_policy = "no"\n', "'node_host_key_policy' in [hosts.h]: 'no'"),
        ("[hosts.h]\nkeep_running = 1\n", "'keep_running' in [hosts.h] must be bool"),
    ],
)
def test_profiles_are_checked_strictly_naming_the_file(
    tmp_path: Path, env: dict[str, str], text: str, message: str
) -> None:
    path = profile(tmp_path, text)
    result = run(["start", "h", "--no-open"], env, RJUPYTER_CONFIG=path)
    assert result.returncode == 2, result.stderr
    assert f"{path}: " in result.stderr
    assert message in result.stderr


def test_a_profile_others_may_write_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    path = profile(tmp_path, '[defaults]\napp = "lab"\n', mode=0o664)
    result = run(["list", "h"], env, RJUPYTER_CONFIG=path)
    assert result.returncode == 2
    assert f"bad owner or permissions on the profile file {path}" in result.stderr
    assert f"chmod 600 {path}" in result.stderr


def test_profiles_match_the_host_part_of_user_at_host_port(
    tmp_path: Path, env: dict[str, str]
) -> None:
    missing = tmp_path / "no-such-ssh-config"
    path = profile(tmp_path, f'[hosts."127.0.0.1"]\nssh_config = "{missing}"\n')
    result = run(["list", REFUSED], env, RJUPYTER_CONFIG=path)
    assert str(missing) in result.stderr, "[hosts.127.0.0.1] applies to nobody@127.0.0.1:2"
    flag_wins = run(["list", REFUSED, "-F", "/dev/null"], env, RJUPYTER_CONFIG=path)
    assert str(missing) not in flag_wins.stderr


def complete(words: str, env: dict[str, str]) -> list[str]:
    parts = words.split(" ")
    result = run(
        [],
        env,
        _RJUPYTER_COMPLETE="bash_complete",
        COMP_WORDS=words,
        COMP_CWORD=str(len(parts) - 1),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_host_completion_from_ssh_config_and_profiles(tmp_path: Path, env: dict[str, str]) -> None:
    ssh = Path(env["HOME"]) / ".ssh"
    (ssh / "config").write_text("Host gpu-box gpu-* !gpu-x\n  User me\nInclude more/*\n")
    (ssh / "more").mkdir()
    (ssh / "more" / "cluster").write_text("Host gpu-login bastion\n")
    env["RJUPYTER_CONFIG"] = profile(tmp_path, "[hosts.gpu-prof]\napp = 'lab'\n")
    assert complete("rjupyter start gp", env) == [
        "plain,gpu-box",
        "plain,gpu-login",
        "plain,gpu-prof",
    ]
    assert complete("rjupyter -v stop me@gpu-b", env) == ["plain,me@gpu-box"]


def test_file_completion_for_ssh_config_and_identity(env: dict[str, str]) -> None:
    assert complete("rjupyter start h -F ", env) == ["file,"]
    assert complete("rjupyter tunnel h -i ~/.ssh/id", env) == ["file,~/.ssh/id"]


def test_forward_specs_read_like_ssh_minus_l() -> None:
    assert FORWARD.convert("8889", None, None) == Forward(None, "", 8889)
    assert FORWARD.convert("8888:8889", None, None) == Forward(8888, "", 8889)
    assert FORWARD.convert("db:5432", None, None) == Forward(None, "db", 5432)
    assert FORWARD.convert("15432:db:5432", None, None) == Forward(15432, "db", 5432)
    # A remote Unix socket, in OpenSSH's spelling (a path may hold colons).
    assert FORWARD.convert("/run/a.sock", None, None) == Forward(None, "", "/run/a.sock")
    assert FORWARD.convert("8080:/run/a:b", None, None) == Forward(8080, "", "/run/a:b")
    with pytest.raises(click.BadParameter):
        FORWARD.convert("0:/run/a.sock", None, None)


def test_the_status_line_shows_the_socket_and_the_forwards() -> None:
    line = StatusLine(
        Console(), host="h", local_port=5000, remote="/s/jupyter.sock", forwards=[(5001, "6006")]
    )
    text = line.render(connected=True, kernels=0)
    assert text.startswith("127.0.0.1:5000 -> h:/s/jupyter.sock, 5001->6006  up 0:00:00")


def test_server_text_is_printed_without_control_characters() -> None:
    hostile = "Pass\x1b[2J\x1b]0;owned\x07word\r\u202e: "
    assert printable(hostile) == "Pass[2J]0;ownedword: "
    assert printable("line one\nline two\tx", keep_newlines=True) == "line one\nline two x"
    assert printable("a\nb") == "ab"


#: Commands that never start Jupyter (they reach a running one, forward ports, or list/stop):
#: a new command goes here only deliberately; every other command starts Jupyter and must take
#: the environment options, ``--slurm`` and ``--login-shell`` among them.
NEVER_START_JUPYTER = {"tunnel", "attach", "list", "stop", "completion"}


def test_every_command_that_starts_jupyter_takes_slurm_and_login_shell(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main is not None  # importing it registers every command
    starting = {name for name in cli.commands if name not in NEVER_START_JUPYTER}
    assert {"start", "run", "exec"} <= starting
    for name in sorted(starting):
        params = {param.name for param in cli.commands[name].params}
        assert {"slurm", "login_shell", "setup", "venv"} <= params, name
    # A profile's `slurm =` and the flag both reach the notebook (the flag wins).
    profile = tmp_path / "config.toml"
    profile.write_text('[hosts.login]\nslurm = "--time=10"\nlogin_shell = false\n')
    monkeypatch.setenv("RJUPYTER_CONFIG", str(profile))
    progress = Progress(Console(file=io.StringIO()), quiet=True)
    for flags, expected in (({}, ("--time=10",)), ({"slurm": Slurm(time="5")}, ())):
        notebook = notebook_for("login", merge("login", flags), progress, app="server")
        scheduler = notebook._scheduler
        assert isinstance(scheduler, Slurm)
        assert scheduler.extra == expected
        assert notebook._spec.environment.login_shell is False
    for name in sorted(starting):
        result = run([name, "--help"], env)
        assert "--slurm SBATCH_OPTIONS" in result.stdout, name
        assert "--no-login-shell" in result.stdout, name
