"""S3 data source against a real local S3-compatible server (moto, 127.0.0.1).

Marked ``s3``: skipped when ``moto[server]`` is not installed; deselect with
``-m "not s3"``. The server listens on a random port of 127.0.0.1 only.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import APP_PATH, tiny_tables
from streamlit.testing.v1 import AppTest

from mangetamain import data

moto_server = pytest.importorskip("moto.server")

pytestmark = pytest.mark.s3

BUCKET = "mangetamain-test"
PREFIX = "foodcom/v1"
CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """Start moto on 127.0.0.1 (random port), upload the tiny dataset."""
    server = moto_server.ThreadedMotoServer(
        ip_address="127.0.0.1", port=0, verbose=False
    )
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    fs = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        scheme="http",
        endpoint_override=f"{host}:{port}",
        allow_bucket_creation=True,
    )
    fs.create_dir(BUCKET)
    for name, table in tiny_tables().items():
        pq.write_table(table, f"{BUCKET}/{PREFIX}/{name}.parquet", filesystem=fs)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> str:
    """Point the app at the moto bucket."""
    for key, value in CREDS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(data.ENV_S3_BUCKET, BUCKET)
    monkeypatch.setenv(data.ENV_S3_PREFIX, PREFIX)
    monkeypatch.setenv(data.ENV_S3_ENDPOINT, endpoint)
    return endpoint


def test_load_from_s3(s3_env: str) -> None:
    source = data.resolve_source()
    assert source.kind == "s3" and not source.is_sample
    tables = data.load_tables(source)
    for name, table in tables.items():
        assert table.equals(tiny_tables()[name])


def test_missing_prefix(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.ENV_S3_PREFIX, "nothing/here")
    with pytest.raises(
        data.DataError,
        match=f"Missing data file s3://{BUCKET}/nothing/here/recipes.parquet",
    ):
        data.load_tables()


def test_app_reads_s3(s3_env: str) -> None:
    at = AppTest.from_file(str(APP_PATH), default_timeout=30).run()
    assert not at.exception
    assert "Mangetamain" in at.title[0].value
    assert f"s3://{BUCKET}/{PREFIX}" in at.caption[0].value
    assert not at.warning
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Ratings"] == "6"
    assert metrics["Average rating"] == "3.80"


def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for key, value in CREDS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(data.ENV_S3_BUCKET, BUCKET)
    monkeypatch.setenv(data.ENV_S3_ENDPOINT, f"http://127.0.0.1:{port}")
    at = AppTest.from_file(str(APP_PATH), default_timeout=30).run()
    assert not at.exception
    assert "Cannot reach s3://" in at.error[0].value
