"""upload/download over the notebook's own SSH connection (SFTP), against the lab. The lab's
remote home is a directory on this machine (only the network is separate), so the tests check
the remote side by reading it directly."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import paramiko
import pytest

from rjupyter import PathNotFoundError, RemoteNotebook, TransferError
from rjupyter._jupyter import _files
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


# -- modes (issue 15, finding 6) ------------------------------------------------------------


def test_an_upload_is_never_readable_under_a_looser_mode(
    nb: RemoteNotebook, lab: Lab, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.key"
    secret.write_bytes(os.urandom(4 * MIB))
    secret.chmod(0o600)
    remote_dir = lab.home / "secrets"
    remote_dir.mkdir(mode=0o755, exist_ok=True)
    shutil.chown(remote_dir, user=lab.user)
    seen: list[str] = []

    def look(done: int, total: int) -> None:
        """Mid-transfer, everything another user could open under the destination is 0600."""
        for path in remote_dir.rglob("*"):
            try:
                mode = stat.S_IMODE(path.lstat().st_mode)
            except FileNotFoundError:
                continue  # renamed into place meanwhile
            if path.is_dir() or path.parent == remote_dir:
                assert mode & 0o077 == 0, f"{path} is {oct(mode)} during the transfer"
            seen.append(path.name)

    nb.upload(secret, "~/secrets/secret.key", progress=look)
    assert seen, "the progress callback looked during the transfer"
    assert stat.S_IMODE((remote_dir / "secret.key").stat().st_mode) == 0o600
    assert [path.name for path in remote_dir.iterdir()] == ["secret.key"], "no staging left"


def test_a_download_never_takes_setuid_sticky_or_world_writable_bits(
    nb: RemoteNotebook, lab: Lab, tmp_path: Path
) -> None:
    remote = lab.home / "modes"
    remote.mkdir(exist_ok=True)
    shutil.chown(remote, user=lab.user)
    for name, mode in {"setuid": 0o4755, "setgid": 0o2755, "open": 0o666, "sticky": 0o1644}.items():
        (remote / name).write_text(name)
        shutil.chown(remote / name, user=lab.user)
        (remote / name).chmod(mode)
    local = nb.download("~/modes", tmp_path / "modes")
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in local.iterdir()}
    assert modes == {"setuid": 0o755, "setgid": 0o755, "open": 0o664, "sticky": 0o644}


class HostileListing:
    """An SFTP server that lists a directory entry named to escape the destination."""

    def __init__(self, name: str) -> None:
        self.name = name

    def stat(self, path: str) -> paramiko.SFTPAttributes:
        attributes = paramiko.SFTPAttributes()
        attributes.st_mode = stat.S_IFDIR | 0o755
        return attributes

    def listdir_attr(self, path: str) -> list[paramiko.SFTPAttributes]:
        entry = paramiko.SFTPAttributes()
        entry.filename, entry.st_mode, entry.st_size = self.name, stat.S_IFREG | 0o644, 1
        return [entry]


@pytest.mark.parametrize("name", ["../../.bashrc", "..", ".", "a/b", "/etc/passwd"])
def test_a_listed_name_that_escapes_the_destination_is_refused(name: str) -> None:
    sftp = cast(paramiko.SFTPClient, HostileListing(name))
    with pytest.raises(PermissionError, match="outside the destination"):
        _files._remote_tree(sftp, "/remote/dir")
