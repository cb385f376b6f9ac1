"""Where things live on a target host: one :class:`EnvPaths` per environment.

::

    <root>/<env>/
      releases/<sha>/   exported tree of that commit; never modified after export
      current           symlink -> releases/<sha>, switched atomically
      slots/blue|green  behind haproxy: symlink -> ../releases/<sha> each slot runs
      live              behind haproxy: the slot it routes to ("blue" or "green")
      warm              behind haproxy: the previous slot kept running, and until when
      ledger.jsonl      append-only event history
      validated         the last CI-validated sha
      lock/             held by deploy and rollback; lock/details names the holder
      backups/          archives of persistent data taken before production deploys
      shared/           persistent data of the app, kept across releases
      shared/app.env    the app's own secrets (KEY=VALUE, mode 0600), loaded at start
      outbox.jsonl      notifications not delivered yet
      rejected.jsonl    notifications Discord refused for good, set aside
      intent            an unfinished switch ("X -> Y, restart pending"), until ready
      monitor.json      the hourly monitor's state (failures, down since, alerted)
      monitor.pid       the monitor's background re-checker, while one runs
      monitor.jsonl     the monitor's history: one line per check (time, ok, reason)
      logs/             app (app.log), CI (ci-<sha>.log) and watcher logs
      watch/<sha>.json  the journal of the CI watcher of that sha
      ci/<sha>/         the scratch copy a local CI run works in
    <root>/venvs/<hash>/  the app's dependencies, one per requirements file content
    <root>/ci-envs/       the local CI's nox virtualenvs, shared by every run
    <root>/source.git     the mirror of a source given as a URL
    <root>/supervisor/    the embedded supervisord's config, socket and logs
    <root>/proxy/         haproxy's config (one fragment per environment) and socket

Every path on a target host is a property or method here, so a newcomer finds the
whole layout in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from posixpath import join


def controller_logs(project_dir: Path) -> Path:
    """Logs kept on this machine, beside its configuration, for a fleet it watches."""
    return project_dir / ".cicd" / "logs"


@dataclass(frozen=True)
class EnvPaths:
    """Paths of one environment under a target root (POSIX, as on the target)."""

    root: str
    env: str

    @property
    def dir(self) -> str:
        """The environment's directory."""
        return join(self.root, self.env)

    @property
    def releases(self) -> str:
        """Directory of exported releases."""
        return join(self.dir, "releases")

    @property
    def current(self) -> str:
        """The symlink to the running release."""
        return join(self.dir, "current")

    @property
    def ledger(self) -> str:
        """The append-only event log."""
        return join(self.dir, "ledger.jsonl")

    @property
    def validated(self) -> str:
        """File holding the last CI-validated sha."""
        return join(self.dir, "validated")

    @property
    def lock(self) -> str:
        """The lock directory."""
        return join(self.dir, "lock")

    @property
    def backups(self) -> str:
        """Backups of persistent data."""
        return join(self.dir, "backups")

    @property
    def shared(self) -> str:
        """Persistent data kept across releases."""
        return join(self.dir, "shared")

    @property
    def app_env(self) -> str:
        """The app's own secrets, loaded into its environment at every start."""
        return join(self.shared, "app.env")

    @property
    def outbox(self) -> str:
        """Notifications that could not be delivered yet."""
        return join(self.dir, "outbox.jsonl")

    @property
    def rejected(self) -> str:
        """Notifications Discord refused for good (4xx), set aside so none blocks."""
        return join(self.dir, "rejected.jsonl")

    @property
    def logs(self) -> str:
        """App and watcher logs."""
        return join(self.dir, "logs")

    @property
    def watch(self) -> str:
        """Journals of CI watchers, one per watched sha."""
        return join(self.dir, "watch")

    @property
    def dirs(self) -> tuple[str, ...]:
        """The directories a deploy needs, made together (with the lock, if taken)."""
        return (self.dir, self.releases, self.logs, self.backups, self.shared)

    @property
    def intent(self) -> str:
        """An unfinished switch ("X → Y, restart pending"), cleared once ready."""
        return join(self.dir, "intent")

    @property
    def monitor(self) -> str:
        """The hourly monitor's state."""
        return join(self.dir, "monitor.json")

    @property
    def monitor_history(self) -> str:
        """The monitor's history: one JSON line per check, read by the report."""
        return join(self.dir, "monitor.jsonl")

    @property
    def rechecker(self) -> str:
        """The pid of the monitor's background re-checker while one runs."""
        return join(self.dir, "monitor.pid")

    @property
    def app_log(self) -> str:
        """The app's output under the embedded runtime."""
        return join(self.logs, "app.log")

    def app_log_of(self, slot: str | None) -> str:
        """The output of the app on a slot (``logs/app-blue.log``), or in place."""
        return join(self.logs, f"app-{slot}.log") if slot else self.app_log

    def link(self, slot: str | None) -> str:
        """The symlink an app instance runs: its slot's, or ``current`` in place."""
        return self.slot(slot) if slot else self.current

    def slot(self, name: str) -> str:
        """The symlink to the release a slot runs (behind the proxy)."""
        return join(self.dir, "slots", name)

    @property
    def slots(self) -> str:
        """The directory of the slots' symlinks."""
        return join(self.dir, "slots")

    @property
    def live(self) -> str:
        """The slot haproxy routes to, as last switched (read when it restarts)."""
        return join(self.dir, "live")

    @property
    def warm(self) -> str:
        """The previous release's slot, kept running after a switch, and until when."""
        return join(self.dir, "warm")

    @property
    def proxy(self) -> str:
        """The directory of haproxy, shared by every environment of the root."""
        return join(self.root, "proxy")

    def journal(self, sha: str) -> str:
        """The CI watcher's journal for ``sha``."""
        return join(self.watch, f"{sha}.json")

    def watch_log(self, sha: str) -> str:
        """The output of the detached watcher of ``sha``."""
        return join(self.logs, f"watch-{sha}.log")

    def ci_log(self, sha: str) -> str:
        """The output of the local CI run for ``sha``."""
        return join(self.logs, f"ci-{sha}.log")

    @property
    def ci_work(self) -> str:
        """Where local CI runs make their scratch copies."""
        return join(self.dir, "ci")

    @property
    def ci_envs(self) -> str:
        """The local CI's virtualenvs, shared by every run and environment."""
        return join(self.root, "ci-envs")

    @property
    def mirror(self) -> str:
        """The bare mirror of a source given as a URL."""
        return join(self.root, "source.git")

    def release_tmp(self, sha: str) -> str:
        """Where a release is exported before it is renamed into place."""
        return join(self.releases, f".{sha}.tmp")

    @property
    def venvs(self) -> str:
        """Dependency environments, shared by every environment of the root."""
        return join(self.root, "venvs")

    @property
    def supervisor(self) -> str:
        """The embedded supervisord's directory, shared by every environment."""
        return join(self.root, "supervisor")

    def release(self, sha: str) -> str:
        """Directory of one release."""
        return join(self.releases, sha)

    def release_of(self, path: str) -> str | None:
        """The sha of this environment's release a path lies in, or None.

        Matched on ``.../<env>/releases/<sha>``, so a root reached through a
        symlink (the kernel reports resolved paths) still matches.
        """
        marker = f"/{self.env}/releases/"
        if marker not in path:
            return None
        name = path.rsplit(marker, 1)[1].split("/", 1)[0]
        return name if name and not name.startswith(".") else None
