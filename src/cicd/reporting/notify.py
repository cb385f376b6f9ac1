"""Notifications: always to the console, to Discord when ``DISCORD_WEBHOOK_URL`` is set.

Notifications never break a deploy. A message counts as delivered only when Discord
returns it: the webhook is executed with ``?wait=true``, so Discord answers with the
saved message (its id is the proof) or with an error, where without it a message that
is not saved returns no error at all. A Discord 429 is retried after its
``retry_after``; other failures are retried briefly, then the message is kept in the
environment's outbox and sent before the next message of a later run, marked
*delayed* with the time it was first sent. A message Discord refuses for good (a 4xx
other than 429: a malformed payload, a deleted webhook) would fail the same way
forever, so it is set aside in ``rejected.jsonl`` instead of blocking the messages
behind it; ``invoke notify.flush`` reports it and ``--requeue`` sends it again. Nothing
is lost, nothing blocks, and the webhook URL never reaches any output.

On Discord a message is an embed coloured by its outcome (green success, red
failure, amber warning or in progress, grey info) with links to the commit, the CD
run, the CI run and the public URL; its plain text goes along as ``content``, for
readers whose client hides embeds. Every payload is fitted to Discord's published
limits before it is sent (:func:`fit`): a text too long is cut with an ellipsis, a
link too long is left out, so a long message is shortened, never refused.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from cicd.commands import files
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

if TYPE_CHECKING:
    import requests

    from cicd.core.settings import EnvSettings
    from cicd.host.target import Target

WEBHOOK_VARIABLE = "DISCORD_WEBHOOK_URL"
# Discord's limits, as published (tests/data/published_api.json records their
# source; a test checks these against it).
#: Discord rejects message content longer than this.
DISCORD_LIMIT = 2000
#: Discord's limits on an embed's title, description and field values.
TITLE_LIMIT, DESCRIPTION_LIMIT, FIELD_LIMIT = 256, 4096, 1024
#: A field's name, the footer's text and the author's name.
FIELD_NAME_LIMIT, FOOTER_LIMIT, AUTHOR_LIMIT = 256, 2048, 256
#: All titles, descriptions, field names and values, footers and authors together.
EMBED_TOTAL_LIMIT = 6000
#: Embeds per message and fields per embed.
EMBEDS_LIMIT, FIELDS_LIMIT = 10, 25
#: Any URL of an embed (its link, the author's, icons, images).
URL_LIMIT = 2048
#: The name a message is posted under (``username``): 1 to 80 characters.
USERNAME_MIN, USERNAME_MAX = 1, 80
#: Undelivered (and set-aside) messages kept at most; the oldest are dropped beyond.
OUTBOX_LIMIT = 200
#: The embed colour of each outcome.
COLOURS = {
    SUCCESS: 0x2ECC71,  # green
    FAILURE: 0xE74C3C,  # red
    WARNING: 0xF5A623,  # amber
    INFO: 0x95A5A6,  # grey
}
GITHUB = "https://github.com"


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


@dataclass(frozen=True)
class Flushed:
    """What a pass over the outbox did."""

    delivered: int = 0
    set_aside: int = 0
    kept: int = 0


def commit_url(settings: EnvSettings, sha: str) -> str:
    """The commit's page on GitHub, or ``""`` when the repository is unknown."""
    repository = settings.ci.repository or os.environ.get("GITHUB_REPOSITORY", "")
    return f"{_server()}/{repository}/commit/{sha}" if repository and sha else ""


def cd_run_url(settings: EnvSettings) -> str:
    """The page of the workflow run this process is part of, or ``""`` outside one."""
    run_id = os.environ.get("GITHUB_RUN_ID", "").strip()
    repository = os.environ.get("GITHUB_REPOSITORY", "") or settings.ci.repository
    if not run_id or not repository:
        return ""
    return f"{_server()}/{repository}/actions/runs/{run_id}"


