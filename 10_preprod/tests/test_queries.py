"""The SQL of each analysis against hand-computed results on the tiny dataset."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pandas as pd
import pytest
from conftest import tiny_tables

from mangetamain import data, queries


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """Connection over the tiny dataset."""
    return data.connect(tiny_tables())


def _nan_to_none(values: list[float]) -> list[float | None]:
    return [None if v is None or math.isnan(v) else v for v in values]


def test_summary(con: duckdb.DuckDBPyConnection) -> None:
    row = queries.summary(con).iloc[0]
    assert row["n_recipes"] == 3
    assert row["n_ratings"] == 6
    assert row["n_users"] == 4
    assert row["avg_rating"] == pytest.approx(19 / 5)  # 5+4+3+5+2, 0 excluded


def test_rating_distribution(con: duckdb.DuckDBPyConnection) -> None:
    df = queries.rating_distribution(con)
    assert df["rating"].tolist() == [0, 1, 2, 3, 4, 5]
    assert df["n_ratings"].tolist() == [1, 0, 1, 1, 1, 2]


def test_rating_by_month(con: duckdb.DuckDBPyConnection) -> None:
    df = queries.rating_by_month(con)
    months = [pd.Timestamp(m).date() for m in df["month"]]
    assert months == [dt.date(2024, 1, 1), dt.date(2024, 2, 1)]
    assert df["n_ratings"].tolist() == [4, 2]
    assert df["n_rated"].tolist() == [3, 2]
    assert df["avg_rating"].tolist() == [4.0, 3.5]  # (5+4+3)/3, (5+2)/2


def test_seasonality(con: duckdb.DuckDBPyConnection) -> None:
    df = queries.seasonality(con)
    assert df["month"].tolist() == list(range(1, 13))
    assert df["month_name"].tolist()[:3] == ["Jan", "Feb", "Mar"]
    assert df["month_name"].iloc[11] == "Dec"
    assert df["n_recipes"].tolist() == [2] + [0] * 10 + [1]
    assert df["n_ratings"].tolist() == [4, 2] + [0] * 10
    assert _nan_to_none(df["avg_rating"].tolist()) == [4.0, 3.5] + [None] * 10


def test_rating_by_weekday(con: duckdb.DuckDBPyConnection) -> None:
    df = queries.rating_by_weekday(con)
    assert df["weekday"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert df["day_name"].tolist() == [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
    assert df["is_weekend"].tolist() == [False] * 5 + [True] * 2
    assert df["n_ratings"].tolist() == [2, 0, 1, 0, 0, 2, 1]
    # Monday: 0 and 3 -> 3.0 (0 = no stars); Wednesday 5; Saturday (5+2)/2; Sunday 4
    assert _nan_to_none(df["avg_rating"].tolist()) == [
        3.0,
        None,
        5.0,
        None,
        None,
        3.5,
        4.0,
    ]


def test_weekend_vs_weekday(con: duckdb.DuckDBPyConnection) -> None:
    df = queries.weekend_vs_weekday(con)
    assert df["day_type"].tolist() == ["weekday", "weekend"]
    assert df["n_ratings"].tolist() == [3, 3]
    assert df["n_days"].tolist() == [2, 3]  # Jan 8, Feb 14 | Jan 6, Jan 7, Feb 17
    assert df["ratings_per_day"].tolist() == [1.5, 1.0]
    assert df["avg_rating"].iloc[0] == 4.0  # (3+5)/2
    assert df["avg_rating"].iloc[1] == pytest.approx(11 / 3)  # (5+4+2)/3


def test_all_queries_registry(con: duckdb.DuckDBPyConnection) -> None:
    assert set(queries.ALL_QUERIES) == set(queries.ANALYSES)
    for name, sql in queries.ALL_QUERIES.items():
        assert isinstance(sql, str) and "SELECT" in sql
        via_sql = con.execute(sql).df()
        pd.testing.assert_frame_equal(via_sql, queries.ANALYSES[name](con))


def test_unknown_query(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(KeyError):
        queries.run_query(con, "nope")


def test_empty_tables() -> None:
    empty = {n: s.empty_table() for n, s in data.EXPECTED_SCHEMAS.items()}
    con = data.connect(empty)
    assert queries.rating_distribution(con)["n_ratings"].tolist() == [0] * 6
    assert queries.rating_by_month(con).empty
    assert queries.seasonality(con)["n_recipes"].sum() == 0
    split = queries.weekend_vs_weekday(con)
    assert split["n_ratings"].tolist() == [0, 0]
    assert split["ratings_per_day"].isna().all()
