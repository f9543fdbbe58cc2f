"""Uploads and downloads over SFTP, on the notebook's own SSH connection.

SFTP needs no extra login and no server round trip per chunk (paramiko pipelines writes and
prefetches reads), and it reaches the whole remote file system, not only the directory the
notebook serves; the contents API would send base64 JSON through the tunnel instead.

Destination rule: the destination is the path the copy gets (a file becomes that file, a
directory that directory, merged into one that exists); a destination ending in ``/`` means
"into this directory" and gets the source's name appended. Missing parents are created.
A remote ``~`` is the remote home; relative remote paths are relative to it too.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko

from .._errors import PathNotFoundError, SSHConnectError, TransferError
from .._ssh._connection import SSHConnection

__all__ = ["Progress", "download", "upload"]

logger = logging.getLogger(__name__)

_INTO_DIRECTORY = "is a directory; end the destination with / to copy into it"

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)`` over a whole transfer (all files of a directory)."""


class _Counter:
    """Adds up paramiko's per-file callbacks into one progress over the whole transfer.

    An exception from the caller's ``progress`` is held until the current file is done, then
    raised: raising inside paramiko's transfer would leave its prefetch thread writing to a
    closed channel.
    """

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress
        self._error: Exception | None = None

    def file_callback(self) -> Callable[[int, int], None] | None:
        if self._progress is None:
            return None
        start, progress = self.done, self._progress

        def report(transferred: int, _size: int) -> None:
            if self._error is None:
                try:
                    progress(start + transferred, self.total)
                except Exception as error:  # raised by add(), once the file is complete
                    self._error = error

        return report

    def add(self, size: int) -> None:
        """Count a finished file; raise what ``progress`` raised meanwhile."""
        self.done += size
        if self._error is not None:
            raise self._error


@contextmanager
def _sftp(connection: SSHConnection, host: str) -> Iterator[paramiko.SFTPClient]:
    try:
        client = connection.open_sftp()
    except SSHConnectError as error:
        raise TransferError(
            f"could not open an SFTP session on {host} ({error}); is the SFTP subsystem enabled "
            "in the remote sshd_config?",
            path="",
        ) from error
    try:
        yield client
    finally:
        client.close()


def _remote_path(path: str, home: str) -> str:
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    elif path.startswith("~"):
        raise ValueError(f"only ~ (your own remote home) is supported, not {path!r}")
    return posixpath.normpath(posixpath.join(home, path)) + ("/" if path.endswith("/") else "")


def _remote_error(error: OSError, path: str, host: str) -> TransferError:
    if error.errno == errno.ENOENT or isinstance(error, FileNotFoundError):
        return PathNotFoundError(f"{path} does not exist on {host}", path=path)
    reason = error.strerror or str(error) or type(error).__name__
    return TransferError(f"{path} on {host}: {reason}", path=path)


def upload(
    connection: SSHConnection,
    local: str | os.PathLike[str],
    remote: str,
    *,
    host: str,
    progress: Progress | None = None,
) -> str:
    """Copy a local file or directory (recursively) to the remote host.

    Returns:
        The absolute remote path written.

    Raises:
        PathNotFoundError: ``local`` does not exist.
        TransferError: A remote path could not be written (message says which and why).
    """
    source = Path(local).expanduser()
    if not source.exists():
        raise PathNotFoundError(f"local path {source} does not exist", path=str(source))
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    counter = _Counter(sum(p.stat().st_size for p in files), progress)
    with _sftp(connection, host) as sftp:
        home = sftp.normalize(".")
        target = _remote_path(remote, home)
        if target.endswith("/"):
            target += source.name
        target = target.rstrip("/") or "/"
        try:
            if source.is_file():
                _put_file(sftp, source, target, counter)
            else:
                _put_tree(sftp, source, target, counter)
        except OSError as error:
            raise _remote_error(error, getattr(error, "filename", None) or target, host) from error
    logger.debug("uploaded %s to %s:%s (%d bytes)", source, host, target, counter.done)
    return target


def _put_file(sftp: paramiko.SFTPClient, source: Path, target: str, counter: _Counter) -> None:
    if _remote_kind(sftp, target) == "dir":
        raise IsADirectoryError(errno.EISDIR, _INTO_DIRECTORY, target)
    _remote_makedirs(sftp, posixpath.dirname(target))
    size = source.stat().st_size
    with source.open("rb") as stream:
        sftp.putfo(stream, target, file_size=size, callback=counter.file_callback())
    sftp.chmod(target, stat.S_IMODE(source.stat().st_mode))
    counter.add(size)


