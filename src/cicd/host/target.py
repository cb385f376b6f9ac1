"""One environment on one target host: its paths, files, source and state.

:class:`Target` is what the orchestration (deploy, rollback, watch, status) is written
against. Every file it reads or writes on the host goes through the runner as a built
command, so a Target works the same on this machine and over SSH.
"""

from __future__ import annotations

import re
import sys
from posixpath import basename, join
from typing import TYPE_CHECKING, Any

from cicd.core import lock_details
from cicd.core.config_schema import SLOTS
from cicd.core.decisions import doomed_releases
from cicd.commands import Command, files, git
from cicd.core.errors import CicdError, UsageError, clip
from cicd.checks.health import Fetcher
from cicd.host import venvs
from cicd.host.context import HostContext
from cicd.core.inputs import REVISION_PATTERN
from cicd.core.layout import EnvPaths
from cicd.core.ledger import Event, EventName, acknowledgement, parse
from cicd.core.state import EnvState, replay

if TYPE_CHECKING:
    from cicd.runtime.swarm import SwarmRuntime
    from cicd.core.settings import EnvSettings, Settings
    from cicd.transport.runner import Result, Runner
    from cicd.runtime import Runtime
    from cicd.host.slots import Slots

SHA_PATTERN = re.compile(r"^[0-9a-fA-F]{7,40}$")
URL_PATTERN = re.compile(r"^([a-z][a-z0-9+.-]*://|[^/\s]+@[^/\s]+:)")


