"""Executing a Discord webhook: one message posted, and the proof Discord saved it.

The webhook is executed with ``?wait=true``, so Discord answers with the saved
message (its id is the proof) or with an error, where without it a message that is
not saved returns no error at all. A 429 is retried after its ``retry_after`` (up to
a total wait), a dropped connection or a 5xx once more; a 4xx other than 429 is a
refusal for good. The payload is fitted to Discord's limits at the last moment, and
an embed Discord finds malformed is sent again as plain text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cicd.core.redact import redact
from cicd.reporting.discord_payload import clip, fit

if TYPE_CHECKING:
    import requests


@dataclass(frozen=True)
class Delivery:
    """The outcome of one attempt to deliver a message.

    Attributes:
        ok: Discord accepted it.
        reason: Why not, in a few words.
        permanent: Discord refused the message itself (a 4xx other than 429):
            sending it again would fail the same way.
        status: Discord's HTTP status, 0 when there was no answer.
        message_id: The id of the message Discord saved: the proof of delivery.
    """

    ok: bool
    reason: str = ""
    permanent: bool = False
    status: int = 0
    message_id: str = ""


class DiscordWebhook:
    """One Discord webhook, and how patiently to post to it.

    Args:
        url: The webhook URL (a secret: it never reaches any output).
        say: Where console lines go.
        timeout: Per-request timeout, in seconds.
        max_wait: Longest total time spent waiting on 429 answers per message.
        sleep: Sleep function (tests may inject one).
    """

    def __init__(
        self,
        url: str,
        say: Callable[[str], None],
        *,
        timeout: float = 5.0,
        max_wait: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.say = say
        self.timeout = timeout
        self.max_wait = max_wait
        self.sleep = sleep
        self._session: requests.Session | None = None

    def deliver(self, payload: dict[str, Any]) -> Delivery:
        """Deliver a payload; an embed Discord finds malformed falls back to text."""
        # Fitted at the last moment: a delayed mark or an older outbox entry may
        # have pushed a payload past a limit since it was built.
        payload = fit(payload)
        delivery = self._post(payload)
        if delivery.status == 400 and payload.get("embeds"):
            plain = {k: v for k, v in payload.items() if k != "embeds"}
            fallback = self._post(plain)
            if fallback.ok:
                self.say(f"embed refused by Discord ({delivery.reason}); sent as text")
                return fallback
        return delivery

    def _post(self, payload: dict[str, Any]) -> Delivery:
        """Post once (429s after their wait, a failure that may pass once more)."""
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False
        waited = 0.0
        reason = ""
        for attempt in range(4):
            try:
                # wait=true: Discord answers with the saved message or an error;
                # without it, a message that is not saved returns no error.
                response = self._session.post(
                    self.url,
                    params={"wait": "true"},
                    json=payload,
                    timeout=self.timeout,
                )
            except requests.RequestException as error:
                reason = redact(f"{type(error).__name__}")
                if attempt >= 1:
                    return Delivery(False, reason)
                self.sleep(0.5)
                continue
            status = response.status_code
            if status < 300:
                return _confirmed(response)
            reason = f"Discord answered {status}"
            if status == 429:
                wait = _retry_after(response)
                if waited + wait > self.max_wait:
                    return Delivery(
                        False, f"{reason}, retry after {wait:g}s", False, 429
                    )
                waited += wait
                self.sleep(wait)
                continue
            if 400 <= status < 500:
                return Delivery(False, _refusal(response, reason), True, status)
            if attempt < 1:
                self.sleep(0.5)
                continue
            return Delivery(False, reason, status=status)
        return Delivery(False, reason)


def _confirmed(response: Any) -> Delivery:
    """A 2xx answer: delivered when it carries the saved message, else unproven.

    An answer without the message (a 204, as a proxy or a stand-in ignoring
    ``wait=true`` gives) does not say the message was saved: it stays in the
    outbox and is sent again, so a message may arrive twice but is never lost.
    """
    status = response.status_code
    try:
        message = response.json()
    except ValueError:
        message = None
    ident = message.get("id") if isinstance(message, dict) else None
    if isinstance(ident, str) and ident.strip():
        return Delivery(True, status=status, message_id=ident)
    return Delivery(
        False, f"Discord answered {status} without the message it saved", False, status
    )


def _refusal(response: Any, reason: str) -> str:
    """``Discord answered 404 (Unknown Webhook)``: its own words, when it gave any."""
    try:
        said = response.json().get("message")
    except (ValueError, AttributeError):
        said = None
    if not isinstance(said, str) or not said.strip():
        return reason
    return redact(f"{reason} ({clip(' '.join(said.split()), 80)})")


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
