"""Finding 1 of issue 15: ``open_browser()`` never puts the token on a command line.

The browser is a recording script named by ``BROWSER``: what it was started with is what every
local user could read in ``/proc/*/cmdline``. No lab: the notebook runs on a fake session.
"""

from __future__ import annotations

import os
import stat
import sys
import webbrowser
from pathlib import Path

import pytest
from test_lifecycle import calls  # noqa: F401 - the fake-session fixture

from rjupyter import RemoteNotebook
from rjupyter._jupyter._redirect import BrowserRedirect

RECORDER = """#!{python}
import sys
with open({out!r}, "a") as stream:
    stream.write("\\0".join(sys.argv) + "\\n")
"""


@pytest.fixture
def recorded_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A BROWSER that records its argv; webbrowser forgets the browsers it found before."""
    out = tmp_path / "argv"
    browser = tmp_path / "browser"
    browser.write_text(RECORDER.format(python=sys.executable, out=str(out)))
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(browser))
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    return out


@pytest.mark.usefixtures("calls")
def test_the_browser_is_given_a_private_page_not_the_token(recorded_argv: Path) -> None:
    with RemoteNotebook("gpu-box") as nb:
        assert nb.open_browser()
        argv = recorded_argv.read_text().rstrip("\n").split("\0")
        assert nb.token not in "".join(argv), "the token is on the browser's command line"
        assert len(argv) == 2
        assert argv[1].startswith("file://")
        page = Path(argv[1][len("file://") :])
        assert stat.S_IMODE(page.stat().st_mode) == 0o600
        assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700
        assert page.stat().st_uid == os.getuid()
        content = page.read_text()
        assert f'content="0;url={nb.url}"' in content
        assert 'name="referrer" content="no-referrer"' in content
    assert not page.exists(), "closing the notebook removes the page"
    assert not page.parent.exists()


def test_a_page_url_is_escaped_as_html() -> None:
    redirect = BrowserRedirect()
    try:
        page = redirect.write('http://127.0.0.1:1/tree?token=a"><script>x</script>&b=1')
        text = page.read_text()
        assert "<script>x" not in text
        assert "&quot;&gt;&lt;script&gt;" in text
    finally:
        redirect.close()
    assert redirect.path is None
    assert not page.exists()
