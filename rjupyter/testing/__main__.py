"""Command line for the test lab: `python -m rjupyter.testing {shell,prebuild,cleanup}`."""

from __future__ import annotations

import argparse
import logging
import signal
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from . import Lab, LabError, cleanup_stale_labs, ensure_jupyter_venv


def _shell(arguments: argparse.Namespace) -> int:
    """Run a lab with one host until Ctrl-C or SIGTERM, then tear it down."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    workdir = Path(tempfile.mkdtemp(prefix="rjupyter-lab-"))
    with Lab(workdir / "lab") as lab:
        host = lab.add_host(arguments.name)
        print(f"lab host {host.name}: {lab.user}@{host.address}:{host.port}", flush=True)
        if host.netns is not None:
            print(f"  network namespace: {host.netns} (ip netns exec {host.netns} ...)")
        print(f"  sshd log: {host.sshd_log_file}")
        if arguments.jupyter:
            print(f"  jupyter: {lab.jupyter_venv}/bin/jupyter")
        print(f"log in with:\n  ssh -F {lab.ssh_config} {host.name}")
        print("Ctrl-C (or SIGTERM) tears the lab down.", flush=True)
        while not stop.wait(1.0):
            pass
        print("tearing down...", flush=True)
    workdir.rmdir()
    return 0


def _prebuild(arguments: argparse.Namespace) -> int:
    """Build (or check) the cached jupyter venv."""
    print(ensure_jupyter_venv())
    return 0


def _cleanup(arguments: argparse.Namespace) -> int:
    """Tear down labs left behind by processes that died before their teardown."""
    cleaned = cleanup_stale_labs()
    print(f"cleaned up {len(cleaned)} stale lab(s){': ' if cleaned else ''}{' '.join(cleaned)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser; each subcommand sets `handler`."""
    parser = argparse.ArgumentParser(prog="python -m rjupyter.testing", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", required=True)
    shell = commands.add_parser("shell", help="start a lab host and wait; prints how to ssh in")
    shell.add_argument("--name", default="remote", help="host alias (default: remote)")
    shell.add_argument(
        "--jupyter", action="store_true", help="also build/show the lab's jupyter venv"
    )
    shell.set_defaults(handler=_shell)
    prebuild = commands.add_parser("prebuild", help="build the cached jupyter venv")
    prebuild.set_defaults(handler=_prebuild)
    cleanup = commands.add_parser(
        "cleanup", help="remove labs whose process died before tearing them down (root)"
    )
    cleanup.set_defaults(handler=_cleanup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(arguments.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        status: int = arguments.handler(arguments)
    except LabError as exc:
        print(f"error: {exc}")
        return 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
