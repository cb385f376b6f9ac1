"""Unit tests of :mod:`cicd.reporting.notify` with pytest-httpserver standing in for
Discord.

requests is never patched: the notifier posts to a real server on 127.0.0.1, and the
outbox is a real file under ``tmp_path`` written by a real ``invoke.Context``. Only
``sleep`` is injected, to record the waits instead of waiting.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path
from typing import Any

import invoke
import pytest
from pytest_httpserver import HTTPServer

from werkzeug import Request, Response

from cicd.core import messages
from cicd.core.config import from_table
from cicd.reporting.discord_payload import DISCORD_LIMIT
from cicd.reporting.notify import COLOURS, Notifier
from cicd.transport.runner import Runner
from cicd.host.target import Target
from tests.discord_fake import FakeDiscord

WEBHOOK_PATH = "/api/webhooks/987654321098/s3cr3t-T0KEN_value"
TOKEN = "s3cr3t-T0KEN_value"
SHA = "0123456789abcdef0123456789abcdef01234567"


def make_target(tmp_path: Path, **table: Any) -> Target:
    """Return the preprod Target of a root under ``tmp_path``, run locally."""
    settings = from_table(table, project_dir=tmp_path)
    return Target(Runner(invoke.Context()), settings, "preprod")


@pytest.fixture(autouse=True)
def _outside_a_workflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as on a laptop, even under GitHub Actions: no run, repository or server."""
    for name in ("GITHUB_RUN_ID", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)


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


def test_delivered_when_discord_returns_the_saved_message(
    webhook: str, notifier: Notifier, httpserver: HTTPServer, waits: list[float]
) -> None:
    FakeDiscord(httpserver, WEBHOOK_PATH).install()

    assert notifier.send("preprod deployed abc1234") is True

    (request, _), *rest = httpserver.log
    assert rest == []
    body = request.get_json()
    assert {k: body[k] for k in ("content", "username", "allowed_mentions")} == {
        "content": "preprod deployed abc1234",
        "username": "Mangetamain CI/CD",
        "allowed_mentions": {"parse": []},
    }
    (embed,) = body["embeds"]
    assert embed["title"] == "preprod deployed abc1234"
    assert embed["color"] == COLOURS["info"]  # no sign: grey
    assert embed["footer"] == {"text": "preprod"}
    assert waits == []
    assert notifier.pending() == []


