"""Shared fixtures: a tiny hand-made dataset and Parquet writing helpers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import streamlit as st

from mangetamain import data

PROJECT_DIR = Path(__file__).resolve().parents[1]
APP_PATH = PROJECT_DIR / "src" / "mangetamain" / "app.py"

D = dt.date

#: Three recipes: submitted in Dec 2023, Jan 2024, Jan 2024.
TINY_RECIPES = {
    "id": [10, 20, 30],
    "name": ["soup", "cake", "salad"],
    "minutes": [30, 60, 10],
    "submitted": [D(2023, 12, 25), D(2024, 1, 15), D(2024, 1, 20)],
    "n_ingredients": [5, 8, 4],
}
#: Six interactions; weekdays: Sat, Sun, Mon, Mon, Wed, Sat.
TINY_INTERACTIONS = {
    "user_id": [1, 2, 3, 1, 2, 4],
    "recipe_id": [10, 20, 30, 10, 20, 30],
    "date": [
        D(2024, 1, 6),  # Saturday
        D(2024, 1, 7),  # Sunday
        D(2024, 1, 8),  # Monday
        D(2024, 1, 8),  # Monday
        D(2024, 2, 14),  # Wednesday
        D(2024, 2, 17),  # Saturday
    ],
    "rating": [5, 4, 0, 3, 5, 2],
}


def tiny_tables() -> dict[str, pa.Table]:
    """Return the tiny dataset as Arrow tables in the canonical schemas."""
    return {
        "recipes": pa.Table.from_pydict(
            TINY_RECIPES, schema=data.EXPECTED_SCHEMAS["recipes"]
        ),
        "interactions": pa.Table.from_pydict(
            TINY_INTERACTIONS, schema=data.EXPECTED_SCHEMAS["interactions"]
        ),
    }


def write_tables(directory: Path, tables: dict[str, pa.Table]) -> Path:
    """Write tables as ``<name>.parquet`` files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, directory / f"{name}.parquet")
    return directory


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """Directory holding the tiny dataset."""
    return write_tables(tmp_path / "tiny", tiny_tables())


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clear data-source variables and Streamlit caches around each test."""
    for var in (
        data.ENV_DATA_DIR,
        data.ENV_S3_BUCKET,
        data.ENV_S3_ENDPOINT,
        data.ENV_S3_PREFIX,
    ):
        monkeypatch.delenv(var, raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
