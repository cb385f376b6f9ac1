"""The newcomer tier: "Set up the VM" run as a team follows it, block by block.

Every block the page marks (``.. newcomer: as USER``, see :mod:`tests.docblocks`)
runs literally, in order, as the user it is for: root, the service user the page's
own commands create, and a "laptop" user that reaches the VM with ``fab -H`` over
a real sshd on a loopback address. The only changes are the substitutions the page
declares in its source (a root under a temporary directory, the VM's SSH address,
no systemd: a stand-in ``systemctl`` runs the unit's ``ExecStart`` as its
``User=``). A documented command that fails fails the test, with its output.

It installs the tool and the real app from the package index, so it is slow (a
few minutes) and needs root, useradd, sshd and haproxy: it skips without them.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_httpserver import HTTPServer

from tests import docblocks
from tests.conftest import REPO_ROOT, free_port, git
from tests.github_fake import REPOSITORY, FakeGitHub
from tools.testinfra.sshd import SSHD, NEEDS_SSHD, SshHost, start_sshd, stop_sshd

PAGE = REPO_ROOT / "90_doc" / "source" / "vm-setup.rst"
#: The service user the page creates, and the laptop user the tier makes.
SERVICE, LAPTOP = "mangetamain", "cicd-laptop"
#: The VM's sshd: an address no other test uses.
VM_ADDRESS = "127.0.0.200"
#: Where the page installs the systemd unit (no systemd runs here: the stand-in).
UNIT = Path("/etc/systemd/system/cicd-supervisord.service")
#: What every block ran and printed, for a person to read (CI keeps build/).
TRANSCRIPT = REPO_ROOT / "build" / "newcomer" / "vm-setup.log"
#: The page's root, kept as it is: the tier refuses to run where a real one exists.
ROOT = Path("/srv/mangetamain")
#: The file that marks a user's home and the root as the tier's own.
MARKER = ".cicd-newcomer-tier"
#: Variables naming the CA bundle this machine's clients must trust.
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
#: The watcher's token on the VM, as the page exports it (the stand-in checks it).
GITHUB_TOKEN = "github_pat_newcomer"
#: A documented block may install packages from the index: its longest wait.
BLOCK_TIMEOUT = 900

#: No systemd in a sandbox: ``enable --now`` runs a unit's ExecStart as its User=,
#: detached, and remembers it; ``boot`` starts every remembered unit again.
SYSTEMCTL = r"""#!/bin/sh
# The newcomer tier's systemctl: no systemd runs in the sandbox.
set -eu
here=$(dirname "$0")
start_unit() {
  unit="/etc/systemd/system/$1.service"
  user=$(sed -n 's/^User=//p' "$unit")
  dir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  cd "${dir:-/}"
  setsid runuser -u "${user:-root}" -- sh -c "exec $exec_start" \
    </dev/null >>"$here/$1.log" 2>&1 &
  echo "started $1 ($exec_start, as ${user:-root})"
}
case "$1" in
  daemon-reload) ;;
  disable) echo "(no systemd in the sandbox) disabled $*" ;;
  enable)
    [ "$2" = "--now" ] && shift
    echo "$2" >>"$here/enabled"
    start_unit "$2" ;;
  boot)
    [ ! -f "$here/enabled" ] || for u in $(sort -u "$here/enabled"); do
      start_unit "$u"; done ;;
  *) echo "systemctl stand-in: unsupported: $*" >&2; exit 1 ;;
