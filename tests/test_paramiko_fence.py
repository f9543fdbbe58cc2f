"""paramiko's and sshtunnel's private internals are used in one fenced place: rjupyter/_paramiko.

Every module of rjupyter outside ``_paramiko`` (and outside ``testing``, the lab's own tools) is
read as a syntax tree. An attribute access ``x._name`` (or ``getattr``/``setattr``/``hasattr``/
``delattr`` with a literal ``"_name"``) fails the test when

- ``_name`` is name-mangled (``_Packetizer__iv_in``): always someone else's class-private state;
- ``x`` is a paramiko or sshtunnel module, or something reached from one
  (``sshtunnel._ForwardHandler``, ``paramiko.Transport._key_info``);
- ``x`` is ``self``/``cls`` in a class that derives from a paramiko or sshtunnel class (also
  through a class of our own) and ``_name`` is a private name of paramiko or sshtunnel: their
  private state (such a class defining a method or class attribute of such a name, an override
  of a private hook, fails too);
- ``x`` is anything else (a transport, a channel, a forwarder...) and ``_name`` is a private name
  of paramiko or sshtunnel, unless ``x`` is clearly ours: ``self``/``cls`` of our own classes,
  or a name bound to one of our modules or classes.

The private names of paramiko and sshtunnel are read from their installed sources (every
``_name`` defined or used there). Our own classes' private attributes are fine everywhere else;
the few that share a name with one of theirs are listed in :data:`ALLOWED` with a reason.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
import sshtunnel

import rjupyter

PACKAGE = Path(rjupyter.__file__).parent
FENCED = ("_paramiko", "testing")
FOREIGN = ("paramiko", "sshtunnel")
_MANGLED = re.compile(r"^_[A-Za-z0-9]\w*__\w+$")
_ATTRIBUTE_FUNCTIONS = ("getattr", "setattr", "hasattr", "delattr")

#: ``(module path relative to rjupyter/, base expression or class, attribute)``: uses of our own
#: private attributes whose names paramiko or sshtunnel happen to use too, with why each is ours.
ALLOWED: dict[tuple[str, str, str], str] = {}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _foreign_private_names() -> frozenset[str]:
    """Every private name defined or used in paramiko's and sshtunnel's sources (mangled
    names both as written and as mangled)."""
    names: set[str] = set()
    files = [Path(sshtunnel.__file__), *Path(paramiko.__file__).parent.rglob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for inner in ast.walk(node):
                    name = getattr(inner, "attr", None) or getattr(inner, "name", None)
                    if isinstance(name, str) and name.startswith("__") and not name.endswith("__"):
                        names.add(f"_{node.name.lstrip('_')}{name}")
            for name in _names_in(node):
                if _is_private(name):
                    names.add(name)
    return frozenset(names)


def _names_in(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    elif isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.arg):
        yield node.arg


FOREIGN_PRIVATE = _foreign_private_names()


def _modules() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] not in FENCED
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _derives_from_foreign(cls: type) -> bool:
    return any(base.__module__.split(".")[0] in FOREIGN for base in inspect.getmro(cls)[1:])


class _Bindings:
    """What the module-level names of one module are: foreign, ours, or unknown."""

    def __init__(self, tree: ast.Module, module: object | None) -> None:
        self.module = module
        self.foreign: set[str] = set()
        self.ours: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    self._bind(bound, alias.name)
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(node)
                for alias in node.names:
                    self._bind(alias.asname or alias.name, source)
                    if _imports_foreign_class(source, alias.name):
                        self.foreign.add(alias.asname or alias.name)
        for node in tree.body:  # our classes; those deriving from theirs are not "clearly ours"
            if isinstance(node, ast.ClassDef):
                foreign = self.is_foreign_class(node, [])
                (self.foreign if foreign else self.ours).add(node.name)

    def _absolute(self, node: ast.ImportFrom) -> str:
        """The module an import takes from (``rjupyter`` for a relative one that cannot be
        resolved without the module)."""
        if not node.level:
            return node.module or ""
        package = getattr(self.module, "__package__", None)
        if not package:
            return "rjupyter"
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1])
        return f"{base}.{node.module}" if node.module else base

    def _bind(self, name: str, source: str) -> None:
        root = source.split(".", maxsplit=1)[0]
        if root in FOREIGN:
            self.foreign.add(name)
        elif root == "rjupyter":
            self.ours.add(name)

    def is_foreign_class(self, node: ast.ClassDef, enclosing: list[ast.ClassDef]) -> bool:
        """Whether the class derives from paramiko or sshtunnel (by the class object when it is
        reachable from the module, else by the names of its bases)."""
        holder: object = self.module
        for outer in [*enclosing, node]:
            holder = getattr(holder, outer.name, None)
        if isinstance(holder, type) and holder.__module__ == getattr(self.module, "__name__", ""):
            return _derives_from_foreign(holder)
        return any(_root(base) in self.foreign for base in node.bases)


def _imports_foreign_class(source: str, name: str) -> bool:
    """Whether ``from source import name`` gives a class of ours that derives from paramiko or
    sshtunnel (such as the fence's own): not "clearly ours" outside the fence."""
    if not source.startswith("rjupyter."):
        return False
    try:
        value = getattr(importlib.import_module(source), name, None)
    except ImportError:
        return False
    return isinstance(value, type) and _derives_from_foreign(value)


def _root(node: ast.expr) -> str | None:
    """The name an expression like ``a.b.c`` or ``a.b()`` starts from."""
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _accesses(node: ast.AST) -> Iterator[tuple[ast.expr, str, int]]:
    """``(base, attribute, line)`` of each private attribute access under ``node``."""
    if isinstance(node, ast.Attribute) and _is_private(node.attr):
        yield node.value, node.attr, node.lineno
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _ATTRIBUTE_FUNCTIONS
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
        and _is_private(node.args[1].value)
    ):
        yield node.args[0], node.args[1].value, node.lineno


