"""The words of every notification the pipeline sends, in one reviewable place.

Delivery (console, Discord, outbox) is :mod:`cicd.reporting.notify`'s job; this module
only
builds the messages. Each function is pure: the same facts give the same message, so
a change of wording is one diff here and the tests that read it.

A message is a :class:`Message`: its plain text (what the console shows and what
Discord falls back to) plus the facts the Discord embed is made of — the outcome that
colours it, the commit, the CI run and the public URL.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

#: The outcomes that colour a message: green, red, amber, grey.
SUCCESS, FAILURE, WARNING, INFO = "success", "failure", "warning", "info"
OUTCOMES = (SUCCESS, FAILURE, WARNING, INFO)

#: The outcome of a text that is not a :class:`Message`, by its first character.
_OUTCOME_OF_SIGN = {
    "✅": SUCCESS,
    "🟢": SUCCESS,
    "❌": FAILURE,
    "🔴": FAILURE,
    "⚠": WARNING,
    "⏳": WARNING,
    "🔄": WARNING,
    "🚀": WARNING,
    "🎯": WARNING,
    "🚫": WARNING,
}


class Message(str):
    """A notification: its plain text, plus the facts its Discord embed shows.

    It *is* its text (a ``str``), so printing, comparing or appending to it works as
    for any string; appending keeps the facts (``message + took(3.2)``).

    Attributes:
        outcome: ``success``, ``failure``, ``warning`` (or in progress) or ``info``.
        sha: The commit the message is about, linked when the repository is known.
        ci_url: The CI run's page.
        url: The environment's public URL, when the message is about it.
    """

    outcome: str
    sha: str | None
    ci_url: str
    url: str

    def __new__(
        cls,
        text: str,
        outcome: str = INFO,
        *,
        sha: str | None = None,
        ci_url: str = "",
        url: str = "",
    ) -> Message:
        """Make a message of ``text`` (see the class for the facts)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        message = super().__new__(cls, text)
        message.outcome = outcome
        message.sha = sha
        message.ci_url = ci_url
        message.url = url
        return message

    def __add__(self, other: str) -> Message:
        """Append text, keeping the facts (the right side fills those it lacks)."""
        if isinstance(other, Message):
            return Message(
                str(self) + str(other),
                self.outcome,
                sha=self.sha or other.sha,
                ci_url=self.ci_url or other.ci_url,
                url=self.url or other.url,
            )
        return Message(
            str(self) + other,
            self.outcome,
            sha=self.sha,
            ci_url=self.ci_url,
            url=self.url,
        )


def as_message(text: str) -> Message:
    """``text`` as a :class:`Message`; plain text gets the outcome of its first sign."""
    if isinstance(text, Message):
        return text
    return Message(text, _OUTCOME_OF_SIGN.get(text.lstrip()[:1], INFO))


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


#: Lines of the app's log a failure message carries at most.
LOG_TAIL_LINES = 20