def _server() -> str:
    return os.environ.get("GITHUB_SERVER_URL", "").strip().rstrip("/") or GITHUB


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _redacted(value: Any) -> Any:
    """Every string of a payload through the redaction filter."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


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
    marked["content"] = _clip(f"{mark}\n{marked.get('content', '')}", DISCORD_LIMIT)
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
        self.timeout = timeout
        self.max_wait = max_wait
        self.sleep = sleep
        if hosts is None:
            hosts = [target.runner.host] if target.runner.remote else []
        self.hosts = list(hosts)
        self._session: requests.Session | None = None

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
        delivery = self._deliver_entry(payload)
        if delivery.ok:
            return True
        if delivery.permanent:
            self._set_aside([entry], delivery.reason)
            self.say(
                f"notification refused by Discord ({delivery.reason}); set aside in "
                f"{self.target.paths.rejected} (invoke notify.flush reports it)"
            )
            return False
        self.say(f"notification not delivered ({delivery.reason}); kept in the outbox")
        self._store(self.target.paths.outbox, [entry], append=True)
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
        redacted: dict[str, Any] = _redacted(
            {
                "content": _clip(content, DISCORD_LIMIT),
                "username": self.target.settings.notify.username,
                "allowed_mentions": {"parse": []},
                "embeds": [self._embed(message, when or now())],
            }
        )
        return redacted

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
            value = _clip(", ".join(self.hosts), FIELD_LIMIT)
            fields.append({"name": name, "value": value, "inline": True})
        cd_run = cd_run_url(settings)
        if cd_run:
            run = cd_run.rsplit("/", 1)[1]
            fields.append(
                {"name": "CD run", "value": f"[#{run}]({cd_run})", "inline": True}
            )
        if message.ci_url:
            value = _clip(f"[CI run]({message.ci_url})", FIELD_LIMIT)
            fields.append({"name": "CI", "value": value, "inline": True})
        url = message.url or settings.public_url
        if url:
            fields.append({"name": "URL", "value": _clip(url, FIELD_LIMIT)})
        embed: dict[str, Any] = {
            "title": _clip(title, TITLE_LIMIT),
            "color": COLOURS[message.outcome],
            "timestamp": when,
            "footer": {"text": self.target.env},
        }
        link = message.ci_url or cd_run or commit
        if link:
            embed["url"] = link
        if description.strip():
            embed["description"] = _clip(description.strip(), DESCRIPTION_LIMIT)
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
        delivered = 0
        refused: list[tuple[dict[str, Any], str]] = []
        remaining: list[dict[str, Any]] = []
        for index, entry in enumerate(pending):
            payload = delayed(entry.get("payload") or {}, entry.get("time"))
            delivery = self._deliver_entry(payload)
            if delivery.ok:
                delivered += 1
            elif delivery.permanent:
                refused.append((entry, delivery.reason))
            else:
                remaining = pending[index:]
                break
        for entry, reason in refused:
            self._set_aside([entry], reason)
        self._store(self.target.paths.outbox, remaining, append=False)
        if delivered:
            self.say(f"delivered {delivered} message(s) from the outbox")
        if refused:
            self.say(
                f"{len(refused)} message(s) of the outbox refused by Discord "
                f"({refused[0][1]}); set aside in {self.target.paths.rejected}"
            )
        return Flushed(delivered, len(refused), len(remaining))

    def pending(self) -> list[dict[str, Any]]:
        """The undelivered messages in the outbox, oldest first."""
        return self._read(self.target.paths.outbox)

    def rejected(self) -> list[dict[str, Any]]:
        """The messages Discord refused for good, oldest first, each with its reason."""
        return self._read(self.target.paths.rejected)

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
        self._store(self.target.paths.outbox, merged, append=False)
        self._store(self.target.paths.rejected, [], append=False)
        return len(back)

    def _read(self, path: str) -> list[dict[str, Any]]:
        text = self.target.runner.run(files.read(path)).stdout
        entries = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def _set_aside(self, entries: list[dict[str, Any]], reason: str) -> None:
        kept = [{**e, "reason": reason, "set_aside": now()} for e in entries]
        self._store(self.target.paths.rejected, kept, append=True)

    def _store(self, path: str, entries: list[dict[str, Any]], *, append: bool) -> None:
        runner = self.target.runner
        runner.run(files.mkdirs(self.target.paths.dir))
        if append:
            for entry in entries:
                runner.run(files.append_line(path, json.dumps(entry)))
            if len(self._read(path)) <= OUTBOX_LIMIT:
                return
            entries, append = self._read(path)[-OUTBOX_LIMIT:], False
        content = "".join(json.dumps(e) + "\n" for e in entries)
        runner.run(files.write_atomic(path, content))

    def _deliver_entry(self, payload: dict[str, Any]) -> Delivery:
        """Deliver a payload; an embed Discord finds malformed falls back to text."""
        # Fitted at the last moment: a delayed mark or an older outbox entry may
        # have pushed a payload past a limit since it was built.
        payload = fit(payload)
        delivery = self._deliver(payload)
        if delivery.status == 400 and payload.get("embeds"):
            plain = {k: v for k, v in payload.items() if k != "embeds"}
            fallback = self._deliver(plain)
            if fallback.ok:
                self.say(f"embed refused by Discord ({delivery.reason}); sent as text")
                return fallback
        return delivery

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
                # wait=true: Discord answers with the saved message or an error;
                # without it, a message that is not saved returns no error.
                response = self._session.post(
                    self.webhook,
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


def fit(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of a webhook payload within Discord's published limits.

    Texts too long are cut with an ellipsis (the embeds' 6,000-character total
    first from the descriptions, then the field values, footers and titles); a URL
    longer than 2,048 characters is left out, as a cut one would be a broken link;
    a ``username`` is cut to 80 characters, and an empty one left out (the
    webhook's own name applies). Never raises: a long message is shortened, not
    refused.

    Args:
        payload: The message as built (or as kept in the outbox).

    Returns:
        The payload Discord accepts.
    """
    fitted = copy.deepcopy(payload)
    if isinstance(fitted.get("content"), str):
        fitted["content"] = _clip(fitted["content"], DISCORD_LIMIT)
    if "username" in fitted:
        name = fitted["username"]
        if isinstance(name, str) and name.strip():
            fitted["username"] = _clip(name, USERNAME_MAX)
        else:
            del fitted["username"]
    embeds = fitted.get("embeds")
    if isinstance(embeds, list):
        del embeds[EMBEDS_LIMIT:]
        kept = [e for e in embeds if isinstance(e, dict)]
        for embed in kept:
            _fit_embed(embed)
        _fit_total(kept)
        fitted["embeds"] = kept
    return fitted


