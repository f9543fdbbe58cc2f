"""Setup lines and Jupyter run in the lab user's login environment (issue 16, item 4).

Real parts only: Debian's Lmod (its ``/etc/profile.d/lmod.sh`` defines ``module`` for login
shells), a modulefile written into a module directory that the lab user's ``~/.profile`` puts on
``MODULEPATH``, real tcsh and fish as login shells, a real Slurm job. The lab user's profile
files and login shell are changed for one test each and restored after it (as root only: the lab
then has a user of its own).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import run_example

from rjupyter import LaunchError, RemoteNotebook, Slurm
from rjupyter.testing import Lab, LabHost
from rjupyter.testing._slurm import slurm_available

LMOD_INIT = Path("/etc/profile.d/lmod.sh")
TCSH = shutil.which("tcsh")
FISH = shutil.which("fish")
ZSH = shutil.which("zsh")
#: The lab user's profile files that a test may write (removed again after it).
DOTFILES = (
    *(".profile", ".bash_profile", ".login", ".tcshrc", ".zprofile"),
    ".config/fish/config.fish",
)
#: What the kernel reports: the module's variable, the profile's, the job (if any).
PROBE = (
    "import os; print(os.environ.get('RJ_MODULE'), os.environ.get('RJ_PROFILE'), "
    "os.environ.get('SLURM_JOB_ID'))"
)
#: A Lua modulefile: loading it sets RJ_MODULE.
MODULEFILE = 'setenv("RJ_MODULE", "loaded")\n'
PROFILE = 'export MODULEPATH="$HOME/rjmodules${MODULEPATH:+:$MODULEPATH}"\nexport RJ_PROFILE=sh\n'


@pytest.fixture
def home(lab: Lab) -> Iterator[Callable[[str, str], None]]:
    """Write files into the lab user's home (owned by the user); removed after the test, with
    the module directory, and the login shell set back to bash."""
    if not lab.isolated:
        pytest.skip("changes the lab user's profile files and login shell: needs root")
    if not LMOD_INIT.exists():
        pytest.fail("Lmod is missing: apt-get install lmod (./dev installs it)")
    modules = lab.home / "rjmodules" / "rjtest"
    modules.mkdir(parents=True)
    (modules / "1.0.lua").write_text(MODULEFILE)
    for path in (modules.parent, modules, modules / "1.0.lua"):
        os.chown(path, lab.uid, -1)

    def write(name: str, text: str) -> None:
        path = lab.home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chown(path, lab.uid, -1)

    try:
        yield write
    finally:
        login_shell(lab, "/bin/bash")
        for name in DOTFILES:
            (lab.home / name).unlink(missing_ok=True)
        shutil.rmtree(lab.home / "rjmodules")
        shutil.rmtree(lab.home / ".config" / "fish", ignore_errors=True)


def login_shell(lab: Lab, shell: str) -> None:
    subprocess.run(["usermod", "--shell", shell, lab.user], check=True, capture_output=True)


def probe(nb: RemoteNotebook) -> list[str]:
    return nb.execute(PROBE).stdout.split()


def test_module_load_and_the_profile_reach_the_kernel(
    remote: LabHost, home: Callable[[str, str], None], nb_options: dict[str, Any]
) -> None:
    home(".profile", PROFILE)
    with RemoteNotebook(remote.name, setup=["module load rjtest"], **nb_options) as nb:
        assert probe(nb) == ["loaded", "sh", "None"]


def test_a_noisy_profile_does_not_confuse_the_launch(
    remote: LabHost, home: Callable[[str, str], None], nb_options: dict[str, Any]
) -> None:
    noise = [
        "echo 'Welcome to the cluster! Docs: http://127.0.0.1:1/lab?token=notours'",
        "echo 'RJUPYTER-PID 1'; echo 'RJUPYTER-EXIT 0' >&2",
        "echo 'quota: 93% of 10G used' >&2",
        "printf 'a banner line without an end'",
        "yes 'fortune: a long saying' | head -n 300",
    ]
    home(".profile", PROFILE + "\n".join(noise) + "\n")
    with RemoteNotebook(remote.name, setup=["module load rjtest"], **nb_options) as nb:
        assert nb.token != "notours"
        assert nb.remote_port != 1
        assert probe(nb) == ["loaded", "sh", "None"]


def test_a_profile_that_ends_the_shell_is_named(
    remote: LabHost, home: Callable[[str, str], None], nb_options: dict[str, Any]
) -> None:
    home(".profile", "echo 'no compute here'\nexit 0\n")
    with pytest.raises(LaunchError, match="launch script never ran") as caught:
        RemoteNotebook(remote.name, **nb_options).start()
    assert "login_shell=False" in str(caught.value)
    assert "no compute here" in (caught.value.output_tail or "")
    with RemoteNotebook(remote.name, login_shell=False, **nb_options) as nb:
        assert probe(nb) == ["None", "None", "None"]


def test_login_shell_false_is_the_plain_sh_of_before(
    remote: LabHost, home: Callable[[str, str], None], nb_options: dict[str, Any]
) -> None:
    home(".profile", PROFILE)
    with RemoteNotebook(remote.name, login_shell=False, **nb_options) as nb:
        assert probe(nb) == ["None", "None", "None"]
    plain = RemoteNotebook(
        remote.name, setup=["module load rjtest"], login_shell=False, **nb_options
    )
    with pytest.raises(LaunchError, match=r"setup line 1 \(module \.\.\.\) failed"):
        plain.start()


@pytest.mark.skipif(TCSH is None, reason="tcsh is not installed (./dev installs it)")
def test_a_tcsh_user_gets_the_variables_of_a_tcsh_login(
    lab: Lab, remote: LabHost, home: Callable[[str, str], None], nb_options: dict[str, Any]
) -> None:
    assert TCSH is not None
    home(".tcshrc", "echo 'tcshrc says hello'\n")
    home(
        ".login",
        "setenv RJ_PROFILE tcsh\nsetenv MODULEPATH ~/rjmodules\n"
        "source /usr/share/lmod/lmod/init/tcsh\necho 'login banner'\n",
    )
    home(".profile", "export RJ_PROFILE=wrong\n")  # a tcsh login does not read it
    login_shell(lab, TCSH)
    with RemoteNotebook(remote.name, setup=["module load rjtest"], **nb_options) as nb:
        assert probe(nb) == ["loaded", "tcsh", "None"]


@pytest.mark.skipif(FISH is None, reason="fish is not installed (./dev installs it)")
def test_a_fish_user_gets_the_variables_of_a_fish_login(
    lab: Lab, remote: LabHost, home: Callable[[str, str], None], nb_options: dict[str, Any]
) -> None:
    assert FISH is not None
    home(
        ".config/fish/config.fish",
        "if status is-login\n  set -gx RJ_PROFILE fish\nend\necho 'fish greets'\n",
    )
    login_shell(lab, FISH)
    with RemoteNotebook(remote.name, **nb_options) as nb:
        assert probe(nb) == ["None", "fish", "None"]


@pytest.mark.skipif(ZSH is None, reason="zsh is not installed (./dev installs it)")
def test_a_zsh_user_runs_the_script_in_zsh_as_sh(
    lab: Lab, remote: LabHost, home: Callable[[str, str], None], nb_options: dict[str, Any]
) -> None:
    assert ZSH is not None
    home(".zprofile", "export RJ_PROFILE=zsh\necho 'zsh says hi'\n")
    login_shell(lab, ZSH)
    # The launch's word splitting and process records work in zsh's sh emulation.
    with RemoteNotebook(remote.name, **nb_options) as nb:
        assert probe(nb) == ["None", "zsh", "None"]
        assert nb.server.pid is not None


def test_a_slurm_job_runs_in_the_login_environment_too(
    lab: Lab, home: Callable[[str, str], None], nb_options: dict[str, Any]
) -> None:
    if (reason := slurm_available()) is not None:
        pytest.skip(reason)
    cluster = lab.slurm or lab.add_slurm()
    home(".profile", PROFILE)
    with RemoteNotebook(
        "login", scheduler=Slurm(time="5"), setup=["module load rjtest"], **nb_options
    ) as nb:
        module, profile, job_id = probe(nb)
        assert (module, profile) == ("loaded", "sh")
        assert job_id == nb.server.job_id
    assert cluster.jobs() == []


def test_login_env_example(lab: Lab, remote: LabHost, home: Callable[[str, str], None]) -> None:
    home(".profile", PROFILE)
    common = ["--venv", lab.jupyter_venv, "-F", str(lab.ssh_config)]
    shown = ["--show", "RJ_MODULE", "--show", "RJ_PROFILE"]
    module = ["--setup", "module load rjtest"]
    result = run_example("login_env.py", remote.name, *module, *shown, *common)
    assert result.returncode == 0, result.stderr
    assert "RJ_MODULE=loaded\nRJ_PROFILE=sh\n" in result.stdout
    assert "job=(none)" in result.stdout
    plain = run_example("login_env.py", remote.name, "--no-login-shell", *shown, *common)
    assert plain.returncode == 0, plain.stderr
    assert "RJ_MODULE=(unset)\nRJ_PROFILE=(unset)\n" in plain.stdout
    failed = run_example("login_env.py", remote.name, "--no-login-shell", *module, *common)
    assert failed.returncode == 1
    assert "setup line 1 (module ...) failed" in failed.stderr
