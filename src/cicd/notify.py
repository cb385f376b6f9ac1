"""Notifications: always to the console, to Discord when ``DISCORD_WEBHOOK_URL`` is set.

Notifications never break a deploy. A Discord 429 is retried after its
``retry_after``; other failures are retried briefly, then the message is kept in the
environment's outbox and sent before the next message of a later run. Nothing is
lost, nothing blocks, and the webhook URL never reaches any output.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from cicd.commands import files
from cicd.ledger import now
from cicd.redact import redact

if TYPE_CHECKING:
    import requests

    from cicd.target import Target

WEBHOOK_VARIABLE = "DISCORD_WEBHOOK_URL"
#: Discord rejects message content longer than this.
DISCORD_LIMIT = 2000
#: Undelivered messages kept at most; the oldest are dropped beyond.
OUTBOX_LIMIT = 200


@dataclass(frozen=True)
class Delivery:
    """The outcome of one attempt to deliver a message."""

    ok: bool
    reason: str = ""


class Notifier:
    """Send an environment's messages to the console and, if configured, Discord.

    Args:
        target: The environment (its outbox lives on its host).
        webhook: The Discord webhook URL; defaults to ``$DISCORD_WEBHOOK_URL``.
        console: Where console lines go.
        timeout: Per-request timeout, in seconds.
        max_wait: Longest total time spent waiting on 429 answers per message.
        sleep: Sleep function (tests may inject one).
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
    ) -> None:
        self.target = target
        if webhook is None:
            webhook = os.environ.get(WEBHOOK_VARIABLE, "").strip() or None
        self.webhook = webhook if target.settings.notify.discord else None
        self.console = console or sys.stderr
        self.timeout = timeout
        self.max_wait = max_wait
        self.sleep = sleep
        self._session: requests.Session | None = None

    def say(self, text: str) -> None:
        """Print one line to the console only (progress, not a notification)."""
        print(redact(text), file=self.console, flush=True)

    def send(self, text: str) -> bool:
        """Notify: console always, then Discord (after any older undelivered ones).

        Returns:
            True when delivered (or no webhook is configured), False when the message
            went to the outbox.
        """
        self.say(text)
        if not self.webhook:
            return True
        self.flush_outbox()
        payload = self._payload(text)
        delivery = self._deliver(payload)
        if delivery.ok:
            return True
        self.say(f"notification not delivered ({delivery.reason}); kept in the outbox")
        self._store([{"time": now(), "payload": payload}], append=True)
        return False

    def _payload(self, text: str) -> dict[str, Any]:
        content = redact(text)
        if len(content) > DISCORD_LIMIT:
            content = content[: DISCORD_LIMIT - 1] + "…"
        return {
            "content": content,
            "username": self.target.settings.notify.username,
            "allowed_mentions": {"parse": []},
        }

    def flush_outbox(self) -> int:
        """Try to deliver the outbox, oldest first; keep what still fails.

        Returns:
            How many messages were delivered.
        """
        if not self.webhook:
            return 0
        pending = self.pending()
        if not pending:
            return 0
        delivered = 0
        remaining: list[dict[str, Any]] = []
        for index, entry in enumerate(pending):
            delivery = self._deliver(entry.get("payload", {}))
            if delivery.ok:
                delivered += 1
            else:
                remaining = pending[index:]
                break
        self._store(remaining, append=False)
        if delivered:
            self.say(f"delivered {delivered} message(s) from the outbox")
        return delivered

    def pending(self) -> list[dict[str, Any]]:
        """The undelivered messages in the outbox, oldest first."""
        text = self.target.runner.run(files.read(self.target.paths.outbox)).stdout
        entries = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def _store(self, entries: list[dict[str, Any]], *, append: bool) -> None:
        runner = self.target.runner
        runner.run(files.mkdirs(self.target.paths.dir))
        if append:
            for entry in entries:
                runner.run(
                    files.append_line(self.target.paths.outbox, json.dumps(entry))
                )
            if len(self.pending()) <= OUTBOX_LIMIT:
                return
            entries, append = self.pending()[-OUTBOX_LIMIT:], False
        content = "".join(json.dumps(e) + "\n" for e in entries)
        runner.run(files.write_atomic(self.target.paths.outbox, content))

    def _deliver(self, payload: dict[str, Any]) -> Delivery:
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False
        assert self.webhook
        waited = 0.0
        reason = ""
        for attempt in range(4):
            try:
                response = self._session.post(
                    self.webhook, json=payload, timeout=self.timeout
                )
            except requests.RequestException as error:
                reason = redact(f"{type(error).__name__}")
                if attempt >= 1:
                    return Delivery(False, reason)
                self.sleep(0.5)
                continue
            if response.status_code < 300:
                return Delivery(True)
            reason = f"Discord answered {response.status_code}"
            if response.status_code == 429:
                wait = _retry_after(response)
                if waited + wait > self.max_wait:
                    return Delivery(False, f"{reason}, retry after {wait:g}s")
                waited += wait
                self.sleep(wait)
                continue
            if response.status_code >= 500 and attempt < 1:
                self.sleep(0.5)
                continue
            return Delivery(False, reason)
        return Delivery(False, reason)


def _retry_after(response: Any) -> float:
    """Seconds Discord asks us to wait: JSON ``retry_after``, else the header."""
    try:
        return max(float(response.json()["retry_after"]), 0.0)
    except (ValueError, KeyError, TypeError):
        pass
    try:
        return max(float(response.headers.get("Retry-After", "1")), 0.0)
    except ValueError:
        return 1.0
