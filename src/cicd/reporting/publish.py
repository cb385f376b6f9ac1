"""The dashboard's page pushed beside the documentation, on its ``gh-pages`` branch.

Plain git, no third-party action: the VM's job that has the ledgers publishes
beside the documentation (``documentation.yml`` keeps the folder). Every git command
is a builder of :mod:`cicd.commands.git`, run on this machine by the
:class:`~cicd.transport.runner.Runner` in a scratch clone of the branch's tip.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from invoke.context import Context

from cicd.commands import Command, git
from cicd.transport.runner import Result, Runner

#: Where the page goes on the documentation's branch.
PAGES_BRANCH = "gh-pages"
PAGES_FOLDER = "report"
#: Who the page's commits are by.
AUTHOR = ("cicd report", "cicd-report@users.noreply.github.com")


class PublishFailed(Exception):
    """The page could not be pushed to the documentation's branch."""


def publish(
    page: Path,
    *,
    repository: str,
    token: str = "",
    server: str = "https://github.com",
    branch: str = PAGES_BRANCH,
    folder: str = PAGES_FOLDER,
    attempts: int = 3,
) -> str:
    """Put the page on the documentation's branch as ``FOLDER/index.html``, and push.

    The token never goes on a command line: git reads it from a file of the scratch
    directory (mode 0600), included by its environment (``GIT_CONFIG_*``). A push
    that loses a race with the documentation's own publish is retried on the new tip.

    Args:
        page: The HTML file to publish.
        repository: ``OWNER/NAME``.
        token: A token that may push (the job's ``GITHUB_TOKEN``); empty: git's own
            credentials.
        server: The git server's base URL.
        branch: The branch the site is served from.
        folder: The folder of the branch the page goes to.
        attempts: Pushes tried before giving up.

    Returns:
        What was done, in words.

    Raises:
        PublishFailed: git could not fetch, commit or push; the message says why.
    """
    content = page.read_bytes()
    path = f"{folder}/index.html"
    where = f"{branch} of {repository}"
    with tempfile.TemporaryDirectory(prefix="cicd-pages-") as scratch:
        clone = _Clone.made_in(
            Path(scratch),
            remote=f"{server.rstrip('/')}/{repository}.git",
            branch=branch,
            token=token,
        )
        for attempt in range(1, attempts + 1):
            clone.start_from_tip(attempt, where)
            if not clone.stage(path, content):
                return f"{branch}:{path} already up to date"
            if clone.commit_and_push(where):
                return f"published to {repository} {branch}:{path}"
    raise PublishFailed(
        f"cannot push to {where}: its tip kept moving ({attempts} attempts)"
    )


def _last_line(result: Result, default: str = "?") -> str:
    """What git said last on stderr: the line that says why it failed."""
    return (result.stderr.strip().splitlines() or [default])[-1]


@dataclass(frozen=True)
class _Clone:
    """A scratch repository where the page is committed on the branch's tip.

    Attributes:
        runner: Runs git on this machine.
        work: The repository's directory.
        remote: The site's repository URL.
        branch: The branch the site is served from.
        env: For every git command: no prompt, and the token's header when given.
    """

    runner: Runner
    work: str
    remote: str
    branch: str
    env: tuple[tuple[str, str], ...]

    @classmethod
    def made_in(cls, scratch: Path, *, remote: str, branch: str, token: str) -> _Clone:
        """An empty repository in ``scratch``, with git's environment for ``token``.

        Raises:
            PublishFailed: git could not make the repository.
        """
        env = {"GIT_TERMINAL_PROMPT": "0"}
        if token:
            env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="include.path",
                GIT_CONFIG_VALUE_0=str(_write_auth_header(scratch, token)),
            )
        work = scratch / "site"
        clone = cls(
            Runner(Context()), str(work), remote, branch, tuple(sorted(env.items()))
        )
        clone.must(git.init(clone.work), "init")
        return clone

    def run(self, command: Command) -> Result:
        """Run a git command in the publishing environment; its result, even failed."""
        return self.runner.run(replace(command, env=self.env), check=False)

    def must(self, command: Command, verb: str) -> Result:
        """Run a git command that must succeed.

        Raises:
            PublishFailed: It failed: ``git VERB failed:`` and git's last line.
        """
        result = self.run(command)
        if not result.ok:
            raise PublishFailed(
                f"git {verb} failed: {_last_line(result, 'no error output')}"
            )
        return result

    def start_from_tip(self, attempt: int, where: str) -> None:
        """Check out the branch's tip, or a new orphan branch when it has none yet.

        Raises:
            PublishFailed: The tip could not be fetched (no such repository, no
                permission, no network...).
        """
        fetched = self.run(git.fetch_tip(self.work, self.remote, self.branch))
        if fetched.ok:
            self.must(git.checkout(self.work, "FETCH_HEAD"), "checkout")
        elif "couldn't find remote ref" in fetched.stderr:
            self.must(git.checkout_orphan(self.work, f"new-{attempt}"), "checkout")
        else:
            raise PublishFailed(f"cannot fetch {where}: {_last_line(fetched)}")

    def stage(self, path: str, content: bytes) -> bool:
        """Write the page at ``path`` and stage it; whether that changed anything."""
        target = Path(self.work) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        self.must(git.add(self.work, path), "add")
        return not self.run(git.nothing_staged(self.work)).ok

    def commit_and_push(self, where: str) -> bool:
        """Commit what is staged and push it; False when the tip moved meanwhile.

        Raises:
            PublishFailed: git could not commit, or the push failed otherwise.
        """
        name, email = AUTHOR
        message = "report: the delivery dashboard"
        self.must(git.commit(self.work, message, name, email), "commit")
        pushed = self.run(git.push_head(self.work, self.remote, self.branch))
        if pushed.ok:
            return True
        if "rejected" not in pushed.stderr and "fetch first" not in pushed.stderr:
            raise PublishFailed(f"cannot push to {where}: {_last_line(pushed)}")
        return False


def _write_auth_header(scratch: Path, token: str) -> Path:
    """A git config file that sends ``token`` as the HTTP authorization, mode 0600.

    A file, not a value in git's environment: the runner's shell line names every
    variable it sets, and a command line is visible to every user of the machine.
    """
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    path = scratch / "auth.gitconfig"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(f"[http]\n\textraheader = AUTHORIZATION: basic {basic}\n")
    return path
