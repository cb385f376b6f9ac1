"""Data source of the Mangetamain app: where the Parquet tables are, how to load them.

Two tables are expected, each in one Parquet file:

* ``recipes.parquet``: ``id``, ``name``, ``minutes``, ``submitted``,
  ``n_ingredients`` (as in the public Food.com dataset);
* ``interactions.parquet``: ``user_id``, ``recipe_id``, ``date``, ``rating``.

The source is chosen from the environment (see :func:`resolve_source`):

* ``MANGETAMAIN_S3_BUCKET`` set: an S3-compatible bucket, read with
  :class:`pyarrow.fs.S3FileSystem` (``MANGETAMAIN_S3_ENDPOINT``,
  ``MANGETAMAIN_S3_PREFIX``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_REGION``);
* otherwise ``MANGETAMAIN_DATA_DIR`` if set;
* otherwise the synthetic sample shipped in ``data/sample``.

:func:`load_tables` reads both files, checks them against
:data:`EXPECTED_SCHEMAS` and returns them cast to the canonical Arrow types;
any problem raises :class:`DataError` with a message meant for the user.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

#: Environment variable overriding the local data directory.
ENV_DATA_DIR = "MANGETAMAIN_DATA_DIR"
#: Environment variable selecting an S3-compatible bucket as data source.
ENV_S3_BUCKET = "MANGETAMAIN_S3_BUCKET"
#: Environment variable with the S3 endpoint URL (e.g. ``http://127.0.0.1:9000``).
ENV_S3_ENDPOINT = "MANGETAMAIN_S3_ENDPOINT"
#: Environment variable with an optional key prefix inside the bucket.
ENV_S3_PREFIX = "MANGETAMAIN_S3_PREFIX"

#: Directory of the synthetic sample shipped with the app (``10_preprod/data/sample``).
SAMPLE_DIR: Path = Path(__file__).resolve().parents[2] / "data" / "sample"

#: Expected tables: table name -> canonical Arrow schema of its Parquet file.
EXPECTED_SCHEMAS: dict[str, pa.Schema] = {
    "recipes": pa.schema(
        [
            ("id", pa.int64()),
            ("name", pa.string()),
            ("minutes", pa.int64()),
            ("submitted", pa.date32()),
            ("n_ingredients", pa.int64()),
        ]
    ),
    "interactions": pa.schema(
        [
            ("user_id", pa.int64()),
            ("recipe_id", pa.int64()),
            ("date", pa.date32()),
            ("rating", pa.int64()),
        ]
    ),
}

#: Inclusive range of ``interactions.rating`` (0 = review without stars).
RATING_RANGE: tuple[int, int] = (0, 5)

#: Expected file name of each table inside the data directory or bucket prefix.
EXPECTED_FILES: dict[str, str] = {name: f"{name}.parquet" for name in EXPECTED_SCHEMAS}


class DataError(Exception):
    """Data is missing, unreadable or does not match :data:`EXPECTED_SCHEMAS`.

    The message is written for the app's user and names what is wrong.
    """


@dataclass(frozen=True)
class DataSource:
    """Where the Parquet tables are read from.

    Attributes:
        kind: ``"local"`` for a directory or ``"s3"`` for a bucket.
        location: Directory path, or ``bucket[/prefix]`` for S3.
        endpoint: S3 endpoint URL (empty for AWS default or local sources).
        is_sample: True when this is the synthetic sample shipped with the app.
    """

    kind: str
    location: str
    endpoint: str = ""
    is_sample: bool = False

    def describe(self) -> str:
        """Return a short human-readable description of the source.

        Returns:
            For example ``"local directory data/sample"`` or
            ``"s3://bucket/prefix (http://127.0.0.1:9000)"``.
        """
        if self.kind == "s3":
            suffix = f" ({self.endpoint})" if self.endpoint else ""
            return f"s3://{self.location}{suffix}"
        return f"local directory {self.location}"


Tables = dict[str, pa.Table]


def resolve_source(env: Mapping[str, str] | None = None) -> DataSource:
    """Choose the data source from environment variables.

    Args:
        env: Mapping to read variables from; defaults to :data:`os.environ`.

    Returns:
        The S3 source if ``MANGETAMAIN_S3_BUCKET`` is set, else the directory
        given by ``MANGETAMAIN_DATA_DIR``, else the shipped synthetic sample.
    """
    env = os.environ if env is None else env
    bucket = env.get(ENV_S3_BUCKET, "").strip().strip("/")
    if bucket:
        prefix = env.get(ENV_S3_PREFIX, "").strip().strip("/")
        location = f"{bucket}/{prefix}" if prefix else bucket
        return DataSource(
            kind="s3", location=location, endpoint=env.get(ENV_S3_ENDPOINT, "")
        )
    data_dir = env.get(ENV_DATA_DIR, "").strip()
    if data_dir:
        path = Path(data_dir).expanduser().resolve()
        return DataSource(
            kind="local", location=str(path), is_sample=path == SAMPLE_DIR
        )
    return DataSource(kind="local", location=str(SAMPLE_DIR), is_sample=True)


def s3_filesystem(
    endpoint: str = "", env: Mapping[str, str] | None = None
) -> pafs.S3FileSystem:
    """Build a :class:`pyarrow.fs.S3FileSystem` for an S3-compatible endpoint.

    Credentials come from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` and the
    region from ``AWS_REGION`` (default ``us-east-1``). Path-style addressing is
    used, as most self-hosted S3 servers (MinIO, moto, Garage) expect.

    Args:
        endpoint: Endpoint URL such as ``http://127.0.0.1:9000``; empty for AWS.
        env: Mapping to read variables from; defaults to :data:`os.environ`.

    Returns:
        The configured filesystem.
    """
    env = os.environ if env is None else env
    kwargs: dict[str, object] = {
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "force_virtual_addressing": False,
        "connect_timeout": 5,
        "request_timeout": 30,
    }
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        kwargs["access_key"] = key
        kwargs["secret_key"] = secret
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["scheme"] = parsed.scheme
        kwargs["endpoint_override"] = parsed.netloc
    return pafs.S3FileSystem(**kwargs)


def _type_ok(expected: pa.DataType, actual: pa.DataType) -> bool:
    """Tell whether ``actual`` is acceptable for a column of type ``expected``.

    Any integer width is accepted for integers, ``string``/``large_string`` for
    strings, and dates or timestamps for dates; values are cast afterwards.

    Args:
        expected: Canonical type from :data:`EXPECTED_SCHEMAS`.
        actual: Type found in the Parquet file.

    Returns:
        True if the column can be cast safely to ``expected``.
    """
    checks: dict[pa.DataType, Callable[[pa.DataType], bool]] = {
        pa.int64(): pa.types.is_integer,
        pa.string(): lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        pa.date32(): lambda t: pa.types.is_date(t) or pa.types.is_timestamp(t),
    }
    return checks[expected](actual)


def validate_table(name: str, table: pa.Table) -> pa.Table:
    """Check a table against its expected schema and cast it to canonical types.

    Extra columns are dropped; missing columns, incompatible types or ratings
    outside :data:`RATING_RANGE` raise.

    Args:
        name: Table name, a key of :data:`EXPECTED_SCHEMAS`.
        table: Table as read from Parquet.

    Returns:
        The table restricted to the expected columns, in the canonical schema.

    Raises:
        DataError: If a column is missing, has an incompatible type or holds
            out-of-range ratings.
    """
    expected = EXPECTED_SCHEMAS[name]
    fname = EXPECTED_FILES[name]
    missing = [f.name for f in expected if f.name not in table.column_names]
    if missing:
        raise DataError(
            f"{fname}: missing column(s) {', '.join(missing)}; expected columns "
            f"{', '.join(expected.names)}, found {', '.join(table.column_names)}."
        )
    bad = [
        f"{f.name} is {table.schema.field(f.name).type}, expected {f.type}"
        for f in expected
        if not _type_ok(f.type, table.schema.field(f.name).type)
    ]
    if bad:
        raise DataError(f"{fname}: wrong column type(s): {'; '.join(bad)}.")
    try:
        table = table.select(expected.names).cast(expected)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"{fname}: cannot convert to the expected types: {exc}"
        ) from exc
    if name == "interactions" and table.num_rows:
        low, high = RATING_RANGE
        bounds = pc.min_max(table["rating"])
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is not None and (lo < low or hi > high):
            raise DataError(
                f"{fname}: rating values must be between {low} and {high}, "
                f"found {lo} to {hi}."
            )
    return table


def _read(source: DataSource, name: str) -> pa.Table:
    """Read one table's Parquet file from a source.

    Args:
        source: Where to read from.
        name: Table name, a key of :data:`EXPECTED_FILES`.

    Returns:
        The raw table.

    Raises:
        DataError: If the file is missing or is not readable Parquet.
    """
    fname = EXPECTED_FILES[name]
    if source.kind == "s3":
        fs: pafs.FileSystem = s3_filesystem(source.endpoint)
        path = f"{source.location}/{fname}"
        shown = f"s3://{path}"
    else:
        fs = pafs.LocalFileSystem()
        path = str(Path(source.location) / fname)
        shown = path
    try:
        info = fs.get_file_info(path)
    except OSError as exc:
        raise DataError(f"Cannot reach {shown}: {exc}") from exc
    if info.type != pafs.FileType.File:
        raise DataError(
            f"Missing data file {shown} (data source: {source.describe()}). "
            f"Expected files: {', '.join(EXPECTED_FILES.values())}."
        )
    try:
        return pq.read_table(path, filesystem=fs)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{shown} is not a readable Parquet file: {exc}") from exc


def load_tables(source: DataSource | None = None) -> Tables:
    """Load and validate both tables.

    Args:
        source: Where to read from; defaults to :func:`resolve_source`.

    Returns:
        ``{"recipes": ..., "interactions": ...}`` in the canonical schemas.

    Raises:
        DataError: If a file is missing, unreadable or malformed.
    """
    source = resolve_source() if source is None else source
    return {
        name: validate_table(name, _read(source, name)) for name in EXPECTED_SCHEMAS
    }


def connect(tables: Mapping[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB connection with the tables registered as views.

    Args:
        tables: Arrow tables by name, as returned by :func:`load_tables`.

    Returns:
        A new connection where each table is queryable by its name.
    """
    con = duckdb.connect(":memory:")
    for name, table in tables.items():
        con.register(name, table)
    return con


def source_fingerprint(source: DataSource) -> tuple[tuple[str, int, int], ...]:
    """Return a cheap fingerprint of a local source to invalidate caches.

    Args:
        source: The data source.

    Returns:
        ``(file, size, mtime_ns)`` for each expected local file that exists;
        empty for S3 sources (their cache expires by time instead).
    """
    if source.kind != "local":
        return ()
    out = []
    for fname in EXPECTED_FILES.values():
        path = Path(source.location) / fname
        if path.is_file():
            stat = path.stat()
            out.append((fname, stat.st_size, stat.st_mtime_ns))
    return tuple(out)
