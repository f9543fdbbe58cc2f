"""The session-wide lab: a real OpenSSH sshd (in its own network namespace as root) with a real
Jupyter for a throwaway user. Built once per test session, torn down by PID at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import require_lab

from rjupyter.testing import Lab, LabHost


@pytest.fixture
def lab_required() -> None:
    require_lab()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_lab()
    workdir = tmp_path_factory.mktemp("lab")
    with Lab(workdir) as built:
        built.add_host("remote")
        yield built


@pytest.fixture(scope="session")
def remote(lab: Lab) -> LabHost:
    return lab.hosts["remote"]


@pytest.fixture
def nb_options(lab: Lab) -> dict[str, Any]:
    """What every RemoteNotebook in the tests needs to reach the lab."""
    return {"ssh_config": lab.ssh_config, "venv": lab.jupyter_venv, "timeout": 60.0}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failing lab test, attach the tail of each sshd log to the report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and isinstance(item, pytest.Function) and "lab" in item.fixturenames:
        built = item.funcargs.get("lab")
        if isinstance(built, Lab):
            for name, host in built.hosts.items():
                tail = "\n".join(host.sshd_log().splitlines()[-40:])
                report.sections.append((f"sshd log of {name}", tail))