def _put_tree(sftp: paramiko.SFTPClient, source: Path, target: str, counter: _Counter) -> None:
    if _remote_kind(sftp, target) == "file":
        raise NotADirectoryError(errno.ENOTDIR, "is a file, the source a directory", target)
    _remote_makedirs(sftp, target)
    for directory, subdirs, names in os.walk(source):
        relative = Path(directory).relative_to(source).as_posix()
        remote_dir = posixpath.normpath(posixpath.join(target, relative))
        for name in sorted(subdirs):
            _remote_makedirs(sftp, posixpath.join(remote_dir, name))
        for name in sorted(names):
            path = Path(directory, name)
            if path.is_file():
                _put_file(sftp, path, posixpath.join(remote_dir, name), counter)


def _remote_kind(sftp: paramiko.SFTPClient, path: str) -> str | None:
    try:
        mode = sftp.stat(path).st_mode or 0
    except FileNotFoundError:
        return None
    return "dir" if stat.S_ISDIR(mode) else "file"


def _remote_makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    kind = _remote_kind(sftp, path)
    if kind == "dir":
        return
    if kind == "file":
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a directory", path)
    _remote_makedirs(sftp, posixpath.dirname(path))
    sftp.mkdir(path)


def download(
    connection: SSHConnection,
    remote: str,
    local: str | os.PathLike[str],
    *,
    host: str,
    progress: Progress | None = None,
) -> Path:
    """Copy a remote file or directory (recursively) to the local machine.

    Returns:
        The local path written.

    Raises:
        PathNotFoundError: ``remote`` does not exist on the host.
        TransferError: A path could not be read or written (message says which and why).
    """
    with _sftp(connection, host) as sftp:
        source = _remote_path(remote, sftp.normalize(".")).rstrip("/") or "/"
        try:
            files, directories = _remote_tree(sftp, source)
        except OSError as error:
            raise _remote_error(error, source, host) from error
        target = Path(local).expanduser()
        if str(local).endswith(("/", os.sep)):
            target = target / posixpath.basename(source)
        counter = _Counter(sum(size for _, size, _ in files), progress)
        try:
            for relative in directories:
                (target / relative).mkdir(parents=True, exist_ok=True)
            for relative, size, mode in files:
                remote_file = posixpath.join(source, relative) if relative else source
                _get_file(sftp, remote_file, target / relative if relative else target, counter)
                (target / relative if relative else target).chmod(stat.S_IMODE(mode))
                counter.add(size)
        except FileNotFoundError as error:  # vanished while we copied
            raise _remote_error(error, source, host) from error
        except OSError as error:
            raise TransferError(f"cannot write {target}: {error}", path=str(target)) from error
    logger.debug("downloaded %s:%s to %s (%d bytes)", host, source, target, counter.done)
    return target


def _get_file(sftp: paramiko.SFTPClient, remote_file: str, path: Path, counter: _Counter) -> None:
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, _INTO_DIRECTORY, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        sftp.getfo(remote_file, stream, callback=counter.file_callback())


def _remote_tree(
    sftp: paramiko.SFTPClient, source: str
) -> tuple[list[tuple[str, int, int]], list[str]]:
    """Files under ``source`` as ``(relative path, size, mode)`` ("" when it is a file itself),
    and its directories (relative, "" for itself). Links to files are followed, not to
    directories (no loops)."""
    attributes = sftp.stat(source)
    if not stat.S_ISDIR(attributes.st_mode or 0):
        return [("", attributes.st_size or 0, attributes.st_mode or 0o644)], []
    files: list[tuple[str, int, int]] = []
    directories = [""]
    pending = [""]
    while pending:
        relative = pending.pop()
        for entry in sftp.listdir_attr(posixpath.join(source, relative)):
            path = posixpath.join(relative, entry.filename)
            if stat.S_ISLNK(entry.st_mode or 0):
                entry = sftp.stat(posixpath.join(source, path))  # noqa: PLW2901
                if stat.S_ISDIR(entry.st_mode or 0):
                    continue
            mode = entry.st_mode or 0
            if stat.S_ISDIR(mode):
                pending.append(path)
                directories.append(path)
            elif stat.S_ISREG(mode):
                files.append((path, entry.st_size or 0, mode))
    return sorted(files), sorted(directories)