esac
"""


@dataclass
class Sandbox:
    """Where the tier runs, and the values the page's substitutions name."""

    dir: Path
    vm: SshHost | None = None
    git_url: str = ""
    github: FakeGitHub | None = None

    @property
    def stand_ins(self) -> Path:
        """The stand-in programs (systemctl) and their logs."""
        return self.dir / "stand-ins"

    @property
    def exchange(self) -> Path:
        """A folder every user may write: files handed from one user to another."""
        return self.dir / "exchange"

    def values(self) -> dict[str, str]:
        """The ``{names}`` of the page's substitutions."""
        assert self.vm is not None
        return {
            "sandbox": str(self.dir),
            "git_url": self.git_url,
            "repository": REPOSITORY,
            "github_token": GITHUB_TOKEN,
            "github_api": self.github.api_url if self.github else "",
            "vm_address": self.vm.address,
            "vm_port": str(self.vm.port),
            "stand_ins": str(self.stand_ins),
            "laptop_key": str(self.exchange / "laptop.pub"),
            "vm_host_key": str(self.vm.host_key.with_suffix(".pub")),
        }


def missing_components() -> str:
    """Why the tier cannot run here, or ""."""
    if os.geteuid() != 0:
        return "needs root (it creates users, as the page does)"
    if not SSHD.exists():
        return NEEDS_SSHD
    for program in ("useradd", "userdel", "runuser", "haproxy", "git"):
        if not shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            return f"needs {program}: python3 -m tools.testinfra up (as root)"
    venv = subprocess.run(
        ["/usr/bin/python3", "-c", "import ensurepip"], capture_output=True
    )
    if venv.returncode != 0:
        return "needs Debian's python3-venv: apt-get install python3-venv"
    return ""


def foreign_vm() -> str:
    """What of a real VM is on this machine (the tier would remove it), or ""."""
    for user in (SERVICE, LAPTOP):
        try:
            home = Path(pwd.getpwnam(user).pw_dir)
        except KeyError:
            continue
        if not (home / MARKER).exists():
            return f"user {user}"
    if ROOT.exists() and not (ROOT / MARKER).exists():
        return str(ROOT)
    return ""


def remove_users() -> None:
    """Remove what the tier made: its users, all they run, the root and the unit."""
    for user in (SERVICE, LAPTOP):
        if subprocess.run(["id", user], capture_output=True).returncode == 0:
            subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
            time.sleep(0.2)
            subprocess.run(["userdel", "-r", "-f", user], capture_output=True)
    shutil.rmtree(ROOT, ignore_errors=True)
    UNIT.unlink(missing_ok=True)


def mark_ours() -> None:
    """Mark the users and the root as the tier's, so a run cut short is cleaned."""
    for user in (SERVICE, LAPTOP):
        try:
            home = Path(pwd.getpwnam(user).pw_dir)
        except KeyError:
            continue
        if home.is_dir():
            (home / MARKER).touch()
    if ROOT.is_dir():
        (ROOT / MARKER).touch()


