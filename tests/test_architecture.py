"""The package's shape, checked from its source (no server, about two seconds): layers import
only downward, nothing imports the CLI, no runtime import cycle, modules of at most 500 lines, no
Slurm code in the facade's module, the public API and the entry point as they were, and a logger
per module named after it.

Imports are read with ``ast``, so every import counts: at module level, inside functions and
under ``if TYPE_CHECKING:``. ``rjupyter/testing`` (the test lab) is outside the layering.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

import rjupyter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rjupyter"


@dataclass(frozen=True)
class Layer:
    """Top-level modules and subpackages of rjupyter (``__init__`` is the package's own module)."""

    name: str
    members: tuple[str, ...]
    #: Members may not import one another (each stands on the layers below on its own).
    independent: bool = False


#: Lowest first. A module may import from its own layer and from the layers below it. To add a
#: module or subpackage, put it in the lowest layer that holds everything it imports. A name
#: may stand here before its module exists (``_types``, ``_options``).
LAYERS = (
    Layer(
        "leaves",
        (
            "_errors",
            "_results",
            "_deadline",
            "_lifecycle",
            "_signals",
            "_exits",
            "_types",
            "_options",
        ),
    ),
    Layer("paramiko internals", ("_paramiko",)),
    Layer("SSH", ("_ssh",)),
    Layer("forwarding", ("_forward",)),
    Layer("remote server", ("_server",)),
    Layer("Jupyter, launchers", ("_jupyter", "_launch"), independent=True),
    Layer("session", ("_session",)),
    Layer("facade", ("_notebook", "_handle", "__init__")),
    Layer("command line", ("_cli", "__main__")),
)
#: Outside the layering: nothing in the library imports it.
OUTSIDE = ("testing",)
LEAVES = LAYERS[0].members
#: The only modules that may import the command line.
CLI_IMPORTERS = ("__main__", "_cli")
MAX_LINES = 500

When = Literal["runtime", "deferred", "typing"]


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # the module it imports (a submodule when ``from package import submodule``)
    line: int
    when: When  # at import time, inside a function, or under TYPE_CHECKING only

    def __str__(self) -> str:
        where = "" if self.when == "runtime" else f" ({self.when})"
        return f"{self.importer}:{self.line} imports {self.target}{where}"


def find_modules(package: Path) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def component(module: str) -> str:
    """The top-level module or subpackage of rjupyter that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportFinder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, When]] = []
        self._when: list[When] = ["runtime"]

    def _inside(self, node: ast.AST, when: When) -> None:
        self._when.append(when if self._when[-1] == "runtime" else self._when[-1])
        self.generic_visit(node)
        self._when.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._inside(node, "deferred")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._inside(node, "deferred")

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self._inside(ast.Module(body=node.body, type_ignores=[]), "typing")
        for statement in node.orelse:
            self.visit(statement)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._when[-1]))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self._when[-1]))


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The imports of rjupyter modules in ``path``, relative ones resolved."""
    finder = _ImportFinder()
    finder.visit(ast.parse(path.read_text(), str(path)))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    root = module.split(".", maxsplit=1)[0]
    result = []
    for node, when in finder.found:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for target in dict.fromkeys(targets):
            if target == root or target.startswith(f"{root}."):
                result.append(Import(module, target, node.lineno, when))
    return result


@functools.cache  # read once for the tests below
def all_imports(package: Path = PACKAGE) -> list[Import]:
    modules = find_modules(package)
    return [found for name, path in modules.items() for found in imports_of(name, path, modules)]


def layer_of(member: str) -> int | None:
    return next((rank for rank, layer in enumerate(LAYERS) if member in layer.members), None)


def layering_violations(package: Path = PACKAGE) -> list[str]:
    """What breaks the layer table: unplaced modules, and imports upward or between siblings."""
    problems = [
        f"{path.relative_to(package.parent)} is in no layer: add {component(name)!r} to LAYERS "
        "in tests/test_architecture.py (the lowest layer that holds everything it imports)"
        for name, path in find_modules(package).items()
        if component(name) not in OUTSIDE and layer_of(component(name)) is None
    ]
    for found in all_imports(package):
        source, target = component(found.importer), component(found.target)
        mine, theirs = layer_of(source), layer_of(target)
        if source in OUTSIDE or mine is None:
            continue
        if theirs is None:
            problems.append(f"{found}, which the library must not import")
        elif theirs > mine:
            problems.append(
                f"{found}: layer {LAYERS[theirs].name!r} is above {LAYERS[mine].name!r}; move "
                "the code down, or have the upper layer pass in what the lower one needs"
            )
        elif theirs == mine and source != target and LAYERS[mine].independent:
            problems.append(f"{found}: {source} and {target} must not import each other")
    return problems


def test_every_module_has_a_layer_and_imports_only_downward() -> None:
    assert layering_violations() == []


def test_nothing_imports_the_cli() -> None:
    assert [
        str(found)
        for found in all_imports()
        if component(found.target) == "_cli" and component(found.importer) not in CLI_IMPORTERS
    ] == []


def test_leaves_import_only_leaves() -> None:
    # _errors among them: no back-edge to a protocol module, not even for type checking.
    assert [
        str(found)
        for found in all_imports()
        if component(found.importer) in LEAVES and component(found.target) not in LEAVES
    ] == []


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("_ssh/_x.py", "from .._forward import _tunnel\n", "above 'SSH'"),
        ("_ssh/_x.py", "def f():\n    import rjupyter._server._remote\n", "(deferred)"),
        ("_errors.py", "if TYPE_CHECKING:\n    from ._jupyter import _m\n", "(typing)"),
        ("_jupyter/_x.py", "from .._launch._slurm import Slurm\n", "must not import each other"),
        ("_ssh/_x.py", "from ..testing import Lab\n", "must not import"),
        ("_newlayer/__init__.py", "", "add '_newlayer' to LAYERS"),
    ],
)
def test_the_layer_check_finds_what_it_guards(
    tmp_path: Path, path: str, source: str, expected: str
) -> None:
    package = tmp_path / "rjupyter"
    for name in ("__init__.py", "_errors.py", "_ssh/__init__.py", "_jupyter/__init__.py", path):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).touch()
    (package / path).write_text(source)
    problems = layering_violations(package)
    assert len(problems) == 1, problems
    assert expected in problems[0]


