"""Where things live on a target host: one :class:`EnvPaths` per environment.

::

    <root>/<env>/
      releases/<sha>/   exported tree of that commit; never modified after export
      current           symlink -> releases/<sha>, switched atomically
      ledger.jsonl      append-only event history
      validated         the last CI-validated sha
      lock/             held by deploy and rollback; lock/details names the holder
      backups/          archives of persistent data taken before production deploys
      shared/           persistent data of the app, kept across releases
      shared/app.env    the app's own secrets (KEY=VALUE, mode 0600), loaded at start
      outbox.jsonl      notifications not delivered yet
      logs/             app, CI and watcher logs
      watch/<sha>.json  the journal of the CI watcher of that sha
    <root>/venvs/<hash>/  the app's dependencies, one per requirements file content
    <root>/supervisor/    the embedded supervisord's config, socket and logs
"""

from __future__ import annotations

from dataclasses import dataclass
from posixpath import join


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
    def logs(self) -> str:
        """App and watcher logs."""
        return join(self.dir, "logs")

    @property
    def watch(self) -> str:
        """Journals of CI watchers, one per watched sha."""
        return join(self.dir, "watch")

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
