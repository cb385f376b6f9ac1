"""Who holds an environment's deploy lock: the details it records, read and described.

A lock's ``details`` file says who took it (actor, host, pid, sha, time, why).
:mod:`cicd.host.lock` takes and releases the lock on a host; this module only reads
details and says them in one line. Whether a holder is stale asks this machine's
process table, as the holder's host is this one when it can be stale at all.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from cicd.core.ledger import actor, now

#: The ``why`` of a manual lock's details.
MANUAL = "manual"


def is_manual(details: dict[str, Any] | None) -> bool:
    """Whether a lock's details are those of a manual freeze."""
    return details is not None and details.get("why") == MANUAL


def describe(details: dict[str, Any]) -> str:
    """Return a one-line description of a lock holder, saying when it is stale.

    A holder whose process is gone (``kill -9``, a reboot) still holds the lock
    until the next run breaks it: shown as a holder with no word of it, a person
    would wait for a run that no longer exists.
    """
    if not is_stale(details):
        return holder_text(details)
    return (
        f"{holder_text(details)} — STALE: pid {details.get('pid')} is gone on this "
        "host (the next deploy, rollback or verdict breaks it)"
    )


def holder_text(details: dict[str, Any]) -> str:
    """Who holds a lock, since when and why, in one line."""
    if "raw" in details:
        return str(details["raw"])
    if is_manual(details):
        return (
            f"a manual lock of {details.get('actor', '?')} on "
            f"{details.get('host', '?')} since {details.get('time', '?')}: "
            f"{details.get('reason') or 'no reason given'}"
        )
    return (
        f"{details.get('actor', '?')} on {details.get('host', '?')} "
        f"(pid {details.get('pid', '?')}) since {details.get('time', '?')}: "
        f"{details.get('why', '?')}"
        + (f" {details['sha'][:12]}" if details.get("sha") else "")
    )


def is_stale(details: dict[str, Any]) -> bool:
    """Whether the holder ran on this host and its process no longer exists.

    A manual lock is never stale: the process that took it ended on purpose.
    """
    if is_manual(details) or details.get("host") != socket.gethostname():
        return False
    try:
        pid = int(details.get("pid", 0))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    return not process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The state follows the parenthesised command name: "Z" is a zombie.
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def holder(why: str, sha: str | None, reason: str = "") -> dict[str, Any]:
    """The details a lock taken now, by this process, records about its holder."""
    details: dict[str, Any] = {
        "actor": actor(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "sha": sha,
        "time": now(),
        "why": why,
    }
    if reason:
        details["reason"] = reason
    return details


def parse_state(text: str) -> dict[str, Any] | None:
    """Parse :func:`~cicd.commands.files.lock_state` output (or the snapshot's).

    Returns:
        None when the lock is free, else its details; a lock taken a moment ago
        may have none yet.
    """
    first, _, rest = text.strip("\n").partition("\n")
    if first.strip() != "held":
        return None
    try:
        details = json.loads(rest)
        return details if isinstance(details, dict) else {"raw": rest.strip()}
    except ValueError:
        return {"raw": rest.strip() or "(no details: taken a moment ago)"}
