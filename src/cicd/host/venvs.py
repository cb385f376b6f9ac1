"""A release's venv: built once per dependency file, shared by the releases that match.

A venv is named by what it holds: the requirements file's content, or for a lock
(``uv.lock``, ``pylock.toml``) the lock, the interpreter and the content of the local
packages it installs from the release. Releases with the same name share it; a failed
build leaves no directory behind. What the files say is read by the pure
:mod:`cicd.core.dependency_lock`; the commands are :mod:`cicd.commands.venv`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from posixpath import dirname, join
from typing import TYPE_CHECKING

from cicd.commands import Command, files
from cicd.commands import venv as venv_commands
from cicd.core import dependency_lock
from cicd.core.errors import CicdError, CommandFailed

if TYPE_CHECKING:
    from cicd.host.context import HostContext

#: The name of the venv of a release whose requirements file is absent.
NO_REQUIREMENTS = "no-requirements"


@dataclass(frozen=True)
class Dependencies:
    """A release's dependency file and the Python its app asks for.

    Attributes:
        app: The app's directory in the release.
        app_dir: The app's directory relative to the release (the setting).
        name: The file's name: a requirements file or a lock.
        content: Its content (empty: absent).
        needs: The interpreter the app accepts.
    """

    app: str
    app_dir: str
    name: str
    content: str
    needs: dependency_lock.Needs

    @property
    def path(self) -> str:
        """The dependency file in the release."""
        return join(self.app, self.name)

    @property
    def kind(self) -> str:
        """``uv``, ``pylock`` or ``requirements``."""
        return dependency_lock.kind_of(self.name)

    @property
    def locked(self) -> bool:
        """Whether the file is a lock (installed frozen by uv)."""
        return self.kind != dependency_lock.REQUIREMENTS

    @property
    def local(self) -> list[str]:
        """The local packages a lock installs from the release."""
        return dependency_lock.local_packages(self.content, self.kind, self.app_dir)


def prepare_venv(
    host: HostContext, release: str, *, repo: str, sha: str | None = None
) -> str:
    """Return the venv for a release's dependencies, building it if needed.

    Args:
        host: The environment on its host.
        release: The (temporary) release directory.
        repo: The git repository the release was exported from.
        sha: The release's sha: local packages are keyed by their git tree.

    Raises:
        CicdError: The interpreter does not satisfy the app's
            ``requires-python`` (or ``.python-version``), uv is missing for a
            lock, or an artifact failed its hash check (the line names it).
    """
    dependencies = read_dependencies(host, release)
    python = find_interpreter(host)
    interpreter = check_python(
        host, python, dependencies.needs, always=dependencies.locked
    )
    name = venv_name(host, dependencies, interpreter, repo=repo, sha=sha)
    venv = join(host.paths.venvs, name)
    if not host.runner.ok(venv_commands.is_complete(venv)):
        build_venv(host, dependencies, python, venv, installs=name != NO_REQUIREMENTS)
    return venv


def read_dependencies(host: HostContext, release: str) -> Dependencies:
    """Read the release's dependency file and what its app asks of Python.

    The candidate files, ``pyproject.toml`` and ``.python-version`` are read in
    one command (one round trip over SSH).
    """
    settings = host.settings
    app = join(release, settings.app_dir)
    names = dependency_lock.candidates(settings.requirements)
    sections = files.parse_snapshot(
        host.runner.output(
            files.read_all(
                *(join(app, name) for name in names),
                join(app, "pyproject.toml"),
                join(app, ".python-version"),
            )
        )
    )
    texts = [sections.get(str(i), "") for i in range(len(names) + 2)]
    name, content = dependency_lock.chosen(settings.requirements, texts[:-2])
    pyproject, pinned = texts[-2:]
    needs = dependency_lock.needs(pyproject, pinned)
    return Dependencies(app, settings.app_dir, name, content, needs)


def venv_name(
    host: HostContext,
    dependencies: Dependencies,
    interpreter: str,
    *,
    repo: str,
    sha: str | None,
) -> str:
    """The venv's name under ``venvs/``: a digest of what it holds.

    Raises:
        CicdError: The lock the settings name is not in the release.
    """
    if not dependencies.locked:
        # Same name as before locks existed: every venv already built is kept.
        digest = host.runner.output(files.sha256(dependencies.path))
        return digest[:16] if digest else NO_REQUIREMENTS
    if not dependencies.content:
        raise CicdError(f"{dependencies.name}: not in the release")
    trees = _trees(host, repo, sha, dependencies.local)
    return dependency_lock.venv_key(dependencies.content, interpreter, trees)


def build_venv(
    host: HostContext,
    dependencies: Dependencies,
    python: str,
    venv: str,
    *,
    installs: bool,
) -> None:
    """Build ``venv`` afresh and mark it complete; a failed build is removed.

    Args:
        host: The environment on its host.
        dependencies: What goes in.
        python: The interpreter command the venv is made with.
        venv: The venv's directory.
        installs: There is a dependency file to install (else an empty venv).

    Raises:
        CicdError: uv is missing for a lock, or an artifact failed its hash check.
    """
    runner = host.runner
    locked = dependencies.locked
    # A lock is installed by uv (found on PATH or beside the interpreter) into
    # a bare venv: ``python -m venv`` needs no uv on PATH.
    uv = find_uv(host, dependencies.name) if locked else "uv"
    installer = "pip" if locked else choose_installer(host)
    runner.run(files.remove(venv))
    runner.run(files.mkdirs(host.paths.venvs))
    try:
        runner.run(
            venv_commands.create(
                python, venv, installer=installer, with_pip=installs and not locked
            )
        )
        if installs:
            runner.run(_install(dependencies, venv, uv=uv, installer=installer))
        runner.run(venv_commands.mark_complete(venv))
    except CommandFailed as failed:
        # Nothing half-built is left to be mistaken for a venv, nor reused.
        runner.run(files.remove(venv), check=False)
        package = dependency_lock.failed_package(failed.stderr)
        if package:
            raise CicdError(
                f"{package}: the artifact does not match its hash in "
                f"{dependencies.name}"
            ) from failed
        raise


def _install(
    dependencies: Dependencies, venv: str, *, uv: str, installer: str
) -> Command:
    """The command that installs the dependency file into ``venv``."""
    if dependencies.kind == dependency_lock.UV_LOCK:
        return venv_commands.sync_uv_lock(venv, dependencies.app, uv)
    if dependencies.kind == dependency_lock.PYLOCK:
        return venv_commands.sync_pylock(
            venv, dependencies.path, uv, local=bool(dependencies.local)
        )
    return venv_commands.install(
        venv,
        dependencies.path,
        installer=installer,
        hashes=dependency_lock.has_hashes(dependencies.content),
    )


def find_uv(host: HostContext, lock: str) -> str:
    """The path of uv: on PATH, or beside the interpreter (``pip install uv``).

    Raises:
        CicdError: uv is found nowhere; a lock cannot be installed without it.
    """
    python = host.python
    beside = dirname(python) if "/" in python else ""
    found = host.runner.run(files.locate("uv", beside or "/nonexistent"), check=False)
    if found.ok and found.stdout.strip():
        return found.stdout.strip()
    raise CicdError(
        f"{lock} needs uv on {host.runner.host} "
        "(install uv, or name a requirements file in `requirements`)"
    )


def find_interpreter(host: HostContext) -> str:
    """The interpreter command: ``python``, or the uv-managed one it names."""
    wanted = host.python
    if re.match(r"^(cpython-|pypy)?\d+(\.\d+)*$", wanted) and host.runner.ok(
        files.which("uv")
    ):
        found = host.runner.run(venv_commands.find_python(wanted), check=False)
        if found.ok and found.stdout.strip():
            return found.stdout.strip()
    return wanted


def check_python(
    host: HostContext, wanted: str, needs: dependency_lock.Needs, *, always: bool
) -> str:
    """Refuse an interpreter the app does not accept.

    Args:
        host: The environment on its host.
        wanted: The interpreter command.
        needs: What the app asks for.
        always: Ask the interpreter even when the app asks for nothing.

    Returns:
        The interpreter's path and version (part of a lock's venv key), or
        ``""`` when it was not asked.

    Raises:
        CicdError: The interpreter does not run, or the app does not accept it.
    """
    if not always and not needs.specifier and not needs.pinned:
        return ""
    result = host.runner.run(venv_commands.python_version(wanted), check=False)
    path, _, version = result.stdout.strip().rpartition(" ")
    if not result.ok or not version:
        asked = f"the app needs Python {needs.describe()}; " if needs else ""
        raise CicdError(
            f"{asked}{wanted} does not run on {host.runner.host} — set `python` "
            "or install it"
        )
    if not needs.accepts(version):
        raise CicdError(
            f"the app needs Python {needs.describe()}; {wanted} is {version} "
            "— set `python` or install it"
        )
    return f"{path} {version}"


def choose_installer(host: HostContext) -> str:
    """``uv`` or ``pip`` for a requirements file: the setting, or uv when found."""
    choice = host.settings.installer
    if choice == "auto":
        return "uv" if host.runner.ok(files.which("uv")) else "pip"
    return choice


def _trees(
    host: HostContext, repo: str, sha: str | None, paths: list[str]
) -> list[str]:
    """The git tree ids of local packages at ``sha`` (their content)."""
    if not paths or not sha:
        return paths
    return host.runner.output(venv_commands.tree_ids(repo, sha, *paths)).split()
