"""local-env: the HTTP stand-in answers as GitHub, Discord and a health URL would.

Starting the stand-ins for real (sshd, HTTP, moto's S3) is in
tests/integration/test_testinfra.py.
"""

from __future__ import annotations

import pytest

from tools.testinfra import standins

SETTINGS = {"token": "t0ken", "repository": "o/r", "webhook_path": "/api/webhooks/1/x"}


@pytest.mark.parametrize(
    ("path", "auth", "status"),
    [
        ("/health", "", 200),
        ("/api/webhooks/1/x", "", 200),
        ("/api/webhooks/1/y", "", 404),
        ("/repos/o/r/actions/runs", "Bearer t0ken", 200),
        ("/repos/o/r/actions/runs", "Bearer nope", 401),
    ],
)
def test_standin_answer(path: str, auth: str, status: int) -> None:
    assert standins.standin_answer(path, auth, SETTINGS)[0] == status
