"""What an app's dependency file says: its kind, local packages, the Python it needs.

Pure: every function takes file contents read from the host (one round trip) and
returns values; nothing here runs a command. The venv builders are in
:mod:`cicd.commands.venv`.

Three kinds of ``requirements`` file:

- ``uv.lock``: a uv project's lock, installed frozen with ``uv sync`` (hashes checked
  by uv against the lock, nothing resolved on the host);
- ``pylock.toml`` or ``pylock.<name>.toml`` (PEP 751): installed with ``uv pip sync``,
  hashes required;
- anything else: a requirements file, installed with ``-r``; ``--require-hashes``
  when it carries hashes.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from posixpath import basename, join, normpath

#: ``requirements = "auto"``: the first of these the app's directory has.
AUTO = "auto"
CANDIDATES = ("uv.lock", "pylock.toml", "requirements.txt")

UV_LOCK = "uv"
PYLOCK = "pylock"
REQUIREMENTS = "requirements"

_PYLOCK_NAME = re.compile(r"^pylock(\.[^.]+)?\.toml$")
_CLAUSE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)?\s*([0-9][0-9A-Za-z.*+!-]*)\s*$")


def candidates(requirements: str) -> tuple[str, ...]:
    """The file names ``requirements`` may mean, in order of preference."""
    return CANDIDATES if requirements == AUTO else (requirements,)


def chosen(requirements: str, contents: list[str]) -> tuple[str, str]:
    """The dependency file a release uses and its content, from :func:`candidates`.

    Args:
        requirements: The ``requirements`` setting.
        contents: The content of each candidate (empty: absent).

    Returns:
        ``(name, content)``; the name is the setting itself (or the last
        candidate, for ``auto``) when no candidate has content.
    """
    names = candidates(requirements)
    for name, content in zip(names, contents):
        if content.strip():
            return name, content
    return names[-1], ""


def kind_of(path: str) -> str:
    """Return ``uv``, ``pylock`` or ``requirements`` from a dependency file's name."""
    name = basename(path)
    if name == "uv.lock":
        return UV_LOCK
    if _PYLOCK_NAME.match(name):
        return PYLOCK
    return REQUIREMENTS


def has_hashes(requirements: str) -> bool:
    """Whether a requirements file pins hashes (then every install must check them)."""
    return "--hash=" in requirements


@dataclass(frozen=True)
class Needs:
    """The interpreter an app asks for.

    Attributes:
        specifier: ``project.requires-python`` of the app's ``pyproject.toml``.
        pinned: The first line of ``.python-version`` (a version prefix).
    """

    specifier: str = ""
    pinned: str = ""

    def __bool__(self) -> bool:
        """Whether the app asks for anything."""
        return bool(self.specifier or self.pinned)

    def describe(self) -> str:
        """The request as a reader says it: ``>=3.13.7``, ``3.13 (.python-version)``."""
        parts = [self.specifier] if self.specifier else []
        if self.pinned:
            parts.append(f"{self.pinned} (.python-version)")
        return ", ".join(parts)

    def accepts(self, version: str) -> bool:
        """Whether an interpreter of this ``version`` (e.g. ``3.11.2``) fits."""
        if self.specifier and not satisfies(version, self.specifier):
            return False
        return not self.pinned or _prefix_match(version, self.pinned)


def needs(pyproject: str, python_version: str) -> Needs:
    """Read what interpreter the app asks for from its files' contents.

    Args:
        pyproject: The app's ``pyproject.toml`` (empty when it has none).
        python_version: Its ``.python-version`` (empty when none).
    """
    specifier = ""
    if pyproject.strip():
        try:
            data = tomllib.loads(pyproject)
        except tomllib.TOMLDecodeError:
            data = {}
        value = data.get("project", {}).get("requires-python", "")
        specifier = value.strip() if isinstance(value, str) else ""
    pinned = ""
    for line in python_version.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            # ``cpython-3.13.7`` or ``3.13``: the version is what matters here.
            pinned = line.rsplit("-", 1)[-1] if line[0].isalpha() else line
            break
    return Needs(specifier, pinned)


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def _prefix_match(version: str, prefix: str) -> bool:
    wanted = _release(prefix)
    return _release(version)[: len(wanted)] == wanted


