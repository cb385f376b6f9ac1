"""Notifications: always to the console, to Discord when ``DISCORD_WEBHOOK_URL`` is set.

Notifications never break a deploy. A message counts as delivered only when Discord
returns it saved (:mod:`cicd.reporting.discord_webhook`: ``?wait=true``, a 429
retried after its ``retry_after``, other failures briefly); one that is not delivered
is kept in the environment's outbox (``outbox.jsonl``) and sent before the next
message of a later run, marked *delayed* with the time it was first sent. A message
Discord refuses for good (a 4xx other than 429: a malformed payload, a deleted
webhook) would fail the same way forever, so it is set aside in ``rejected.jsonl``
instead of blocking the messages behind it (the rule of :mod:`cicd.reporting.outbox`);
``invoke notify.flush`` reports it and ``--requeue`` sends it again. Nothing is lost,
nothing blocks, and the webhook URL never reaches any output.

On Discord a message is an embed coloured by its outcome (green success, red
failure, amber warning or in progress, grey info) with links to the commit, the CD
run, the CI run and the public URL; its plain text goes along as ``content``, for
readers whose client hides embeds. Every payload is fitted to Discord's published
limits before it is sent (:func:`cicd.reporting.discord_payload.fit`): a text too
long is cut with an ellipsis, a link too long is left out, so a long message is
shortened, never refused.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from cicd.ci.github_api import cd_run_url, commit_url
from cicd.core.ledger import now
from cicd.core.messages import (
    FAILURE,
    INFO,
    SUCCESS,
    WARNING,
    Message,
    as_message,
    short,
)
from cicd.core.redact import redact
from cicd.reporting.discord_payload import (
    DESCRIPTION_LIMIT,
    DISCORD_LIMIT,
    FIELD_LIMIT,
    TITLE_LIMIT,
    clip,
    redacted,
)
from cicd.reporting.discord_webhook import DiscordWebhook
from cicd.reporting.outbox import (
    DELIVERED,
    KEEP,
    append_lines,
    deliver_in_order,
    read_lines,
    write_lines,
)

if TYPE_CHECKING:
    from cicd.host.target import Target

WEBHOOK_VARIABLE = "DISCORD_WEBHOOK_URL"
#: Undelivered (and set-aside) messages kept at most; the oldest are dropped beyond.
OUTBOX_LIMIT = 200
#: The embed colour of each outcome.
COLOURS = {
    SUCCESS: 0x2ECC71,  # green
    FAILURE: 0xE74C3C,  # red
    WARNING: 0xF5A623,  # amber
    INFO: 0x95A5A6,  # grey
}


@dataclass(frozen=True)
class Flushed:
    """What a pass over the outbox did."""

    delivered: int = 0
    set_aside: int = 0
    kept: int = 0


def human_time(iso: object) -> str:
    """``2026-12-02T00:49:48.1Z`` as ``2026-12-02 00:49:48 UTC``."""
    text = str(iso or "")
    if len(text) < 19 or text[10] != "T":
        return "an unknown time"
    return f"{text[:10]} {text[11:19]} UTC"


def delayed(payload: dict[str, Any], when: object) -> dict[str, Any]:
    """The payload of a message sent late: marked delayed, with its original time.

    Args:
        payload: The message as it was first sent.
        when: When it was first sent (ISO 8601).

    Returns:
        A copy whose content starts with the mark and whose embed's footer carries
        it; the embed's timestamp stays the original time.
    """
    marked = copy.deepcopy(payload)
    mark = f"⏰ Delayed: first sent at {human_time(when)}"
    marked["content"] = clip(f"{mark}\n{marked.get('content', '')}", DISCORD_LIMIT)
    for embed in marked.get("embeds") or []:
        footer = str((embed.get("footer") or {}).get("text") or "")
        embed["footer"] = {"text": f"{mark} · {footer}" if footer else mark}
    return marked


class Notifier:
    """Send an environment's messages to the console and, if configured, Discord.

    Args:
        target: The environment (its outbox lives on its host).
        webhook: The Discord webhook URL; defaults to ``$DISCORD_WEBHOOK_URL``.
        console: Where console lines go.
        timeout: Per-request timeout, in seconds.
        max_wait: Longest total time spent waiting on 429 answers per message.
        sleep: Sleep function (tests may inject one).
        hosts: The hosts a message is about. Default: the target's host when it is
            reached over SSH (``fab -H``), none when the task runs on it.
    """

    def __init__(
        self,
        target: Target,
        *,
        webhook: str | None = None,
        console: TextIO | None = None,
        timeout: float = 5.0,
        max_wait: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        hosts: Sequence[str] | None = None,
    ) -> None:
        self.target = target
        if webhook is None:
            webhook = os.environ.get(WEBHOOK_VARIABLE, "").strip() or None
        self.webhook = webhook if target.settings.notify.discord else None
        self.console = console or sys.stderr
        self.discord = DiscordWebhook(
            self.webhook or "",
            self.say,
            timeout=timeout,
            max_wait=max_wait,
            sleep=sleep,
        )
        if hosts is None:
            hosts = [target.runner.host] if target.runner.remote else []
        self.hosts = list(hosts)

    def say(self, text: str) -> None:
        """Print one line to the console only (progress, not a notification)."""
        print(redact(text), file=self.console, flush=True)

    def send(self, text: str) -> bool:
        """Notify: console always, then Discord (after any older undelivered ones).

        Args:
            text: A :class:`~cicd.core.messages.Message`, or plain text (coloured by its
                first sign: ✅ green, ❌ red, ⚠️ amber...).

        Returns:
            True when delivered (or no webhook is configured), False when the message
            went to the outbox or was set aside.
        """
        self.say(text)
        if not self.webhook:
            return True
        self.flush_outbox()
        when = now()
        payload = self.payload(text, when)
        entry = {"time": when, "payload": payload}
        delivery = self.discord.deliver(payload)
        if delivery.ok:
            return True
        if delivery.permanent:
            self._set_aside([(entry, delivery.reason)])
            self.say(
                f"notification refused by Discord ({delivery.reason}); set aside in "
                f"{self.target.paths.rejected} (invoke notify.flush reports it)"
            )
            return False
        self.say(f"notification not delivered ({delivery.reason}); kept in the outbox")
        self._append(self.target.paths.outbox, [entry])
        return False

    def payload(self, text: str, when: str | None = None) -> dict[str, Any]:
        """The Discord payload of a message: its plain text and its embed.

        Args:
            text: The message.
            when: When it happened (ISO 8601); default: now.
        """
        message = as_message(text)
        content = str(message)
        named = [h for h in self.hosts if h not in content]
        if named:
            content += f"\n{'Host' if len(self.hosts) == 1 else 'Hosts'}: "
            content += ", ".join(self.hosts)
        payload: dict[str, Any] = redacted(
            {
                "content": clip(content, DISCORD_LIMIT),
                "username": self.target.settings.notify.username,
                "allowed_mentions": {"parse": []},
                "embeds": [self._embed(message, when or now())],
            }
        )
        return payload

    def _embed(self, message: Message, when: str) -> dict[str, Any]:
        settings = self.target.settings
        title, _, description = str(message).partition("\n")
        fields = []
        commit = commit_url(settings, message.sha or "")
        if message.sha:
            sha = short(message.sha)
            value = f"[{sha}]({commit})" if commit else f"`{sha}`"
            fields.append({"name": "Commit", "value": value, "inline": True})
        if self.hosts:
            name = "Host" if len(self.hosts) == 1 else "Hosts"
            value = clip(", ".join(self.hosts), FIELD_LIMIT)
            fields.append({"name": name, "value": value, "inline": True})
        cd_run = cd_run_url(settings)
        if cd_run:
            run = cd_run.rsplit("/", 1)[1]
            fields.append(
                {"name": "CD run", "value": f"[#{run}]({cd_run})", "inline": True}
            )
        if message.ci_url:
            value = clip(f"[CI run]({message.ci_url})", FIELD_LIMIT)
            fields.append({"name": "CI", "value": value, "inline": True})
        url = message.url or settings.public_url
        if url:
            fields.append({"name": "URL", "value": clip(url, FIELD_LIMIT)})
        embed: dict[str, Any] = {
            "title": clip(title, TITLE_LIMIT),
            "color": COLOURS[message.outcome],
            "timestamp": when,
            "footer": {"text": self.target.env},
        }
        link = message.ci_url or cd_run or commit
        if link:
            embed["url"] = link
        if description.strip():
            embed["description"] = clip(description.strip(), DESCRIPTION_LIMIT)
        if fields:
            embed["fields"] = fields
        return embed

    def flush_outbox(self) -> Flushed:
        """Deliver the outbox, oldest first; keep what fails, set aside what is refused.

        Delivery stops at the first message that fails for a reason that may pass
        (Discord down, rate-limited too long), so order is kept; a message Discord
        refuses for good is set aside and the next one is tried.
        """
        if not self.webhook:
            return Flushed(kept=len(self.pending()))
        pending = self.pending()
        if not pending:
            return Flushed()
        drained = deliver_in_order(pending, self._send_kept)
        self._set_aside(drained.refused)
        write_lines(self.target.runner, self.target.paths.outbox, drained.remaining)
        if drained.delivered:
            self.say(f"delivered {drained.delivered} message(s) from the outbox")
        if drained.refused:
            self.say(
                f"{len(drained.refused)} message(s) of the outbox refused by Discord "
                f"({drained.refused[0][1]}); set aside in {self.target.paths.rejected}"
            )
        return Flushed(drained.delivered, len(drained.refused), len(drained.remaining))

    def _send_kept(self, entry: dict[str, Any]) -> str:
        """Send one message of the outbox, marked delayed; answer as the outbox asks."""
        payload = delayed(entry.get("payload") or {}, entry.get("time"))
        delivery = self.discord.deliver(payload)
        if delivery.ok:
            return DELIVERED
        return delivery.reason if delivery.permanent else KEEP

    def pending(self) -> list[dict[str, Any]]:
        """The undelivered messages in the outbox, oldest first."""
        return read_lines(self.target.runner, self.target.paths.outbox)

    def rejected(self) -> list[dict[str, Any]]:
        """The messages Discord refused for good, oldest first, each with its reason."""
        return read_lines(self.target.runner, self.target.paths.rejected)

    def requeue(self) -> int:
        """Put the set-aside messages back in the outbox, in time order.

        Returns:
            How many were put back.
        """
        rejected = self.rejected()
        if not rejected:
            return 0
        back = [{"time": e.get("time"), "payload": e.get("payload")} for e in rejected]
        merged = sorted(self.pending() + back, key=lambda e: str(e.get("time") or ""))
        write_lines(self.target.runner, self.target.paths.outbox, merged)
        write_lines(self.target.runner, self.target.paths.rejected, [])
        return len(back)

    def _set_aside(self, refused: list[tuple[dict[str, Any], str]]) -> None:
        """Keep the messages Discord refused for good, each with its reason."""
        kept = [{**entry, "reason": why, "set_aside": now()} for entry, why in refused]
        self._append(self.target.paths.rejected, kept)

    def _append(self, path: str, entries: list[dict[str, Any]]) -> None:
        """Add messages to the outbox or the set-aside file, keeping the newest."""
        runner = self.target.runner
        append_lines(runner, path, entries)
        kept = read_lines(runner, path)
        if len(kept) > OUTBOX_LIMIT:
            write_lines(runner, path, kept[-OUTBOX_LIMIT:])