class Target:
    """One environment of one host.

    Args:
        runner: Runs commands locally or over SSH.
        settings: The whole configuration.
        env: The environment's name.
    """

    def __init__(self, runner: Runner, settings: Settings, env: str) -> None:
        self.runner = runner
        self.all_settings = settings
        self.settings: EnvSettings = settings.env(
            env, runner.host if runner.remote else None
        )
        self.env = env
        self.paths = EnvPaths(self._root(), env)
        self.context = HostContext(runner, self.settings, self.paths)
        self._runtime: Runtime | None = None
        self._proxied: bool | None = None
        self._slots: Slots | None = None
        self._pending: list[Event] = []
        self._described: dict[str, tuple[str, str]] = {}
        #: Corrupt ledger lines this process reported already.
        self._acknowledged: set[int] = set()
        #: The environment's directories exist (taking the lock made them).
        self.dirs_made = False

    def _root(self) -> str:
        root = self.settings.root
        if not self.runner.remote and not root.startswith("/"):
            root = str((self.all_settings.project_dir / root).resolve())
        return root

    # -- tools --------------------------------------------------------------

    @property
    def python(self) -> str:
        """Interpreter that builds the app's venvs."""
        return self.context.python

    def fetcher(self) -> Fetcher:
        """Who makes this environment's health requests: here, or on its host."""
        return self.context.fetcher()

    def is_proxied(self) -> bool:
        """Whether deploys are blue/green behind haproxy (``proxy.kind``).

        ``auto`` asks the host once whether it has haproxy.
        """
        if self._proxied is None:
            kind = self.settings.proxy.kind
            self._proxied = kind == "haproxy" or (
                kind == "auto" and self._has_haproxy()
            )
            if self._proxied and kind == "auto":
                # Checked at load only for "haproxy": without haproxy on the
                # host, the slots' ports are never used.
                from cicd.core.config_validation import check_slot_ports

                proxy = self.settings.proxy
                check_slot_ports(
                    self.settings.port,
                    {"blue_port": proxy.blue_port, "green_port": proxy.green_port},
                    f"tool.cicd.env.{self.env}",
                )
        return self._proxied

    def _has_haproxy(self) -> bool:
        """Whether the host has haproxy (asked once per host and run)."""
        return bool(self.context.haproxy_path())

    @property
    def slots(self) -> Slots:
        """The blue/green slots of this environment (behind haproxy)."""
        if self._slots is None:
            from cicd.host.slots import Slots

            self._slots = Slots(self.context)
        return self._slots

    def live_runtime(self) -> Runtime:
        """The runtime that runs this environment's app (its live slot's, if proxied).

        Behind haproxy the live slot is asked of haproxy each time: a switch
        changes it.
        """
        if self.is_proxied():
            return self.slots.runtime(self.slots.live())
        if self._runtime is None:
            from cicd.runtime import runtime_for

            self._runtime = runtime_for(self.runner, self.settings, self.paths)
        return self._runtime

    def tools_runtime(self) -> Runtime:
        """A runtime to ask what does not depend on the slot: its programs.

        Its preflight (are supervisord and supervisorctl there?) is the same for
        both slots, so nothing asks haproxy which one is live.
        """
        if self.is_proxied():
            return self.slots.runtime(SLOTS[0])
        return self.live_runtime()

    # -- files --------------------------------------------------------------

    def ensure_dirs(self) -> None:
        """Create the environment's directories (once: taking the lock makes them)."""
        if not self.dirs_made:
            self.runner.run(files.mkdirs(*self.paths.dirs))
            self.dirs_made = True

    def opening_reads(self) -> list[Command]:
        """What a run that took the lock reads first: intent, state, runtime tools.

        Sent with the lock's own command, they cost no round trip of their own.
        """
        return [
            files.read(self.paths.intent),
            files.snapshot(self.paths.dir),
            *self.tools_runtime().preflight_reads(),
        ]

    def closing_reads(self) -> list[Command]:
        """What a run reads once it let the lock go: the watches left unfinished."""
        return [files.list_files(self.paths.watch)]

    def record(
        self,
        event: Event,
        *,
        until_next_write: bool = False,
        with_next_command: bool = False,
    ) -> Event:
        """Append an event to the ledger (with any held back before it, in order).

        Args:
            event: The event.
            until_next_write: Hold it back until the next ledger write (saves a
                round trip for events whose loss in a crash would not mislead: the
                ledger's switch and health events are never held back so).
            with_next_command: Write it with the host's next command, whatever it
                is (the runner's :meth:`~cicd.transport.runner.Runner.defer`): it
                still lands before anything that command or a later one does, so
                the ledger's order holds; a crash before that command is a crash
                before this event.
        """
        self._pending.append(event)
        if not until_next_write:
            self.flush_events(with_next_command=with_next_command)
        return event

    def flush_events(self, *, with_next_command: bool = False) -> None:
        """Write the events held back, now or with the host's next command."""
        if self._pending:
            lines = [e.to_json() for e in self._pending]
            self._pending.clear()
            append = files.append_lines(self.paths.ledger, *lines)
            if with_next_command:
                self.runner.defer(append, then=self._check_torn)
            else:
                self._check_torn(self.runner.run(append))

    def _check_torn(self, done: Result) -> None:
        torn = done.stdout.split()
        if torn[:1] == ["torn"] and torn[1:2] and torn[1].isdigit():
            self._report_torn(int(torn[1]))

    def _report_torn(self, number: int) -> None:
        """Say once that the ledger's last line had been cut short."""
        if number in self._acknowledged:
            return  # this run already reported it, as a corrupt line
        why = "a write cut short; kept as it is, new events start on a fresh line"
        print(
            f"warning: {self.paths.ledger}: line {number} was torn ({why})",
            file=sys.stderr,
        )
        self.acknowledge([number], why)

    def acknowledge(self, numbers: list[int], why: str) -> None:
        """Record that these corrupt ledger lines were reported (readers skip them)."""
        self._acknowledged.update(numbers)
        self.event("ledger_repaired", detail=acknowledgement(numbers, why))

    def event(
        self,
        name: EventName,
        *,
        until_next_write: bool = False,
        with_next_command: bool = False,
        **fields: Any,
    ) -> Event:
        """Build and append an event of this environment (see :meth:`record`)."""
        return self.record(
            Event(event=name, env=self.env, **fields),
            until_next_write=until_next_write,
            with_next_command=with_next_command,
        )

    def serving(self) -> str | None:
        """The sha of the release the running app really runs, or None.

        Asked of the runtime (the process's working directory, the container's
        release), never of ``current``.
        """
        if self.is_proxied():
            # What haproxy routes to serves; nothing does when it is down.
            routed = self.slots.routed()
            if routed is None:
                return None
            return self.paths.release_of(self.slots.runtime(routed).serving())
        return self.paths.release_of(self.live_runtime().serving())

    def current(self) -> str | None:
        """The sha ``current`` points to, or None."""
        target = self.runner.output(files.readlink(self.paths.current))
        return basename(target.rstrip("/")) or None

    def validated(self) -> str | None:
        """The last CI-validated sha, or None."""
        return self.runner.output(files.read(self.paths.validated)) or None

    def set_validated(self, sha: str) -> None:
        """Write ``validated`` atomically."""
        self.runner.run(files.write_atomic(self.paths.validated, sha + "\n"))

    def switch(self, sha: str, previous: str | None) -> None:
        """Point ``current`` at ``releases/<sha>`` atomically (relative link).

        The ledger's ``switch`` event (and any deferred ones) is appended in the same
        command, right after the link changes; what the runtime's restart reads
        first is read in the same round trip.
        """
        self._pending.append(
            Event(event="switch", env=self.env, sha=sha, previous=previous)
        )
        lines = [e.to_json() for e in self._pending]
        self.runner.run(
            files.switch_symlink(
                self.paths.current, join("releases", sha), self.paths.ledger, *lines
            ),
            prefetch=self.live_runtime().restart_reads(),
        )
        self._pending.clear()

    # -- source -------------------------------------------------------------

    @property
    def source_is_url(self) -> bool:
        """Whether the source is a remote URL mirrored under the root."""
        return bool(URL_PATTERN.match(self.settings.source))

    @property
    def repo(self) -> str:
        """The git repository releases are exported from, as seen on the host."""
        if self.source_is_url:
            return self.paths.mirror
        source = self.settings.source
        if not self.runner.remote and not source.startswith("/"):
            return str((self.all_settings.project_dir / source).resolve())
        return source

    def resolve(self, revision: str) -> str:
        """Resolve a revision from the user, once, to the full sha recorded everywhere.

        A sha (7 to 40 hex digits), ``HEAD``, a branch, a tag, or any revision git
        resolves in the source (``main~1``, ``v1.2^{commit}``) names a commit. For a
        URL source, a sha already known needs no network; a name (a branch moves)
        fetches the mirror first.

        Raises:
            UsageError: Empty, starting with ``-`` (never an option to git), not
                a revision's characters, or not a commit of the source.
        """
        revision = revision.strip()
        if revision.startswith("-"):
            raise UsageError(
                f"invalid revision {clip(revision, 60)!r}: it must not start with '-'"
            )
        if not REVISION_PATTERN.match(revision):
            raise UsageError(
                f"invalid revision {clip(revision, 60)!r}: expected a sha (7 to 40 "
                "hexadecimal digits), HEAD, a branch or a tag"
            )
        is_sha = bool(SHA_PATTERN.match(revision))
        if self.source_is_url and not is_sha:
            self._update_mirror()
        found = self._rev_parse(revision)
        if found is None and self.source_is_url and is_sha:
            self._update_mirror()
            found = self._rev_parse(revision)
        if found is None:
            what = "sha" if is_sha else "revision"
            raise UsageError(
                f"{what} {revision} is not a commit of {self.settings.source}"
            )
        if not is_sha:
            # Said once: from here on only the full sha is used and recorded.
            print(f"{revision} is {found}", file=sys.stderr)
        return found

    def _rev_parse(self, revision: str) -> str | None:
        if self.source_is_url and not self.runner.ok(files.exists(self.repo)):
            return None
        # The runtime's preflight comes next (deploys): read in the same trip.
        result = self.runner.run(
            git.resolve_described(self.repo, revision),
            check=False,
            prefetch=self.tools_runtime().preflight_reads(),
        )
        sha, _, rest = result.stdout.strip().partition("\x00")
        if not (result.ok and re.fullmatch(r"[0-9a-f]{40}", sha)):
            return None
        author, _, subject = rest.partition("\x00")
        self._described[sha] = (author, subject)
        return sha

    def _update_mirror(self) -> None:
        if self.runner.ok(files.exists(self.repo)):
            self.runner.run(git.fetch(self.repo))
        else:
            self.runner.run(files.mkdirs(self.paths.root))
            self.runner.run(git.mirror_clone(self.settings.source, self.repo))

    def describe(self, sha: str) -> tuple[str, str]:
        """Author and subject of a commit (empty strings when unknown)."""
        if sha in self._described:
            return self._described[sha]
        result = self.runner.run(git.describe(self.repo, sha), check=False)
        author, _, subject = result.stdout.strip().partition("\x00")
        return author, subject

    # -- releases -----------------------------------------------------------

    def export(self, sha: str, *, present: bool | None = None) -> bool:
        """Make ``releases/<sha>`` a whole, ready release; reuse it when present.

        The tree is exported and its dependencies prepared in a hidden temporary
        directory, then renamed into place, so a release directory is always whole
        and never modified afterwards.

        Args:
            sha: The full sha.
            present: Whether the release is there, when the caller knows (the
                state read under the lock lists the whole releases); else asked.

        Returns:
            True when exported now, False when an existing release was reused.
        """
        final = self.paths.release(sha)
        swarm = self.settings.runtime.kind == "swarm"
        exported = False
        if present is None:
            present = self.runner.ok(files.exists(final))
        if not present:
            tmp = self.paths.release_tmp(sha)
            self.runner.run(git.export(self.repo, sha, tmp))
            try:
                if not swarm:  # the swarm's image holds the dependencies
                    venv = self.prepare_venv(tmp, sha)
                    self.runner.run(files.link(venv, join(tmp, ".venv")))
                self.runner.run(files.rename(tmp, final))
            except CicdError:
                # A half-made release never stays behind (the next export would
                # sweep it too, but a failed one says so now).
                self.runner.run(files.remove(tmp), check=False)
                raise
            exported = True
        return exported

    def swarm(self) -> SwarmRuntime:
        """The swarm runtime (any slot's: images do not depend on the slot).

        Raises:
            CicdError: The environment does not run on a swarm.
        """
        from cicd.runtime.swarm import SwarmRuntime

        runtime = self.tools_runtime()
        if not isinstance(runtime, SwarmRuntime):
            raise CicdError(f"{self.env} does not run on a swarm")
        return runtime

    def prepare_venv(self, release: str, sha: str | None = None) -> str:
        """The venv of a release's dependencies (see :mod:`cicd.host.venvs`)."""
        return venvs.prepare_venv(self.context, release, repo=self.repo, sha=sha)

    # -- state --------------------------------------------------------------

    def state(self) -> EnvState:
        """Compute the environment's state from the ledger, links and files.

        Everything is read in one command, so it costs one round trip over SSH.
        """
        sections = files.parse_snapshot(
            self.runner.run(files.snapshot(self.paths.dir)).stdout
        )
        events, warnings = parse(sections.get("ledger", ""))
        return replay(
            self.env,
            events,
            current=basename(sections.get("current", "").strip().rstrip("/")) or None,
            validated=sections.get("validated", "").strip() or None,
            releases=(
                n for n in sections.get("releases", "").split() if SHA_PATTERN.match(n)
            ),
            lock=lock_details.parse_state(sections.get("lock", "")),
            warnings=warnings,
        )

    def prune(self, state: EnvState) -> list[str]:
        """Remove old releases, keeping the ones that matter.

        Kept: current, previous, last validated, and the newest ``keep`` releases
        by ledger order.

        Returns:
            The removed shas.
        """
        doomed = doomed_releases(state, self.settings.keep)
        if doomed:
            # With the run's last command (its lock's release): nothing reads them.
            self.runner.defer(files.remove(*(self.paths.release(s) for s in doomed)))
        return doomed
