"""A uv project with a lock and a local package, deployed for real under supervisord.

The packages come from a local index of tiny wheels built here (``file://`` links
carrying their sha256, as PyPI's do), so the lock records hashes and uv installs
offline; nothing stands in for uv, git or supervisord.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cicd.pipeline.activation import DeployFailed
from cicd.pipeline.deploy import DeployResult, deploy_preprod
from cicd.reporting.notify import Notifier
from cicd.pipeline.rollback import rollback
from tests.conftest import SERVER, Project, git

UV = shutil.which("uv") or str(Path(__file__).resolve().parents[2] / ".venv/bin/uv")
pytestmark = pytest.mark.skipif(not os.access(UV, os.X_OK), reason="uv is not here")

#: The stand-in server, answering with its version and what the local package says.
LOCKED_SERVER = "import datautils\n" + SERVER.replace(
    'BODY = open("version.txt", "rb").read()',
    'BODY = (open("version.txt").read().strip() + " " + datautils.hello()).encode()',
)


def wheel(index: Path, name: str, version: str, body: str) -> None:
    """Build a pure-Python wheel and list it in the ``index`` with its sha256."""
    files = {
        f"{name}/__init__.py": body,
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ),
        f"{name}-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    path = index / "files" / f"{name}-{version}-py3-none-any.whl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in files.items():
            archive.writestr(member, content)
            digest = hashlib.sha256(content.encode()).digest()
            encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            record.append(f"{member},sha256={encoded},{len(content)}")
        record.append(f"{name}-{version}.dist-info/RECORD,,")
        archive.writestr(f"{name}-{version}.dist-info/RECORD", "\n".join(record))
    page = index / "simple" / name
    page.mkdir(parents=True, exist_ok=True)
    links = [
        f'<a href="{p.as_uri()}#sha256={hashlib.sha256(p.read_bytes()).hexdigest()}">'
        f"{p.name}</a>"
        for p in sorted((index / "files").glob(f"{name}-*.whl"))
    ]
    (page / "index.html").write_text("<html><body>" + "".join(links) + "</body></html>")


class LockedApp:
    """The stand-in app as a uv project: ``app/`` with a lock, ``libs/datautils``."""

    def __init__(self, project: Project, index: Path) -> None:
        self.project = project
        self.index = index
        self.path = project.repo.path

    def commit(
        self,
        version: str,
        *,
        tinydep: str = "1.0",
        hello: str = "hi",
        python: str = ">=3.9",
        extra: dict[str, str] | None = None,
        pylock: bool = False,
    ) -> str:
        """Write the project, lock it with uv against the local index, commit.

        ``extra``: more files, by path in the repository.
        """
        for name, text in (extra or {}).items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        app = self.path / "app"
        app.mkdir(exist_ok=True)
        (app / "server.py").write_text(LOCKED_SERVER)
        (app / "version.txt").write_text(f"{version} ok\n")
        (app / "mode.txt").write_text("ok\n")
        (app / "pyproject.toml").write_text(f"""\
[project]
name = "app"
version = "0.1.0"
requires-python = "{python}"
dependencies = ["datautils", "tinydep=={tinydep}"]

[tool.uv]
package = false

[tool.uv.sources]
datautils = {{ path = "../libs/datautils" }}

[dependency-groups]
dev = ["devonly"]
""")
        lib = self.path / "libs" / "datautils"
        (lib / "src" / "datautils").mkdir(parents=True, exist_ok=True)
        (lib / "pyproject.toml").write_text("""\
[project]
name = "datautils"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["tinydep"]

