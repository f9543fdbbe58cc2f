"""The connection options come from one source: every public connecting callable spells them the
same way (names, order, types, defaults) and documents them with the same words (no lab)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from rjupyter import RemoteNotebook, Tunnel, list_servers, stop_server
from rjupyter._ssh._options import (
    CONNECT_TIMEOUT,
    CONNECTION_OPTION_DOCS,
    CONNECTION_OPTIONS,
    START_TIMEOUT,
    connect_options,
)

#: Each public callable that connects, with the docstring that documents its arguments.
PUBLIC: dict[str, tuple[Callable[..., Any], str | None]] = {
    "RemoteNotebook": (RemoteNotebook.__init__, RemoteNotebook.__doc__),
    "RemoteNotebook.attach": (RemoteNotebook.attach, RemoteNotebook.attach.__doc__),
    "Tunnel": (Tunnel.__init__, Tunnel.__doc__),
    "list_servers": (list_servers, list_servers.__doc__),
    "stop_server": (stop_server, stop_server.__doc__),
}


def documented_args(docstring: str) -> dict[str, str]:
    """The ``Args:`` entries of a Google-style docstring, each folded to one line."""
    lines = inspect.cleandoc(docstring).splitlines()
    start = lines.index("Args:") + 1
    entries: dict[str, str] = {}
    name = ""
    for line in lines[start:]:
        if not line.strip() or not line.startswith(" "):
            break
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            name = match.group(1)
            entries[name] = match.group(2)
        else:
            entries[name] += " " + line.strip()
    return entries


def canonical() -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(connect_options, eval_str=True).parameters
    return {name: parameters[name] for name in CONNECTION_OPTIONS}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_the_signature_spells_the_options_as_the_builder_does(name: str) -> None:
    function, _ = PUBLIC[name]
    parameters = inspect.signature(function, eval_str=True).parameters
    ours = [option for option in parameters if option in CONNECTION_OPTIONS]
    assert ours == list(CONNECTION_OPTIONS), "all seven, in the same order"
    for option, expected in canonical().items():
        parameter = parameters[option]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, option
        assert parameter.default is None, option
        assert parameter.annotation == expected.annotation, option
    assert parameters["timeout"].default in (CONNECT_TIMEOUT, START_TIMEOUT)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_the_docstring_documents_the_options_in_the_same_words(name: str) -> None:
    function, docstring = PUBLIC[name]
    assert docstring is not None
    documented = documented_args(docstring)
    for option, text in CONNECTION_OPTION_DOCS.items():
        assert documented.get(option) == text, f"{name}: {option}"
    parameters = set(inspect.signature(function).parameters) - {"self", "cls"}
    assert parameters <= set(documented), (
        f"{name} leaves undocumented: {parameters - set(documented)}"
    )


def test_the_builder_validates() -> None:
    assert connect_options(host_key_policy="accept-new").host_key_policy == "accept-new"
    with pytest.raises(ValueError, match="host_key_policy must be"):
        connect_options(host_key_policy="yes")
    with pytest.raises(TypeError, match="auth_handler must be callable"):
        connect_options(auth_handler="answer")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ssh_config must be a path"):
        connect_options(ssh_config=22)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="passphrase must be"):
        connect_options(passphrase=b"bytes")  # type: ignore[arg-type]
    options = connect_options(password="hunter2", passphrase="pw")
    assert "hunter2" not in repr(options)
    assert "'pw'" not in repr(options)


#: Each public callable, called with a malformed host-key policy (it must fail before connecting).
BAD_POLICY: dict[str, Callable[[], object]] = {
    "RemoteNotebook": lambda: RemoteNotebook("h", host_key_policy="bogus"),
    "RemoteNotebook.attach": lambda: RemoteNotebook.attach("h", pid=1, host_key_policy="bogus"),
    "Tunnel": lambda: Tunnel("h", 8888, host_key_policy="bogus"),
    "list_servers": lambda: list_servers("h", host_key_policy="bogus", timeout=1),
    "stop_server": lambda: stop_server("h", pid=1, host_key_policy="bogus", timeout=1),
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_callable_validates_through_the_builder(name: str) -> None:
    with pytest.raises(ValueError, match="host_key_policy must be"):
        BAD_POLICY[name]()
