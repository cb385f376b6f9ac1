"""Publishing the dashboard's page: the git builders, and a push to a local server."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cicd.commands import Command, cmd, git
from cicd.reporting import publish as publishing
from cicd.reporting.publish import PublishFailed, publish
from cicd.transport.runner import Result, Runner

TOKEN = "ghs_notARealToken123"


def test_the_builders_that_commit_a_page_on_a_branch() -> None:
    assert git.init("/w").argv == ("git", "init", "-q", "--", "/w")
    assert git.fetch_tip("/w", "https://h/o/s.git", "gh-pages").argv == (
        *("git", "-C", "/w", "fetch", "-q", "--depth", "1"),
        *("https://h/o/s.git", "gh-pages"),
    )
    assert git.checkout("/w", "FETCH_HEAD").argv[3:] == (
        *("checkout", "-q", "--force", "FETCH_HEAD"),
    )
    assert git.checkout_orphan("/w", "new-1").argv[3:] == (
        *("checkout", "-q", "--orphan", "new-1"),
    )
    assert git.add("/w", "report/index.html").argv[3:] == (
        *("add", "--", "report/index.html"),
    )
    assert git.nothing_staged("/w").argv[3:] == ("diff", "--cached", "--quiet")
    assert git.commit("/w", "why", "me", "me@x").argv[3:] == (
        *("-c", "user.name=me", "-c", "user.email=me@x", "commit", "-q", "-m", "why"),
    )
    assert git.push_head("/w", "r", "gh-pages").argv[3:] == (
        *("push", "-q", "r", "HEAD:refs/heads/gh-pages"),
    )


class Recording(Runner):
    """A local runner that keeps every shell line it ran."""

    lines: list[str] = []

    def run(self, command: Command, **kwargs: Any) -> Result:
        Recording.lines.append(command.render())
        return super().run(command, **kwargs)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of bare repositories, ``owner/site.git`` with no branch yet."""
    monkeypatch.setattr(publishing, "Runner", Recording)
    Recording.lines = []
    site = tmp_path / "server" / "owner" / "site.git"
    subprocess.run(["git", "init", "-q", "--bare", str(site)], check=True)
    return tmp_path / "server"


def shown(site: Path) -> str:
    """The page on the site's gh-pages branch."""
    return subprocess.run(
        ["git", "-C", str(site), "show", "gh-pages:report/index.html"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_publish_starts_the_branch_then_knows_the_page_is_there(
    server: Path, tmp_path: Path
) -> None:
    page = tmp_path / "index.html"
    page.write_text("the dashboard")
    where = dict(repository="owner/site", server=server.as_uri(), token=TOKEN)
    said = publish(page, **where)
    assert said == "published to owner/site gh-pages:report/index.html"
    assert shown(server / "owner" / "site.git") == "the dashboard"
    assert publish(page, **where) == "gh-pages:report/index.html already up to date"
    # git found the token in a file: no command line carries it.
    assert Recording.lines and not any(TOKEN in line for line in Recording.lines)
    assert all("GIT_TERMINAL_PROMPT=0" in line for line in Recording.lines)


def test_publish_to_a_repository_that_does_not_exist(
    server: Path, tmp_path: Path
) -> None:
    page = tmp_path / "index.html"
    page.write_text("the dashboard")
    with pytest.raises(PublishFailed, match="^cannot fetch gh-pages of owner/none: "):
        publish(page, repository="owner/none", server=server.as_uri())


def test_git_reads_the_token_from_a_file_only_its_owner_may_read(
    server: Path, tmp_path: Path
) -> None:
    clone = publishing._Clone.made_in(
        tmp_path, remote="unused", branch="gh-pages", token=TOKEN
    )
    header = clone.run(cmd("git", "-C", clone.work, "config", "http.extraheader"))
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert header.stdout.strip() == f"AUTHORIZATION: basic {basic}"
    assert (tmp_path / "auth.gitconfig").stat().st_mode & 0o777 == 0o600
