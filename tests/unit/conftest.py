"""Fixtures shared by the unit tests: a hermetic environment and a loopback server.

Every unit test runs without the secrets, actor and config path of the shell that
started pytest, and pytest-httpserver listens on 127.0.0.1 only (its default,
``localhost``, may resolve to another address).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

#: Variables that change what cicd does; each test starts without them.
HERMETIC_VARIABLES = (
    "DISCORD_WEBHOOK_URL",
    "GITHUB_TOKEN",
    "CICD_GITHUB_TOKEN",
    "CICD_CONFIG",
    "GITHUB_ACTOR",
)


@pytest.fixture(autouse=True)
def _unit_hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove secrets and settings inherited from the calling shell."""
    for name in HERMETIC_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """Start one pytest-httpserver for the session, bound to 127.0.0.1."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()
