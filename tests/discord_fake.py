"""A Discord webhook stand-in as strict as Discord, served by pytest-httpserver.

It answers the execute-webhook endpoint as Discord documents it: every limit the
notifier relies on is enforced with Discord's 400 (code 50035, ``Invalid Form Body``,
the field's error under ``errors``), an empty message is refused (50006), a deleted
webhook answers 404 (10015, ``Unknown Webhook``), and ``wait=true`` returns the saved
message (200) where without it the answer is an empty 204. The limits are read from
``tests/data/published_api.json``, which records them from Discord's published
OpenAPI description and documentation, so the stand-in cannot drift from them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

PUBLISHED = json.loads(
    (Path(__file__).parent / "data" / "published_api.json").read_text()
)
DISCORD = PUBLISHED["discord"]
LIMITS: dict[str, int] = DISCORD["limits"]
CODES: dict[str, int] = DISCORD["error_codes"]
#: Discord's boolean query strings (``True``/``true``/``1``, ``False``...).
TRUE, FALSE = ("true", "1"), ("false", "0")


def error(status: int, code: int, message: str, **extra: Any) -> Response:
    """Discord's error answer: ``{"code": ..., "message": ...}`` and any extra."""
    body = {"code": code, "message": message, **extra}
    return Response(json.dumps(body), status, content_type="application/json")


def _too_long(limit: int) -> dict[str, Any]:
    return {
        "_errors": [
            {
                "code": "BASE_TYPE_MAX_LENGTH",
                "message": f"Must be {limit} or fewer in length.",
            }
        ]
    }


def _nest(errors: dict[str, Any], path: list[str], leaf: dict[str, Any]) -> None:
    """Put one field's error at its path, as Discord nests them."""
    for part in path[:-1]:
        errors = errors.setdefault(part, {})
    errors[path[-1]] = leaf


def problems(payload: Any) -> dict[str, Any]:
    """Every limit ``payload`` breaks, in Discord's ``errors`` shape (empty: none).

    Args:
        payload: The JSON body of an execute-webhook request.
    """
    errors: dict[str, Any] = {}
    if not isinstance(payload, dict):
        _nest(errors, ["_root"], {"_errors": [{"code": "DICT_TYPE_CONVERT"}]})
        return errors

    def length(value: Any, limit: int, path: list[str]) -> None:
        if isinstance(value, str) and len(value) > limit:
            _nest(errors, path, _too_long(limit))

    length(payload.get("content"), LIMITS["content"], ["content"])
    username = payload.get("username")
    if username is not None:
        low, high = LIMITS["username_min"], LIMITS["username_max"]
        bad = not isinstance(username, str) or not low <= len(username) <= high
        forbidden = [
            w for w in DISCORD["username_forbidden"] if w in str(username).lower()
        ]
        if bad or forbidden:
            said = (
                f'Username cannot contain "{forbidden[0]}"'
                if forbidden
                else (f"Must be between {low} and {high} in length.")
            )
            leaf = {"_errors": [{"code": "USERNAME_INVALID", "message": said}]}
            _nest(errors, ["username"], leaf)
    length(payload.get("avatar_url"), LIMITS["url"], ["avatar_url"])
    embeds = payload.get("embeds") or []
    if not isinstance(embeds, list):
        _nest(errors, ["embeds"], {"_errors": [{"code": "LIST_TYPE_CONVERT"}]})
        return errors
    if len(embeds) > LIMITS["embeds"]:
        _nest(errors, ["embeds"], _too_long(LIMITS["embeds"]))
    total = 0
    for index, embed in enumerate(embeds):
        where = ["embeds", str(index)]
        if not isinstance(embed, dict):
            _nest(errors, where, {"_errors": [{"code": "DICT_TYPE_CONVERT"}]})
            continue
        length(embed.get("title"), LIMITS["embed_title"], [*where, "title"])
        length(
            embed.get("description"),
            LIMITS["embed_description"],
            [*where, "description"],
        )
        length(embed.get("url"), LIMITS["url"], [*where, "url"])
        colour = embed.get("color")
        if colour is not None and not 0 <= int(colour) <= LIMITS["color_max"]:
            leaf = {"_errors": [{"code": "NUMBER_TYPE_MAX"}]}
            _nest(errors, [*where, "color"], leaf)
        footer = embed.get("footer") or {}
        author = embed.get("author") or {}
        length(footer.get("text"), LIMITS["footer_text"], [*where, "footer", "text"])
        length(footer.get("icon_url"), LIMITS["url"], [*where, "footer", "icon_url"])
        length(author.get("name"), LIMITS["author_name"], [*where, "author", "name"])
        length(author.get("url"), LIMITS["url"], [*where, "author", "url"])
        fields = embed.get("fields") or []
        if len(fields) > LIMITS["embed_fields"]:
            _nest(errors, [*where, "fields"], _too_long(LIMITS["embed_fields"]))
        for number, item in enumerate(fields):
            spot = [*where, "fields", str(number)]
            for key, limit in (
                ("name", LIMITS["field_name"]),
                ("value", LIMITS["field_value"]),
            ):
                text = item.get(key)
                if not isinstance(text, str) or not text:
                    leaf = {"_errors": [{"code": "BASE_TYPE_REQUIRED"}]}
                    _nest(errors, [*spot, key], leaf)
                length(text, limit, [*spot, key])
            total += len(str(item.get("name") or "")) + len(
                str(item.get("value") or "")
            )
        total += sum(
            len(str(part or ""))
            for part in (
                embed.get("title"),
                embed.get("description"),
                footer.get("text"),
                author.get("name"),
            )
        )
    if total > LIMITS["embed_total"]:
        leaf = {
            "_errors": [
                {
                    "code": "MAX_EMBED_SIZE_EXCEEDED",
                    "message": f"Embed size exceeds maximum size of "
                    f"{LIMITS['embed_total']}",
                }
            ]
        }
        _nest(errors, ["embeds"], leaf)
    return errors


