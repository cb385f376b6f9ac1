"""Production's choice of sha and its checks, with no process.

``decide_prod`` is what ``deploy.prod`` and ``deploy.prod --plan`` both ask: which
sha goes to production, or why not. These tests build the two ledgers as deploys,
rollbacks and verdicts write them.
"""

from __future__ import annotations

import pytest

from cicd.core import messages
from cicd.pipeline.preflight import Item, Preflight, forced_items
from cicd.pipeline.production import check_reason, decide_prod
from cicd.core.errors import UsageError
from cicd.core.ledger import Event, EventName
from cicd.core.state import EnvState, replay

A, B = "a" * 40, "b" * 40
WHEN = "2026-11-26T16:24:58.837067Z"


def ev(env: str, name: EventName, sha: str, **fields: object) -> Event:
    """One event of ``env``."""
    return Event(event=name, env=env, sha=sha, **fields)  # type: ignore[arg-type]


def preprod(*validated: str) -> EnvState:
    """Preprod, where CI validated ``validated`` in that order."""
    events = [ev("preprod", "validated", sha) for sha in validated]
    return replay("preprod", events, validated=validated[-1] if validated else None)


def prod(*events: Event) -> EnvState:
    """Production after ``events``."""
    return replay("prod", events)


def rolled_back(sha: str, reason: str = "by hand") -> Event:
    """The mark a rollback of production leaves on the release it abandons."""
    return ev(
        "prod",
        "marked_bad",
        sha,
        outcome="bad",
        detail=f"rolled back: {reason}",
        time=WHEN,
        actor="ada",
    )


def test_the_default_is_preprods_validated_sha() -> None:
    decision = decide_prod(preprod(A, B), [prod()], None, force=False)
    assert (decision.sha, decision.refused, decision.forced) == (B, "", "")


def test_no_validated_sha_on_preprod_is_refused_with_nothing_chosen() -> None:
    decision = decide_prod(preprod(), [prod()], None, force=True)
    assert decision.sha is None
    assert decision.refused.startswith("preprod has no CI-validated sha yet")
    assert decision.detail == "no validated sha on preprod"


def test_a_release_rolled_back_in_prod_is_never_the_default() -> None:
    for force in (False, True):
        decision = decide_prod(preprod(A, B), [prod(rolled_back(B))], None, force=force)
        assert decision.sha == B
        assert decision.refused == (
            f"{B[:7]}, preprod's last CI-validated sha, was rolled back in prod on "
            "2026-11-26 16:24 UTC by ada (by hand): deploy a newer validated sha "
            f"with --sha SHA, or redeploy this one on purpose with --sha {B[:7]} "
            '--force --reason "..."'
        )
        assert decision.detail == "default skipped: rolled back in prod"


def test_one_host_that_rolled_it_back_is_enough() -> None:
    fleet = [prod(), prod(rolled_back(B))]
    assert decide_prod(preprod(B), fleet, None, force=False).refused


def test_naming_a_release_rolled_back_in_prod_takes_force() -> None:
    state = [prod(rolled_back(B, "slow pages"))]
    refused = decide_prod(preprod(B), state, B, force=False)
    assert refused.refused == (
        f"{B[:7]} was rolled back in prod on 2026-11-26 16:24 UTC by ada "
        '(slow pages): to redeploy it on purpose pass --force --reason "..."'
    )
    assert refused.detail == "rolled back in prod"
    forced = decide_prod(preprod(B), state, B, force=True)
    assert (forced.sha, forced.refused, forced.forced) == (B, "", "rolled back in prod")


def test_a_release_that_failed_in_prod_is_said_to_be_marked_bad() -> None:
    failed = ev("prod", "marked_bad", B, outcome="bad", detail="not ready\nlog")
    decision = decide_prod(preprod(B), [prod(failed)], None, force=False)
    assert f"{B[:7]}, preprod's last CI-validated sha, was marked bad in prod " in (
        decision.refused
    )
    assert "(not ready\\nlog)" not in decision.refused  # its first line only
    assert "(not ready)" in decision.refused


def test_a_repaired_rollback_reads_as_a_rollback() -> None:
    mark = ev("prod", "marked_bad", B, detail="rolled back (completed by repair)")
    refused = decide_prod(preprod(B), [prod(mark)], None, force=False).refused
    assert "was rolled back in prod on " in refused
    assert " (completed by repair): deploy a newer" in refused


def test_validated_again_in_prod_it_is_the_default_again() -> None:
    # A deliberate redeploy records preprod's validation in production's ledger.
    state = prod(rolled_back(B), ev("prod", "validated", B))
    assert decide_prod(preprod(B), [state], None, force=False).refused == ""


def test_a_sha_ci_has_not_validated_takes_force() -> None:
    refused = decide_prod(preprod(A), [prod()], B, force=False)
    assert refused.detail == "not validated by CI"
    assert refused.refused.startswith(f"sha {B[:7]} has not been validated by CI")
    forced = decide_prod(preprod(A), [prod(rolled_back(B))], B, force=True)
    assert forced.forced == "rolled back in prod, not validated by CI"


