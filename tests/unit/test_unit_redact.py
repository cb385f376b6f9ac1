"""Unit tests of :mod:`cicd.redact`: secrets from the environment never get printed."""

from __future__ import annotations

import pytest

from cicd.redact import MASK, redact, secrets

WEBHOOK = "https://discord.com/api/webhooks/123456789012/AbCdEf-token_value"
WEBHOOK_PATH = "/api/webhooks/123456789012/AbCdEf-token_value"
TOKEN = "ghp_0123456789abcdefABCDEF"


def test_webhook_url_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", WEBHOOK)

    text = redact(f"POST {WEBHOOK} failed; retrying {WEBHOOK}")

    assert text == f"POST {MASK} failed; retrying {MASK}"


def test_webhook_path_alone_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", WEBHOOK)
    message = (
        "HTTPSConnectionPool(host='discord.com', port=443): Max retries exceeded "
        f"with url: {WEBHOOK_PATH} (Caused by NewConnectionError)"
    )

    text = redact(message)

    assert "AbCdEf-token_value" not in text
    assert "123456789012" not in text
    assert f"with url: {MASK} (Caused" in text


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "CICD_GITHUB_TOKEN"])
def test_github_token_is_masked(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, TOKEN)

    text = redact(f"git clone https://x-access-token:{TOKEN}@github.com/o/r.git")

    assert text == f"git clone https://x-access-token:{MASK}@github.com/o/r.git"


def test_every_secret_is_masked_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)

    text = redact(f"{TOKEN} then {WEBHOOK} then {WEBHOOK_PATH}")

    assert text == f"{MASK} then {MASK} then {MASK}"


def test_surrounding_whitespace_of_a_secret_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", f"  {TOKEN}\n")

    assert redact(f"token={TOKEN}") == f"token={MASK}"


def test_short_values_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "abc12")
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", "x")

    assert secrets() == []
    assert redact("abc12 x is fine") == "abc12 x is fine"


def test_no_secret_leaves_text_unchanged() -> None:
    assert secrets() == []
    assert redact("nothing to hide") == "nothing to hide"
