"""Start Jupyter in your login environment: `module load` in setup lines, your ~/.profile.

    python examples/login_env.py HOST [--setup "module load python/3.11"]... [--show VAR]...
                                [--slurm "--time=10"] [--no-login-shell] [--venv PATH]
                                [-F SSH_CONFIG]

The setup lines and Jupyter run as after a login (your login shell reads /etc/profile, where
Lmod and conda hook in, and your profile files); the kernel then shows the variables asked for,
and the host (with --slurm: the compute node) and Slurm job it runs on.
"""

from __future__ import annotations

import argparse
import sys

from rjupyter import RemoteNotebook, RJupyterError, Slurm

SHOW = """\
import os, socket
for name in {names!r}:
    print(f"{{name}}={{os.environ.get(name, '(unset)')}}")
print(f"host={{socket.gethostname()}} job={{os.environ.get('SLURM_JOB_ID', '(none)')}}")
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("--setup", action="append", default=[], help="a shell line (repeatable)")
    parser.add_argument("--show", action="append", default=[], help="a variable to print")
    parser.add_argument("--slurm", help="sbatch options: run in a Slurm job on a compute node")
    parser.add_argument("--no-login-shell", action="store_true", help="a plain /bin/sh instead")
    parser.add_argument("--venv", help="virtual environment to enter")
    parser.add_argument("-F", "--ssh-config", help="SSH config file (default ~/.ssh/config)")
    args = parser.parse_args(argv)
    try:
        with RemoteNotebook(
            args.host,
            setup=args.setup,
            login_shell=not args.no_login_shell,
            scheduler=Slurm.parse(args.slurm) if args.slurm else None,
            venv=args.venv,
            ssh_config=args.ssh_config,
        ) as nb:
            print(nb.execute(SHOW.format(names=args.show or ["PATH"])).stdout, end="")
    except RJupyterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