def _fit_embed(embed: dict[str, Any]) -> None:
    """Clip each text of one embed to its own limit; leave out over-long URLs."""
    for key, limit in (("title", TITLE_LIMIT), ("description", DESCRIPTION_LIMIT)):
        if isinstance(embed.get(key), str):
            embed[key] = _clip(embed[key], limit)
    for key, limit in (("footer", FOOTER_LIMIT), ("author", AUTHOR_LIMIT)):
        part = embed.get(key)
        text_key = "text" if key == "footer" else "name"
        if isinstance(part, dict) and isinstance(part.get(text_key), str):
            part[text_key] = _clip(part[text_key], limit)
    fields = embed.get("fields")
    if isinstance(fields, list):
        del fields[FIELDS_LIMIT:]
        for field in fields:
            if isinstance(field, dict):
                field["name"] = _clip(str(field.get("name") or "…"), FIELD_NAME_LIMIT)
                field["value"] = _clip(str(field.get("value") or "…"), FIELD_LIMIT)
    for part in (
        embed,
        *(embed.get(k) for k in ("author", "footer", "image", "thumbnail")),
    ):
        if not isinstance(part, dict):
            continue
        for key in ("url", "icon_url"):
            if len(str(part.get(key) or "")) > URL_LIMIT:
                del part[key]


def _texts(embeds: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """Where each counted text lives, in the order they are given up.

    Descriptions first (the longest, and repeated in ``content``), then field
    values from the last, footers, titles, field names, authors.
    """
    places: list[tuple[dict[str, Any], str]] = []
    for embed in embeds:
        places.append((embed, "description"))
    for embed in embeds:
        fields = [f for f in embed.get("fields") or [] if isinstance(f, dict)]
        places.extend((field, "value") for field in reversed(fields))
    for embed in embeds:
        if isinstance(embed.get("footer"), dict):
            places.append((embed["footer"], "text"))
    places.extend((embed, "title") for embed in embeds)
    for embed in embeds:
        fields = [f for f in embed.get("fields") or [] if isinstance(f, dict)]
        places.extend((field, "name") for field in reversed(fields))
    for embed in embeds:
        if isinstance(embed.get("author"), dict):
            places.append((embed["author"], "name"))
    return [(part, key) for part, key in places if isinstance(part.get(key), str)]


def embed_total(embeds: list[dict[str, Any]]) -> int:
    """The characters Discord counts against the embeds' 6,000 total."""
    return sum(len(part[key]) for part, key in _texts(embeds))


def _fit_total(embeds: list[dict[str, Any]]) -> None:
    """Shorten the embeds' texts until their total is within 6,000 characters."""
    for part, key in _texts(embeds):
        over = embed_total(embeds) - EMBED_TOTAL_LIMIT
        if over <= 0:
            return
        text = part.get(key)
        if not isinstance(text, str):
            continue  # the same part met twice, its description already gone
        # A field's name and value must not be empty: keep one character there.
        keep = max(len(text) - over, 1 if key in ("name", "value") else 0)
        if keep == 0 and key == "description":
            del part[key]
        else:
            part[key] = _clip(text, max(keep, 1))


def _refusal(response: Any, reason: str) -> str:
    """``Discord answered 404 (Unknown Webhook)``: its own words, when it gave any."""
    try:
        said = response.json().get("message")
    except (ValueError, AttributeError):
        said = None
    if not isinstance(said, str) or not said.strip():
        return reason
    return redact(f"{reason} ({_clip(' '.join(said.split()), 80)})")


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
