"""``notify.send`` and ``notify.flush``: the project's notifier, for workflow steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke.tasks import task

from cicd.tasks.boundary import reported
from cicd.tasks.hosts import env_names, notifier, target, task_settings

if TYPE_CHECKING:
    from cicd.reporting.notify import Notifier

#: Set-aside messages listed by name at most; the rest are counted.
LISTED = 10


@task(
    help={
        "text": "The message.",
        "env": "Environment whose outbox keeps it if Discord is unreachable "
        "(default: preprod).",
        "outcome": "Colour of the Discord embed: success, failure, warning or info. "
        "Default: from the text's first sign (✅ success, ❌ failure, ⚠️ warning).",
    }
)
def send(c: Any, text: str = "", env: str = "preprod", outcome: str = "") -> None:
    """Send a message: console always, Discord when DISCORD_WEBHOOK_URL is set."""
    with reported():
        from cicd.core.errors import UsageError
        from cicd.core.messages import OUTCOMES, Message, as_message

        if not text.strip():
            raise UsageError("--text is required")
        if outcome and outcome not in OUTCOMES:
            raise UsageError(
                f"--outcome must be one of {', '.join(OUTCOMES)} (got {outcome!r})"
            )
        message = Message(text, outcome) if outcome else as_message(text)
        notifier(target(c, env)).send(message)


@task(
    help={
        "env": "Environment whose outbox to deliver (default: all).",
        "requeue": "First put the messages Discord refused back in the outbox "
        "(once the webhook is fixed).",
    }
)
def flush(c: Any, env: str = "", requeue: bool = False) -> None:
    """Deliver the messages kept in the outbox, oldest first, marked delayed.

    A message Discord refuses for good (a 4xx other than 429) is set aside in
    <env>/rejected.jsonl so it never blocks the ones behind it; every set-aside
    message is listed here until --requeue sends it again. With provider github,
    the GitHub deployment and status calls kept in <env>/github-outbox.json are
    delivered too, in order.
    """
    with reported():
        settings = task_settings(c)
        for name in env_names(settings, only=env):
            n = notifier(target(c, name, settings))
            if requeue:
                back = n.requeue()
                if back:
                    print(f"{name}: {back} set-aside message(s) back in the outbox")
            if not n.webhook:
                print(
                    f"{name}: DISCORD_WEBHOOK_URL is not set; {len(n.pending())} kept"
                )
            else:
                done = n.flush_outbox()
                print(
                    f"{name}: delivered {done.delivered}, {done.kept} still kept"
                    + (f", {done.set_aside} set aside" if done.set_aside else "")
                )
            _report_rejected(name, n)
            _flush_github(name, n)


def _flush_github(name: str, n: Notifier) -> None:
    """Deliver the GitHub calls a deploy could not make (provider github only)."""
    from cicd.reporting.github_deployments import GitHubDeployments, reporter

    github = reporter(n.target, n)
    if isinstance(github, GitHubDeployments):
        left = github.flush()
        said = f"{left} still kept" if left else "all delivered"
        print(f"{name}: GitHub calls {said}")


def _report_rejected(name: str, n: Notifier) -> None:
    """List the set-aside messages: when, why, and their first line."""
    from cicd.reporting.notify import human_time

    rejected = n.rejected()
    if not rejected:
        return
    print(
        f"{name}: {len(rejected)} message(s) refused by Discord, set aside in "
        f"{n.target.paths.rejected}:"
    )
    for entry in rejected[-LISTED:]:
        content = str((entry.get("payload") or {}).get("content") or "")
        first = content.strip().splitlines()[0] if content.strip() else "(empty)"
        print(f"  {human_time(entry.get('time'))}  {entry.get('reason', '?')}  {first}")
    if len(rejected) > LISTED:
        print(f"  ... and {len(rejected) - LISTED} older")
    where = f" --env {name}" if name else ""
    print(f"  to send them again once fixed: invoke notify.flush{where} --requeue")
