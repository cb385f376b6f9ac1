"""Unit tests of :mod:`cicd.core.redact`: secrets from the environment never get
printed."""

from __future__ import annotations

import io
import logging
import sys
import threading
import warnings
from collections.abc import Iterator

import pytest

from cicd.core.redact import MASK, install, redact, redact_record, secrets

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


def record_of(msg: str, *args: object) -> logging.LogRecord:
    """A record as urllib3 makes one: the secret in the arguments."""
    return logging.LogRecord("urllib3", logging.DEBUG, __file__, 1, msg, args, None)


def test_a_log_record_is_masked_before_any_handler_formats_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", WEBHOOK)
    record = record_of('%s://%s:%s "%s %s"', "https", "h", 443, "POST", WEBHOOK_PATH)

    redact_record(record)

    assert record.getMessage() == 'https://h:443 "POST ***"'
    assert record.args == ()


def test_a_record_without_a_secret_stays_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    record = record_of("%s requests", 3)

    redact_record(record)

    assert record.args == (3,) and record.getMessage() == "3 requests"


def test_a_bad_format_and_a_traceback_are_masked_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    bad = record_of("%s %s", TOKEN)  # one argument for two: logging would dump both
    try:
        raise RuntimeError(f"Authorization: Bearer {TOKEN}")
    except RuntimeError:
        failed = record_of("request failed")
        failed.exc_info = sys.exc_info()
    failed.stack_info = f"Stack: token {TOKEN}"
    formatted = record_of("x")
    formatted.exc_text = f"already formatted {TOKEN}"

    for record in (bad, failed, formatted):
        text = logging.Formatter().format(redact_record(record))
        assert TOKEN not in text and MASK in text


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """:func:`install` done afresh, and undone after the test (pytest's own hooks)."""
    factory = logging.getLogRecordFactory()
    for owner, name in (
        (sys, "excepthook"),
        (threading, "excepthook"),
        (warnings, "formatwarning"),
    ):
        monkeypatch.setattr(owner, name, getattr(owner, name))
    monkeypatch.setattr("cicd.core.redact._installed", False)
    install()
    install()  # twice is once
    yield
    logging.setLogRecordFactory(factory)


@pytest.mark.usefixtures("installed")
def test_every_logger_and_handler_masks_once_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", WEBHOOK)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    monkeypatch.setattr(root, "level", logging.DEBUG)
    try:
        logging.getLogger("a.library").debug('"POST %s"', WEBHOOK_PATH)
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == '"POST ***"\n'


@pytest.mark.usefixtures("installed")
def test_uncaught_exceptions_and_warnings_are_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    try:
        raise ValueError(f"bad header {TOKEN}")
    except ValueError as error:
        sys.excepthook(type(error), error, error.__traceback__)
        thread = threading.Thread(name="poller")
        threading.excepthook(
            threading.ExceptHookArgs(  # type: ignore[call-arg]
                (type(error), error, error.__traceback__, thread)
            )
        )
        ended = (SystemExit, SystemExit(), None, None)
        threading.excepthook(threading.ExceptHookArgs(ended))  # type: ignore[call-arg]
    shown = warnings.formatwarning(f"see {TOKEN}", UserWarning, "x.py", 1)

    err = capsys.readouterr().err
    assert "Traceback" in err and "Exception in thread poller:" in err
    assert err.count("ValueError: bad header ***") == 2
    assert TOKEN not in err + shown and MASK in shown
