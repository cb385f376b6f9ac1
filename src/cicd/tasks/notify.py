"""``notify.send`` and ``notify.flush``: the project's notifier, for workflow steps."""

from __future__ import annotations

from typing import Any

from invoke.tasks import task

from cicd.tasks._common import notifier, reported, target


@task(
    help={
        "text": "The message.",
        "env": "Environment whose outbox keeps it if Discord is unreachable.",
    }
)
def send(c: Any, text: str = "", env: str = "preprod") -> None:
    """Send a message: console always, Discord when DISCORD_WEBHOOK_URL is set."""
    with reported():
        from cicd.errors import UsageError

        if not text.strip():
            raise UsageError("--text is required")
        notifier(target(c, env)).send(text)


@task(help={"env": "Environment whose outbox to deliver (default: all)."})
def flush(c: Any, env: str = "") -> None:
    """Deliver the messages kept in the outbox, oldest first."""
    with reported():
        from cicd.tasks._common import env_names

        for name in [env] if env else env_names():
            n = notifier(target(c, name))
            if not n.webhook:
                print(
                    f"{name}: DISCORD_WEBHOOK_URL is not set; {len(n.pending())} kept"
                )
                continue
            delivered = n.flush_outbox()
            print(f"{name}: delivered {delivered}, {len(n.pending())} still kept")
