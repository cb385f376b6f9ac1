"""The intent file: an unfinished switch, written before it starts.

``<root>/<env>/intent`` says "X → Y, restart pending" from just before ``current``
is switched until the new release is ready. A run killed anywhere in between leaves
it behind, and the next deploy, rollback, verdict or ``invoke status --repair``
finds it and completes or undoes the switch (:mod:`cicd.pipeline.repair`), so
``current`` and
what serves never disagree for long.
"""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING, Any

from cicd.commands import files
from cicd.core.ledger import now

if TYPE_CHECKING:
    from cicd.host.context import HostContext


def begin(
    host: HostContext, running: str | None, sha: str, why: str, reason: str = ""
) -> None:
    """Record that ``current`` is about to go from ``running`` to ``sha``.

    Args:
        host: The environment on one host.
        running: What runs now.
        sha: What it switches to.
        why: What switches (deploy, rollback, recover, restart).
        reason: Why, as the switch's own ledger event and message will say it:
            a repair that completes the switch records and says the same (a CI
            reason's run link kept apart, as its message links it).
    """
    details = {
        "from": running,
        "to": sha,
        "why": why,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "time": now(),
    }
    if reason:
        details["reason"] = str(reason)
        details["ci_url"] = getattr(reason, "ci_url", "")
    # Sent with the switch's own command, before it (one round trip for both).
    host.runner.defer(
        files.write_atomic(host.paths.intent, json.dumps(details, sort_keys=True))
    )


def read(host: HostContext) -> dict[str, Any] | None:
    """The unfinished switch, or None."""
    text = host.runner.run(files.read(host.paths.intent)).stdout.strip()
    if not text:
        return None
    try:
        details = json.loads(text)
    except ValueError:
        return {"raw": text[:200]}
    return details if isinstance(details, dict) else {"raw": text[:200]}


def clear(host: HostContext) -> None:
    """The switch is finished (or undone): removed with the next command."""
    host.runner.defer(files.remove(host.paths.intent))


def describe(details: dict[str, Any]) -> str:
    """One line: ``a1b2c3d → e4f5a6b (deploy), left by pid 42 on vm at TIME``."""
    if "raw" in details:
        return f"unreadable intent: {details['raw']}"
    old = str(details.get("from") or "none")[:7]
    new = str(details.get("to") or "none")[:7]
    return (
        f"{old} → {new} ({details.get('why', '?')}), left by pid "
        f"{details.get('pid', '?')} on {details.get('host', '?')} at "
        f"{details.get('time', '?')}"
    )
