"""The session-wide lab: a real OpenSSH sshd (in its own network namespace as root) with a real
Jupyter for a throwaway user. Built once per test session, torn down by PID at the end."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import require_lab

from rjupyter.testing import Lab, LabHost

#: The fixtures that reach the lab. A test whose fixture closure holds one of them (directly or
#: through a fixture of its module, such as ``nb`` or ``traffic``) is marked ``lab``; a test that
#: builds a lab of its own requests ``lab_required``.
LAB_FIXTURES = frozenset({"lab", "remote", "lab_required", "nb_options"})


def uses_lab(item: pytest.Item) -> bool:
    """True when the test reaches the lab through one of LAB_FIXTURES."""
    return not LAB_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every lab test ``lab``, so that ``-m "not lab"`` is the quick suite of pure tests."""
    for item in items:
        if uses_lab(item):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(autouse=True)
def _no_lab_outside_lab_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test not marked ``lab`` that starts a lab fails at once, instead of slowing the quick
    suite down (or running where no lab can): it should request ``lab_required``."""
    if request.node.get_closest_marker("lab") is not None:
        return

    def refuse(self: Lab) -> Lab:
        pytest.fail(f"{request.node.nodeid} starts a lab: request the lab_required fixture")

    monkeypatch.setattr(Lab, "__enter__", refuse)


@pytest.fixture
def lab_required() -> None:
    require_lab()


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    require_lab()
    # Not under pytest's 0700 tmp root: the lab user must reach its home, and other test
    # sessions on the machine must not change the modes of directories this lab relies on.
    with tempfile.TemporaryDirectory(prefix="rjupyter-lab-") as workdir, Lab(workdir) as built:
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
                try:
                    log = host.sshd_log()
                except OSError:  # the lab is already torn down
                    continue
                tail = "\n".join(log.splitlines()[-40:])
                report.sections.append((f"sshd log of {name}", tail))
