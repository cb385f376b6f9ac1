"""The synthetic sample generator: deterministic, schema-conformant, committed."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mangetamain import data, sample


def test_generate_is_deterministic() -> None:
    first, second = sample.generate(), sample.generate()
    for name in data.EXPECTED_SCHEMAS:
        assert first[name].equals(second[name])
    other = sample.generate(seed=sample.DEFAULT_SEED + 1)
    assert not other["interactions"].equals(first["interactions"])


def test_generate_matches_schema_and_sizes() -> None:
    tables = sample.generate()
    for name, table in tables.items():
        assert table.schema == data.EXPECTED_SCHEMAS[name]
        assert data.validate_table(name, table).equals(table)
    assert tables["recipes"].num_rows == sample.DEFAULT_N_RECIPES
    assert tables["interactions"].num_rows == sample.DEFAULT_N_INTERACTIONS
    ratings = set(tables["interactions"]["rating"].to_pylist())
    assert ratings == {0, 1, 2, 3, 4, 5}
    recipe_ids = set(tables["recipes"]["id"].to_pylist())
    assert set(tables["interactions"]["recipe_id"].to_pylist()) <= recipe_ids


def test_interactions_after_submission() -> None:
    tables = sample.generate(n_recipes=50, n_interactions=300, n_users=20)
    submitted = dict(
        zip(
            tables["recipes"]["id"].to_pylist(),
            tables["recipes"]["submitted"].to_pylist(),
            strict=True,
        )
    )
    inter = tables["interactions"].to_pylist()
    assert all(row["date"] >= submitted[row["recipe_id"]] for row in inter)


def test_main_writes_identical_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sample.main(["--out", str(tmp_path / "a")]) == 0
    assert sample.main(["--out", str(tmp_path / "b")]) == 0
    assert "wrote" in capsys.readouterr().out
    for fname in data.EXPECTED_FILES.values():
        a, b = tmp_path / "a" / fname, tmp_path / "b" / fname
        assert a.read_bytes() == b.read_bytes()


def test_committed_sample_is_current_and_small() -> None:
    fresh = sample.generate()
    total = 0
    for name, fname in data.EXPECTED_FILES.items():
        path = data.SAMPLE_DIR / fname
        total += path.stat().st_size
        assert pq.read_table(path).equals(fresh[name])
    assert total < 300_000
    readme = (data.SAMPLE_DIR / "README.md").read_text()
    assert "SYNTHETIC" in readme


def test_module_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "cli"
    monkeypatch.setattr(sys, "argv", ["mangetamain.sample", "--out", str(out)])
    monkeypatch.delitem(sys.modules, "mangetamain.sample", raising=False)
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("mangetamain.sample", run_name="__main__")
    assert exc.value.code == 0
    assert (out / "recipes.parquet").is_file()
