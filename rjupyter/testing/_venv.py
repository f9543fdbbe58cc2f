"""The Jupyter environment the lab's remote user runs: a cached venv with notebook and jupyterlab.

The venv is built with the distro's Python (a Python under /root is unusable by other users) into a
directory with a random suffix and published by atomically replacing a symlink, because a venv
cannot be moved after it is built: its console scripts name their interpreter by absolute path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from ._errors import LabError
from ._procs import file_lock, tail

__all__ = [
    "JUPYTER_REQUIREMENTS",
    "default_cache_dir",
    "ensure_jupyter_venv",
    "require_searchable",
]

logger = logging.getLogger(__name__)

JUPYTER_REQUIREMENTS: tuple[str, ...] = ("notebook>=7,<8", "jupyterlab>=4,<5")
"""What `ensure_jupyter_venv` installs by default."""

_CACHE_ENV = "RJUPYTER_LAB_CACHE"
_DISTRO_PYTHON = "/usr/bin/python3"
_BUILD_TIMEOUT = 900


def default_cache_dir() -> Path:
    """Return where the lab caches its venvs.

    `$RJUPYTER_LAB_CACHE` if set; else `/var/cache/rjupyter-lab` for root (readable by the lab's
    users) and `$XDG_CACHE_HOME/rjupyter-lab` (or `~/.cache/rjupyter-lab`) for anyone else.
    """
    if configured := os.environ.get(_CACHE_ENV):
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/rjupyter-lab")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "rjupyter-lab"


def _default_python() -> str:
    if Path(_DISTRO_PYTHON).exists():
        return _DISTRO_PYTHON
    if os.geteuid() == 0:
        raise LabError(
            f"{_DISTRO_PYTHON} not found: the lab's jupyter venv needs a Python that every user "
            "can run; install python3 and python3-venv or pass python=..."
        )
    return sys.executable


def _venv_name(requirements: tuple[str, ...], python: str) -> str:
    digest = hashlib.sha256("\n".join([python, *requirements]).encode()).hexdigest()
    return f"jupyter-venv-{digest[:12]}"


def _is_usable(venv: Path) -> bool:
    if not (venv / "bin" / "jupyter").exists():
        return False
    check = [str(venv / "bin" / "python"), "-c", "import notebook, jupyterlab"]
    try:
        result = subprocess.run(  # noqa: S603 - an argv list, no shell
            check, capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(0o755)


def _build(target: Path, python: str, requirements: tuple[str, ...]) -> None:
    log_file = target.with_name(target.name + ".log")
    steps = [
        [python, "-m", "venv", str(target)],
        [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            *requirements,
        ],
    ]
    with log_file.open("w") as log:
        for argv in steps:
            logger.debug("running %s", argv)
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            try:
                result = subprocess.run(  # noqa: S603 - an argv list, no shell
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=_BUILD_TIMEOUT,
                    umask=0o022,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise LabError(f"building the jupyter venv failed at {argv}: {exc}") from exc
            if result.returncode != 0:
                raise LabError(
                    f"building the jupyter venv failed: {' '.join(argv)} exited "
                    f"{result.returncode} (full log: {log_file}):\n{tail(log_file.read_text())}"
                )
    log_file.unlink()


def _remove_leftovers(link: Path, keep: Path | None) -> None:
    """Remove what builds killed midway left (`<name>.<random>` dirs and logs); lock held."""
    for leftover in link.parent.glob(f"{link.name}.*"):
        if leftover != keep:
            logger.debug("removing %s, left by an interrupted build", leftover)
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def ensure_jupyter_venv(
    *,
    requirements: tuple[str, ...] = JUPYTER_REQUIREMENTS,
    cache_dir: Path | None = None,
    python: str | None = None,
) -> Path:
    """Return a venv with Jupyter installed, building it on first use (20-60 s).

    The venv lives in the cache directory under a name derived from `python` and `requirements`,
    is world-readable, and is reused while its `bin/jupyter` exists and `import notebook,
    jupyterlab` works. Concurrent callers wait for one another instead of building twice.

    Args:
        requirements: pip requirement specifiers to install.
        cache_dir: Where venvs are kept; `default_cache_dir()` if omitted.
        python: Interpreter the venv is built from; `/usr/bin/python3` if omitted.

    Returns:
        The venv's path (a symlink to the real directory); `<path>/bin/jupyter` is the entry point.

    Raises:
        LabError: No usable Python, or `python -m venv` or `pip install` failed (the message
            carries pip's output tail; a network problem reaching PyPI is the usual cause).
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    interpreter = python if python is not None else _default_python()
    link = cache / _venv_name(requirements, interpreter)
    if _is_usable(link):
        return link
    _make_dir(cache)
    with file_lock(cache / ".lock"):
        if _is_usable(link):  # built by someone else while we waited for the lock
            return link
        old_target = link.resolve() if link.is_symlink() else None
        if link.exists() and not link.is_symlink():
            raise LabError(f"{link} exists and is not a lab venv symlink: remove it and retry")
        _remove_leftovers(link, keep=old_target)
        target = link.with_name(f"{link.name}.{secrets.token_hex(4)}")
        logger.info("building jupyter venv %s (%s); this takes 20-60 s", target, requirements)
        try:
            _build(target, interpreter, requirements)
            if not _is_usable(target):
                raise LabError(f"the venv built at {target} cannot import notebook and jupyterlab")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        temporary_link = link.with_name(f".{link.name}.{secrets.token_hex(4)}")
        temporary_link.symlink_to(target.name)
        temporary_link.replace(link)
        if old_target is not None and old_target != target:
            shutil.rmtree(old_target, ignore_errors=True)
        logger.info("jupyter venv ready at %s", link)
    return link


def require_searchable(venv: Path) -> None:
    """Check that other users can reach `venv` (every directory up to / is searchable).

    Raises:
        LabError: A directory on the way is not searchable by others.
    """
    for directory in [venv, *venv.parents]:
        if not stat.S_IMODE(directory.stat().st_mode) & stat.S_IXOTH:
            raise LabError(
                f"{directory} is not searchable by other users, so the lab user cannot run "
                f"{venv}: point RJUPYTER_LAB_CACHE at a directory such as /var/cache/rjupyter-lab"
            )
