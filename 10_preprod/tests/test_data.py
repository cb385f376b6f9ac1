"""Data source resolution, loading and schema validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from conftest import tiny_tables, write_tables

from mangetamain import data


def test_resolve_default_is_sample() -> None:
    source = data.resolve_source({})
    assert source == data.DataSource("local", str(data.SAMPLE_DIR), is_sample=True)
    assert source.describe() == f"local directory {data.SAMPLE_DIR}"
    assert (data.SAMPLE_DIR / "README.md").is_file()


def test_resolve_uses_os_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path))
    source = data.resolve_source()
    assert source.kind == "local"
    assert source.location == str(tmp_path.resolve())
    assert not source.is_sample


def test_resolve_data_dir_pointing_at_sample_is_sample() -> None:
    source = data.resolve_source({data.ENV_DATA_DIR: str(data.SAMPLE_DIR)})
    assert source.is_sample


def test_resolve_s3() -> None:
    env = {
        data.ENV_S3_BUCKET: "bucket/",
        data.ENV_S3_PREFIX: "/food/com/",
        data.ENV_S3_ENDPOINT: "http://127.0.0.1:9000",
        data.ENV_DATA_DIR: "/ignored",
    }
    source = data.resolve_source(env)
    assert source == data.DataSource("s3", "bucket/food/com", "http://127.0.0.1:9000")
    assert source.describe() == "s3://bucket/food/com (http://127.0.0.1:9000)"
    no_prefix = data.resolve_source({data.ENV_S3_BUCKET: "bucket"})
    assert no_prefix.location == "bucket"
    assert no_prefix.describe() == "s3://bucket"


def test_s3_filesystem_options() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-west-3",
    }
    fs = data.s3_filesystem("http://127.0.0.1:9000", env)
    assert isinstance(fs, pafs.S3FileSystem)
    assert fs.region == "eu-west-3"
    fs_default = data.s3_filesystem("minio.example:9000", {})
    assert fs_default.region == "us-east-1"
    assert isinstance(data.s3_filesystem(), pafs.S3FileSystem)


def test_expected_schemas_and_files() -> None:
    assert set(data.EXPECTED_SCHEMAS) == {"recipes", "interactions"}
    assert data.EXPECTED_FILES == {
        "recipes": "recipes.parquet",
        "interactions": "interactions.parquet",
    }
    assert data.EXPECTED_SCHEMAS["recipes"].names == [
        "id",
        "name",
        "minutes",
        "submitted",
        "n_ingredients",
    ]
    assert data.EXPECTED_SCHEMAS["interactions"].names == [
        "user_id",
        "recipe_id",
        "date",
        "rating",
    ]


def test_load_tiny(tiny_dir: Path) -> None:
    tables = data.load_tables(data.DataSource("local", str(tiny_dir)))
    for name, table in tables.items():
        assert table.schema == data.EXPECTED_SCHEMAS[name]
    assert tables["interactions"].num_rows == 6


def test_load_sample_default() -> None:
    tables = data.load_tables()
    assert tables["recipes"].num_rows > 1000
    assert tables["interactions"].num_rows > 1000


def test_lenient_types_are_cast(tmp_path: Path) -> None:
    tables = tiny_tables()
    inter = tables["interactions"]
    tables["interactions"] = pa.table(
        {
            "user_id": inter["user_id"].cast(pa.int32()),
            "recipe_id": inter["recipe_id"],
            "date": pa.array(
                [dt.datetime(2024, 1, 6, 13, 5)] * inter.num_rows, pa.timestamp("us")
            ),
            "rating": inter["rating"].cast(pa.int8()),
            "review": pa.array(["ok"] * inter.num_rows),
        }
    )
    tables["recipes"] = tables["recipes"].set_column(
        1, "name", tables["recipes"]["name"].cast(pa.large_string())
    )
    loaded = data.load_tables(
        data.DataSource("local", str(write_tables(tmp_path, tables)))
    )
    assert loaded["interactions"].schema == data.EXPECTED_SCHEMAS["interactions"]
    assert loaded["interactions"]["date"][0].as_py() == dt.date(2024, 1, 6)
    assert loaded["recipes"].schema == data.EXPECTED_SCHEMAS["recipes"]


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="Missing data file .*recipes.parquet"):
        data.load_tables(data.DataSource("local", str(tmp_path / "nope")))


def test_missing_one_file(tmp_path: Path) -> None:
    write_tables(tmp_path, {"recipes": tiny_tables()["recipes"]})
    with pytest.raises(data.DataError, match="interactions.parquet"):
        data.load_tables(data.DataSource("local", str(tmp_path)))


def test_missing_column(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["interactions"] = tables["interactions"].drop_columns(["rating"])
    write_tables(tmp_path, tables)
    with pytest.raises(
        data.DataError, match=r"interactions.parquet: missing column\(s\) rating"
    ):
        data.load_tables(data.DataSource("local", str(tmp_path)))


def test_wrong_type(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["recipes"] = tables["recipes"].set_column(
        3, "submitted", pa.array(["2024-01-01"] * 3)
    )
    write_tables(tmp_path, tables)
    with pytest.raises(
        data.DataError, match="recipes.parquet: wrong column type.*submitted is string"
    ):
        data.load_tables(data.DataSource("local", str(tmp_path)))


def test_uncastable_values() -> None:
    table = tiny_tables()["recipes"].set_column(
        0, "id", pa.array([2**63 + 1, 1, 2], pa.uint64())
    )
    with pytest.raises(data.DataError, match="cannot convert"):
        data.validate_table("recipes", table)


def test_rating_out_of_range() -> None:
    table = tiny_tables()["interactions"]
    table = table.set_column(3, "rating", pa.array([5, 4, 0, 3, 5, 7], pa.int64()))
    with pytest.raises(data.DataError, match="between 0 and 5, found 0 to 7"):
        data.validate_table("interactions", table)


def test_empty_and_null_ratings_are_valid() -> None:
    schema = data.EXPECTED_SCHEMAS["interactions"]
    assert data.validate_table("interactions", schema.empty_table()).num_rows == 0
    nulls = pa.table(
        {"user_id": [1], "recipe_id": [1], "date": [None], "rating": [None]},
        schema=schema,
    )
    assert data.validate_table("interactions", nulls).num_rows == 1


def test_not_parquet(tmp_path: Path) -> None:
    write_tables(tmp_path, tiny_tables())
    (tmp_path / "recipes.parquet").write_text("id,name\n1,soup\n")
    with pytest.raises(data.DataError, match="not a readable Parquet file"):
        data.load_tables(data.DataSource("local", str(tmp_path)))


def test_source_fingerprint(tiny_dir: Path) -> None:
    fp = data.source_fingerprint(data.DataSource("local", str(tiny_dir)))
    assert [f[0] for f in fp] == ["recipes.parquet", "interactions.parquet"]
    assert data.source_fingerprint(data.DataSource("s3", "bucket")) == ()
