"""The journal of a CI watch: ``<root>/<env>/watch/<sha>.json`` on the first host.

It is rewritten atomically at every change, so a watcher killed with ``kill -9`` (or
by a reboot) is resumed where it stopped. Its ``state`` goes :data:`WATCHING`
(polling CI), :data:`VERDICT` (a verdict is in), :data:`ACTING` (the verdict is
recorded in the ledgers and being acted on), :data:`DONE`.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any, TypeGuard

from cicd.ci import Poll
from cicd.commands import files
from cicd.core import lock_details
from cicd.core.messages import short

if TYPE_CHECKING:
    from cicd.host.target import Target

#: The journal's states, in order.
WATCHING = "watching"
VERDICT = "verdict"
#: The verdict is recorded (``ci`` events, a failed sha marked bad) and acted on.
ACTING = "acting"
DONE = "done"


def journal_path(target: Target, sha: str) -> str:
    """Where the journal of ``sha``'s watcher lives on the host."""
    return target.paths.journal(sha)


def new_journal(
    target: Target, sha: str, started: float, deadline: float
) -> dict[str, Any]:
    """The journal of a watch that starts now."""
    return {
        "sha": sha,
        "env": target.env,
        "state": WATCHING,
        "started": started,
        "deadline_at": started + deadline,
    }


def load_journal(target: Target, sha: str) -> dict[str, Any] | None:
    """The journal of ``sha``, or None when it was never watched."""
    text = target.runner.run(files.read(journal_path(target, sha))).stdout
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def is_done(journal: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Whether a journal's verdict is decided and acted on."""
    return journal is not None and journal.get("state") == DONE


def save_journal(target: Target, journal: dict[str, Any]) -> None:
    """Write a journal atomically; a decided journal is never turned back.

    The watcher writes outside the lock while it polls; a verdict job may have
    decided meanwhile (under the lock), and its ``done`` must stand.
    """
    if journal.get("state") == WATCHING and is_done(
        load_journal(target, str(journal["sha"]))
    ):
        return
    target.runner.run(files.mkdirs(target.paths.watch))
    target.runner.run(
        files.write_atomic(
            journal_path(target, journal["sha"]), json.dumps(journal, sort_keys=True)
        )
    )


def journaled_verdict(journal: dict[str, Any]) -> Poll:
    """The CI verdict a journal holds, as the provider gave it."""
    return Poll(
        str(journal["verdict"]),
        str(journal.get("detail", "")),
        str(journal.get("url") or ""),
        tuple(journal.get("failed") or ()),
        str(journal.get("run") or ""),
    )


def already_decided(env: str, journal: dict[str, Any]) -> str:
    """What is said when a verdict comes for a watch that decided already."""
    by = f" by the {journal['by']}" if journal.get("by") else ""
    return (
        f"{env}: CI verdict for {short(str(journal['sha']))} already "
        f"decided{by}: {journal.get('verdict')}"
    )


def interrupted(target: Target) -> list[dict[str, Any]]:
    """Journals of watches that did not finish and whose process is gone."""
    names = target.runner.output(files.list_files(target.paths.watch)).splitlines()
    found = []
    for name in sorted(names):
        if not name.endswith(".json"):
            continue
        journal = load_journal(target, name[: -len(".json")])
        if journal and not is_done(journal) and not _alive(journal):
            found.append(journal)
    return found


def _alive(journal: dict[str, Any]) -> bool:
    """Whether the watcher that wrote a journal still runs (on this host)."""
    return (
        not lock_details.is_stale(journal)
        and journal.get("host") == socket.gethostname()
    )
