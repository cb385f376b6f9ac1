"""Builders for the app's dependency environment (a venv per requirements content).

Dependencies are installed once per distinct requirements file, at release time, and
never at restart: a rollback needs no package index.
"""

from __future__ import annotations

from posixpath import join

from cicd.commands import Command, cmd

COMPLETE_MARKER = ".complete"


def create(python: str, venv: str, *, installer: str, with_pip: bool) -> Command:
    """Create an empty venv with ``python`` (``uv venv`` or ``python -m venv``)."""
    if installer == "uv":
        return cmd("uv", "venv", "--quiet", "--python", python, venv)
    flags = [] if with_pip else ["--without-pip"]
    return cmd(python, "-m", "venv", *flags, venv)


def install(venv: str, requirements: str, *, installer: str) -> Command:
    """Install a requirements file into ``venv``."""
    python = join(venv, "bin", "python")
    if installer == "uv":
        return cmd(
            "uv", "pip", "install", "--quiet", "--python", python, "-r", requirements
        )
    return cmd(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-r",
        requirements,
    )


def mark_complete(venv: str) -> Command:
    """Record that ``venv`` is fully built (a half-built one is rebuilt)."""
    return cmd("touch", join(venv, COMPLETE_MARKER))


def is_complete(venv: str) -> Command:
    """Exit 0 when ``venv`` was fully built."""
    return cmd("test", "-e", join(venv, COMPLETE_MARKER))