def _pad(parts: tuple[int, ...], size: int) -> tuple[int, ...]:
    return parts + (0,) * (size - len(parts))


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` satisfies a PEP 440 specifier set (release numbers only).

    Interpreter versions are plain releases (``3.11.2``), so pre-release and local
    rules are not needed; an unreadable clause accepts, leaving it to the installer.
    """
    have = _release(version)
    for clause in specifier.split(","):
        if not clause.strip():
            continue
        match = _CLAUSE.match(clause)
        if not match:
            continue
        operator, text = match.group(1) or "==", match.group(2)
        if text.endswith(".*"):
            prefix = _prefix_match(version, text[:-2])
            if (operator == "==") != prefix:
                return False
            continue
        want = _release(text)
        size = max(len(have), len(want))
        mine, theirs = _pad(have, size), _pad(want, size)
        if operator == "~=":
            if mine < theirs or not _prefix_match(version, text.rsplit(".", 1)[0]):
                return False
        elif not _compare(operator, mine, theirs):
            return False
    return True


def _compare(operator: str, mine: tuple[int, ...], theirs: tuple[int, ...]) -> bool:
    return {
        "==": mine == theirs,
        "===": mine == theirs,
        "!=": mine != theirs,
        "<=": mine <= theirs,
        ">=": mine >= theirs,
        "<": mine < theirs,
        ">": mine > theirs,
    }[operator]


def local_packages(lock: str, kind: str, app_dir: str) -> list[str]:
    """The release-relative directories of the lock's path dependencies.

    They are built from the release, so their content is part of the venv's key:
    a commit that changes a local package gets a venv with that package.

    Args:
        lock: The lock file's content.
        kind: :func:`kind_of` the lock.
        app_dir: The app's directory inside the release (paths are relative to it).
    """
    if kind == REQUIREMENTS or not lock.strip():
        return []
    try:
        data = tomllib.loads(lock)
    except tomllib.TOMLDecodeError:
        return []
    found: set[str] = set()
    for package in data.get("package", data.get("packages", [])):
        if not isinstance(package, dict):
            continue
        source = package.get("source", {}) if kind == UV_LOCK else package
        for key in ("directory", "editable", "path"):
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, dict):  # pylock: directory = { path = "..." }
                value = value.get("path")
            if isinstance(value, str) and value not in (".", ""):
                found.add(normpath(join(app_dir, value)))
    return sorted(p for p in found if not p.startswith(("..", "/")))


def venv_key(lock: str, interpreter: str, trees: list[str]) -> str:
    """The venv's name: a digest of the lock, the interpreter and local packages.

    Args:
        lock: The dependency file's content.
        interpreter: The interpreter's path and version (another Python, another venv).
        trees: The git tree ids of the local packages (their content).
    """
    digest = hashlib.sha256(lock.encode())
    for part in (interpreter, *trees):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:16]


_HASH_MISMATCH = re.compile(r"[Hh]ash mismatch for `?([^`\s]+)`?")
#: pip's ``    NAME==1.0 from https://...:`` line, followed by ``Expected sha256``.
_PIP_MISMATCH = re.compile(r"^\s*(\S+) from [^\n]*:\n\s*Expected sha256", re.M)
_PIP_MISSING = re.compile(
    r"requirements must have their versions pinned|"
    r"[Hh]ashes are required in --require-hashes mode"
)


def failed_package(stderr: str) -> str:
    """Name the package an install refused for its hash, or ``""``."""
    match = _HASH_MISMATCH.search(stderr)
    if match:
        return match.group(1)
    match = _PIP_MISMATCH.search(stderr)
    if match:
        return match.group(1)
    return "" if not _PIP_MISSING.search(stderr) else "a requirement without a hash"
