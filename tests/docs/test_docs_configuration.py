"""docs/configuration.md is exactly what tools/gen_config_docs.py produces from the key catalogue (CI checks it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tools import gen_config_docs

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_what_the_generator_produces():
    committed = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert committed == gen_config_docs.render(), (
        "docs/configuration.md is out of date: run .venv/bin/python tools/gen_config_docs.py and commit it")


def test_every_key_of_the_catalogue_has_its_row_in_order():
    rows = [line.split("|")[1].strip() for line in gen_config_docs.render().splitlines() if line.startswith("| `")]
    assert rows == [f"`{name}`" for name in gen_config_docs.catalogue()]


def test_check_mode_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path, capsys):
    target = tmp_path / "configuration.md"
    target.write_text(gen_config_docs.render().replace("| `retain_daily` | integer | 7 |", "| `retain_daily` | integer | 8 |"))
    assert gen_config_docs.main(["--check", "--output", str(target)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert gen_config_docs.main(["--output", str(target)]) == 0
    assert gen_config_docs.main(["--check", "--output", str(target)]) == 0
    assert target.read_text() == gen_config_docs.render()
    assert gen_config_docs.main(["--check", "--output", str(tmp_path / "missing.md")]) == 1


@dataclass
class Spec:
    type_doc: str
    default_doc: str
    meaning: str


def test_a_meaning_naming_an_unknown_section_or_breaking_the_table_is_refused():
    with pytest.raises(ValueError, match="Nowhere"):
        gen_config_docs.render({"k": Spec("string", "none", 'See "Nowhere".')})
    with pytest.raises(ValueError, match="break the table"):
        gen_config_docs.render({"k": Spec("a | b", "none", "x")})
    text = gen_config_docs.render({"k": Spec("string", "none", 'See "Worker images".')})
    assert "| `k` | string | none | See \"Worker images\". |" in text
    assert "(orchestration.md#worker-images)" in text