[build-system]
requires = ["uv_build>=0.8,<0.20"]
build-backend = "uv_build"
""")
        (lib / "src" / "datautils" / "__init__.py").write_text(
            f"def hello():\n    return {hello!r}\n"
        )
        subprocess.run(
            [UV, "lock", "--quiet", "--index-url", (self.index / "simple").as_uri()],
            cwd=app,
            check=True,
        )
        if pylock:
            # The PEP 751 form of the same lock, as ``uv export`` writes it.
            subprocess.run(
                [UV, "export", "--quiet", "--frozen", "--no-default-groups"]
                + ["--no-emit-project", "--format", "pylock.toml"]
                + ["--output-file", "pylock.toml"],
                cwd=app,
                check=True,
            )
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", version)
        sha = git(self.path, "rev-parse", "HEAD")
        self.project.repo.shas.append(sha)
        return sha


@pytest.fixture
def locked(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> LockedApp:
    """A locked stand-in app; uv runs offline with a cache of its own."""
    index = tmp_path / "index"
    wheel(index, "tinydep", "1.0", "VERSION = '1.0'\n")
    wheel(index, "tinydep", "2.0", "VERSION = '2.0'\n")
    wheel(index, "devonly", "1.0", "")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    monkeypatch.setenv("UV_PYTHON", os.path.realpath(os.sys.executable))
    monkeypatch.setenv("PATH", f"{Path(UV).parent}{os.pathsep}{os.environ['PATH']}")
    project.write(preprod='requirements = "uv.lock"')
    return LockedApp(project, index)


def deploy(project: Project, sha: str) -> DeployResult:
    """Deploy ``sha`` to preprod like the task does."""
    target = project.target()
    return deploy_preprod([target], sha, Notifier(target))


def served(project: Project) -> str:
    """What the app answers."""
    return requests.get(project.url(), timeout=5).text.strip()


def venv_of(project: Project, sha: str) -> str:
    """The venv a release runs with."""
    return os.path.realpath(project.root / "preprod" / "releases" / sha / ".venv")


def installed(venv: str) -> set[str]:
    """The distributions in a venv."""
    found = Path(venv).glob("lib/python*/site-packages/*.dist-info")
    return {p.name.split("-")[0] for p in found}


def test_a_locked_app_with_a_local_package_deploys_and_rolls_back(
    locked: LockedApp,
) -> None:
    project = locked.project
    first = locked.commit("v1")
    deploy(project, first)
    assert served(project) == "v1 ok hi"
    venv = venv_of(project, first)
    # The lock's runtime dependencies and the local package; no dev group.
    assert installed(venv) == {"datautils", "tinydep"}

    second = locked.commit("v2", hello="hello")  # only the local package changed
    deploy(project, second)
    assert served(project) == "v2 ok hello"
    assert venv_of(project, second) != venv  # its content keys the venv

    target = project.target()
    (result,) = rollback([target], Notifier(target), to=first, reason="test")
    assert result.sha == first
    assert served(project) == "v1 ok hi"  # no reinstall: the kept venv


@pytest.mark.slow
def test_a_changed_lock_builds_a_venv_an_unchanged_one_reuses_it(
    locked: LockedApp,
) -> None:
    project = locked.project
    first = locked.commit("v1")
    deploy(project, first)
    code_only = locked.commit("v2")
    deploy(project, code_only)
    assert venv_of(project, code_only) == venv_of(project, first)
    bumped = locked.commit("v3", tinydep="2.0")
    deploy(project, bumped)
    assert venv_of(project, bumped) != venv_of(project, first)
    assert list(Path(venv_of(project, bumped)).glob("lib/*/site-packages/tinydep-2.0*"))
    venvs = sorted(p.name for p in (project.root / "venvs").iterdir())
    assert len(venvs) == 2


def test_an_artifact_that_no_longer_matches_its_hash_fails_before_the_switch(
    locked: LockedApp,
) -> None:
    project = locked.project
    first = locked.commit("v1")
    deploy(project, first)
    bumped = locked.commit("v2", tinydep="2.0")
    # The wheel the lock pinned is replaced by another of the same name.
    tampered = locked.index / "files" / "tinydep-2.0-py3-none-any.whl"
    with zipfile.ZipFile(tampered, "a") as archive:
        archive.writestr("tinydep/evil.py", "STOLEN = True\n")
    before = set((project.root / "venvs").iterdir())
    with pytest.raises(DeployFailed) as failed:
        deploy(project, bumped)
    line = str(failed.value)
    assert "tinydep==2.0" in line and "\n" not in line
    assert os.readlink(project.root / "preprod" / "current") == f"releases/{first}"
    assert not (project.root / "preprod" / "releases" / bumped).exists()
    assert set((project.root / "venvs").iterdir()) == before  # nothing half-built
    assert served(project) == "v1 ok hi"


def test_an_app_asking_for_a_python_the_host_lacks_is_refused(
    locked: LockedApp,
) -> None:
    project = locked.project
    first = locked.commit("v1")
    deploy(project, first)
    # Locked with the ``requires-python`` it had, then raised beyond any host.
    locked.commit("v2")
    pyproject = locked.path / "app" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('">=3.9"', '">=3.99.1"', 1))
    git(locked.path, "commit", "-q", "-am", "needs 3.99")
    picky = git(locked.path, "rev-parse", "HEAD")
    with pytest.raises(DeployFailed) as failed:
        deploy(project, picky)
    assert "the app needs Python >=3.99.1;" in str(failed.value)
    assert "— set `python` or install it" in str(failed.value)
    assert os.readlink(project.root / "preprod" / "current") == f"releases/{first}"
    assert not (project.root / "preprod" / "releases" / picky).exists()


#: The app under compose: busybox httpd serves the release's page and the secret
#: the container got from ``env_file`` (compose reads app.env, not our env).
COMPOSE = """\
services:
  app:
    image: {image}
    network_mode: host
    init: true
    env_file:
      - ${{CICD_APP_ENV:-/dev/null}}
    volumes:
      - ${{CICD_RELEASE}}/app:/www:ro
    command:
      - sh
      - -c
      - >-
        mkdir -p /tmp/w && cp /www/version.txt /tmp/w/index.html &&
        printf %s "$$APP_SECRET" > /tmp/w/secret &&
        exec httpd -f -p 127.0.0.1:${{CICD_PORT}} -h /tmp/w
