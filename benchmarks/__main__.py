"""``python -m benchmarks [--repeat N] [--plot FILE.png] [--check] [--slurm]``: see the package
docstring."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import sys
import tempfile
from pathlib import Path

from rjupyter.testing import Lab

from ._first_byte import GROUPS, measure_first_byte
from ._report import render_table, write_plot
from ._rows import MiB
from ._slurm import slurm_rows
from ._suite import check, measure
from ._tools import TOOLS


def machine() -> str:
    """One line describing this machine."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    python = platform.python_version()
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {python}"


def main(argv: list[str] | None = None) -> int:
    """Build the lab, run the rows (or the check), print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per row (medians)")
    parser.add_argument("--fast-size", type=int, default=512 * MiB)
    parser.add_argument("--slow-size", type=int, default=128 * MiB)
    parser.add_argument("--cost-size", type=int, default=2048 * MiB)
    parser.add_argument("--no-jupyter", action="store_true", help="skip the Jupyter rows")
    parser.add_argument(
        "--rows",
        default="all",
        help=f"comma-separated row groups: base, {', '.join(GROUPS)} (default: all)",
    )
    parser.add_argument("--plot", type=Path, help="write a PNG chart of the ratios here")
    parser.add_argument("--check", action="store_true", help="correctness only, tiny sizes")
    parser.add_argument(
        "--check-size", type=int, default=1 * MiB, help="bytes each way per tool in --check"
    )
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated tools for --check"
    )
    parser.add_argument(
        "--slurm", action="store_true", help="only the Slurm row: submit to ready vs bare sbatch"
    )
    args = parser.parse_args(argv)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        # Before the run, not after: a whole run takes ten minutes or more.
        parser.error("--plot needs matplotlib: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="rjupyter-bench-") as workdir, Lab(workdir) as lab:
        if args.slurm:
            rows, samples = slurm_rows(lab, args.repeat)
            print(f"machine: {machine()}; medians of {args.repeat} runs, alternating")
            print(render_table(rows))
            for name, values in samples.items():
                print(f"{name}: " + ", ".join(f"{value:.2f}" for value in values) + " s")
            return 0
        remote = lab.add_host("remote")
        if args.check:
            tools = tuple(args.tools.split(","))
            for line in check(lab, remote, Path(workdir), args.check_size, tools):
                print(line)
            return 0
        groups = {"base", *GROUPS} if args.rows == "all" else set(args.rows.split(","))
        if args.no_jupyter:
            groups.discard("jupyter-slow")
        results = measure(lab, remote, Path(workdir), args) if "base" in groups else []
        results += measure_first_byte(lab, remote, Path(workdir), args, groups)
    print(f"machine: {machine()}; medians of {args.repeat} runs")
    print(render_table(results))
    if args.plot:
        write_plot(results, args.plot)
        print(f"chart: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
