"""Infrastructure checks of a configured real environment (``nox -s infra``).

Each check needs a target or a credential named by an environment variable. When it
is absent the check is skipped and the reason says which variable to set; when it is
present a real fault fails the session (there is no continue-on-error).
"""

from __future__ import annotations

import os

import pytest


def require(*names: str) -> dict[str, str]:
    """Return the named variables, or skip the check saying which ones to set."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(f"set {', '.join(missing)} to run this check")
    return {name: os.environ[name] for name in names}
