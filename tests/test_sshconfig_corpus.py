"""The ssh_config parser against OpenSSH's own resolver (`ssh -G`), field by field.

Each directory under ``data/ssh_config_corpus`` holds a ``config`` (``@DIR@`` stands for the
copied directory, for Include) and a ``hosts`` file: one query per line, ``[user@]host [port]``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rjupyter._ssh._config import FIELDS, ConfigError, parse_config, resolve_config, ssh_g

CORPUS = Path(__file__).parent / "data" / "ssh_config_corpus"
CASES = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())


def queries(case: str) -> list[tuple[str, str | None, int | None]]:
    found = []
    for line in (CORPUS / case / "hosts").read_text().splitlines():
        words = line.split()
        user, _, host = words[0].rpartition("@")
        found.append((host, user or None, int(words[1]) if len(words) > 1 else None))
    return found


def copy_case(case: str, tmp_path: Path) -> Path:
    target = tmp_path / case
    shutil.copytree(CORPUS / case, target)
    for path in target.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace("@DIR@", str(target)))
    return target / "config"


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh as the reference")
@pytest.mark.parametrize("case", CASES)
def test_parser_matches_ssh_g(case: str, tmp_path: Path) -> None:
    config = copy_case(case, tmp_path)
    for host, user, port in queries(case):
        expected = ssh_g(host, config=config, user=user, port=port).values
        got = parse_config(host, config=config, user=user, port=port).values
        for key in FIELDS:
            assert got.get(key) == expected.get(key), f"{case}: {host} {user} {port}: {key}"


def test_corpus_covers_every_field(tmp_path: Path) -> None:
    seen: set[str] = set()
    for case in CASES:
        text = (CORPUS / case / "config").read_text().lower()
        seen |= {key for key in FIELDS if key in text}
    assert seen == set(FIELDS)


def test_resolve_config_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config("x", config=tmp_path / "missing")


def test_unsupported_match_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Match canonicalx foo\n  User x\n")
    with pytest.raises(ConfigError, match="not supported"):
        parse_config("x", config=config)
