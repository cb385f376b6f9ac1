"""The ledger: an append-only JSON-lines history of everything done to an environment.

It is the one source of truth for history. Each line is one event with its time,
environment, sha, previous sha, actor, host, outcome and step durations. Reading is
forgiving: a corrupt line is reported and skipped, never fatal.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

from cicd.core.redact import redact

#: Event names written to the ledger; mypy refuses any other name in the code.
EventName = Literal[
    "deploy",
    "export",
    "switch",
    "restart",
    "health",
    "backup",
    "rollback",
    "marked_bad",
    "validated",
    "ci",
    "refused",
    "noop",
    "lock_broken",
    "locked",
    "unlocked",
    "prune",
    "repair",
    "ledger_repaired",
    "restore",
]
EVENTS: tuple[str, ...] = get_args(EventName)
#: Longest ``detail`` a ledger line keeps.
DETAIL_LIMIT = 2000
#: How a ``ledger_repaired`` event names the corrupt lines it acknowledges.
ACKNOWLEDGED = re.compile(r"^corrupt lines? ([\d, ]+)")


def acknowledgement(numbers: list[int], why: str) -> str:
    """The detail of a ``ledger_repaired`` event for these line numbers."""
    listed = ", ".join(str(n) for n in numbers)
    return f"corrupt line{'s' if len(numbers) > 1 else ''} {listed}: {why}"


def actor() -> str:
    """Who is acting: ``GITHUB_ACTOR`` in a workflow, else the local user."""
    if name := os.environ.get("GITHUB_ACTOR"):
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def now() -> str:
    """The current UTC time in ISO 8601 with a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time from the ledger or the history, or None when unreadable."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    """One ledger line."""

    event: EventName
    env: str
    sha: str | None = None
    previous: str | None = None
    outcome: str = "ok"
    detail: str = ""
    durations: dict[str, float] = field(default_factory=dict)
    #: The steps a deploy or rollback carried out, by name, in order: the same
    #: names ``--plan --json`` lists (:mod:`cicd.core.decisions`).
    actions: tuple[str, ...] = ()
    time: str = field(default_factory=now)
    actor: str = field(default_factory=actor)
    host: str = field(default_factory=socket.gethostname)

    def to_json(self) -> str:
        """Serialise as one compact JSON line (no newline)."""
        data: dict[str, Any] = {
            "time": self.time,
            "env": self.env,
            "event": self.event,
            "sha": self.sha,
            "previous": self.previous,
            "outcome": self.outcome,
            "actor": self.actor,
            "host": self.host,
        }
        if self.detail:
            # Bounded: a 10 kB value must not flood every later `status`; and never
            # a secret, whatever a caller passed.
            data["detail"] = redact(self.detail)[:DETAIL_LIMIT]
        if self.durations:
            data["durations"] = {k: round(v, 3) for k, v in self.durations.items()}
        if self.actions:
            data["actions"] = list(self.actions)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Build an event from a parsed line, ignoring unknown fields."""
        name = data["event"]
        if name not in EVENTS:
            raise ValueError(f"unknown event {str(name)[:40]!r}")
        return cls(
            event=cast(EventName, name),
            env=str(data.get("env", "")),
            sha=data.get("sha"),
            previous=data.get("previous"),
            outcome=str(data.get("outcome", "ok")),
            detail=str(data.get("detail", "")),
            durations=dict(data.get("durations") or {}),
            actions=tuple(str(a) for a in data.get("actions") or ()),
            time=str(data.get("time", "")),
            actor=str(data.get("actor", "")),
            host=str(data.get("host", "")),
        )


def parse(text: str) -> tuple[list[Event], list[str]]:
    """Parse ledger text into events, skipping corrupt lines.

    Args:
        text: The ledger file's content.

    Returns:
        The events in order, and one warning per skipped line — except lines a
        later ``ledger_repaired`` event acknowledged: those were reported once.
    """
    events: list[Event] = []
    corrupt: dict[int, str] = {}
    # Split on newlines only: a value may hold U+2028 and the like, which
    # splitlines() would cut, shifting every later line number.
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            events.append(Event.from_dict(data))
        except (ValueError, KeyError, TypeError) as error:
            corrupt[number] = f"ledger line {number} skipped (corrupt: {error})"
    acknowledged: set[int] = set()
    for event in events:
        match = (
            ACKNOWLEDGED.match(event.detail)
            if event.event == "ledger_repaired"
            else None
        )
        if match:
            acknowledged |= {int(n) for n in re.findall(r"\d+", match.group(1))}
    return events, [w for n, w in corrupt.items() if n not in acknowledged]


def corrupt_lines(warnings: list[str] | tuple[str, ...]) -> list[int]:
    """The line numbers named by :func:`parse`'s warnings."""
    numbers = (re.match(r"ledger line (\d+) ", w) for w in warnings)
    return [int(m.group(1)) for m in numbers if m]
