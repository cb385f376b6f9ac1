"""The words of the messages and the facts they carry for the Discord embed."""

from __future__ import annotations

import pytest

from cicd.core import messages
from cicd.core.messages import Message, as_message

SHA = "89abcdef0123456789abcdef0123456789abcdef"


def test_ci_in_progress_is_said_only_when_ci_is_watched() -> None:
    watched = messages.preprod_succeeded("preprod", SHA, watching=True)
    unwatched = messages.preprod_succeeded("preprod", SHA)

    assert watched == "✅ PREPROD - Deployed 89abcde\n⏳ CI verification in progress..."
    assert unwatched == "✅ PREPROD - Deployed 89abcde"
    assert unwatched.outcome == "success" and unwatched.sha == SHA


def test_prod_success_shows_the_url_it_is_given() -> None:
    message = messages.prod_succeeded("prod", SHA, "https://mangetamain.example")

    assert message.endswith("URL: https://mangetamain.example")
    assert message.url == "https://mangetamain.example"


def test_appending_text_keeps_the_facts() -> None:
    message = messages.ci_passed("preprod", SHA, "https://ci.example/runs/1")

    longer = message + messages.took(3.25)

    assert isinstance(longer, Message)
    assert longer == str(message) + "\nIn 3.2s"
    assert (longer.outcome, longer.sha, longer.ci_url) == (
        "success",
        SHA,
        "https://ci.example/runs/1",
    )
    tail = Message("\nlog", url="https://app.example")
    assert (message + tail).url == "https://app.example"


def test_plain_text_is_coloured_by_its_first_sign() -> None:
    assert as_message("✅ done").outcome == "success"
    assert as_message("  ❌ broken").outcome == "failure"
    assert as_message("⚠️ look").outcome == "warning"
    assert as_message("hello").outcome == "info"
    already = messages.ci_superseded("preprod", SHA, "cancelled", "")
    assert as_message(already) is already


def test_an_unknown_outcome_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        Message("x", "purple")


def test_app_log_tail_keeps_the_last_lines_in_a_code_block() -> None:
    log = "".join(f"line {n}\n" for n in range(1, 31)) + "```oops```\n"

    tail = messages.app_log_tail("preprod", log, lines=3)

    assert tail == (
        "\nLast 3 lines of the preprod app's log:\n```\n"
        "line 29\nline 30\n`\u200b``oops`\u200b``\n```"
    )
    assert messages.app_log_tail("preprod", "\n\n") == ""


def test_a_rollback_for_a_ci_failure_links_the_ci_run() -> None:
    run = "https://github.example/acme/app/actions/runs/5"
    reason = messages.ci_failed_reason(SHA, ["Tests"], run)

    message = messages.rolled_back("preprod", "f" * 40, SHA, reason)

    assert message.endswith(f"CI failed for 89abcde\nFailed: Tests\n{run}")
    assert (message.outcome, message.sha, message.ci_url) == ("warning", "f" * 40, run)
    assert messages.rolled_back("preprod", SHA, None, "by hand").ci_url == ""
