"""Builders for the app's dependency environment (a venv per lock or requirements).

Dependencies are installed once per distinct lock (or requirements file), local
packages and interpreter, at release time, and never at restart: a rollback needs no
package index. Locks install frozen: nothing is resolved on the host, and every
artifact is checked against the lock's hash.
"""

from __future__ import annotations

from posixpath import join

from cicd.commands import Command, cmd, sh

COMPLETE_MARKER = ".complete"


def create(python: str, venv: str, *, installer: str, with_pip: bool) -> Command:
    """Create an empty venv with ``python`` (``uv venv`` or ``python -m venv``)."""
    if installer == "uv":
        return cmd("uv", "venv", "--quiet", "--python", python, venv)
    flags = [] if with_pip else ["--without-pip"]
    return cmd(python, "-m", "venv", *flags, venv)


def install(
    venv: str, requirements: str, *, installer: str, hashes: bool = False
) -> Command:
    """Install a requirements file into ``venv``.

    Args:
        venv: The venv.
        requirements: The requirements file.
        installer: ``uv`` or ``pip``.
        hashes: The file pins hashes: every artifact must match one, and a
            requirement without a hash is refused (``--require-hashes``).
    """
    python = join(venv, "bin", "python")
    checked = ["--require-hashes"] if hashes else []
    if installer == "uv":
        return cmd(
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            *checked,
            "-r",
            requirements,
        )
    return cmd(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        *checked,
        "-r",
        requirements,
    )


def sync_uv_lock(venv: str, project: str, uv: str = "uv") -> Command:
    """Install a uv project's locked dependencies into ``venv``, frozen.

    ``--frozen``: the lock is used as it is, never resolved or updated on the host;
    uv checks every downloaded or cached artifact against the lock's hash. Only
    the project's own dependencies are installed (``--no-default-groups``: no dev
    or test group), local packages as copies (``--no-editable``: the venv is shared
    by releases and must not point into one), and not the project itself, which
    runs from its release.
    """
    return cmd(
        uv,
        "sync",
        "--quiet",
        "--frozen",
        "--no-default-groups",
        "--no-editable",
        "--no-install-project",
        "--project",
        project,
        "--python",
        join(venv, "bin", "python"),
        env={"UV_PROJECT_ENVIRONMENT": venv},
    )


def sync_pylock(
    venv: str, lock: str, uv: str = "uv", *, local: bool = False
) -> Command:
    """Install a PEP 751 ``pylock.toml`` into ``venv`` exactly, hashes checked.

    Args:
        venv: The venv.
        lock: The ``pylock.toml``.
        uv: The uv program.
        local: The lock installs local directories, which have no hash:
            ``--verify-hashes`` (every hash the lock has is checked) instead of
            ``--require-hashes`` (a package without one is refused).
    """
    return cmd(
        uv,
        "pip",
        "sync",
        "--quiet",
        "--verify-hashes" if local else "--require-hashes",
        "--python",
        join(venv, "bin", "python"),
        lock,
    )


def python_version(python: str) -> Command:
    """Print an interpreter's full path and version (``/usr/bin/python3 3.11.2``)."""
    return cmd(
        python,
        "-c",
        "import platform, sys; print(sys.executable, platform.python_version())",
    )


def find_python(request: str) -> Command:
    """Print the path of a uv-managed or system interpreter matching ``request``.

    Only what is on the host already: ``--no-python-downloads``.
    """
    return cmd("uv", "python", "find", "--no-python-downloads", request)


def mark_complete(venv: str) -> Command:
    """Record that ``venv`` is fully built (a half-built one is rebuilt)."""
    return cmd("touch", join(venv, COMPLETE_MARKER))


def is_complete(venv: str) -> Command:
    """Exit 0 when ``venv`` was fully built."""
    return cmd("test", "-e", join(venv, COMPLETE_MARKER))


def tree_ids(repo: str, sha: str, *paths: str) -> Command:
    """Print the git tree id of each release-relative path at ``sha``, one a line.

    A local package's tree id is its content: it keys the venv it is built into.
    """
    return cmd("git", "-C", repo, "rev-parse", *(f"{sha}:{path}" for path in paths))


def digest_first(*paths: str) -> Command:
    """Print the SHA-256 of the first of ``paths`` that exists, or nothing."""
    # Read through stdin: sha256sum escapes names with backslashes or newlines.
    return sh(
        'for f; do if [ -f "$f" ]; then sha256sum < "$f" | cut -d" " -f1; '
        "exit; fi; done",
        *paths,
    )
