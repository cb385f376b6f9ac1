"""The outbox rule shared by Discord notifications and GitHub deployments.

Neither Discord nor GitHub may fail or block a deploy, so what could not be sent is
kept on the host and sent by a later run, in order: :func:`deliver_in_order` sends
the queued entries oldest first, stops at the first that fails for a reason that may
pass (the service down, rate-limited) so nothing overtakes it, and sets aside the
ones the service refuses for good, which would otherwise block the queue forever.

The files differ by what they keep (:mod:`cicd.reporting.notify`: one message per
line in ``outbox.jsonl``; :mod:`cicd.reporting.github_deployments`: the queue with
the deployments' ids in ``github-outbox.json``); both set aside refused entries one
JSON object per line (``rejected.jsonl``, ``github-rejected.jsonl``), read and
written here.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cicd.commands import files

if TYPE_CHECKING:
    from cicd.transport.runner import Runner

#: A sender's answer for an entry delivered (or moot: nothing left to send).
DELIVERED = "delivered"
#: A sender's answer for an entry that failed for a reason that may pass.
KEEP = "keep"
#: Any other answer is the reason the service refused the entry for good.


@dataclass
class Drained:
    """What a pass over a queue did.

    Attributes:
        delivered: Entries delivered.
        refused: Entries refused for good, each with the reason.
        remaining: The entry that failed for a reason that may pass and those
            behind it, in order; empty when the queue was emptied.
    """

    delivered: int = 0
    refused: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    remaining: list[dict[str, Any]] = field(default_factory=list)


def deliver_in_order(
    queue: list[dict[str, Any]], send: Callable[[dict[str, Any]], str]
) -> Drained:
    """Send the entries oldest first, stopping at the first one to keep.

    Args:
        queue: The entries, oldest first.
        send: Sends one entry; answers :data:`DELIVERED`, :data:`KEEP` or the
            reason it is refused for good.
    """
    drained = Drained()
    for index, entry in enumerate(queue):
        outcome = send(entry)
        if outcome == KEEP:
            drained.remaining = queue[index:]
            break
        if outcome == DELIVERED:
            drained.delivered += 1
        else:
            drained.refused.append((entry, outcome))
    return drained


def read_lines(runner: Runner, path: str) -> list[dict[str, Any]]:
    """The JSON objects of a file on the host, one a line; a damaged line is skipped."""
    text = runner.run(files.read(path)).stdout
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def append_lines(runner: Runner, path: str, entries: list[dict[str, Any]]) -> None:
    """Add JSON objects to a file on the host, one a line."""
    if not entries:
        return
    runner.run(files.mkdirs(posixpath.dirname(path)))
    for entry in entries:
        runner.run(files.append_line(path, json.dumps(entry)))


def write_lines(runner: Runner, path: str, entries: list[dict[str, Any]]) -> None:
    """Replace a file on the host by these JSON objects, one a line, atomically."""
    runner.run(files.mkdirs(posixpath.dirname(path)))
    content = "".join(json.dumps(e) + "\n" for e in entries)
    runner.run(files.write_atomic(path, content))
