"""The docs site builds strictly, includes every example from its file, has a reference entry
for every public name, and names every public parameter and CLI flag (no lab)."""

from __future__ import annotations

import html
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from cli_help import COMMANDS, current, generated

import rjupyter
from rjupyter._cli._common import AliasOption, cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)
#: The hand-written pages (reference.md is generated from the docstrings).
GUIDES = [path for path in sorted(DOCS.glob("*.md")) if path.name != "reference.md"]

#: Every public callable whose parameters a reader must find in the guides.
CALLABLES: dict[str, Callable[..., Any]] = {
    "RemoteNotebook": rjupyter.RemoteNotebook.__init__,
    "RemoteNotebook.attach": rjupyter.RemoteNotebook.attach,
    "RemoteNotebook.kernel": rjupyter.RemoteNotebook.kernel,
    "RemoteNotebook.execute": rjupyter.RemoteNotebook.execute,
    "RemoteNotebook.run_notebook": rjupyter.RemoteNotebook.run_notebook,
    "RemoteNotebook.upload": rjupyter.RemoteNotebook.upload,
    "RemoteNotebook.download": rjupyter.RemoteNotebook.download,
    "ServerHandle.attach": rjupyter.ServerHandle.attach,
    "Tunnel": rjupyter.Tunnel.__init__,
    "Tunnel.forward_also": rjupyter.Tunnel.forward_also,
    "list_servers": rjupyter.list_servers,
    "stop_server": rjupyter.stop_server,
    "Kernel.execute": rjupyter.Kernel.execute,
    "Kernel.restart": rjupyter.Kernel.restart,
    "Slurm": rjupyter.Slurm,
    "execute_notebook": rjupyter.execute_notebook,
}


def guides_text() -> str:
    return "\n".join(path.read_text() for path in GUIDES)


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in config, f"{page.name} is missing from the nav"


def test_snippets_are_well_formed_and_exist() -> None:
    for page in DOCS.glob("*.md"):
        text = page.read_text()
        assert "--8 <" not in text, f"{page.name}: a snippet line mangled by a formatter"
        for target in SNIPPET.findall(text):
            assert (ROOT / target.split(":")[0]).is_file(), f"{page.name}: {target}"
    included = {
        target for page in DOCS.glob("*.md") for target in SNIPPET.findall(page.read_text())
    }
    for example in sorted((ROOT / "examples").glob("*.py")):
        if example.name != "lab_demo.py":  # the ./dev demo, described in lab.md
            assert f"examples/{example.name}" in included, f"{example.name} is in no page"


def test_the_reference_documents_every_public_name() -> None:
    text = (DOCS / "reference.md").read_text()
    for name in rjupyter.__all__:
        if name != "__version__":
            assert f"::: rjupyter.{name}\n" in text, name


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_the_guides_name_every_public_parameter(name: str) -> None:
    text = guides_text()
    parameters = set(inspect.signature(CALLABLES[name]).parameters) - {"self", "cls"}
    missing = sorted(p for p in parameters if not re.search(rf"\b{p}\b", text))
    assert missing == [], f"{name}: docs/*.md never mention {missing}"


def visible_flags() -> dict[str, set[str]]:
    flags: dict[str, set[str]] = {}
    for name, command in cli.commands.items():
        flags[name] = {
            opt
            for param in command.params
            if isinstance(param, click.Option) and not isinstance(param, AliasOption)
            for opt in [*param.opts, *param.secondary_opts]
        }
    return flags


def test_cli_md_names_every_flag_and_shows_each_full_help() -> None:
    text = (DOCS / "cli.md").read_text()
    for command, flags in visible_flags().items():
        for flag in flags:
            assert flag in text, f"{command} {flag}"
    assert set(COMMANDS) - {""} == set(cli.commands)
    assert current() == generated(), "run: python tests/cli_help.py --write"


def test_the_readme_lists_the_dependencies() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("paramiko", "sshtunnel", "nbformat", "websocket-client", "click", "rich", "tomli"):
        assert name in readme, name
    assert "jpt" not in (DOCS / "cli.md").read_text()


def page_text(site: Path, page: str) -> str:
    raw = (site / page / "index.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def test_mkdocs_builds_strictly_with_every_example_and_parameter(tmp_path: Path) -> None:
    if (
        importlib.util.find_spec("mkdocs") is None
        or importlib.util.find_spec("mkdocstrings") is None
    ):
        if os.environ.get("CI"):
            pytest.fail("CI must build the docs; ./dev test installs the docs extra")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    for page in DOCS.glob("*.md"):
        name = page.stem if page.stem != "index" else ""
        shown = page_text(site, name)
        assert "--8<--" not in shown, page.name
        for target in SNIPPET.findall(page.read_text()):
            source = (ROOT / target).read_text() if ":" not in target else ""
            last = [line for line in source.splitlines() if line.strip()][-1:] or [""]
            assert last[0].strip().strip("- ").replace("`", "") in shown, f"{page.name}: {target}"
    reference = page_text(site, "reference")
    for parameter in inspect.signature(rjupyter.RemoteNotebook).parameters:
        assert parameter in reference, parameter
