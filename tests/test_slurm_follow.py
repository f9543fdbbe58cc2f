"""The Slurm follow script under real dash and bash, with a stand-in ``scontrol`` (no lab).

As on a login node: the script comes on stdin (``sh -s``), which stays open while rjupyter
follows; the job's output file grows while it runs. The follow prints the file as it grows, the
state after the mark when it changes, the last state once the job ended, and stops when its stdin
closes.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path

import pytest
from helpers import SHELLS

from rjupyter._launch._slurm import FOLLOW_SCRIPT, parse_job
from rjupyter._server._scripts import whole

MARK = "RJUPYTER-STATE-test"
#: Prints the job's line from the file ``state`` (its JobState is changed by the test).
SCONTROL = """#!/bin/sh
printf 'JobId=7 JobState=%s Reason=None BatchHost=node1 StdOut=%s\\n' \
  "$(cat "$RJ_TEST_DIR/state")" "$RJ_TEST_DIR/out.log"
"""


class Follow:
    """The follow script running as ``shell -s``, read line by line."""

    def __init__(self, shell: str, directory: Path) -> None:
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        for name, text in (("scontrol", SCONTROL), ("squeue", "#!/bin/sh\necho 7\n")):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RJ_TEST_DIR": str(directory)}
        self.process = subprocess.Popen(
            [shell, "-s", "--", "7", MARK, "2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(whole([FOLLOW_SCRIPT]).encode())
        self.process.stdin.flush()  # and kept open, as the channel's is
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def line(self, timeout: float = 5.0) -> str:
        assert self.process.stdout is not None
        if not self._selector.select(timeout):
            pytest.fail(f"nothing from the follow within {timeout} s")
        return self.process.stdout.readline().decode().rstrip("\n")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("shell", SHELLS)
def test_the_follow_reports_output_and_state_as_they_come(shell: str, tmp_path: Path) -> None:
    (tmp_path / "state").write_text("PENDING")
    follow = Follow(shell, tmp_path)
    try:
        first = follow.line()
        assert first.startswith(MARK)
        assert parse_job("7", first.split(MARK, 1)[1]).position == 1
        (tmp_path / "state").write_text("RUNNING")
        (tmp_path / "out.log").write_text("RJUPYTER-SHELL 12\n")
        seen = {follow.line(), follow.line()}
        assert "RJUPYTER-SHELL 12" in seen, "the output file, as soon as it exists"
        assert any(line.startswith(MARK) and "RUNNING" in line for line in seen)
        began = time.monotonic()
        with (tmp_path / "out.log").open("a") as out:
            out.write("http://127.0.0.1:8888/?token=t\n")
        assert follow.line() == "http://127.0.0.1:8888/?token=t"
        assert time.monotonic() - began < 1.0, "a new line comes without waiting for a look"
        assert follow.process.stdin is not None
        follow.process.stdin.close()  # rjupyter is done: the channel closes
        follow.process.wait(5)
    finally:
        follow.close()
    assert not any(
        "tail" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        and str(tmp_path) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        for pid in os.listdir("/proc")
        if pid.isdigit() and Path(f"/proc/{pid}/cmdline").exists()
    ), "the follower outlived the follow"


@pytest.mark.parametrize("shell", SHELLS)
def test_the_follow_ends_with_the_job(shell: str, tmp_path: Path) -> None:
    (tmp_path / "state").write_text("RUNNING")
    (tmp_path / "out.log").write_text("RJUPYTER-SHELL 12\n")
    follow = Follow(shell, tmp_path)
    try:
        assert {follow.line(), follow.line()} >= {"RJUPYTER-SHELL 12"}
        with (tmp_path / "out.log").open("a") as out:
            out.write("RJUPYTER-EXIT 1\n")
        (tmp_path / "state").write_text("FAILED")
        lines = [follow.line(timeout=10)]
        while not lines[-1].startswith(MARK):
            lines.append(follow.line(timeout=10))
        # The job's last lines come first as a rule (the follow gives its follower 0.3 s); under
        # load they may not, and rjupyter then reads the file's end once more (BatchJob).
        assert parse_job("7", lines[-1].split(MARK, 1)[1]).state == "FAILED"
        assert follow.process.wait(5) == 0
    finally:
        follow.close()