def test_force_needs_a_reason_kept_on_one_bounded_line() -> None:
    for blank in ("", "  \n\t"):
        with pytest.raises(UsageError, match=r'^--force needs --reason "\.\.\."'):
            check_reason(True, blank)
    assert check_reason(False, "") == ""
    assert check_reason(True, " data\nfixed  ") == "data fixed"
    assert len(check_reason(True, "x" * 500)) == 200


def test_marked_bad_names_the_event_behind_the_verdict() -> None:
    first, second = rolled_back(B, "one"), rolled_back(B, "two")
    state = prod(first, ev("prod", "validated", B), second)
    assert state.marked_bad(B) == second and state.marked_bad(A) is None
    assert prod(first, ev("prod", "validated", B)).marked_bad(B) is None


def test_a_forced_start_message_says_what_and_why() -> None:
    text = messages.prod_started("prod", B, forced="rolled back in prod", reason="ok")
    assert text.splitlines() == [
        "🎯 PROD - Deployment started",
        f"SHA: {B[:7]} (FORCED: rolled back in prod)",
        "Reason: ok",
    ]
    assert messages.prod_started("prod", B) == (
        f"🎯 PROD - Deployment started\nSHA: {B[:7]}"
    )


# -- the pre-flight's verdict, in words -----------------------------------------


def preflight(*items: tuple[str, bool | None, str]) -> Preflight:
    return Preflight(
        B, tuple(Item(n, ok, figure) for n, ok, figure in items), False, 2.04
    )


def test_a_failed_item_refuses_and_one_not_checked_is_shown_but_not_blamed() -> None:
    check = preflight(
        ("serving", False, f"preprod serves {A[:7]}, not {B[:7]}"),
        ("logs", None, f"not read: preprod does not serve {B[:7]}"),
        ("window", True, 'none set (window = ""): any time'),
    )

    assert not check.ok and check.failed == ["serving"]
    assert check.lines() == [
        f"pre-flight of {B[:7]} (2.0s): failed: serving",
        f"  ✗ serving  preprod serves {A[:7]}, not {B[:7]}",
        f"  – logs     not read: preprod does not serve {B[:7]}",
        '  ✓ window   none set (window = ""): any time',
    ]
    assert check.detail() == "pre-flight failed: serving"
    assert check.refusal().startswith(
        f"pre-flight failed for {B[:7]} (serving: preprod serves {A[:7]}, not "
    )
    assert "--force --reason" in check.refusal()
    assert forced_items(check) == "pre-flight: serving"
    assert [i["ok"] for i in check.as_dict()["items"]] == [False, None, True]


def test_a_passed_pre_flight_forces_nothing_and_none_says_nothing() -> None:
    assert forced_items(preflight(("window", True, "inside"))) == ""
    assert Preflight(B).ok and Preflight(B).lines() == []


def test_the_smoke_item_lists_each_page_with_its_load_time() -> None:
    from cicd.core.smoke import PageResult

    pages = (
        PageResult("Ratings", True, 1.234),
        PageResult(
            "Seasonality", False, 0.8, "the page shows an exception: boom", "boom"
        ),
    )
    item = Item("smoke", False, "1/2 pages ok, slowest Ratings 1.23 s", pages)

    assert item.lines() == [
        "✗ smoke    1/2 pages ok, slowest Ratings 1.23 s",
        "    ✓ Ratings  1.23 s",
        "    ✗ Seasonality  0.80 s: the page shows an exception: boom",
    ]
    shown = item.as_dict()["pages"]
    assert shown[1] == {
        "page": "Seasonality",
        "ok": False,
        "seconds": 0.8,
        "reason": "the page shows an exception: boom",
        "exception": "boom",
    }


def test_the_prod_messages_list_the_pre_flight() -> None:
    lines = preflight(("window", False, "Fri 17:05 UTC, outside Tue-Thu")).lines()

    started = messages.prod_started(
        "prod", B, forced="pre-flight: window", reason="hotfix", preflight=lines
    )
    assert started.splitlines()[1:] == [
        f"SHA: {B[:7]} (FORCED: pre-flight: window)",
        "Reason: hotfix",
        *lines,
    ]
    refused = messages.prod_refused("prod", B, lines)
    assert refused.splitlines()[0] == (
        f"🚫 PROD - Deployment of {B[:7]} refused by the pre-flight; nothing changed"
    )
    assert refused.splitlines()[1:] == lines


def test_the_report_counts_refused_pre_flights_in_its_window_only() -> None:
    from datetime import UTC, datetime

    from cicd.reporting.dora import build

    def refused(detail: str, time: str) -> Event:
        return Event(
            "refused", "prod", sha=B, outcome="refused", detail=detail, time=time
        )

    events = [
        refused("pre-flight failed: smoke", "2026-11-01T10:00:00.000000Z"),  # too old
        refused("pre-flight failed: logs, window", "2026-12-06T10:00:00.000000Z"),
        refused("pre-flight failed: serving", "2026-12-07T09:00:00.000000Z"),
        refused("confirmation 'deploy'", "2026-12-07T09:30:00.000000Z"),
        refused("not validated by CI", "2026-12-07T09:40:00.000000Z"),
    ]
    report = build(
        "prod", events, [], {}, end=datetime(2026, 12, 7, 12, tzinfo=UTC), days=7
    )

    assert report.refused_preflights == 2
    assert report.as_dict()["refused_preflights"] == 2
