"""The public surface: what `import rjupyter` offers, and the shape of the error tree."""

from __future__ import annotations

import logging
import types

import pytest

import rjupyter


def test_all_is_sorted_and_complete() -> None:
    assert rjupyter.__all__ == sorted(rjupyter.__all__)
    public = {
        name
        for name, value in vars(rjupyter).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(rjupyter.__all__)
    for name in rjupyter.__all__:
        assert hasattr(rjupyter, name), name


@pytest.mark.parametrize(
    ("error", "parents"),
    [
        (rjupyter.SSHConnectError, (rjupyter.RJupyterError, ConnectionError)),
        (rjupyter.AuthenticationError, (rjupyter.SSHConnectError,)),
        (rjupyter.HostKeyError, (rjupyter.SSHConnectError,)),
        (rjupyter.LaunchError, (rjupyter.RJupyterError,)),
        (rjupyter.LaunchTimeout, (rjupyter.LaunchError, TimeoutError)),
        (rjupyter.TunnelError, (rjupyter.RJupyterError,)),
        (rjupyter.NotebookClosedError, (rjupyter.RJupyterError,)),
    ],
)
def test_error_tree(error: type[Exception], parents: tuple[type[Exception], ...]) -> None:
    for parent in parents:
        assert issubclass(error, parent)


def test_errors_keep_their_fields_and_message() -> None:
    error = rjupyter.LaunchTimeout("not ready", host="h", exit_status=None, output_tail="a\nb")
    assert error.host == "h"
    assert error.output_tail == "a\nb"
    assert str(error).startswith("not ready")
    assert "a\nb" in str(error)


def test_only_a_null_handler_on_the_package_logger() -> None:
    handlers = logging.getLogger("rjupyter").handlers
    assert all(isinstance(handler, logging.NullHandler) for handler in handlers)


def test_bad_arguments_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="app must be one of"):
        rjupyter.RemoteNotebook("h", app="voila")
    with pytest.raises(ValueError, match="local_port"):
        rjupyter.RemoteNotebook("h", local_port=70000)
    with pytest.raises(TypeError, match="sequence of shell lines"):
        rjupyter.RemoteNotebook("h", setup="module load x")


def test_unstarted_notebook_says_so_and_close_is_idempotent() -> None:
    nb = rjupyter.RemoteNotebook("user@example:2222")
    assert "token" not in repr(nb)
    with pytest.raises(RuntimeError, match="not started"):
        _ = nb.url
    nb.close()
    nb.close()
    with pytest.raises(rjupyter.NotebookClosedError):
        nb.start()
    with pytest.raises(rjupyter.NotebookClosedError):
        _ = nb.url
