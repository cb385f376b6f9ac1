"""Builders for haproxy: its config files, its program line and its runtime API.

One haproxy per host routes each environment's public address to one of its two
slots. Its config is a global file plus one fragment per environment
(``conf.d/ENV.cfg``), so each environment writes only its own. A fragment carries
the live slot as the other slot's ``disabled`` flag — what haproxy applies when it
(re)starts — and switches happen through the runtime API on a unix socket, with no
reload.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from posixpath import join

from cicd.commands import Command, cmd
from cicd.core.config_schema import SLOTS

#: ``srv_op_state`` of a server haproxy sends traffic to.
UP = 2
#: ``srv_admin_state`` bits that keep traffic away: forced, inherited, resolver
#: and hostname maintenance, forced and inherited drain. (0x04, maintenance from
#: the config's ``disabled``, is left set by haproxy after ``state ready``.)
AWAY = 0x01 | 0x02 | 0x08 | 0x10 | 0x20 | 0x40

#: Talks to the runtime API over SSH: the text on argv, the answer on stdout.
API_SCRIPT = """\
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\\n")
out = b""
while True:
    data = s.recv(65536)
    if not data:
        break
    out += data
sys.stdout.write(out.decode(errors="replace"))
"""


@dataclass(frozen=True)
class Server:
    """One slot (on one swarm node) as haproxy knows it."""

    name: str
    address: str
    port: int
    enabled: bool


def quote(value: str) -> str:
    """Quote a value for haproxy's config, which splits words as a shell does.

    Single quotes: haproxy expands ``$NAME`` inside double quotes.
    """
    return shlex.quote(value)


def global_conf(socket: str) -> str:
    """The global and default sections, shared by every environment."""
    return (
        "# Written by cicd: the zero-downtime proxy. Do not edit; it is rewritten.\n"
        "global\n"
        f"  stats socket {quote(socket)} mode 600 level admin expose-fd listeners\n"
        "  stats timeout 10s\n"
        "  log stderr format short local0 notice\n\n"
        "defaults\n"
        "  mode http\n"
        "  log global\n"
        "  timeout connect 2s\n"
        "  timeout client 1m\n"
        "  timeout server 1m\n"
        "  timeout http-request 10s\n"
        # Streamlit's websocket (/_stcore/stream) stays open as long as a tab does.
        "  timeout tunnel 1h\n"
        # A connection refused by a slot going away is retried on the other one,
        # and so is one it accepted and then closed unanswered (its listener
        # closing under a queued connection): a GET is safe to send again.
        "  retries 3\n"
        "  option redispatch 1\n"
        "  retry-on conn-failure empty-response\n"
    )


def env_conf(
    env: str, bind: str, port: int, check_path: str, servers: Sequence[Server]
) -> str:
    """One environment's frontend and backend.

    The first line names a digest of everything but the ``disabled`` flags: a
    fragment whose digest changed needs a reload; one whose flags changed does not
    (the runtime API already switched).
    """
    lines = [
        f"frontend fe_{env}",
        f"  bind {bind}:{port}",
        f"  default_backend be_{env}",
        "",
        f"backend be_{env}",
        f"  option httpchk GET {check_path}",
        "  http-check expect status 200",
        # Patient: when the only live slot fails its check every request is a 503,
        # so a slow answer (a busy app) must fail three times first.
        "  timeout check 5s",
        "  default-server check inter 2s fastinter 500ms downinter 1s rise 1 fall 3",
    ]
    body = "\n".join(lines)
    for server in servers:
        body += f"\n  server {server.name} {server.address}:{server.port}"
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    for server in servers:
        line = f"  server {server.name} {server.address}:{server.port}"
        if not server.enabled:
            body = body.replace(line, line + " disabled", 1)
    return f"# Written by cicd for {env}. structure {digest}\n{body}\n"


def structure(conf: str) -> str:
    """The digest a fragment's first line names ("" when there is none)."""
    first = conf.split("\n", 1)[0]
    return first.rsplit("structure ", 1)[1].strip() if "structure " in first else ""


def program_line(haproxy: str, conf: str, fragments: str) -> str:
    """The line that runs haproxy: foreground, master-worker (reload: ``USR2``)."""
    return f"{haproxy} -W -db -f {conf} -f {fragments}"


