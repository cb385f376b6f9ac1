"""Unit tests of :mod:`cicd.core.inputs`: the one rule for every option and variable."""

from __future__ import annotations

import pytest

from cicd.core.errors import UsageError
from cicd.core.inputs import (
    ENVIRONMENT,
    LINE,
    PATH,
    SECONDS,
    TEXT,
    TOKEN,
    URL,
    WEBHOOK,
    check,
    check_environment,
    check_host,
    check_options,
)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (SECONDS, "1.5"),
        (LINE, "rollback; see #12 & the — déploiement"),
        (TEXT, "👨‍👩‍👧 deployed\n\tdetails"),
        (PATH, "/srv/mangetamain/кэш/report.html"),
        (URL, "file:///tmp/pages%20repo"),
        (TOKEN, "ghp_0123456789abcdef"),
        (LINE, ""),  # not given
    ],
)
def test_good_values_pass_unchanged(kind: object, value: str) -> None:
    assert check("--x", value, kind) == value  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "value", "said"),
    [
        (SECONDS, "9" * 10_240, "got 10240 characters (at most 32)"),
        (LINE, "v1\r\nX-Injected: yes", "got a character '\\r' at position 3"),
        (LINE, "a\u202eb", "got a character U+202E at position 2"),
        (LINE, "bytes \udcff", "got a character U+DCFF at position 7"),
        (TEXT, "clear \x1b[2J", "got a character '\\x1b' at position 7"),
        (URL, "https://exämple.test", "(only printable ASCII goes into a URL"),
        (URL, "not a url", "got 'not a url'"),
        (PATH, "/tmp/" + "n" * 300, "a name of 300 bytes (at most 255)"),
        (PATH, "/ж" * 1500, "got 4500 bytes (at most 4096)"),
    ],
)
def test_bad_values_are_refused_in_one_clipped_line(
    kind: object, value: str, said: str
) -> None:
    with pytest.raises(UsageError) as refused:
        check("--x", value, kind)  # type: ignore[arg-type]
    message = str(refused.value)
    assert message.startswith("--x must be ") and said in message, message
    assert "\n" not in message and len(message) < 200


@pytest.mark.parametrize(
    "value", ["ghp_abc\r\ndef", "ghp_tökén", "two words", "x" * 2000]
)
def test_a_secret_is_never_shown(value: str) -> None:
    for kind in (TOKEN, WEBHOOK):
        with pytest.raises(UsageError) as refused:
            check("GITHUB_TOKEN", value, kind)
        message = str(refused.value)
        assert "its value is not shown" in message
        assert value[:4] not in message.replace("GITHUB_TOKEN", "")


def test_options_are_checked_by_name_and_unknown_ones_as_one_line() -> None:
    check_options({"lock_wait": "5", "json": True, "sha": "HEAD"})
    with pytest.raises(UsageError, match="^--lock-wait must be a number of seconds"):
        check_options({"lock_wait": "5" * 100})
    with pytest.raises(UsageError, match="^--new-option must be one line of text"):
        check_options({"new_option": "a\nb"})


def test_the_environment_is_checked_stripped_and_only_when_set() -> None:
    check_environment({"GITHUB_TOKEN": "  ghp_abc\n", "GITHUB_ACTOR": "nektos/act"})
    check_environment({name: "" for name in ENVIRONMENT})
    with pytest.raises(UsageError, match="^GITHUB_REPOSITORY must be owner/name"):
        check_environment({"GITHUB_REPOSITORY": "no-slash"})
    with pytest.raises(UsageError, match="^GITHUB_RUN_ID must be a number"):
        check_environment({"GITHUB_RUN_ID": "12a"})


@pytest.mark.parametrize("host", ["vm", "deploy@10.0.0.5:2222", "[::1]", "a.b-c_d"])
def test_hosts(host: str) -> None:
    assert check_host(host) == host


@pytest.mark.parametrize("host", ["vm;id", "vm:$(id)", "-oProxyCommand=x", "a b"])
def test_bad_hosts(host: str) -> None:
    with pytest.raises(UsageError, match="not a valid host"):
        check_host(host)
