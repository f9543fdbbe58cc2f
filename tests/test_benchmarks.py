"""The benchmark's correctness pass (what CI runs of it): tiny sizes, every tool, both links,
directly and through a jump host, bytes checked; no timings."""

from __future__ import annotations

from pathlib import Path

from benchmarks._report import Result, render_table
from benchmarks._slurm import ROW
from benchmarks._suite import check
from rjupyter.testing import Lab, LabHost


def test_every_tool_carries_bytes_intact(tmp_path: Path, lab: Lab, remote: LabHost) -> None:
    done = check(lab, remote, tmp_path, size=256 * 1024)
    # 3 tools x 2 links, rjupyter to a Unix socket x 2 links, rjupyter and ssh x 2 jump links
    assert len(done) == 12, done
    assert sum("through a jump host" in line for line in done) == 4, done


def test_the_table_shows_ratios_and_verdicts() -> None:
    rows = [
        Result(
            "bulk download, fast link", "MB/s", {"rjupyter": 450, "openssh": 500, "sshtunnel": 250}
        ),
        Result(
            "200 concurrent, p99",
            "ms",
            {"rjupyter": 24, "openssh": 25, "sshtunnel": 1400},
            failures={"rjupyter": 0, "openssh": 0, "sshtunnel": 109},  # the reference's own
        ),
        Result(
            "time to ready (enter to /api/status 200)",
            "s",
            {"rjupyter": 2.6, "bare jupyter": 2.0},
            reference="bare jupyter",
        ),
        Result(
            "200 concurrent, p99",
            "ms",
            {"rjupyter": 20, "openssh": 25, "sshtunnel": 1400},
            failures={"rjupyter": 1, "openssh": 0, "sshtunnel": 0},
        ),
        Result("RSS growth moving 2 GiB", "MiB", {"rjupyter": 0.3, "openssh": 0, "sshtunnel": 1}),
    ]
    table = render_table(rows).splitlines()
    assert "| 0.90x | 0.50x | >= 0.9x | met |" in table[2]
    assert "| 0.96x | 56.00x | <= 1x | met |" in table[3]
    assert "1.30x |  | <= 1.15x | NOT met |" in table[4]
    assert table[5].endswith("| 0.80x | 56.00x | <= 1x | NOT met |")  # rjupyter failed one
    assert "nan" not in table[6]


def test_the_slurm_row_is_held_to_its_target() -> None:
    met = Result(ROW, "s", {"rjupyter": 3.2, "bare sbatch": 3.0}, reference="bare sbatch")
    missed = Result(ROW, "s", {"rjupyter": 4.1, "bare sbatch": 3.0}, reference="bare sbatch")
    table = render_table([met, missed]).splitlines()
    assert "| 3.2 | 3 (bare sbatch) |  | 1.07x |  | <= 1.15x | met |" in table[2]
    assert table[3].endswith("| 1.37x |  | <= 1.15x | NOT met |")
