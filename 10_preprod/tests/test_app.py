"""End-to-end runs of the Streamlit app with ``streamlit.testing.v1.AppTest``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import APP_PATH, tiny_tables, write_tables
from streamlit.testing.v1 import AppTest

from mangetamain import data, views

TIMEOUT = 30


def _run(page: str | None = None) -> AppTest:
    """Run the app (optionally switching to ``page``) and check it did not crash."""
    at = AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT).run()
    if page is not None:
        at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Mangetamain" in at.title[0].value
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_pages_are_listed() -> None:
    at = _run()
    assert at.sidebar.radio(key="page").options == list(views.PAGES)
    assert list(views.PAGES) == ["Ratings", "Seasonality", "Weekend effect"]


@pytest.mark.parametrize("page", list(views.PAGES))
def test_every_page_on_sample(page: str) -> None:
    at = _run(page)
    assert at.header[0].value == page
    assert any("synthetic sample data" in w.value for w in at.warning)
    assert not at.error
    assert len(at.get("arrow_vega_lite_chart")) >= 1 or len(at.dataframe) >= 1


def test_ratings_page_numbers_on_sample() -> None:
    metrics = _metrics(_run("Ratings"))
    assert metrics["Recipes"] == "1,500"
    assert metrics["Ratings"] == "6,000"
    assert metrics["Users"] == "800"


def test_tiny_data_dir(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path) -> None:
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tiny_dir))
    at = _run()
    assert not at.warning  # not the synthetic sample
    assert str(tiny_dir) in at.caption[0].value
    assert _metrics(at) == {
        "Recipes": "3",
        "Ratings": "6",
        "Users": "4",
        "Average rating": "3.80",
    }
    at.sidebar.radio(key="page").set_value("Seasonality").run()
    assert not at.exception
    metrics = _metrics(at)
    assert metrics["Busiest month for new recipes"] == "Jan"
    assert metrics["Best-rated month"] == "Jan"
    at.sidebar.radio(key="page").set_value("Weekend effect").run()
    assert not at.exception
    assert _metrics(at) == {
        "Ratings per day (weekdays)": "1.50",
        "Ratings per day (weekend)": "1.00",
        "Average rating (weekdays)": "4.00",
        "Average rating (weekend)": "3.67",
    }


def test_no_stars_no_weekend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    tables = tiny_tables()
    tables["interactions"] = pa.table(
        {
            "user_id": [1, 2],
            "recipe_id": [10, 20],
            "date": [dt.date(2024, 1, 8), dt.date(2024, 1, 9)],  # Mon, Tue
            "rating": [0, 0],
        },
        schema=data.EXPECTED_SCHEMAS["interactions"],
    )
    monkeypatch.setenv(data.ENV_DATA_DIR, str(write_tables(tmp_path, tables)))
    at = _run("Ratings")
    assert _metrics(at)["Average rating"] == "n/a"
    at.sidebar.radio(key="page").set_value("Seasonality").run()
    assert not at.exception
    assert "Best-rated month" not in _metrics(at)
    at.sidebar.radio(key="page").set_value("Weekend effect").run()
    assert not at.exception
    metrics = _metrics(at)
    assert metrics["Ratings per day (weekend)"] == "n/a"
    assert metrics["Average rating (weekdays)"] == "n/a"


def test_data_change_is_picked_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(data.ENV_DATA_DIR, str(write_tables(tmp_path, tiny_tables())))
    assert _metrics(_run())["Ratings"] == "6"
    tables = tiny_tables()
    tables["interactions"] = tables["interactions"].slice(0, 2)
    write_tables(tmp_path, tables)
    assert _metrics(_run())["Ratings"] == "2"


def test_missing_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path / "does-not-exist"))
    at = _run()
    assert len(at.error) == 1
    message = at.error[0].value
    assert "Cannot load the data" in message
    assert "Missing data file" in message and "recipes.parquet" in message
    assert not at.metric and not at.header


def test_malformed_parquet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["interactions"] = tables["interactions"].rename_columns(
        ["user", "recipe", "day", "stars"]
    )
    monkeypatch.setenv(data.ENV_DATA_DIR, str(write_tables(tmp_path, tables)))
    at = _run("Weekend effect")
    assert len(at.error) == 1
    message = at.error[0].value
    assert "interactions.parquet: missing column(s) user_id, recipe_id, date" in message
    assert not at.metric
