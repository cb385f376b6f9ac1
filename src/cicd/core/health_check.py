"""A health check: one condition on one URL, as the configuration declares it.

The model only; :mod:`cicd.checks.health` runs checks and polls for readiness.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HealthCheck:
    """One condition on one URL.

    Attributes:
        url: The URL to GET.
        status: Expected HTTP status.
        body_contains: Text the response body must contain.
        json_field: ``name=value``: the JSON body's field must equal the value
            (dots reach into objects: ``checks.db=ok``).
        max_response_time: Slowest acceptable answer, in seconds.
        timeout: Per-request timeout, in seconds.
        rendered_contains: Text the page must show once rendered by a browser
            (headless Chromium runs the app's JavaScript). Streamlit serves the same
            static shell for every app and its ``/_stcore/health`` says ok even when
            the app's script raises, so only a rendered page shows a broken app.
    """

    url: str
    status: int = 200
    body_contains: str | None = None
    json_field: str | None = None
    max_response_time: float | None = None
    timeout: float = 10.0
    rendered_contains: str | None = None

    def describe(self) -> str:
        """Return a short human description, e.g. ``GET url → 200, body ∋ 'ok'``."""
        parts = [f"status {self.status}"]
        if self.body_contains:
            parts.append(f"body contains {self.body_contains!r}")
        if self.json_field:
            parts.append(f"json {self.json_field}")
        if self.max_response_time:
            parts.append(f"under {self.max_response_time:g}s")
        if self.rendered_contains:
            parts = [f"rendered page shows {self.rendered_contains!r}"]
        return f"GET {self.url} ({', '.join(parts)})"