def power_loss() -> None:
    """Every process of the service user killed at once, as a power cut does."""
    subprocess.run(["pkill", "-KILL", "-u", SERVICE], capture_output=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = subprocess.run(["pgrep", "-u", SERVICE], capture_output=True)
        if alive.returncode != 0:
            return
        time.sleep(0.1)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A world-readable temporary directory, the repository, the VM's sshd."""
    reason = missing_components()
    if reason:
        pytest.skip(reason)
    if found := foreign_vm():
        pytest.skip(f"{found} exists and is not the tier's: a real VM? not touched")
    remove_users()
    box = Sandbox(Path(tempfile.mkdtemp(prefix="cicd-vm-", dir="/tmp")))
    try:
        box.dir.chmod(0o755)
        (box.dir / "srv").mkdir(mode=0o755)
        box.stand_ins.mkdir(mode=0o755)
        systemctl = box.stand_ins / "systemctl"
        systemctl.write_text(SYSTEMCTL)
        systemctl.chmod(0o755)
        box.exchange.mkdir()
        box.exchange.chmod(0o777 | stat.S_ISVTX)
        box.git_url = publish_repository(box.dir / "git")
        box.vm = start_vm_sshd(box.dir / "vm-sshd")
        with HTTPServer(host="127.0.0.1", port=0) as server:
            box.github = FakeGitHub(server, tokens={GITHUB_TOKEN})
            box.github.install()
            main = git(box.dir / "git" / "mangetamain.git", "rev-parse", "main")
            box.github.set_run(main, "completed", "success", run_id=1)
            yield box
    finally:
        power_loss()
        if box.vm is not None:
            stop_sshd(box.vm, sessions=True)
        remove_users()
        pidfile = box.dir / "git" / "daemon.pid"
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        shutil.rmtree(box.dir, ignore_errors=True)


def publish_repository(base: Path) -> str:
    """The repository as GitHub would serve it (``git daemon`` on loopback).

    Its ``main`` is this checkout's HEAD: the tier installs the committed code (the
    page itself is read from the working tree).

    Returns:
        The repository's URL.
    """
    bare = base / "mangetamain.git"
    snapshot = git(REPO_ROOT, "rev-parse", "HEAD")
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(REPO_ROOT, "push", "-q", str(bare), f"{snapshot}:refs/heads/main")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/main")
    port = free_port()
    subprocess.run(
        ["git", "daemon", "--detach", "--reuseaddr", "--export-all"]
        + ["--listen=127.0.0.1", f"--port={port}", f"--base-path={base}"]
        + [f"--pid-file={base / 'daemon.pid'}", str(base)],
        check=True,
    )
    return f"git://127.0.0.1:{port}/mangetamain.git"


def push(box: Sandbox, conclusion: str, number: int) -> str:
    """A new commit on ``main`` (the app unchanged), whose CI run ends so.

    Returns:
        Its sha.
    """
    bare = box.dir / "git" / "mangetamain.git"
    parent = git(bare, "rev-parse", "main")
    tree = git(bare, "rev-parse", "main^{tree}")
    words = "a change CI accepts" if conclusion == "success" else "a failing test"
    sha = git(bare, "commit-tree", tree, "-p", parent, "-m", f"app: {words}")
    git(bare, "update-ref", "refs/heads/main", sha, parent)
    assert box.github is not None
    box.github.set_run(sha, "completed", conclusion, run_id=number)
    return sha


def start_vm_sshd(state: Path) -> SshHost:
    """The VM's sshd on a loopback address: users' own ``~/.ssh/authorized_keys``."""
    host = start_sshd(VM_ADDRESS, free_port(), state, name="dataia")
    config = host.config.read_text()
    config = "\n".join(
        (
            "AuthorizedKeysFile .ssh/authorized_keys"
            if line.startswith("AuthorizedKeysFile")
            else line
        )
        for line in config.splitlines()
    )
    host.config.write_text(config + "\n")
    # sshd reads its config again on SIGHUP.
    pid = int(host.pidfile.read_text())
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.5)
    return host


def run_block(
    box: Sandbox, page: Path, block: docblocks.Block, rules: list[tuple[str, str]]
) -> str:
    """Run one marked block as its user, in a login shell; return its output.

    Raises:
        AssertionError: The block failed: the page's line, the script and output.
    """
    script = docblocks.substituted(block.script, rules, **box.values())
    # This machine's own CA settings pass through (its network adds a CA that
    # uv, unlike pip with /etc/pip.conf, only trusts through them).
    script = (
        "".join(
            f"export {name}={shlex.quote(os.environ[name])}\n"
            for name in CA_VARIABLES
            if os.environ.get(name)
        )
        + script
    )
    path = box.dir / f"{page.stem}-{block.line}.sh"
    path.write_text(script)
    path.chmod(0o644)
    user = LAPTOP if block.user == "laptop" else block.user
    if user == "root":
        argv = ["bash", "-eo", "pipefail", str(path)]
        cwd = box.exchange
    else:
        argv = ["runuser", "-l", user, "-c", f"bash -eo pipefail {path}"]
        cwd = Path("/")
    started = time.monotonic()
    result = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    output = result.stdout + result.stderr
    took = time.monotonic() - started
    with TRANSCRIPT.open("a") as transcript:
        transcript.write(
            f"=== {page.name}:{block.line} as {user} ({took:.1f}s, exit "
            f"{result.returncode})\n{script}--- output\n{output}\n"
        )
    if result.returncode != block.exits and user == LAPTOP and box.vm is not None:
        output += f"\n--- the VM's sshd log:\n{box.vm.log.read_text()[-3000:]}"
    assert result.returncode == block.exits, (
        f"{page.name}:{block.line}, as {user}, exited {result.returncode} "
        f"(the page expects {block.exits}) "
        f"after {took:.1f}s:\n{script}\n--- output:\n{output[-6000:]}"
    )
    return output


