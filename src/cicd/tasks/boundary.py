"""The task boundary: input checked before a body runs, errors as one line and a code.

Every task runs inside :func:`reported` (a :class:`~cicd.core.errors.CicdError`
becomes one redacted line and its exit code, and the ``--json`` document when it
was asked for), behind :func:`guard` (every option and the environment checked
first). The seconds a user types (``--lock-wait``, ``--patience``) are read here.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from invoke.collection import Collection
from invoke.exceptions import Exit

from cicd.core.errors import CicdError, UsageError, clip
from cicd.core.inputs import check_environment, check_options
from cicd.core.redact import redact
from cicd.tasks.documents import document, emit_json, report_to_github

#: What a process killed by a closed pipe exits with (128 + SIGPIPE).
BROKEN_PIPE = 141


@contextmanager
def reported(
    json_task: str = "", env: str | None = None, *, summary: str = ""
) -> Iterator[None]:
    """Turn a :class:`~cicd.core.errors.CicdError` into a one-line message and code.

    The message is redacted and kept to one line of bounded length. A reader that
    closes the pipe early (``invoke releases | head``) ends the task quietly.

    Args:
        json_task: The task's name when it was asked for ``--json``: an error is
            then also the JSON document (``"ok": false``, ``"error"``, no hosts),
            so a script reading stdout always gets one document.
        env: The environment, for that document.
        summary: The task's name when its failure belongs in the job's summary and
            as an ``::error::`` annotation (deploy, verdict, rollback, monitor).
    """
    from cicd.transport.runner import flush_all

    try:
        yield
        # What the task deferred (an intent removed, ...) runs before it ends.
        flush_all()
        sys.stdout.flush()
    except CicdError as error:
        _flush_after(error)
        message = clip(redact(str(error)), 400)
        if summary:
            failed = document(summary, [], env=env, ok=False, error=message)
            report_to_github(failed, json=bool(json_task))
        if json_task:
            emit_json(
                json_task,
                [],
                env=env,
                ok=False,
                error=message,
                exit_code=error.exit_code,
            )
        raise Exit(f"error: {message}", code=error.exit_code) from None
    except BrokenPipeError:
        # Python would print a traceback at exit while flushing: point stdout at
        # /dev/null so nothing more is written, and end as a closed pipe does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise Exit(code=BROKEN_PIPE) from None


def guard(collection: Collection, prefix: str = "") -> None:
    """Check every task's options and the environment before its body runs.

    The task boundary of :mod:`cicd.core.inputs`: one rule for every task, so a new
    task or option is covered without a line of its own. A bad value ends the
    task with one line and exit 2 (and the ``--json`` document), before anything
    is read or changed.

    Args:
        collection: The collection, walked with its sub-collections.
        prefix: The collection's dotted name (``deploy.``).
    """
    for name, each in collection.tasks.items():
        if getattr(each.body, "guarded", False):
            continue
        full = prefix + name if collection.default != name else prefix.rstrip(".")
        each.body = _guarded(each.body, full or name)
    for name, sub in collection.collections.items():
        guard(sub, f"{prefix}{name}.")


def _guarded(body: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(body)
    def checked(c: Any, *args: Any, **kwargs: Any) -> Any:
        with reported(name if kwargs.get("json") is True else ""):
            check_options(kwargs)
            check_environment()
        return body(c, *args, **kwargs)

    checked.guarded = True  # type: ignore[attr-defined]
    return checked


def _flush_after(error: CicdError) -> None:
    """Run what a failed task deferred; a failure there is said, not raised."""
    from cicd.transport.runner import flush_all

    try:
        flush_all()
    except CicdError as late:
        if late is not error:
            print(f"warning: {clip(redact(str(late)), 400)}", file=sys.stderr)


def seconds(value: str, flag: str) -> float | None:
    """A number of seconds a user typed, or None when the flag was not given.

    Raises:
        UsageError: Not a number, or negative; nothing was changed.
    """
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number < 0:
        raise UsageError(f"{flag} must be 0 or more seconds, got {clip(value, 40)!r}")
    if not number >= 0 or number == float("inf"):
        raise UsageError(f"{flag} must be a number of seconds, got {clip(value, 40)!r}")
    return number


def lock_waiting(
    lock_wait: str, default: float | None = 0.0
) -> AbstractContextManager[None]:
    """Make the locks the block takes wait up to the ``--lock-wait`` the user typed.

    ``default`` is the wait when the flag is empty; None leaves each lock its own (a
    verdict waits ``ci.lock_wait``). See :func:`cicd.host.lock.waiting`.

    Raises:
        UsageError: Not a number of seconds; nothing was changed.
    """
    from cicd.host import lock

    given = seconds(lock_wait, "--lock-wait")
    return lock.waiting(default if given is None else given)
