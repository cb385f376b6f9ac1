"""A Docker engine kept off every network but loopback, and a tiny local image.

dockerd runs with vfs storage and without a bridge, iptables or masquerading (the
network rule of DESIGN.md), and listens on the default socket,
``/var/run/docker.sock``: ``docker``, ``docker-compose`` and the compose runtime
(locally or through the loopback sshd) then work with no ``DOCKER_HOST`` to pass
around. Its data, exec root, pidfile and log live under the state directory
(default ``/var/lib/cicd-testinfra``). The image is a ``docker import`` of Debian's
busybox-static, so no registry is needed. Standard library only.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from tools.testinfra.process import detach, kill_pidfile, run, succeeds, tail

#: Where dockerd's data, logs and pidfile go unless told otherwise.
DEFAULT_STATE_DIR = Path(os.environ.get("CICD_INFRA_DIR", "/var/lib/cicd-testinfra"))
#: The engine's socket: the default one, so ``docker`` needs no ``-H``.
DOCKER_SOCKET = "/var/run/docker.sock"
#: dockerd flags that keep containers off every network but the host's loopback.
DOCKERD_NETWORK_FLAGS = (
    "--bridge=none",
    "--iptables=false",
    "--ip-masq=false",
)
#: Debian's busybox-static: the whole userland of the test image.
BUSYBOX = Path("/bin/busybox")
BUSYBOX_TAG = "cicd-busybox:latest"
#: The skip reason of tests that need an engine (fixtures, benches).
NEEDS_DOCKER = (
    "needs a Docker engine: run `python3 -m tools.testinfra up` (Debian: docker.io) "
    "— CI's .ci/run does"
)


def docker_argv(*args: str, socket_path: str | None = None) -> list[str]:
    """Build a docker CLI command, on ``socket_path`` when given."""
    host = ["-H", f"unix://{socket_path}"] if socket_path else []
    return ["docker", *host, *args]


def docker_ok(socket_path: str | None = None) -> bool:
    """Tell whether a Docker engine answers ``docker info``."""
    return succeeds(docker_argv("info", socket_path=socket_path), timeout=20)


def dockerd_argv(state_dir: Path, socket_path: str = DOCKER_SOCKET) -> list[str]:
    """Build the dockerd command line: vfs storage, no bridge, no iptables.

    Args:
        state_dir: Holds the data root, exec root and pidfile.
        socket_path: The API socket.

    Returns:
        The argv of dockerd.
    """
    return [
        "dockerd",
        "--storage-driver=vfs",
        *DOCKERD_NETWORK_FLAGS,
        "--data-root",
        str(state_dir / "docker"),
        "--exec-root",
        str(state_dir / "exec"),
        "--pidfile",
        str(state_dir / "dockerd.pid"),
        "-H",
        f"unix://{socket_path}",
    ]


def start_dockerd(
    state_dir: Path = DEFAULT_STATE_DIR,
    socket_path: str = DOCKER_SOCKET,
    *,
    deadline: float = 60,
    poll: float = 0.5,
) -> bool:
    """Start dockerd unless an engine already answers on ``socket_path``.

    The daemon is detached (its own session) and logs to ``state_dir/dockerd.log``;
    it outlives this process until :func:`stop_dockerd`.

    Args:
        state_dir: Data root, exec root, pidfile and log of the daemon.
        socket_path: The API socket (default: Docker's usual one).
        deadline: Seconds to wait for ``docker info`` to answer.
        poll: Seconds between two tries.

    Returns:
        True if dockerd was started, False if an engine was already answering.

    Raises:
        RuntimeError: dockerd exited or did not answer in time (log tail included).
    """
    if docker_ok(socket_path):
        return False
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "dockerd.log"
    process = detach(dockerd_argv(state_dir, socket_path), log)
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        if process.poll() is not None:
            raise RuntimeError(
                f"dockerd exited {process.returncode}; {log}:\n{tail(log)}"
            )
        if docker_ok(socket_path):
            return True
        time.sleep(poll)
    kill_pidfile(state_dir / "dockerd.pid", "dockerd")
    raise RuntimeError(
        f"dockerd did not answer within {deadline:g} s; {log}:\n{tail(log)}"
    )


def mounts_under(path: Path, table: str = "/proc/self/mounts") -> list[str]:
    """Return the mount points at or below ``path``, deepest first."""
    prefix = str(path.resolve())
    points = []
    for line in Path(table).read_text().splitlines():
        # The table escapes spaces and backslashes as octal: \040, \134.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[1])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def stop_dockerd(state_dir: Path = DEFAULT_STATE_DIR, deadline: float = 30) -> bool:
    """Stop the dockerd that :func:`start_dockerd` started with this state dir.

    An engine started any other way (no pidfile here) is left alone. What dockerd
    leaves mounted under its exec root once stopped (``netns/default``) is
    unmounted, so the state directory can be deleted.

    Returns:
        Whether a dockerd was stopped.
    """
    stopped = kill_pidfile(state_dir / "dockerd.pid", "dockerd", deadline)
    for point in mounts_under(state_dir / "exec"):
        run(["umount", point], check=False)
    return stopped


# -- the busybox image ----------------------------------------------------------

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def busybox_rootfs(dest: Path, busybox: Path = BUSYBOX) -> Path:
    """Lay out a root filesystem around a static busybox.

    ``/bin/busybox`` plus one symlink per applet at its usual place (``bin/sh``,
    ``usr/sbin/httpd``, ``usr/bin/wget``...), ``/tmp``, and an ``/etc/passwd`` with
    root and nobody.

    Args:
        dest: An empty directory that becomes the image's ``/``.
        busybox: A statically linked busybox (Debian's busybox-static).

    Returns:
        ``dest``.
    """
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    target = dest / "bin" / "busybox"
    target.write_bytes(busybox.read_bytes())
    target.chmod(0o755)
    applets = run([str(busybox), "--list-full"]).stdout.split()
    for applet in applets:
        link = dest / applet
        if link.name == "busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for directory in ("etc", "root", "proc", "sys", "dev", "var/www", "srv"):
        (dest / directory).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").mkdir(exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    return dest


def tar_argv(source: Path, tarball: Path) -> list[str]:
    """Build the tar command archiving ``source`` as root-owned files."""
    owner = ["--numeric-owner", "--owner=0", "--group=0"]
    return ["tar", *owner, "-C", str(source), "-cf", str(tarball), "."]


def docker_import_argv(
    tarball: Path, tag: str, socket_path: str | None = None
) -> list[str]:
    """Build ``docker import`` of a root filesystem tarball, with PATH and CMD."""
    changes = ["-c", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-c", 'CMD ["sh"]']
    return docker_argv("import", *changes, str(tarball), tag, socket_path=socket_path)


def image_present(tag: str = BUSYBOX_TAG, socket_path: str | None = None) -> bool:
    """Tell whether the engine has an image called ``tag``."""
    return succeeds(docker_argv("image", "inspect", tag, socket_path=socket_path))


def build_busybox_image(
    tag: str = BUSYBOX_TAG,
    socket_path: str | None = None,
    busybox: Path = BUSYBOX,
) -> bool:
    """Import a busybox image into the engine unless ``tag`` already exists.

    Args:
        tag: The image name.
        socket_path: The engine's socket (default: docker's default).
        busybox: The static busybox binary to put in it.

    Returns:
        True if the image was imported, False if it was already there.
    """
    if image_present(tag, socket_path):
        return False
    with tempfile.TemporaryDirectory(prefix="cicd-busybox-") as work:
        root = busybox_rootfs(Path(work) / "rootfs", busybox)
        tarball = Path(work) / "rootfs.tar"
        run(tar_argv(root, tarball))
        run(docker_import_argv(tarball, tag, socket_path))
    return True


def check_image_argv(
    tag: str = BUSYBOX_TAG, socket_path: str | None = None
) -> list[str]:
    """Build the smoke test of the image: ``busybox echo ok`` in a container."""
    command = ["run", "--rm", "--network", "host", tag, "busybox", "echo", "ok"]
    return docker_argv(*command, socket_path=socket_path)