"""


@pytest.fixture
def composed(locked: LockedApp, busybox_image: str) -> Iterator[tuple[LockedApp, str]]:
    """The locked app under the compose runtime; its containers removed after."""
    name = f"cicdtest{uuid.uuid4().hex[:8]}"
    locked.project.write(
        f"""
        [tool.cicd.env.preprod.runtime]
        kind = "compose"
        compose_file = "compose.yml"
        service = "app"
        project = "{name}"
        """,
        preprod='requirements = "uv.lock"',
    )
    yield locked, busybox_image
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


@pytest.mark.slow
def test_a_locked_app_under_compose_gets_its_secrets_from_app_env(
    composed: tuple[LockedApp, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    locked, image = composed
    project = locked.project
    shared = project.root / "preprod" / "shared"
    shared.mkdir(parents=True)
    (shared / "app.env").write_text("APP_SECRET=s3cr3t value\n")
    (shared / "app.env").chmod(0o600)
    monkeypatch.delenv("APP_SECRET", raising=False)
    files = {"compose.yml": COMPOSE.format(image=image)}
    first = locked.commit("v1", extra=files)
    deploy(project, first)
    assert served(project) == "v1 ok"
    secret = requests.get(project.url() + "secret", timeout=5).text
    assert secret == "s3cr3t value"
    assert installed(venv_of(project, first)) == {"datautils", "tinydep"}

    second = locked.commit("v2", tinydep="2.0", extra=files)
    deploy(project, second)
    assert served(project) == "v2 ok"
    target = project.target()
    (result,) = rollback([target], Notifier(target), to=first, reason="test")
    assert result.sha == first and served(project) == "v1 ok"


def test_a_lock_without_uv_on_the_host_is_refused(
    locked: LockedApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = locked.project
    # The system's interpreter, with no uv on PATH nor beside it (the tool's venv
    # has one: uv is a dependency of cicd).
    system = "/usr/bin/python3"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if not os.access(system, os.X_OK) or shutil.which("uv"):
        pytest.skip("needs /usr/bin/python3 and no uv in /usr/bin or /bin")
    project.write(preprod=f'requirements = "uv.lock"\npython = "{system}"')
    sha = locked.commit("v1")
    with pytest.raises(DeployFailed, match="uv.lock needs uv on"):
        deploy(project, sha)
    assert not (project.root / "preprod" / "current").exists()
    assert not list((project.root / "venvs").glob("*"))


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_hashed_requirements_file_is_installed_with_its_hashes_checked(
    locked: LockedApp, installer: str
) -> None:
    project = locked.project
    project.write(preprod=f'installer = "{installer}"')
    wheel_path = locked.index / "files" / "tinydep-1.0-py3-none-any.whl"
    good = hashlib.sha256(wheel_path.read_bytes()).hexdigest()
    links = f"--no-index\n--find-links {locked.index / 'files'}\n"

    def commit(version: str, digest: str) -> str:
        app = locked.path / "app"
        app.mkdir(exist_ok=True)
        (app / "server.py").write_text(SERVER)
        (app / "version.txt").write_text(f"{version} ok\n")
        (app / "mode.txt").write_text("ok\n")
        (app / "requirements.txt").write_text(
            f"{links}tinydep==1.0 --hash=sha256:{digest}\n"
        )
        git(locked.path, "add", "-A")
        git(locked.path, "commit", "-q", "-m", version)
        return git(locked.path, "rev-parse", "HEAD")

    first = commit("v1", good)
    deploy(project, first)
    assert installed(venv_of(project, first)) >= {"tinydep"}
    bad = commit("v2", "0" * 64)  # the artifact no longer matches
    with pytest.raises(DeployFailed, match="tinydep"):
        deploy(project, bad)
    assert os.readlink(project.root / "preprod" / "current") == f"releases/{first}"
    assert len(list((project.root / "venvs").iterdir())) == 1


def test_a_pylock_toml_deploys_with_its_local_package_and_hashes(
    locked: LockedApp,
) -> None:
    project = locked.project
    project.write(preprod='requirements = "pylock.toml"')
    first = locked.commit("v1", pylock=True)
    deploy(project, first)
    assert served(project) == "v1 ok hi"
    assert installed(venv_of(project, first)) == {"datautils", "tinydep"}
    bumped = locked.commit("v2", tinydep="2.0", pylock=True)
    with zipfile.ZipFile(
        locked.index / "files" / "tinydep-2.0-py3-none-any.whl", "a"
    ) as z:
        z.writestr("tinydep/evil.py", "STOLEN = True\n")
    with pytest.raises(DeployFailed, match="tinydep==2.0: the artifact does not match"):
        deploy(project, bumped)
    assert served(project) == "v1 ok hi"


def test_python_may_name_a_version_uv_finds_and_a_missing_one_is_refused(
    locked: LockedApp,
) -> None:
    project = locked.project
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    project.write(preprod=f'requirements = "uv.lock"\npython = "{version}"')
    first = locked.commit("v1")
    deploy(project, first)
    assert served(project) == "v1 ok hi"
    config = Path(venv_of(project, first), "pyvenv.cfg").read_text()
    assert f"version = {version}." in config or f"version_info = {version}." in config

    project.write(preprod='requirements = "uv.lock"\npython = "/nowhere/python3"')
    second = locked.commit("v2")
    with pytest.raises(DeployFailed, match="/nowhere/python3 does not run on"):
        deploy(project, second)
    assert served(project) == "v1 ok hi"


def test_a_missing_lock_is_named(locked: LockedApp) -> None:
    project = locked.project
    sha = project.repo.commit("v1")  # the stand-in app, without any lock
    with pytest.raises(DeployFailed, match="uv.lock: not in the release"):
        deploy(project, sha)


def test_a_release_prepared_without_its_sha_keys_local_packages_by_path(
    locked: LockedApp, tmp_path: Path
) -> None:
    sha = locked.commit("v1")
    release = tmp_path / "release"
    release.mkdir()
    tree = subprocess.run(
        ["git", "-C", str(locked.path), "archive", sha], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(release)], input=tree, check=True)
    venv = locked.project.target().prepare_venv(str(release))
    assert installed(venv) == {"datautils", "tinydep"}