# -- no runtime import cycle -------------------------------------------------------------------


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts))}


def runtime_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules it makes Python import at import time (the lab included).

    Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` unless that package is already
    being imported (it is an ancestor of the importer); ``from package import name`` needs the
    package's ``__init__`` to have run when ``name`` is not a submodule.
    """
    modules = find_modules(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for found in all_imports(package):
        if found.when != "runtime":
            continue
        packages = _ancestors(found.target) - _ancestors(found.importer)
        for needed in {found.target, *packages}:
            if needed in modules and needed != found.importer:
                graph[found.importer].add(needed)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle (its first module repeated at the end), or [] when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return [*path[path.index(successor) :], successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_runtime_import_cycle() -> None:
    assert find_cycle(runtime_graph()) == []


def test_the_cycle_check_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def _import_alone(statement: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", statement],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_each_way_in_imports_in_a_fresh_interpreter() -> None:
    # Every module import runs rjupyter/__init__.py first, so the ways in are the package, what
    # it does not import (the CLI, the lab), and every module after the package.
    every_module = "; ".join(
        f"import {name}" for name in find_modules(PACKAGE) if not name.endswith("__main__")
    )
    statements = ["import rjupyter", "import rjupyter._cli", "import rjupyter.testing"]
    with ThreadPoolExecutor() as pool:
        results = list(pool.map(_import_alone, [*statements, every_module]))
    failed = {
        statement[:60]: result.stderr[-2000:]
        for statement, result in zip([*statements, every_module], results, strict=True)
        if result.returncode != 0
    }
    assert failed == {}


# -- sizes, the facade, the public surface, loggers --------------------------------------------


def library_modules() -> Iterator[tuple[str, Path]]:
    for name, path in find_modules(PACKAGE).items():
        if component(name) not in OUTSIDE:
            yield name, path


def test_no_module_over_500_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in library_modules()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


#: Slurm in an identifier or a string of the facade's module (docstrings may name it).
SLURM_WORDS = re.compile(r"slurm|sbatch|scancel|squeue|sacct|srun|salloc", re.IGNORECASE)
#: A job in an identifier: job ids, job objects, JobError ...
JOB_WORD = re.compile(r"job", re.IGNORECASE)


def _docstrings(tree: ast.Module) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))]
    return {
        id(node.body[0].value)
        for node in nodes
        if node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }


def _public_job_id(tree: ast.Module) -> set[int]:
    """The public names that carry a job id: the ``attach(..., job_id=)`` parameter and the
    ``ServerHandle.job_id`` field, handed on unchanged as ``job_id=job_id`` or
    ``job_id=self.job_id``. The facade may carry a job id to a launcher, not act on it."""
    allowed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "attach":
            allowed |= {id(arg) for arg in node.args.kwonlyargs if arg.arg == "job_id"}
        if isinstance(node, ast.ClassDef) and node.name == "ServerHandle":
            allowed |= {
                id(field.target)
                for field in node.body
                if isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and field.target.id == "job_id"
            }
        if isinstance(node, ast.keyword) and node.arg == "job_id" and _is_job_id(node.value):
            allowed |= {id(node), id(node.value)}
    return allowed


def _is_job_id(value: ast.expr) -> bool:
    """``job_id`` or ``self.job_id``: the value handed on unchanged."""
    if isinstance(value, ast.Name):
        return value.id == "job_id"
    return (
        isinstance(value, ast.Attribute)
        and value.attr == "job_id"
        and isinstance(value.value, ast.Name)
        and value.value.id == "self"
    )


def slurm_in_facade(path: Path) -> list[str]:
    """Slurm code in a module: imports of a Slurm or job module, identifiers naming Slurm or a
    job, and strings (not docstrings) naming Slurm's commands."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings, allowed = _docstrings(tree), _public_job_id(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute | ast.FunctionDef | ast.ClassDef):
            names = [node.attr if isinstance(node, ast.Attribute) else node.name]
        elif isinstance(node, ast.arg | ast.keyword):
            names = [node.arg or ""]
        elif isinstance(node, ast.alias):
            names = [node.name, node.asname or ""]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and SLURM_WORDS.search(node.value):
                found.append(f"line {node.lineno}: string {node.value!r}")
            continue
        found += [
            f"line {getattr(node, 'lineno', '?')}: {name}"
            for name in names
            if SLURM_WORDS.search(name) or JOB_WORD.search(name)
        ]
    return found


def test_no_slurm_code_in_the_facade_module() -> None:
    # Slurm is one launcher behind the launcher interface (rjupyter/_launch); the facade takes
    # it through the public ``scheduler=`` parameter and never names it.
    assert slurm_in_facade(PACKAGE / "_notebook.py") == []


def test_the_slurm_check_finds_slurm_code(tmp_path: Path) -> None:
    module = tmp_path / "facade.py"
    module.write_text(
        '"""Runs under Slurm too."""\n'
        "from ._launch._slurm import batch_script\n"
        "def attach(host, *, job_id=None, scheduler=None):\n"
        '    """A job_id attaches to a Slurm job."""\n'
        "    launch(host, job_id=job_id, scheduler=scheduler)\n"
        "    if job_id is not None:\n"
        '        run("scancel 1")\n'
        "class ServerHandle:\n"
        "    job_id: str | None = None\n"
        "    def attach(self):\n"
        "        return attach(self.host, job_id=self.job_id, other=self.job_id)\n"
    )
    assert slurm_in_facade(module) == [
        "line 2: _launch._slurm",
        "line 6: job_id",
        "line 7: string 'scancel 1'",
        "line 11: job_id",
    ]


#: rjupyter.__all__ as it stands, copied on purpose: changing it is changing the public API.
PUBLIC_API = (
    "AuthenticationError",
    "CellExecutionError",
    "CellProgress",
    "ExecutionResult",
    "ExecutionTimeout",
    "Forward",
    "HostKeyError",
    "JobError",
    "Kernel",
    "KernelClosedError",
    "KernelError",
    "LaunchError",
    "LaunchTimeout",
    "NotebookClosedError",
    "PathNotFoundError",
    "RJupyterError",
    "RemoteExecutionError",
    "RemoteNotebook",
    "SSHConnectError",
    "ServerHandle",
    "ServerRecord",
    "Slurm",
    "TransferError",
    "Tunnel",
    "TunnelError",
    "__version__",
    "execute_notebook",
    "list_servers",
    "parse_parameter_value",
    "stop_server",
)


def test_public_api_is_unchanged() -> None:
    assert tuple(rjupyter.__all__) == PUBLIC_API


def test_console_entry_point_is_unchanged_and_callable() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"rjupyter": "rjupyter._cli:main"}
    module, _, attribute = scripts["rjupyter"].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def _is_get_logger(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "getLogger")
        or (isinstance(node.func, ast.Name) and node.func.id == "getLogger")
    )


def logger_problems(path: Path, may_name_ours: bool) -> list[str]:
    """A ``logger`` not made by ``logging.getLogger(__name__)``, or a logger of ours named by a
    string (only the CLI, which configures them, may)."""
    problems = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names_logger = any(isinstance(t, ast.Name) and t.id == "logger" for t in targets)
            if names_logger and ast.unparse(node.value) != "logging.getLogger(__name__)":
                problems.append(f"line {node.lineno}: logger = {ast.unparse(node.value)}")
        if _is_get_logger(node) and not may_name_ours:
            assert isinstance(node, ast.Call)
            named = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if any(isinstance(n, str) and n.split(".")[0] == "rjupyter" for n in named):
                problems.append(f"line {node.lineno}: {ast.unparse(node)}")
    return problems


def test_loggers_are_named_after_their_modules() -> None:
    problems = {
        name: found
        for name, path in find_modules(PACKAGE).items()
        if (found := logger_problems(path, may_name_ours=component(name) == "_cli"))
    }
    assert problems == {}


#: RemoteNotebook is the lifecycle facade: its class stays small. Docstrings do not count (the
#: class documents every public parameter, which the API reference is made from).
MAX_FACADE_LINES = 350


def code_lines(node: ast.ClassDef) -> int:
    """The class's lines, less its docstrings and blank lines."""
    lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    for inner in ast.walk(node):
        if isinstance(inner, ast.ClassDef | ast.FunctionDef) and inner.body:
            first = inner.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                lines -= set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    source = (PACKAGE / "_notebook.py").read_text().splitlines()
    return sum(1 for number in lines if source[number - 1].strip())


def test_the_facade_class_is_small() -> None:
    tree = ast.parse((PACKAGE / "_notebook.py").read_text())
    (facade,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RemoteNotebook"]
    assert code_lines(facade) <= MAX_FACADE_LINES


def private_imports(name: str, path: Path) -> list[str]:
    """``from .module import x`` where ``module.__all__`` leaves ``x`` out (a submodule is fine)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = importlib.import_module(".".join([*parts, *filter(None, [node.module])]))
        exported = getattr(source, "__all__", None)
        for alias in node.names:
            submodule = type(getattr(source, alias.name, None)) is type(rjupyter)
            if exported is not None and alias.name not in exported and not submodule:
                found.append(f"{name}:{node.lineno} takes {source.__name__}.{alias.name}")
    return found


def test_imports_take_only_what_a_module_exports() -> None:
    # A module's __all__ says what other modules may use; a name left out of it is private.
    found = [text for name, path in library_modules() for text in private_imports(name, path)]
    assert found == []


def test_the_export_check_finds_a_private_import(tmp_path: Path) -> None:
    module = tmp_path / "user.py"
    module.write_text("from ._ssh._connection import _credentials, SSHConnection\n")
    assert private_imports("rjupyter._user", module) == [
        "rjupyter._user:1 takes rjupyter._ssh._connection._credentials"
    ]