def _violations(path: Path) -> Iterator[str]:
    name = _module_name(path)
    # (a __main__ module runs when imported: judged by the names of its classes' bases)
    module = None if name.endswith("__main__") else importlib.import_module(name)
    relative = path.relative_to(PACKAGE).as_posix()
    yield from _violations_in(path.read_text(encoding="utf-8"), relative, module)


def _violations_in(source: str, relative: str, module: object | None) -> Iterator[str]:
    """The forbidden accesses in ``source`` (``module``: the imported module, whose classes
    tell which derive from paramiko or sshtunnel; None to judge by the names of bases)."""
    tree = ast.parse(source)
    bindings = _Bindings(tree, module)

    def visit(node: ast.AST, classes: list[ast.ClassDef], foreign_class: bool) -> Iterator[str]:
        for base, name, line in _accesses(node):
            reason = _why_forbidden(base, name, bindings, foreign_class)
            key = (relative, ast.unparse(base), name)
            if reason is not None and key not in ALLOWED:
                yield f"{relative}:{line}: {ast.unparse(base)}.{name}: {reason}"
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                inner = bindings.is_foreign_class(child, classes)
                if inner:
                    yield from _overrides(child, relative)
                yield from visit(child, [*classes, child], inner)
            else:
                yield from visit(child, classes, foreign_class)

    yield from visit(tree, [], False)


def _overrides(node: ast.ClassDef, relative: str) -> Iterator[str]:
    """Methods and class attributes of a class deriving from paramiko or sshtunnel that
    override one of their private names (a private hook)."""
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = [item.name]
        elif isinstance(item, (ast.Assign, ast.AnnAssign)):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
        else:
            continue
        for name in names:
            if name in FOREIGN_PRIVATE and (relative, node.name, name) not in ALLOWED:
                yield f"{relative}:{item.lineno}: {node.name}.{name}: overrides a private hook"


def _why_forbidden(
    base: ast.expr, name: str, bindings: _Bindings, foreign_class: bool
) -> str | None:
    root = _root(base)
    if _MANGLED.match(name):
        return "name-mangled private state of another class"
    if root in bindings.foreign:
        return "a private name of a paramiko/sshtunnel module or class"
    if isinstance(base, ast.Name) and base.id in ("self", "cls"):
        if foreign_class and name in FOREIGN_PRIVATE:
            return "a private name of the paramiko/sshtunnel class this one derives from"
        return None
    if isinstance(base, ast.Name) and base.id in bindings.ours:
        return None  # one of our modules or classes
    if name in FOREIGN_PRIVATE:
        return "a private name of paramiko/sshtunnel, on an object not clearly ours"
    return None


def test_no_private_paramiko_or_sshtunnel_names_outside_the_fence() -> None:
    found = [violation for path in _modules() for violation in _violations(path)]
    assert not found, "use rjupyter/_paramiko for these:\n" + "\n".join(found)


def test_the_allow_list_has_no_stale_entries() -> None:
    for relative, _, _ in ALLOWED:
        assert (PACKAGE / relative).is_file(), relative


_SAMPLES = {
    "module attribute": "import sshtunnel\nclass S(sshtunnel._ThreadingForwardServer): pass\n",
    "getattr on a class": (
        "import paramiko\nkeys = set(getattr(paramiko.Transport, '_key_info', {}))\n"
    ),
    "mangled name": "def f(transport):\n    return transport.packetizer._Packetizer__iv_in\n",
    "internal on an object": "def f(transport):\n    return transport._channels\n",
    "a fence class's inherited internals": (
        "from rjupyter._paramiko._channel import SplicedChannel\n"
        "window = SplicedChannel._set_window\n"
    ),
    "state of a subclass": (
        "import sshtunnel\n"
        "class F(sshtunnel.SSHTunnelForwarder):\n"
        "    def connect(self):\n"
        "        self._transport = None\n"
    ),
    "hook of a subclass": (
        "import sshtunnel\n"
        "class F(sshtunnel.SSHTunnelForwarder):\n"
        "    def _connect_to_gateway(self):\n"
        "        pass\n"
    ),
}


@pytest.mark.parametrize("source", list(_SAMPLES.values()), ids=list(_SAMPLES))
def test_each_kind_of_old_use_is_caught(source: str) -> None:
    assert list(_violations_in(source, "_sample.py", None))


def test_our_own_private_state_is_fine() -> None:
    source = (
        "import threading\n"
        "from rjupyter._forward import _pump\n"
        "class Mine:\n"
        "    def __init__(self):\n"
        "        self._lock = threading.Lock()\n"
        "        self._transport = None\n"
        "    def copy(self, other: 'Mine'):\n"
        "        return _pump._PAUSE, Mine._lock\n"
    )
    assert list(_violations_in(source, "_sample.py", None)) == []