@dataclass
class FakeDiscord:
    """One Discord webhook on the local server: keeps every message it saved.

    Attributes:
        server: The pytest-httpserver to register on.
        path: The webhook's path (``/api/webhooks/<id>/<token>``: a secret).
        messages: The payloads saved, in order.
        refused: Each refused payload with Discord's error body.
        waits: The ``wait`` query value of every request (``None``: absent).
        deleted: The webhook was deleted: every post answers 404 (10015).
        rate_limits: ``retry_after`` values answered with a 429, first one first.
    """

    server: Any
    path: str = "/api/webhooks/1/tok-fake-secret"
    messages: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    waits: list[str | None] = field(default_factory=list)
    deleted: bool = False
    rate_limits: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> FakeDiscord:
        """Register the webhook's handler on the server."""
        self.server.expect_request(self.path, method="POST").respond_with_handler(
            self.answer
        )
        return self

    @property
    def url(self) -> str:
        """The webhook URL (a secret)."""
        return str(self.server.url_for(self.path))

    def answer(self, request: Request) -> Response:
        """Answer one execute-webhook request as Discord does."""
        with self.lock:
            return self._answer(request)

    def _answer(self, request: Request) -> Response:
        wait = request.args.get("wait")
        self.waits.append(wait)
        if self.deleted:
            return error(404, CODES["unknown_webhook"], "Unknown Webhook")
        if self.rate_limits:
            retry = self.rate_limits.pop(0)
            return error(
                429,
                0,
                "You are being rate limited.",
                retry_after=retry,
                **{"global": False},
            )
        if wait is not None and wait.lower() not in TRUE + FALSE:
            found = {"wait": {"_errors": [{"code": "BOOLEAN_TYPE_CONVERT"}]}}
            return self._refuse(None, found)
        try:
            payload = json.loads(request.get_data() or b"")
        except ValueError:
            return error(
                400, CODES["invalid_json"], "The request body contains invalid JSON."
            )
        found = problems(payload)
        if found:
            return self._refuse(payload, found)
        if not payload.get("content") and not payload.get("embeds"):
            body = {
                "code": CODES["empty_message"],
                "message": "Cannot send an empty message",
            }
            self.refused.append((payload, body))
            return error(400, body["code"], body["message"])
        self.messages.append(payload)
        if wait is None or wait.lower() in FALSE:
            return Response(status=204)
        return Response(
            json.dumps(self._message(payload, len(self.messages))),
            200,
            content_type="application/json",
        )

    def _refuse(self, payload: Any, found: dict[str, Any]) -> Response:
        body = {
            "code": CODES["invalid_form_body"],
            "message": "Invalid Form Body",
            "errors": found,
        }
        self.refused.append((payload, body))
        return error(400, body["code"], body["message"], errors=found)

    def _message(self, payload: dict[str, Any], number: int) -> dict[str, Any]:
        """The message object Discord returns with ``wait=true``."""
        webhook_id = self.path.rstrip("/").split("/")[-2]
        return {
            "id": str(1_300_000_000_000_000_000 + number),
            "type": 0,
            "channel_id": "1200000000000000000",
            "webhook_id": webhook_id,
            "author": {
                "id": webhook_id,
                "username": payload.get("username") or "Captain Hook",
                "bot": True,
            },
            "content": payload.get("content") or "",
            "embeds": payload.get("embeds") or [],
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "edited_timestamp": None,
            "flags": 0,
            "components": [],
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
        }

    def texts(self) -> list[str]:
        """Every saved message's text: content and embeds' titles and fields."""
        texts = []
        for message in self.messages:
            parts = [str(message.get("content") or "")]
            for embed in message.get("embeds") or []:
                parts += [
                    str(embed.get("title") or ""),
                    str(embed.get("description") or ""),
                ]
                parts += [
                    f"{f.get('name', '')} {f.get('value', '')}"
                    for f in embed.get("fields") or []
                ]
            texts.append("\n".join(p for p in parts if p))
        return texts
