"""upload/download over the notebook's own SSH connection (SFTP), against the lab. The lab's
remote home is a directory on this machine (only the network is separate), so the tests check
the remote side by reading it directly."""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rjupyter import PathNotFoundError, RemoteNotebook, TransferError
from rjupyter.testing import Lab, LabHost

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def nb(lab: Lab, remote: LabHost) -> Iterator[RemoteNotebook]:
    options: dict[str, Any] = {"ssh_config": lab.ssh_config, "venv": lab.jupyter_venv}
    with RemoteNotebook(remote.name, timeout=60.0, **options) as notebook:
        yield notebook


def digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(MIB):
            hasher.update(chunk)
    return hasher.hexdigest()


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under root: relative path -> (content digest or "dir", permission bits)."""
    return {
        path.relative_to(root).as_posix(): (
            "dir" if path.is_dir() else digest(path),
            stat.S_IMODE(path.stat().st_mode),
        )
        for path in sorted(root.rglob("*"))
    }


def test_100_mib_round_trip_is_byte_identical(nb: RemoteNotebook, lab: Lab, tmp_path: Path) -> None:
    local = tmp_path / "big.bin"
    with local.open("wb") as stream:
        for _ in range(100):
            stream.write(os.urandom(MIB))
    sent: list[tuple[int, int]] = []
    remote_path = nb.upload(local, "~/transfers/big.bin", progress=lambda *p: sent.append(p))
    assert remote_path == f"{lab.home}/transfers/big.bin"
    assert sent[-1] == (100 * MIB, 100 * MIB)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(sent)), "progress goes up"
    assert digest(lab.home / "transfers" / "big.bin") == digest(local)

    received: list[tuple[int, int]] = []
    back = nb.download(
        "transfers/big.bin", tmp_path / "back" / "big.bin", progress=lambda *p: received.append(p)
    )
    assert back == tmp_path / "back" / "big.bin"
    assert received[-1] == (100 * MIB, 100 * MIB)
    assert digest(back) == digest(local)


def make_tree(root: Path) -> Path:
    (root / "data" / "nested").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "top.txt").write_text("top\n")
    (root / "data" / "values.csv").write_text("a,b\n1,2\n")
    (root / "data" / "nested" / "blob.bin").write_bytes(os.urandom(300_000))
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    return root


def test_directory_round_trip(nb: RemoteNotebook, lab: Lab, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "project")
    sent: list[tuple[int, int]] = []
    nb.upload(source, "~/copies/project", progress=lambda done, total: sent.append((done, total)))
    assert tree(lab.home / "copies" / "project") == tree(source)
    total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert sent[-1] == (total, total)

    nb.upload(source, "~/copies/project")  # again: the same place, not project/project
    assert not (lab.home / "copies" / "project" / "project").exists()

    back = nb.download("~/copies/project", tmp_path / "back")
    assert tree(back) == tree(source)


def test_a_trailing_slash_means_into(nb: RemoteNotebook, lab: Lab, tmp_path: Path) -> None:
    local = tmp_path / "note.txt"
    local.write_text("hello\n")
    assert nb.upload(local, "~/inbox/") == f"{lab.home}/inbox/note.txt"
    assert (lab.home / "inbox" / "note.txt").read_text() == "hello\n"
    assert nb.download("~/inbox/note.txt", f"{tmp_path}/got/") == tmp_path / "got" / "note.txt"
    with pytest.raises(TransferError, match="end the destination with /"):
        nb.upload(local, "~/inbox")  # a directory is there: say what to do


def test_missing_paths_are_clear_errors(nb: RemoteNotebook, tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError, match=r"local path .* does not exist") as local:
        nb.upload(tmp_path / "nothing.txt", "~/x")
    assert isinstance(local.value, FileNotFoundError)
    with pytest.raises(PathNotFoundError, match="does not exist on remote") as remote:
        nb.download("~/no/such/file.txt", tmp_path / "x")
    assert remote.value.path.endswith("/no/such/file.txt")
    assert not (tmp_path / "x").exists()


def test_unwritable_remote_path(nb: RemoteNotebook, tmp_path: Path) -> None:
    local = tmp_path / "a.txt"
    local.write_text("a")
    with pytest.raises(TransferError, match="/proc/nope"):
        nb.upload(local, "/proc/nope/a.txt")


class Stop(Exception):
    pass


def test_a_failing_progress_callback_leaves_the_connection_usable(
    nb: RemoteNotebook, lab: Lab, tmp_path: Path
) -> None:
    local = tmp_path / "mid.bin"
    local.write_bytes(os.urandom(8 * MIB))

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        nb.upload(local, "~/mid.bin", progress=stop)
    with pytest.raises(Stop):
        nb.download("~/mid.bin", tmp_path / "mid.back", progress=stop)
    assert nb.download("~/mid.bin", tmp_path / "again.bin").read_bytes() == local.read_bytes()
