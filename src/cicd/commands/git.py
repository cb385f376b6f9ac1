"""Builders for git: resolve a revision, fetch into a mirror, export a commit.

And, for the dashboard's page, commit one file on a branch's tip and push it.
"""

from __future__ import annotations

from cicd.commands import Command, cmd, sh


def resolve(repo: str, revision: str) -> Command:
    """Print the full sha of ``revision`` if it names a commit of ``repo``.

    ``--end-of-options`` keeps a revision starting with ``-`` from being an option.
    """
    return cmd(
        "git",
        "-C",
        repo,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{revision}^{{commit}}",
    )


def resolve_described(repo: str, revision: str) -> Command:
    """Print ``sha NUL author NUL subject`` if ``revision`` names a commit of ``repo``.

    One round trip for what :func:`resolve` and :func:`describe` give separately.
    """
    return sh(
        'c=$(git -C "$1" rev-parse --verify --quiet --end-of-options "$2^{commit}") '
        '&& git -C "$1" log -1 --format=%H%x00%an%x00%s "$c" --',
        repo,
        revision,
    )


def describe(repo: str, sha: str) -> Command:
    """Print author and subject of a commit, separated by a NUL byte."""
    return cmd("git", "-C", repo, "log", "-1", "--format=%an%x00%s", sha, "--")


def mirror_clone(url: str, mirror: str) -> Command:
    """Clone ``url`` as a bare mirror at ``mirror`` (once)."""
    return cmd("git", "clone", "--mirror", "--quiet", "--", url, mirror)


def fetch(mirror: str) -> Command:
    """Update a mirror from its origin."""
    return cmd("git", "-C", mirror, "fetch", "--quiet", "--prune", "origin")


def export(repo: str, sha: str, destination: str) -> Command:
    """Export the tree of ``sha`` into a fresh ``destination`` directory.

    ``git archive`` writes a tar file beside the destination, then tar unpacks it, so
    no pipe (and no ``pipefail``) is needed: a failure of either step fails the
    command. Temporaries an earlier export left behind (``.SHA.tmp`` and its
    ``.tar``, after a full disk or a kill) are swept first: exports run under the
    environment's lock, so none is in use. A failed export removes its own, and its
    error names the path with the tool's words (git's "No space left on device"
    alone does not say where).
    """
    return sh(
        'repo="$1"; sha="$2"; dest="$3"; tar_file="$dest.tar"; '
        'for old in "${dest%/*}"/.*.tmp "${dest%/*}"/.*.tmp.tar; do '
        '[ ! -e "$old" ] || rm -rf -- "$old"; done; '
        # The last line that says why (tar closes with "Error is not recoverable").
        'fail() { rm -rf -- "$dest" "$tar_file"; why=$(printf "%s\\n" "$1" | '
        'grep -v "not recoverable" | sed "/^$/d" | tail -n 1); '
        'echo "export failed: $why (into $dest)" >&2; exit 1; }; '
        'err=$(mkdir -p -- "$dest" 2>&1) || fail "$err"; '
        'err=$(git -C "$repo" archive --format=tar -o "$tar_file" "$sha" 2>&1) || '
        'fail "$err"; '
        'err=$(tar -xf "$tar_file" -C "$dest" 2>&1) || fail "$err"; '
        'rm -f -- "$tar_file"',
        repo,
        sha,
        destination,
    )


def commit_times(repo: str, *shas: str) -> Command:
    """Print ``sha time`` (committer time, Unix seconds) for each sha git knows.

    One round trip for many shas; an unknown one prints nothing rather than failing
    the others (the report then leaves its lead time out).
    """
    return sh(
        'r="$1"; shift; for s in "$@"; do '
        'git -C "$r" log -1 --format="%H %ct" "$s" -- 2>/dev/null; done; true',
        repo,
        *shas,
    )


# -- committing a file to a branch (the dashboard's page on gh-pages) ---------------


def init(repo: str) -> Command:
    """Make an empty repository at ``repo`` (the directory is made if missing)."""
    return cmd("git", "init", "-q", "--", repo)


def fetch_tip(repo: str, remote: str, branch: str) -> Command:
    """Fetch the last commit of ``branch`` of ``remote`` (no history) as FETCH_HEAD.

    Fails with "couldn't find remote ref" when the remote has no such branch.
    """
    return cmd("git", "-C", repo, "fetch", "-q", "--depth", "1", remote, branch)


def checkout(repo: str, revision: str) -> Command:
    """Check out ``revision`` (detached), discarding changes to tracked files."""
    return cmd("git", "-C", repo, "checkout", "-q", "--force", revision)


def checkout_orphan(repo: str, branch: str) -> Command:
    """Start a new branch with no history (its first commit has no parent)."""
    return cmd("git", "-C", repo, "checkout", "-q", "--orphan", branch)


def add(repo: str, *paths: str) -> Command:
    """Stage ``paths`` (relative to the repository's top)."""
    return cmd("git", "-C", repo, "add", "--", *paths)


def nothing_staged(repo: str) -> Command:
    """Exit 0 when the index equals HEAD (nothing to commit), 1 otherwise."""
    return cmd("git", "-C", repo, "diff", "--cached", "--quiet")


def commit(repo: str, message: str, name: str, email: str) -> Command:
    """Commit what is staged as ``name <email>``, whatever git's own configuration."""
    return cmd(
        "git",
        "-C",
        repo,
        "-c",
        f"user.name={name}",
        "-c",
        f"user.email={email}",
        "commit",
        "-q",
        "-m",
        message,
    )


def push_head(repo: str, remote: str, branch: str) -> Command:
    """Push the checked-out commit to ``branch`` of ``remote`` (no force).

    Fails with "rejected" or "fetch first" when the branch moved since its fetch.
    """
    return cmd("git", "-C", repo, "push", "-q", remote, f"HEAD:refs/heads/{branch}")
