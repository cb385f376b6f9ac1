"""One redaction filter for every secret, applied before anything is printed.

Secrets come only from environment variables. requests' own error messages contain
the URL they were sending to, and a Discord webhook URL *is* a credential, so every
log line, exception message and notification passes through :func:`redact`.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

SECRET_VARIABLES = ("DISCORD_WEBHOOK_URL", "GITHUB_TOKEN", "CICD_GITHUB_TOKEN")
MASK = "***"


def secrets() -> list[str]:
    """Return the secret values in the environment, longest first.

    A webhook URL is also masked by its path, which holds the token, so a message
    that quotes only part of the URL is still safe.
    """
    found: set[str] = set()
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "").strip()
        if len(value) < 6:
            continue
        found.add(value)
        parts = urlsplit(value)
        if parts.scheme and len(parts.path) > 8:
            found.add(parts.path)
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """Return ``text`` with every known secret replaced by ``***``."""
    for secret in secrets():
        text = text.replace(secret, MASK)
    return text
