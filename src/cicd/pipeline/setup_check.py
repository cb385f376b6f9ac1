"""The model of ``setup``'s checks: a :class:`SetupCheck` per item, and their run.

Every check of :mod:`cicd.pipeline.setup` ends the same way: a name, a status
(``ok``, ``fixed``, ``missing`` or ``skipped``), one line for a person and the
commands that fix it by hand. :class:`SetupRun` collects them in order and prints
each line as it completes; :func:`fixes` and :func:`failures` make the report.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cicd.commands import systemd

if TYPE_CHECKING:
    from cicd.core.record import Record
    from cicd.transport.runner import Result

OK, FIXED, MISSING, SKIPPED = "ok", "fixed", "missing", "skipped"


@dataclass(frozen=True)
class SetupCheck:
    """One item of the setup: what it is, how it stands, how to fix it.

    Attributes:
        name: What is checked, e.g. ``preprod: app.env``.
        status: ``ok``, ``fixed`` (fixed by this run), ``missing`` or ``skipped``.
        detail: One line for a person.
        fix: Commands (or instructions) to run by hand, in order.
        blocking: Whether deploys cannot work while it is missing; a missing item
            that does not block (the systemd unit: the detached supervisord is the
            fallback) does not fail a fixing run.
        optional: Advice only: reported, never a failure (the watcher's token lives
            in the repository's secrets, not on the VM).
    """

    name: str
    status: str
    detail: str
    fix: tuple[str, ...] = ()
    blocking: bool = True
    optional: bool = False

    def fails(self, *, check_only: bool) -> bool:
        """Whether this item makes the run exit 1.

        Args:
            check_only: ``--check``: anything missing but optional fails; otherwise
                only what is missing and blocks deploys.
        """
        if self.status != MISSING or self.optional:
            return False
        return check_only or self.blocking

    def line(self) -> str:
        """The line a person sees: status, name, detail."""
        return f"{self.status:<8} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Options:
    """What ``invoke setup`` was asked.

    Attributes:
        check: Change nothing; report only.
        unit_dir: Where the systemd unit goes.
        user: ``User=`` of the unit (empty: none).
        command: How the run was invoked, for the "run this again" fixes.
        record: What to record for the user running setup, who is the service
            user (:mod:`cicd.host.record`); None: nothing (another user, over SSH, or
            the embedded default).
    """

    check: bool = False
    unit_dir: str = systemd.UNIT_DIR
    user: str = ""
    command: str = "invoke setup"
    record: Record | None = None

    @property
    def user_word(self) -> str:
        """The service user as a shell word in a fix; ``"$(id -un)"`` without --user."""
        return shlex.quote(self.user) if self.user else '"$(id -un)"'


@dataclass
class SetupRun:
    """The checks of one run, in order, each printed as it is added.

    Attributes:
        options: What was asked.
        say: Prints one line.
        checks: The checks so far.
    """

    options: Options
    say: Callable[[str], None]
    checks: list[SetupCheck] = field(default_factory=list)

    def add(self, check: SetupCheck) -> SetupCheck:
        """Keep ``check`` and print its line."""
        self.checks.append(check)
        self.say(check.line())
        return check

    def ok(self, name: str, detail: str) -> None:
        """Add a check that is in place."""
        self.add(SetupCheck(name, OK, detail))

    def fixed(self, name: str, detail: str, *fix: str, blocking: bool = True) -> None:
        """Add a check that this run has put in place; ``fix``: left to do by hand."""
        self.add(SetupCheck(name, FIXED, detail, fix, blocking))

    def missing(self, name: str, detail: str, *fix: str, blocking: bool = True) -> None:
        """Add a check that is missing, with the commands that fix it by hand."""
        self.add(SetupCheck(name, MISSING, detail, fix, blocking))

    def missing_until_run(self, name: str, detail: str) -> None:
        """Add a missing check that setup itself fixes: the fix is to run it."""
        self.missing(name, detail, self.options.command)

    def skipped(self, name: str, detail: str) -> None:
        """Add a check that was not made (it never fails the run)."""
        self.add(SetupCheck(name, SKIPPED, detail, blocking=False))


def last_line(result: Result) -> str:
    """What a failed command said last (stderr, else stdout), or its exit code."""
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {result.exited}"


def fixes(checks: Sequence[SetupCheck]) -> list[str]:
    """The commands to run by hand, in order, each once."""
    seen: list[str] = []
    for check in checks:
        for line in check.fix:
            if line not in seen:
                seen.append(line)
    return seen


def failures(checks: Sequence[SetupCheck], *, check_only: bool) -> list[SetupCheck]:
    """The checks that make the run exit 1 (see :meth:`SetupCheck.fails`)."""
    return [c for c in checks if c.fails(check_only=check_only)]