@pytest.mark.slow
def test_the_vm_page_works_as_written(sandbox: Sandbox) -> None:
    source = PAGE.read_text()
    rules = docblocks.substitutions(source)
    outputs: list[tuple[docblocks.Block, str]] = []
    TRANSCRIPT.parent.mkdir(parents=True, exist_ok=True)
    TRANSCRIPT.write_text("")
    steps = []
    for block in docblocks.blocks(source):
        if block.page:
            page = PAGE.with_name(f"{block.page}.rst")
            steps += [(page, b) for b in docblocks.blocks(page.read_text())]
        else:
            steps.append((PAGE, block))
    for number, (page, block) in enumerate(steps, start=2):
        if block.push:
            push(sandbox, block.push, number)
            continue
        if block.output:
            previous, output = outputs[-1]
            missing = docblocks.shows(block.output, output)
            assert not missing, (
                f"{page.name}:{block.line}: the output the page shows for line "
                f"{previous.line} is not what it prints: {missing}\n{output}"
            )
            continue
        if block.reboot:
            reboot(sandbox)
            continue
        if block.user == "laptop":
            ensure_laptop_user()
        outputs.append((block, run_block(sandbox, page, block, rules)))
        mark_ours()
    # No program ever ran from an environment never deployed (its empty slot).
    assert "couldn't chdir" not in TRANSCRIPT.read_text()
    # The page ends with its uninstall: nothing of the VM is left.
    assert not ROOT.exists() and not UNIT.exists()
    assert subprocess.run(["id", SERVICE], capture_output=True).returncode != 0


def reboot(box: Sandbox) -> None:
    """A power loss, then what systemd does at boot; check what then runs.

    The page says the unit alone brings back what serves: both environments answer
    again before anyone runs a command, and a slot whose release CI rejected or a
    rollback abandoned does not start.
    """
    before = supervised(box)
    power_loss()
    boot = subprocess.run(
        [str(box.stand_ins / "systemctl"), "boot"], capture_output=True, text=True
    )
    assert boot.returncode == 0, boot.stderr
    for port in (8500, 8501):
        wait_answers(f"http://127.0.0.1:{port}/", deadline=90)
    after = supervised(box)
    for program, state in before.items():
        if state != "RUNNING":
            assert after.get(program) != "RUNNING", (program, before, after)
    with TRANSCRIPT.open("a") as transcript:
        transcript.write(f"=== reboot: before {before}; after the boot {after}\n\n")


def supervised(box: Sandbox) -> dict[str, str]:
    """The state of each program under the service user's supervisord."""
    result = subprocess.run(
        ["runuser", "-u", SERVICE, "--", str(ROOT / "tool/bin/supervisorctl")]
        + ["-c", str(ROOT / "supervisor/supervisord.conf"), "status"],
        capture_output=True,
        text=True,
    )
    return {
        words[0]: words[1]
        for words in (line.split() for line in result.stdout.splitlines())
        if len(words) >= 2
    }


def wait_answers(url: str, deadline: float) -> None:
    """Wait until ``url`` answers HTTP at all (the app, through haproxy)."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > end:
                raise AssertionError(f"{url} did not answer within {deadline:g}s")
            time.sleep(0.5)


def ensure_laptop_user() -> None:
    """The laptop's owner: an ordinary account of its own (made once)."""
    if subprocess.run(["id", LAPTOP], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", LAPTOP], check=True
        )
