"""The words of every notification the pipeline sends, in one reviewable place.

Delivery (console, Discord, outbox) is :mod:`cicd.notify`'s job; this module only
builds the text. Each function is pure: the same facts give the same message, so a
change of wording is one diff here and the tests that read it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def short(sha: str | None) -> str:
    """Seven characters of a sha, or ``none``."""
    return sha[:7] if sha else "none"


def commit_link(sha: str) -> str:
    """A link to the commit on GitHub, from the runner's variables, or nothing."""
    server = os.environ.get("GITHUB_SERVER_URL", "").rstrip("/")
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    return f"\n{server}/{repository}/commit/{sha}" if server and repository else ""


def rollback_command(env: str, sha: str | None, host: str | None = None) -> str:
    """The exact command a person runs to roll back by hand (``host``: over SSH)."""
    to = f" --to {short(sha)}" if sha else ""
    if host:
        return f"fab -H {host} rollback --env {env}{to}"
    return f"invoke rollback --env {env}{to}"


def _link(url: str) -> str:
    return f"\n{url}" if url else ""


# -- deploys -------------------------------------------------------------------


def preprod_started(env: str, sha: str, author: str, subject: str) -> str:
    """A preprod deploy begins (with who and what, as the original did)."""
    return (
        f"🚀 {env.upper()} - Deployment started\nSHA: {short(sha)}\n"
        f"Author: @{author or '?'}\nMessage: {subject or '?'}" + commit_link(sha)
    )


def preprod_succeeded(env: str, sha: str) -> str:
    """A preprod deploy is live; CI decides next."""
    return (
        f"✅ {env.upper()} - Deployed {short(sha)}\n⏳ CI verification in progress..."
    )


def prod_started(env: str, sha: str, *, forced: bool) -> str:
    """A production deploy begins."""
    return f"🎯 {env.upper()} - Deployment started\nSHA: {short(sha)}" + (
        " (FORCED: not validated by CI)" if forced else ""
    )


def prod_succeeded(env: str, sha: str, url: str) -> str:
    """A production deploy is live."""
    return (
        f"🎯 {env.upper()} - Deployment successful ✅\nSHA: {short(sha)}\n"
        f"PREPROD ✅ → PROD ✅\nURL: {url}"
    )


def prod_cancelled(env: str, confirm: str, expected: str) -> str:
    """The typed confirmation was wrong: nothing happens."""
    return (
        f"🚫 {env.upper()} - Deployment cancelled: confirmation was "
        f"{confirm!r}, not {expected}"
    )


def took(seconds: float) -> str:
    """The duration line appended to a successful deploy."""
    return f"\nIn {seconds:.1f}s"


def failed_before_switch(env: str, sha: str, reason: str) -> str:
    """Export or backup failed: nothing was switched."""
    return (
        f"❌ {env.upper()} - Deployment of {short(sha)} failed before "
        f"any switch: {reason}\nNothing changed: the running release stays."
    )


def deploy_failed(
    env: str, sha: str, reason: str, outcome: str, hosts: int, by_hand: str
) -> str:
    """A deploy failed after its switch; ``outcome`` says what was put back."""
    return (
        f"❌ {env.upper()} - Deployment of {short(sha)} failed: {reason}\n"
        f"🔄 {outcome}"
        + (f" on {hosts} hosts" if hosts > 1 else "")
        + f"\nBy hand: {by_hand}"
    )


# -- rollbacks -------------------------------------------------------------------


def rolled_back(
    env: str, sha: str, abandoned: str | None, reason: str, host: str | None = None
) -> str:
    """A rollback is done and ready."""
    where = f" on {host}" if host else ""
    return (
        f"🔄 {env.upper()} - Rolled back to {short(sha)}{where}"
        + (f" (from {short(abandoned)})" if abandoned else "")
        + f": {reason}"
    )


def rollback_failed(env: str, sha: str, error: object) -> str:
    """A rollback's release did not become ready."""
    return f"❌ {env.upper()} - Rollback to {short(sha)} failed: {error}"


def rollback_impossible(env: str, reason: str, error: object, host: str = "") -> str:
    """The watcher could not roll back automatically."""
    where = f" on {host}" if host else ""
    return f"❌ {env.upper()} - {reason}\nAutomatic rollback{where} impossible: {error}"


# -- CI verdicts -------------------------------------------------------------------


def ci_passed(env: str, sha: str, url: str) -> str:
    """CI passed: the sha is validated."""
    return f"✅ {env.upper()} - CI passed for {short(sha)}: validated{_link(url)}"


def ci_rerun_passed(env: str, sha: str, before: str, detail: str, url: str) -> str:
    """A re-run passed for a sha an earlier run did not."""
    return (
        f"✅ {env.upper()} - CI re-run passed for {short(sha)}: validated "
        f"(it was {before}: {detail}); it is not redeployed{_link(url)}"
    )


def ci_superseded(env: str, sha: str, detail: str, url: str) -> str:
    """CI was cancelled because a newer push superseded the sha."""
    return (
        f"⏭️ {env.upper()} - CI for {short(sha)}: {detail}; not a failure, "
        f"nothing changed{_link(url)}"
    )


def failed_jobs(failed: Sequence[str]) -> str:
    """The line naming CI's failed jobs and steps, or nothing."""
    return "\nFailed: " + ", ".join(failed) if failed else ""


def ci_failed_reason(sha: str, failed: Sequence[str], url: str) -> str:
    """Why the watcher rolls back (the rollback message's reason)."""
    return f"CI failed for {short(sha)}{failed_jobs(failed)}{_link(url)}"


def ci_failed_not_running(
    env: str, sha: str, failed: Sequence[str], url: str, now: str | None
) -> str:
    """CI failed for a sha that no longer runs: it is only marked bad."""
    return (
        f"❌ {env.upper()} - CI failed for {short(sha)}{failed_jobs(failed)}"
        f"{_link(url)}\n{short(now)} runs now: nothing rolled back; "
        f"{short(sha)} is marked bad"
    )


def ci_inconclusive(env: str, sha: str, detail: str, url: str, rolling: bool) -> str:
    """No verdict: a person should look (or it rolls back, when configured)."""
    return (
        f"⚠️ {env.upper()} - CI verdict inconclusive for {short(sha)}: {detail}"
        f"{_link(url)}\n"
        + (
            "rolling back (ci.on_inconclusive = rollback)"
            if rolling
            else "the deploy is kept; a person should check"
        )
    )
