"""What every client of GitHub here shares: where the API is, the token, the session.

The CI provider (:mod:`cicd.ci.github`) and the deployments reporter
(:mod:`cicd.reporting.github_deployments`) find the repository, the token and the
API base the same way (:func:`find_access`) and talk to GitHub through the same kind
of session (:func:`github_session`): GitHub's media type and API version, our user
agent, the token only in the ``Authorization`` header, and no proxy or ``.netrc``
from the environment. The links to GitHub's web pages (a commit, the CD run) are
built here too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from cicd.core.settings import EnvSettings

DEFAULT_API = "https://api.github.com"
#: GitHub's web pages, unless ``GITHUB_SERVER_URL`` names another (Enterprise).
DEFAULT_SERVER = "https://github.com"
#: The long-lived token, preferred over the job's own ``GITHUB_TOKEN``.
TOKEN_VARIABLES = ("CICD_GITHUB_TOKEN", "GITHUB_TOKEN")
#: The REST API version every request asks for.
API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class GitHubAccess:
    """Which repository, through which API, with which token.

    Attributes:
        repository: ``owner/name``; empty when neither configured nor in the
            environment.
        token: The API token, stripped; empty when none is set.
        api_url: The API base, without a trailing slash.
    """

    repository: str
    token: str
    api_url: str


def find_access(
    repository: str = "",
    api_url: str = "",
    token_variables: tuple[str, ...] = TOKEN_VARIABLES,
) -> GitHubAccess:
    """The repository, token and API base: explicit values, else GitHub Actions'.

    Args:
        repository: The configured ``owner/name``; default ``$GITHUB_REPOSITORY``.
        api_url: The configured API base; default ``$GITHUB_API_URL``, else
            :data:`DEFAULT_API`.
        token_variables: The variables that may hold the token, first set wins.
    """
    token = next(
        (os.environ[n] for n in token_variables if os.environ.get(n, "").strip()), ""
    )
    return GitHubAccess(
        repository=repository or os.environ.get("GITHUB_REPOSITORY", ""),
        token=token.strip(),
        api_url=(api_url or os.environ.get("GITHUB_API_URL", "") or DEFAULT_API).rstrip(
            "/"
        ),
    )


def github_session(token: str, agent: str) -> requests.Session:
    """A session for GitHub's REST API, authorized when ``token`` is set.

    Args:
        token: The API token (sent only in the ``Authorization`` header).
        agent: The ``User-Agent`` (GitHub asks every client for one).
    """
    import requests

    session = requests.Session()
    # A proxy or .netrc of the environment must not see (or replace) the token.
    session.trust_env = False
    session.headers.update(
        {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": agent,
        }
    )
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def json_object(response: Any) -> dict[str, Any] | None:
    """The JSON object of an answer, or None when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def said(response: Any) -> str:
    """The words of GitHub: its JSON error's ``message``, else the body's start."""
    body = json_object(response)
    message = body.get("message") if body else None
    text = message if isinstance(message, str) and message.strip() else response.text
    return " ".join(str(text).split())[:120]


def server_url() -> str:
    """The base of GitHub's web pages (``$GITHUB_SERVER_URL`` on Enterprise)."""
    return os.environ.get("GITHUB_SERVER_URL", "").strip().rstrip("/") or DEFAULT_SERVER


def commit_url(settings: EnvSettings, sha: str) -> str:
    """The commit's page on GitHub, or ``""`` when the repository is unknown."""
    repository = settings.ci.repository or os.environ.get("GITHUB_REPOSITORY", "")
    return f"{server_url()}/{repository}/commit/{sha}" if repository and sha else ""


def cd_run_url(settings: EnvSettings) -> str:
    """The page of the workflow run this process is part of, or ``""`` outside one."""
    run_id = os.environ.get("GITHUB_RUN_ID", "").strip()
    repository = os.environ.get("GITHUB_REPOSITORY", "") or settings.ci.repository
    if not run_id or not repository:
        return ""
    return f"{server_url()}/{repository}/actions/runs/{run_id}"
