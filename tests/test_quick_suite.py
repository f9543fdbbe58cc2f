"""``pytest -m "not lab"`` is the quick suite: every test that reaches the lab is marked ``lab``
(by tests/conftest.py), so none of them is left in it, and a test that is not marked cannot start
a lab."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rjupyter.testing import Lab

ROOT = Path(__file__).resolve().parent.parent
#: Every way to the lab goes through one of these (``remote``, ``nb_options`` and the modules'
#: own fixtures request ``lab``; a test building its own lab requests ``lab_required``).
LAB_ROOTS = {"lab", "lab_required"}

_COLLECT = """
import json, sys
import pytest

class Report:
    def pytest_collection_finish(self, session):
        used = {item.nodeid: sorted(getattr(item, "fixturenames", ())) for item in session.items}
        print("COLLECTED " + json.dumps(used))

sys.exit(pytest.main(sys.argv[1:], plugins=[Report()]))
"""


def collect(*args: str) -> dict[str, list[str]]:
    """Each test pytest collects with ``args``, and the fixtures it would use."""
    result = subprocess.run(
        [sys.executable, "-c", _COLLECT, "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("COLLECTED "))
    closures: dict[str, list[str]] = json.loads(line.removeprefix("COLLECTED "))
    return closures


def test_the_quick_suite_holds_no_lab_test() -> None:
    quick = collect("-m", "not lab", "tests")
    assert {
        test: LAB_ROOTS & set(used) for test, used in quick.items() if LAB_ROOTS & set(used)
    } == {}
    assert "tests/test_discovery.py::test_masked_token_is_not_taken_for_a_token" in quick
    assert "tests/test_architecture.py::test_no_runtime_import_cycle" in quick
    # A module fixture over the lab, a lab of the test's own, child processes against the lab:
    for lab_test in (
        "tests/test_kernel.py::test_restart_clears_state",
        "tests/test_lab.py::test_close_is_idempotent_and_a_closed_lab_stays_closed",
        "tests/test_sessions.py::test_sigkilled_client_leaves_no_server_behind",
    ):
        assert lab_test not in quick


def test_a_test_not_marked_lab_cannot_start_one(tmp_path: Path) -> None:
    # Checked before trying: if the guard were gone, this would really build a lab.
    assert not Lab.__enter__.__qualname__.startswith("Lab."), "the guard is not in place"
    with pytest.raises(pytest.fail.Exception, match="request the lab_required fixture"):
        Lab(tmp_path / "lab").__enter__()
