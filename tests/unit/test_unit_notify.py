"""Unit tests of :mod:`cicd.notify` with pytest-httpserver standing in for Discord.

requests is never patched: the notifier posts to a real server on 127.0.0.1, and the
outbox is a real file under ``tmp_path`` written by a real ``invoke.Context``. Only
``sleep`` is injected, to record the waits instead of waiting.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import invoke
import pytest
from pytest_httpserver import HTTPServer

from cicd.config import from_table
from cicd.notify import DISCORD_LIMIT, Notifier
from cicd.runner import Runner
from cicd.target import Target

WEBHOOK_PATH = "/api/webhooks/987654321098/s3cr3t-T0KEN_value"
TOKEN = "s3cr3t-T0KEN_value"


def make_target(tmp_path: Path, **table: Any) -> Target:
    """Return the preprod Target of a root under ``tmp_path``, run locally."""
    settings = from_table(table, project_dir=tmp_path)
    return Target(Runner(invoke.Context()), settings, "preprod")


@pytest.fixture
def webhook(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point ``DISCORD_WEBHOOK_URL`` at the test server and return the URL."""
    url = httpserver.url_for(WEBHOOK_PATH)
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", url)
    return url


@pytest.fixture
def waits() -> list[float]:
    """Collect the seconds the notifier asked to sleep."""
    return []


@pytest.fixture
def console() -> io.StringIO:
    """Capture the notifier's console lines."""
    return io.StringIO()


@pytest.fixture
def notifier(tmp_path: Path, console: io.StringIO, waits: list[float]) -> Notifier:
    """A notifier for preprod that records its waits and console output."""
    return Notifier(make_target(tmp_path), console=console, sleep=waits.append)


def posted(httpserver: HTTPServer) -> list[str]:
    """Return the ``content`` of every message the server received, in order."""
    return [request.get_json()["content"] for request, _ in httpserver.log]


def test_without_webhook_only_the_console_is_used(
    tmp_path: Path, console: io.StringIO, httpserver: HTTPServer
) -> None:
    notifier = Notifier(make_target(tmp_path), console=console)

    assert notifier.send("preprod deployed abc1234") is True

    assert console.getvalue() == "preprod deployed abc1234\n"
    assert httpserver.log == []
    assert notifier.pending() == []


def test_delivered_on_204(
    webhook: str, notifier: Notifier, httpserver: HTTPServer, waits: list[float]
) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=204
    )

    assert notifier.send("preprod deployed abc1234") is True

    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.get_json() == {
        "content": "preprod deployed abc1234",
        "username": "Mangetamain CI/CD",
        "allowed_mentions": {"parse": []},
    }
    assert waits == []
    assert notifier.pending() == []


def test_rate_limited_then_delivered(
    webhook: str, notifier: Notifier, httpserver: HTTPServer, waits: list[float]
) -> None:
    httpserver.expect_ordered_request(WEBHOOK_PATH, method="POST").respond_with_json(
        {"message": "You are being rate limited.", "retry_after": 0.2}, status=429
    )
    httpserver.expect_ordered_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=204
    )

    assert notifier.send("prod deployed") is True

    assert waits == [0.2]
    assert posted(httpserver) == ["prod deployed", "prod deployed"]
    assert notifier.pending() == []


def test_server_errors_keep_the_message_in_the_outbox_without_leaking_the_url(
    webhook: str,
    notifier: Notifier,
    httpserver: HTTPServer,
    console: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "oops", status=500
    )

    delivered = notifier.send(f"deploy failed while posting to {webhook}")

    assert delivered is False
    pending = notifier.pending()
    assert [e["payload"]["content"] for e in pending] == [
        "deploy failed while posting to ***"
    ]
    captured = capsys.readouterr()
    outbox = Path(notifier.target.paths.outbox).read_text()
    for text in (console.getvalue(), captured.out, captured.err, outbox):
        assert webhook not in text
        assert WEBHOOK_PATH not in text
        assert TOKEN not in text
    assert "outbox" in console.getvalue()
    assert len(httpserver.log) >= 1


def test_outbox_is_delivered_oldest_first_after_recovery(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=503
    )
    assert notifier.send("first") is False
    assert notifier.send("second") is False
    assert [e["payload"]["content"] for e in notifier.pending()] == ["first", "second"]
    httpserver.clear()
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=204
    )

    assert notifier.send("third") is True

    assert posted(httpserver) == ["first", "second", "third"]
    assert notifier.pending() == []


def test_long_content_is_truncated(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=204
    )

    assert notifier.send("x" * 2500) is True

    (content,) = posted(httpserver)
    assert len(content) == DISCORD_LIMIT
    assert content == "x" * (DISCORD_LIMIT - 1) + "…"


def test_discord_disabled_in_config(
    webhook: str, tmp_path: Path, console: io.StringIO, httpserver: HTTPServer
) -> None:
    target = make_target(tmp_path, notify={"discord": False})
    notifier = Notifier(target, console=console)

    assert notifier.send("preprod deployed") is True

    assert httpserver.log == []
    assert console.getvalue() == "preprod deployed\n"


def test_unreachable_webhook_goes_to_the_outbox(
    tmp_path: Path,
    console: io.StringIO,
    waits: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", url)
    notifier = Notifier(make_target(tmp_path), console=console, sleep=waits.append)

    assert notifier.send("hello") is False

    assert [e["payload"]["content"] for e in notifier.pending()] == ["hello"]
    assert TOKEN not in console.getvalue()
    assert "not delivered" in console.getvalue()
