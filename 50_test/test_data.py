"""The app's data: the bucket, its Parquet files, and every app SQL query on them.

The original's "S3, DuckDB, SQL tests". They use the app's own code
(:mod:`mangetamain.data`, :mod:`mangetamain.queries`, from ``10_preprod/src``), so
the data is read, validated and queried exactly as the app does it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import require, scrub

#: The variables the S3 source also reads, named in the skip reason.
S3_OPTIONAL = (
    "MANGETAMAIN_S3_ENDPOINT",
    "MANGETAMAIN_S3_PREFIX",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
)


@pytest.fixture(scope="module")
def source() -> Any:
    """The app's S3 data source, as the app resolves it from the environment."""
    require("MANGETAMAIN_S3_BUCKET", optional=S3_OPTIONAL)
    from mangetamain import data

    resolved = data.resolve_source()
    assert resolved.kind == "s3", f"the app resolved {resolved.describe()}, not S3"
    return resolved


@pytest.fixture(scope="module")
def loaded(source: Any) -> tuple[dict[str, Any] | None, str]:
    """Both tables loaded once by ``mangetamain.data.load_tables``, or the error."""
    from mangetamain import data

    try:
        return data.load_tables(source), ""
    except data.DataError as error:
        return None, scrub(str(error))


def _tables(loaded: tuple[dict[str, Any] | None, str]) -> dict[str, Any]:
    """The loaded tables; fail the check with the app's message if loading failed."""
    tables, error = loaded
    if tables is None:
        pytest.fail(error, pytrace=False)
    return tables


def test_data_bucket_is_reachable(source: Any) -> None:
    """``bucket[/prefix]`` of MANGETAMAIN_S3_BUCKET can be listed at the endpoint."""
    import pyarrow.fs as pafs
    from mangetamain import data

    where = f"s3://{source.location} ({source.endpoint or 'AWS'})"
    try:
        found = data.s3_filesystem(source.endpoint).get_file_info(
            pafs.FileSelector(source.location)
        )
    except OSError as error:
        found, problem = [], scrub(f"cannot list {where}: {error}")
    else:
        problem = ""
    if problem:  # failed outside the except block: no chained traceback
        pytest.fail(problem, pytrace=False)
    print(f"{where}: {', '.join(sorted(Path(f.path).name for f in found)) or 'empty'}")


def test_data_files_have_expected_schema(
    loaded: tuple[dict[str, Any] | None, str],
) -> None:
    """Every expected Parquet file is readable, has the expected schema and rows."""
    from mangetamain import data

    tables = _tables(loaded)
    for name, expected in data.EXPECTED_SCHEMAS.items():
        table, fname = tables[name], data.EXPECTED_FILES[name]
        assert table.schema.equals(expected), f"{fname}: schema {table.schema}"
        assert table.num_rows > 0, f"{fname}: no rows"


def test_app_queries_return_rows(loaded: tuple[dict[str, Any] | None, str]) -> None:
    """Every query of ``mangetamain.queries.ALL_QUERIES`` runs on the data (DuckDB)."""
    import duckdb
    from mangetamain import data, queries

    connection = data.connect(_tables(loaded))
    failures = []
    for name, sql in queries.ALL_QUERIES.items():
        try:
            rows = connection.execute(sql).fetchall()
        except duckdb.Error as error:
            failures.append(f"{name}: {error}")
            continue
        if not rows:
            failures.append(f"{name}: no rows")
    assert not failures, scrub("queries failed: " + "; ".join(failures))