def test_rate_limited_then_delivered(
    webhook: str, notifier: Notifier, httpserver: HTTPServer, waits: list[float]
) -> None:
    httpserver.expect_ordered_request(WEBHOOK_PATH, method="POST").respond_with_json(
        {"message": "You are being rate limited.", "retry_after": 0.2}, status=429
    )
    httpserver.expect_ordered_request(WEBHOOK_PATH, method="POST").respond_with_handler(
        FakeDiscord(httpserver, WEBHOOK_PATH).answer
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
    FakeDiscord(httpserver, WEBHOOK_PATH).install()

    assert notifier.send("third") is True

    first, second, third = posted(httpserver)[-3:]
    assert first.startswith("⏰ Delayed: first sent at ") and first.endswith("\nfirst")
    assert second.startswith("⏰ Delayed: first sent at ") and second.endswith("second")
    assert third == "third"
    assert notifier.pending() == []


def test_long_content_is_truncated(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    FakeDiscord(httpserver, WEBHOOK_PATH).install()

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


def embeds(httpserver: HTTPServer) -> list[dict[str, Any]]:
    """Return the embed of every message the server received, in order."""
    return [request.get_json()["embeds"][0] for request, _ in httpserver.log]


def fields(embed: dict[str, Any]) -> dict[str, str]:
    """An embed's fields as name -> value."""
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


def accept(httpserver: HTTPServer) -> FakeDiscord:
    """Answer every webhook post as Discord does (the saved message with wait=true)."""
    return FakeDiscord(httpserver, WEBHOOK_PATH).install()


@pytest.mark.parametrize(
    ("message", "colour"),
    [
        (messages.ci_passed("preprod", SHA, ""), "success"),
        (messages.deploy_failed("preprod", SHA, "boom", "back", 1, "x"), "failure"),
        (messages.preprod_started("preprod", SHA, "ada", "Fix"), "warning"),
        (messages.ci_inconclusive("preprod", SHA, "pending", "", False), "warning"),
        (messages.ci_superseded("preprod", SHA, "cancelled", ""), "info"),
        ("🟢 preprod recovered after 5m down", "success"),  # the monitor's words
        ("🔴 preprod is DOWN (3 failed checks in a row)", "failure"),
        ("📚 Documentation build failed", "info"),
    ],
)
def test_embed_is_coloured_by_outcome(
    webhook: str,
    notifier: Notifier,
    httpserver: HTTPServer,
    message: str,
    colour: str,
) -> None:
    accept(httpserver)

    assert notifier.send(message) is True

    (embed,) = embeds(httpserver)
    assert embed["color"] == COLOURS[colour]
    title, _, description = str(message).partition("\n")
    assert embed["title"] == title
    assert embed.get("description", "") == description.strip()


def test_links_to_the_commit_the_cd_run_the_ci_run_and_the_public_url(
    webhook: str,
    tmp_path: Path,
    console: io.StringIO,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example/")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/mangetamain")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    target = make_target(tmp_path, public_url="https://mangetamain.example")
    accept(httpserver)
    ci_run = "https://github.example/acme/mangetamain/actions/runs/77"

    Notifier(target, console=console).send(messages.ci_passed("preprod", SHA, ci_run))

    (embed,) = embeds(httpserver)
    assert fields(embed) == {
        "Commit": f"[{SHA[:7]}](https://github.example/acme/mangetamain/commit/{SHA})",
        "CD run": "[#4242](https://github.example/acme/mangetamain/actions/runs/4242)",
        "CI": f"[CI run]({ci_run})",
        "URL": "https://mangetamain.example",
    }
    assert embed["url"] == ci_run
    assert console.getvalue() == str(messages.ci_passed("preprod", SHA, ci_run)) + "\n"


def test_the_configured_repository_links_the_commit_on_github(
    webhook: str, tmp_path: Path, console: io.StringIO, httpserver: HTTPServer
) -> None:
    target = make_target(tmp_path, ci={"repository": "acme/app"})
    accept(httpserver)

    Notifier(target, console=console).send(
        messages.rolled_back("preprod", SHA, None, "CI")
    )

    (embed,) = embeds(httpserver)
    assert fields(embed) == {
        "Commit": f"[{SHA[:7]}](https://github.com/acme/app/commit/{SHA})"
    }
    assert embed["color"] == COLOURS["warning"]


def test_without_a_repository_the_commit_is_named_not_linked(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    accept(httpserver)

    notifier.send(messages.preprod_succeeded("preprod", SHA))

    (embed,) = embeds(httpserver)
    assert fields(embed) == {"Commit": f"`{SHA[:7]}`"}
    assert "url" not in embed


def test_the_hosts_reached_over_ssh_are_named(
    webhook: str, tmp_path: Path, console: io.StringIO, httpserver: HTTPServer
) -> None:
    accept(httpserver)
    target = make_target(tmp_path)

    Notifier(target, console=console, hosts=["vm1"]).send(
        messages.preprod_succeeded("preprod", SHA)
    )
    Notifier(target, console=console, hosts=["vm1", "vm2"]).send("✅ fleet done")
    Notifier(target, console=console, hosts=["vm1"]).send(
        messages.rolled_back("preprod", SHA, None, "CI failed", "vm1")
    )

    one, two, named = [request.get_json() for request, _ in httpserver.log]
    assert one["content"].endswith("\nHost: vm1")
    assert fields(one["embeds"][0])["Host"] == "vm1"
    assert two["content"] == "✅ fleet done\nHosts: vm1, vm2"
    assert fields(two["embeds"][0])["Hosts"] == "vm1, vm2"
    assert "Host:" not in named["content"]  # the message names it already
    # The console is the operator's own terminal: the text as the task said it.
    assert "Host:" not in console.getvalue()


def test_a_late_message_is_marked_delayed_with_its_original_time(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=503
    )
    assert notifier.send(messages.ci_passed("preprod", SHA, "")) is False
    (kept,) = notifier.pending()
    first_sent = kept["time"]
    httpserver.clear()
    accept(httpserver)

    flushed = notifier.flush_outbox()

    assert (flushed.delivered, flushed.kept, flushed.set_aside) == (1, 0, 0)
    request, _ = httpserver.log[-1]
    body = request.get_json()
    when = f"{first_sent[:10]} {first_sent[11:19]} UTC"
    assert body["content"].startswith(f"⏰ Delayed: first sent at {when}\n✅ PREPROD")
    (embed,) = body["embeds"]
    assert embed["timestamp"] == first_sent
    assert embed["footer"]["text"] == f"⏰ Delayed: first sent at {when} · preprod"
    assert embed["color"] == COLOURS["success"]


def test_a_message_discord_refuses_is_set_aside_and_blocks_nothing(
    webhook: str,
    notifier: Notifier,
    httpserver: HTTPServer,
    console: io.StringIO,
) -> None:
    # Discord is down: both messages wait in the outbox.
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=502
    )
    notifier.send("poison")
    notifier.send("healthy")
    httpserver.clear()
    received: list[str] = []
    discord = FakeDiscord(httpserver, WEBHOOK_PATH)

    def answer(request: Request) -> Response:
        content = request.get_json()["content"]
        received.append(content)
        if "poison" in content:
            return Response('{"message": "Unknown Webhook", "code": 10015}', 404)
        return discord.answer(request)

    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_handler(answer)

    assert notifier.send("third") is True

    assert [r.split("\n")[-1] for r in received] == ["poison", "healthy", "third"]
    assert notifier.pending() == []
    (aside,) = notifier.rejected()
    assert aside["payload"]["content"] == "poison"
    assert aside["reason"] == "Discord answered 404 (Unknown Webhook)"
    assert "set aside in" in console.getvalue()
    assert TOKEN not in Path(notifier.target.paths.rejected).read_text()


def test_a_new_message_refused_goes_aside_not_to_the_outbox(
    webhook: str, notifier: Notifier, httpserver: HTTPServer, console: io.StringIO
) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=403
    )

    assert notifier.send("❌ PREPROD - failed") is False

    assert notifier.pending() == []
    assert [e["reason"] for e in notifier.rejected()] == ["Discord answered 403"]
    assert len(httpserver.log) == 1  # a refusal is not retried
    assert "refused by Discord (Discord answered 403)" in console.getvalue()

    assert notifier.requeue() == 1
    assert notifier.rejected() == []
    assert [e["payload"]["content"] for e in notifier.pending()] == [
        "❌ PREPROD - failed"
    ]


def test_a_malformed_embed_falls_back_to_the_plain_text(
    webhook: str, notifier: Notifier, httpserver: HTTPServer, console: io.StringIO
) -> None:
    discord = FakeDiscord(httpserver, WEBHOOK_PATH)

    def answer(request: Request) -> Response:
        if "embeds" in request.get_json():
            return Response('{"embeds": ["0"]}', 400)
        return discord.answer(request)

    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_handler(answer)

    assert notifier.send("✅ PREPROD - Deployed") is True

    assert [("embeds" in r.get_json()) for r, _ in httpserver.log] == [True, False]
    assert notifier.rejected() == [] and notifier.pending() == []
    assert "sent as text" in console.getvalue()


def test_secrets_are_redacted_in_the_embed_too(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    accept(httpserver)

    notifier.send(f"❌ failed\nwhile posting to {webhook}")

    request, _ = httpserver.log[0]
    assert TOKEN not in request.get_data(as_text=True)
    assert embeds(httpserver)[0]["description"] == "while posting to ***"


def test_a_torn_outbox_line_is_skipped_and_an_unknown_time_said(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    outbox = Path(notifier.target.paths.outbox)
    outbox.parent.mkdir(parents=True)
    old = {"payload": {"content": "from an older version"}}
    outbox.write_text('{"time": "2026-12-0\n' + json.dumps(old) + "\n")
    accept(httpserver)

    assert notifier.flush_outbox().delivered == 1

    (content,) = posted(httpserver)
    assert content == "⏰ Delayed: first sent at an unknown time\nfrom an older version"
    assert notifier.requeue() == 0  # nothing was set aside


def test_without_a_webhook_flush_only_counts(tmp_path: Path) -> None:
    notifier = Notifier(make_target(tmp_path), console=io.StringIO())

    assert notifier.flush_outbox().kept == 0


def test_rate_limited_past_the_longest_wait_goes_to_the_outbox(
    webhook: str, tmp_path: Path, httpserver: HTTPServer, waits: list[float]
) -> None:
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=429, headers={"Retry-After": "60"}
    )
    notifier = Notifier(
        make_target(tmp_path), console=io.StringIO(), sleep=waits.append
    )

    assert notifier.send("✅ done") is False

    assert waits == [] and notifier.rejected() == []
    assert [e["payload"]["content"] for e in notifier.pending()] == ["✅ done"]


def test_wait_true_is_asked_and_the_saved_message_is_the_proof(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    discord = accept(httpserver)

    assert notifier.send("✅ PREPROD - Deployed") is True

    assert discord.waits == ["true"]
    assert [m["content"] for m in discord.messages] == ["✅ PREPROD - Deployed"]


def test_an_answer_without_the_saved_message_keeps_it_in_the_outbox(
    webhook: str, notifier: Notifier, httpserver: HTTPServer, console: io.StringIO
) -> None:
    # A 204 (what Discord answers without wait=true, or a proxy in between) does
    # not say the message was saved: nothing proves it arrived, so it is kept.
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data(
        "", status=204
    )

    assert notifier.send("✅ PREPROD - Deployed") is False

    assert [e["payload"]["content"] for e in notifier.pending()] == [
        "✅ PREPROD - Deployed"
    ]
    assert notifier.rejected() == []
    assert "without the message it saved" in console.getvalue()


def test_a_long_message_is_shortened_to_discords_limits_never_refused(
    webhook: str, tmp_path: Path, httpserver: HTTPServer, console: io.StringIO
) -> None:
    # A long public URL and a long log tail together cross the embeds' 6,000
    # characters; a CI URL past 2,048 characters would be refused as the link.
    discord = accept(httpserver)
    public = "https://mangetamain.example/" + "p" * 1500
    target = make_target(tmp_path, public_url=public)
    notifier = Notifier(target, console=console)
    ci_url = "https://github.com/acme/app/actions/runs/1?" + "q" * 2100
    text = "❌ PREPROD - " + "t" * 300 + "\n" + "log line\n" * 600
    message = messages.Message(text, "failure", sha=SHA, ci_url=ci_url, url=public)

    assert notifier.send(message) is True

    assert discord.refused == []
    ((saved),) = discord.messages
    (embed,) = saved["embeds"]  # the embed, not the text-only fallback
    assert len(embed["title"]) == 256 and embed["title"].endswith("…")
    assert embed["description"].endswith("…")
    assert "url" not in embed  # a cut link would be a broken one
    assert len(saved["content"]) <= DISCORD_LIMIT
    counted = [embed["title"], embed["description"], embed["footer"]["text"]]
    counted += [f["name"] + f["value"] for f in embed["fields"]]
    assert len("".join(counted)) <= 6000


def test_an_outbox_entry_past_the_limits_is_fitted_when_sent(
    webhook: str, notifier: Notifier, httpserver: HTTPServer
) -> None:
    # Written by an older version, or marked delayed since: fitted at send time.
    discord = accept(httpserver)
    outbox = Path(notifier.target.paths.outbox)
    outbox.parent.mkdir(parents=True)
    old = {
        "time": "2026-12-01T00:00:00Z",
        "payload": {
            "content": "c" * 2000,
            "username": "u" * 120,
            "embeds": [
                {
                    "title": "old",
                    "description": "d" * 4096,
                    "footer": {"text": "f" * 2048},
                    "fields": [{"name": "n", "value": ""}] * 30,
                }
            ],
        },
    }
    outbox.write_text(json.dumps(old) + "\n")

    assert notifier.flush_outbox().delivered == 1

    assert discord.refused == []
    ((saved),) = discord.messages
    assert len(saved["username"]) == 80 and len(saved["content"]) == 2000
    assert len(saved["embeds"][0]["fields"]) == 25