def check(haproxy: str, conf: str, fragments: str) -> Command:
    """Validate the whole config (``haproxy -c``)."""
    return cmd(haproxy, "-c", "-f", conf, "-f", fragments)


def api(python: str, socket: str, text: str) -> Command:
    """Send commands (``;``-separated) to the runtime API and print its answer."""
    return cmd(python, "-c", API_SCRIPT, socket, text)


def show_servers(backend: str) -> str:
    """The runtime API command that lists a backend's servers and their states."""
    return f"show servers state {backend}"


def set_state(backend: str, server: str, state: str) -> str:
    """``set server BACKEND/SERVER state ready|drain|maint``."""
    return f"set server {backend}/{server} state {state}"


def parse_servers(text: str) -> dict[str, tuple[int, int]]:
    """``show servers state`` → server name → (operational state, admin state)."""
    found: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or line.startswith("#") or not fields[5].isdigit():
            continue
        found[fields[3]] = (int(fields[5]), int(fields[6]))
    return found


def server_name(slot: str, node: str) -> str:
    """A slot's server: ``blue``, or on a swarm node, ``blue-NODE`` (made safe)."""
    return f"{slot}-{re.sub(r'[^A-Za-z0-9_.-]', '_', node)}" if node else slot


def slot_of(server: str) -> str:
    """The slot a server belongs to (``blue-node1`` → ``blue``)."""
    return server.split("-", 1)[0]


def of(slot: str, servers: Sequence[str]) -> list[str]:
    """The servers of one slot among ``servers``."""
    return [name for name in servers if slot_of(name) == slot]


def routed_slots(servers: dict[str, tuple[int, int]]) -> list[str]:
    """The slots with a server haproxy is told to route to, in the config's order.

    Servers of no slot (a swarm's single service of before, one per node) are not
    counted.
    """
    slots = (slot_of(name) for name in routed(servers))
    return list(dict.fromkeys(slot for slot in slots if slot in SLOTS))


def slotted(conf: str) -> bool:
    """Whether a fragment names its servers after slots (not a single service's)."""
    return any(slot_of(name) in SLOTS for name, _ in _servers(conf))


def frame(conf: str) -> tuple[list[str], list[tuple[str, str]]]:
    """A fragment without its nodes: its other lines, and each slot's ports.

    Two fragments with one frame differ only in which nodes they route to.
    """
    lines = [line for line in conf.splitlines()[1:] if line.split()[:1] != ["server"]]
    ports = {
        (slot_of(name), where.rsplit(":", 1)[-1]) for name, where in _servers(conf)
    }
    return lines, sorted(ports)


def _servers(conf: str) -> list[tuple[str, str]]:
    """Each ``server NAME ADDRESS:PORT`` line's name and address."""
    return [
        (words[1], words[2])
        for words in (line.split() for line in conf.splitlines())
        if words[:1] == ["server"] and len(words) >= 3
    ]


def routed(servers: dict[str, tuple[int, int]]) -> list[str]:
    """The servers haproxy is told to route to (not drained, not in maintenance).

    Whatever its own check says right now: a slot slow to answer a check is still
    the live one.
    """
    return [name for name, (_, admin) in servers.items() if not admin & AWAY]


#: A unix socket path must fit in sockaddr_un (108 bytes on Linux).
SOCKET_PATH_LIMIT = 100


def socket_path(directory: str) -> str:
    """The runtime API's socket: in ``directory``, or in /tmp when that is too long."""
    path = join(directory, "haproxy.sock")
    if len(path.encode()) <= SOCKET_PATH_LIMIT:
        return path
    digest = hashlib.sha256(directory.encode()).hexdigest()[:16]
    return f"/tmp/cicd-haproxy-{digest}.sock"


def describe(op: int, admin: int) -> str:
    """A server's state in a word: up, down, drained or maint."""
    if admin & (AWAY & ~0x18):
        return "maint"
    if admin & 0x18:
        return "drained"
    return "up" if op == UP else "down"


def fragment_path(directory: str, env: str) -> str:
    """Path of one environment's fragment."""
    return join(directory, "conf.d", f"{env}.cfg")