def app_log_tail(env: str, text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The app's last log lines, to append to a failed readiness message.

    Args:
        env: The environment.
        text: What the runtime's ``logs()`` returned.
        lines: The most lines kept (the last ones).

    Returns:
        A code block headed by what it is, or ``""`` when the log is empty.
    """
    kept = [line.rstrip() for line in text.strip("\n").splitlines()][-lines:]
    if not any(kept):
        return ""
    # A fence inside the log would end the block early in Discord.
    body = "\n".join(kept).replace("```", "`\u200b``")
    return f"\nLast {len(kept)} lines of the {env} app's log:\n```\n{body}\n```"


# -- deploys -------------------------------------------------------------------


def preprod_started(env: str, sha: str, author: str, subject: str) -> Message:
    """A preprod deploy begins (with who and what, as the original did)."""
    return Message(
        f"🚀 {env.upper()} - Deployment started\nSHA: {short(sha)}\n"
        f"Author: @{author or '?'}\nMessage: {subject or '?'}" + commit_link(sha),
        WARNING,
        sha=sha,
    )


def preprod_succeeded(
    env: str, sha: str, url: str = "", *, watching: bool = False
) -> Message:
    """A preprod deploy is live; CI decides next (in this run only with ``--watch``)."""
    return Message(
        f"✅ {env.upper()} - Deployed {short(sha)}"
        + ("\n⏳ CI verification in progress..." if watching else ""),
        SUCCESS,
        sha=sha,
        url=url,
    )


#: How the ledger's ``refused`` event of a failed pre-flight begins (the report
#: counts them by it).
PREFLIGHT_REFUSED = "pre-flight failed"


def prod_started(
    env: str,
    sha: str,
    *,
    forced: str = "",
    reason: str = "",
    preflight: Sequence[str] = (),
) -> Message:
    """A production deploy begins.

    Args:
        env: The environment.
        sha: The release deployed.
        forced: What ``--force`` overrode ("not validated by CI", "rolled back in
            prod", "pre-flight: smoke"), or nothing.
        reason: Why, as the person gave it with ``--reason``.
        preflight: The pre-flight's lines (its heading, then one per item).
    """
    return Message(
        f"🎯 {env.upper()} - Deployment started\nSHA: {short(sha)}"
        + (f" (FORCED: {forced})" if forced else "")
        + (f"\nReason: {reason}" if reason else "")
        + "".join(f"\n{line}" for line in preflight),
        WARNING,
        sha=sha,
    )


def prod_refused(env: str, sha: str, preflight: Sequence[str]) -> Message:
    """The pre-flight failed: production was not touched."""
    return Message(
        f"🚫 {env.upper()} - Deployment of {short(sha)} refused by the pre-flight; "
        "nothing changed" + "".join(f"\n{line}" for line in preflight),
        WARNING,
        sha=sha,
    )


def prod_succeeded(env: str, sha: str, url: str) -> Message:
    """A production deploy is live; ``url`` is the public one users open."""
    return Message(
        f"🎯 {env.upper()} - Deployment successful ✅\nSHA: {short(sha)}\n"
        f"PREPROD ✅ → PROD ✅\nURL: {url}",
        SUCCESS,
        sha=sha,
        url=url,
    )


def prod_cancelled(env: str, confirm: str, expected: str) -> Message:
    """The typed confirmation was wrong: nothing happens."""
    return Message(
        f"🚫 {env.upper()} - Deployment cancelled: confirmation was "
        f"{confirm!r}, not {expected}",
        WARNING,
    )


def took(seconds: float) -> str:
    """The duration line appended to a successful deploy."""
    return f"\nIn {seconds:.1f}s"


def failed_before_switch(env: str, sha: str, reason: str) -> Message:
    """Export or backup failed: nothing was switched."""
    return Message(
        f"❌ {env.upper()} - Deployment of {short(sha)} failed before "
        f"any switch: {reason}\nNothing changed: the running release stays.",
        FAILURE,
        sha=sha,
    )


def deploy_failed(
    env: str, sha: str, reason: str, outcome: str, hosts: int, by_hand: str
) -> Message:
    """A deploy failed after its switch; ``outcome`` says what was put back."""
    return Message(
        f"❌ {env.upper()} - Deployment of {short(sha)} failed: {reason}\n"
        f"🔄 {outcome}"
        + (f" on {hosts} hosts" if hosts > 1 else "")
        + f"\nBy hand: {by_hand}",
        FAILURE,
        sha=sha,
    )


# -- rollbacks -------------------------------------------------------------------


def rolled_back(
    env: str,
    sha: str,
    abandoned: str | None,
    reason: str,
    host: str | None = None,
    *,
    ci_url: str = "",
) -> Message:
    """A rollback is done and ready (a reason that links a CI run keeps its link).

    ``ci_url``: the CI run's link when ``reason`` is plain text (a repair finishing
    a rollback has the reason back from the intent file).
    """
    where = f" on {host}" if host else ""
    return Message(
        f"🔄 {env.upper()} - Rolled back to {short(sha)}{where}"
        + (f" (from {short(abandoned)})" if abandoned else "")
        + f": {reason}",
        WARNING,
        sha=sha,
        ci_url=ci_url or getattr(reason, "ci_url", ""),
    )


def rollback_failed(env: str, sha: str, error: object) -> Message:
    """A rollback's release did not become ready."""
    return Message(
        f"❌ {env.upper()} - Rollback to {short(sha)} failed: {error}", FAILURE, sha=sha
    )


def rollback_impossible(
    env: str, reason: str, error: object, host: str = ""
) -> Message:
    """The watcher could not roll back automatically."""
    where = f" on {host}" if host else ""
    return Message(
        f"❌ {env.upper()} - {reason}\nAutomatic rollback{where} impossible: {error}",
        FAILURE,
    )


# -- CI verdicts -------------------------------------------------------------------


def ci_passed(env: str, sha: str, url: str) -> Message:
    """CI passed: the sha is validated."""
    return Message(
        f"✅ {env.upper()} - CI passed for {short(sha)}: validated{_link(url)}",
        SUCCESS,
        sha=sha,
        ci_url=url,
    )


def ci_rerun_passed(env: str, sha: str, before: str, detail: str, url: str) -> Message:
    """A re-run passed for a sha an earlier run did not."""
    return Message(
        f"✅ {env.upper()} - CI re-run passed for {short(sha)}: validated "
        f"(it was {before}: {detail}); it is not redeployed{_link(url)}",
        SUCCESS,
        sha=sha,
        ci_url=url,
    )


def ci_superseded(env: str, sha: str, detail: str, url: str) -> Message:
    """CI was cancelled because a newer push superseded the sha."""
    return Message(
        f"⏭️ {env.upper()} - CI for {short(sha)}: {detail}; not a failure, "
        f"nothing changed{_link(url)}",
        INFO,
        sha=sha,
        ci_url=url,
    )


def failed_jobs(failed: Sequence[str]) -> str:
    """The line naming CI's failed jobs and steps, or nothing."""
    return "\nFailed: " + ", ".join(failed) if failed else ""


def ci_failed_reason(sha: str, failed: Sequence[str], url: str) -> Message:
    """Why the watcher rolls back (the rollback message's reason)."""
    return Message(
        f"CI failed for {short(sha)}{failed_jobs(failed)}{_link(url)}",
        FAILURE,
        sha=sha,
        ci_url=url,
    )


def ci_failed_not_running(
    env: str, sha: str, failed: Sequence[str], url: str, now: str | None
) -> Message:
    """CI failed for a sha that no longer runs: it is only marked bad."""
    return Message(
        f"❌ {env.upper()} - CI failed for {short(sha)}{failed_jobs(failed)}"
        f"{_link(url)}\n{short(now)} runs now: nothing rolled back; "
        f"{short(sha)} is marked bad",
        FAILURE,
        sha=sha,
        ci_url=url,
    )


def ci_inconclusive(
    env: str, sha: str, detail: str, url: str, rolling: bool
) -> Message:
    """No verdict: a person should look (or it rolls back, when configured)."""
    return Message(
        f"⚠️ {env.upper()} - CI verdict inconclusive for {short(sha)}: {detail}"
        f"{_link(url)}\n"
        + (
            "rolling back (ci.on_inconclusive = rollback)"
            if rolling
            else "the deploy is kept; a person should check"
        ),
        WARNING,
        sha=sha,
        ci_url=url,
    )
