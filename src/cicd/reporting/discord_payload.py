"""What a Discord webhook message may hold, and fitting a payload to it.

Discord's published limits (``tests/data/published_api.json`` records their source;
a test checks these against it), and :func:`fit` to shorten a payload within them: a
text too long is cut with an ellipsis, a link too long is left out, so a long message
is shortened, never refused.
"""

from __future__ import annotations

import copy
from typing import Any

from cicd.core.redact import redact

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


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redacted(value: Any) -> Any:
    """Every string of a payload through the redaction filter."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    return value


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
        fitted["content"] = clip(fitted["content"], DISCORD_LIMIT)
    if "username" in fitted:
        name = fitted["username"]
        if isinstance(name, str) and name.strip():
            fitted["username"] = clip(name, USERNAME_MAX)
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
            embed[key] = clip(embed[key], limit)
    for key, limit in (("footer", FOOTER_LIMIT), ("author", AUTHOR_LIMIT)):
        part = embed.get(key)
        text_key = "text" if key == "footer" else "name"
        if isinstance(part, dict) and isinstance(part.get(text_key), str):
            part[text_key] = clip(part[text_key], limit)
    fields = embed.get("fields")
    if isinstance(fields, list):
        del fields[FIELDS_LIMIT:]
        for field in fields:
            if isinstance(field, dict):
                field["name"] = clip(str(field.get("name") or "…"), FIELD_NAME_LIMIT)
                field["value"] = clip(str(field.get("value") or "…"), FIELD_LIMIT)
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
            part[key] = clip(text, max(keep, 1))
