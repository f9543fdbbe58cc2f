"""What a release needs: LICENSE, CHANGELOG, project URLs and classifiers, and a wheel and an
sdist that build and pass ``twine check --strict`` (no lab; about ten seconds)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import rjupyter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_changelog_urls_and_classifiers() -> None:
    assert PROJECT["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert PROJECT["license-files"] == ["LICENSE"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {PROJECT['version']}" in changelog
    assert PROJECT["version"] == rjupyter.__version__
    assert set(PROJECT["urls"]) >= {"Homepage", "Documentation", "Source", "Changelog"}
    classifiers = PROJECT["classifiers"]
    assert any(c.startswith("Operating System :: Microsoft :: Windows") for c in classifiers)
    assert any(c.startswith("Operating System :: MacOS") for c in classifiers)
    low = PROJECT["requires-python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {low}" in classifiers


def tracked_copy(destination: Path) -> Path:
    """The files git tracks (plus uncommitted edits to them), as a clean tree to build from."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def test_wheel_and_sdist_build_and_pass_twine_check(tmp_path: Path) -> None:
    if importlib.util.find_spec("build") is None or importlib.util.find_spec("twine") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must check the release files; ./dev test installs build and twine")
        pytest.skip("build/twine are not installed (pip install -e '.[test]')")
    source = tracked_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1
    assert len(sdists) == 1
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, [*wheels, *sdists])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "rjupyter/py.typed" in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert not any(name.startswith("tests/") for name in names)
    with tarfile.open(sdists[0]) as archive:
        members = {Path(m.name).name for m in archive.getmembers()}
    assert {"LICENSE", "README.md", "pyproject.toml"} <= members
