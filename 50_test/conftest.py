"""Infrastructure checks of a configured real environment (``nox -s infra``).

Each check needs a target or a credential named by an environment variable. When it
is absent the check is skipped and the reason says which variable to set; when it is
present a real fault fails the session (there is no continue-on-error).

In CI, ``.ci/run`` starts local stand-ins (``python3 -m tools.testinfra local-env``)
and exports their variables as ``INFRA_CHECK_<NAME>``; the ``infra`` session hands
them to these checks as ``<NAME>``. On a real VM, set the real names.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from cicd.core.redact import redact

#: The monorepo's root.
ROOT = Path(__file__).resolve().parents[1]

# The data checks read the bucket with the app's own code (mangetamain.data).
sys.path.insert(0, str(ROOT / "10_preprod" / "src"))

#: Variables whose values are secrets besides those cicd.core.redact knows.
EXTRA_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def require(*names: str, optional: tuple[str, ...] = ()) -> dict[str, str]:
    """Return the named variables, or skip the check saying which ones to set.

    Args:
        *names: Variables the check cannot run without.
        optional: Variables it also reads when set (named in the skip reason).

    Returns:
        The required variables' values by name.
    """
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        also = f" (optional: {', '.join(optional)})" if optional else ""
        pytest.skip(f"set {', '.join(missing)}{also} to run this check")
    return {name: os.environ[name] for name in names}


def scrub(text: str) -> str:
    """Return ``text`` without any secret of the environment (see cicd.core.redact)."""
    text = redact(text)
    for name in EXTRA_SECRETS:
        value = os.environ.get(name, "")
        if len(value) >= 6:
            text = text.replace(value, "***")
    return text
