"""Uploads and downloads over SFTP, on the notebook's own SSH connection.

SFTP needs no extra login and no server round trip per chunk (paramiko pipelines writes and
prefetches reads), and it reaches the whole remote file system, not only the directory the
notebook serves; the contents API would send base64 JSON through the tunnel instead.

Destination rule: the destination is the path the copy gets (a file becomes that file, a
directory that directory, merged into one that exists); a destination ending in ``/`` means
"into this directory" and gets the source's name appended. Missing parents are created.
A remote ``~`` is the remote home; relative remote paths are relative to it too.

Modes: an upload is written inside a private (0700) staging directory next to its destination,
given its final mode, then renamed into place, so no byte of a 0600 file is ever readable
under a looser mode (nor left so by an interrupted transfer). A download is created 0600 and
given the remote mode without the setuid, setgid, sticky and world-writable bits. A remote
directory listing that names an entry with ``/`` in it, or ``.``/``..``, is refused (the scp
CVE-2019-6111 class: a hostile server writing outside the destination).
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import secrets
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
#: The mode bits a download may take from the remote file: no setuid/setgid/sticky, and not
#: writable by everyone.
_DOWNLOAD_MODE_MASK = 0o775

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
        staging = _Staging(sftp)
        try:
            if source.is_file():
                _put_file(staging, source, target, counter)
            else:
                _put_tree(staging, source, target, counter)
        except OSError as error:
            raise _remote_error(error, getattr(error, "filename", None) or target, host) from error
        finally:
            staging.close()
    logger.debug("uploaded %s to %s:%s (%d bytes)", source, host, target, counter.done)
    return target


class _Staging:
    """Private (0700) directories next to each destination: a file is written there, given its
    final mode, and renamed into place; :meth:`close` removes them (and what an interrupted
    transfer left in them)."""

    def __init__(self, sftp: paramiko.SFTPClient) -> None:
        self.sftp = sftp
        self._directories: dict[str, str] = {}

    def place(self, target: str) -> str:
        """Where to write ``target`` before it gets its name."""
        parent = posixpath.dirname(target) or "/"
        stage = self._directories.get(parent)
        if stage is None:
            stage = posixpath.join(parent, f".rjupyter-upload-{secrets.token_hex(6)}")
            self.sftp.mkdir(stage, mode=0o700)
            self._directories[parent] = stage
        return posixpath.join(stage, posixpath.basename(target))

    def commit(self, staged: str, target: str) -> None:
        """Give ``staged`` the name ``target`` (replacing a file there)."""
        try:
            self.sftp.posix_rename(staged, target)
        except OSError:  # no posix-rename@openssh.com: plain SFTP rename refuses to replace
            if _remote_kind(self.sftp, target) == "file":
                self.sftp.remove(target)
            self.sftp.rename(staged, target)

    def close(self) -> None:
        for stage in self._directories.values():
            try:
                for name in self.sftp.listdir(stage):
                    self.sftp.remove(posixpath.join(stage, name))
                self.sftp.rmdir(stage)
            except OSError as error:
                logger.warning("could not remove the staging directory %s: %s", stage, error)


def _put_file(staging: _Staging, source: Path, target: str, counter: _Counter) -> None:
    sftp = staging.sftp
    if _remote_kind(sftp, target) == "dir":
        raise IsADirectoryError(errno.EISDIR, _INTO_DIRECTORY, target)
    _remote_makedirs(sftp, posixpath.dirname(target))
    size = source.stat().st_size
    staged = staging.place(target)
    with source.open("rb") as stream:
        sftp.putfo(stream, staged, file_size=size, callback=counter.file_callback())
    sftp.chmod(staged, stat.S_IMODE(source.stat().st_mode))
    staging.commit(staged, target)
    counter.add(size)


def _put_tree(staging: _Staging, source: Path, target: str, counter: _Counter) -> None:
    sftp = staging.sftp
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
                _put_file(staging, path, posixpath.join(remote_dir, name), counter)


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
                path = target / relative if relative else target
                _get_file(sftp, remote_file, path, counter)
                path.chmod(stat.S_IMODE(mode) & _DOWNLOAD_MODE_MASK)
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
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    os.fchmod(descriptor, 0o600)  # a file that was there keeps its mode through O_TRUNC
    with os.fdopen(descriptor, "wb") as stream:
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
            if "/" in entry.filename or entry.filename in ("", ".", ".."):
                raise PermissionError(
                    errno.EACCES,
                    f"the server listed an entry named {entry.filename!r}, which would write "
                    "outside the destination; refusing it (is the server compromised?)",
                    posixpath.join(source, relative),
                )
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
