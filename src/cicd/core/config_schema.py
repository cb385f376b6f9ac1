"""The configuration's keys: each one's default, meaning and rule, in one table.

:data:`SCHEMA` is the one description of every key of ``[tool.cicd]`` (and of
``[tool.cicd.env.NAME]``): its default, what it means (the configuration reference is
generated from it by ``90_doc/source/_ext/configdoc.py``) and its rule (choices,
bounds, the placeholders a template may use). :data:`DEFAULTS` is derived from it,
and the typed settings (:mod:`cicd.core.settings`) are filled from it field by field;
a test checks that the two never disagree.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

STREAMLIT_COMMAND = (
    "{venv}/bin/python -m streamlit run src/mangetamain/app.py"
    " --server.port {port} --server.address {address} --server.headless true"
    " --browser.gatherUsageStats false"
)

RUNTIME_KINDS = ("supervisor", "compose", "swarm")
PROXY_KINDS = ("auto", "haproxy", "none")
#: The two slots of a blue/green environment, in the order they are first used.
SLOTS = ("blue", "green")
CI_PROVIDERS = ("local", "github")
ON_INCONCLUSIVE = ("keep", "rollback")
INSTALLERS = ("auto", "pip", "uv")
#: The items of production's pre-flight, in the order they run.
PREFLIGHT_ITEMS = ("serving", "smoke", "logs", "backup", "window")
#: The app's sidebar pages and the heading each shows (10_preprod's views.PAGES).
APP_PAGES = [
    {"label": label, "path": "/", "text": text}
    for label, text in (
        ("Ratings", "Rating distribution"),
        ("Seasonality", "Recipes submitted per month of year"),
        ("Weekend effect", "Number of ratings by weekday"),
    )
]
#: An error in an app's log: a traceback, a record at ERROR or CRITICAL.
LOG_ERRORS = [r"^Traceback \(most recent call last\)", r"\bERROR\b", r"\bCRITICAL\b"]

#: What ``runtime.command`` and ``runtime.environment`` values may name.
APP_PLACEHOLDERS = ("python", "venv", "port", "address", "release", "shared", "env")


@dataclass(frozen=True)
class Key:
    """One configuration key: its default, its meaning and its rule.

    Attributes:
        default: The built-in value; its type is the key's type.
        doc: What the key means (reStructuredText, for the reference page).
        choices: The only values allowed, when a string has a fixed set.
        at_least: Smallest allowed number.
        above: The number must be greater than this.
        at_most: Largest allowed number.
        placeholders: For a template: the ``{names}`` it may use.
        relative: The value is a path inside the release (no ``/`` start, no
            ``..``, one line).
        length: For a string: the fewest and most characters it may have.
        forbidden: For a string: substrings it may not contain (in any case).
        patterns: For a list of strings: each one is a regular expression.
    """

    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    placeholders: tuple[str, ...] | None = None
    relative: bool = False
    length: tuple[int, int] | None = None
    forbidden: tuple[str, ...] = ()
    patterns: bool = False


#: Every key of ``[tool.cicd]`` (and of ``[tool.cicd.env.NAME]``), by section.
SCHEMA: dict[str, Any] = {
    "root": Key(
        ".cicd",
        "Target root on the host: one directory per environment below it, plus the "
        "shared ``venvs/`` and ``supervisor/``. Relative: to the configuration file.",
    ),
    "source": Key(
        ".",
        "Git repository releases are exported from: a local path, or a URL that is "
        "mirrored under the root (fetched only when a sha is unknown).",
    ),
    "app_dir": Key(
        "10_preprod",
        "The app's directory inside a release; the runtime command runs there.",
    ),
    "requirements": Key(
        "auto",
        "The app's dependencies, relative to ``app_dir``: a ``uv.lock`` (installed "
        "frozen with ``uv sync``, no dev or test group), a ``pylock.toml`` (PEP 751, "
        "``uv pip sync``) or a requirements file (``--require-hashes`` when it pins "
        "hashes). ``auto``: the first of ``uv.lock``, ``pylock.toml`` and "
        "``requirements.txt`` the release has. A lock's venv is keyed by the lock, "
        "the interpreter and its local packages' content; a requirements file's by "
        "its content. Built once per key at release time, shared by releases.",
        relative=True,
    ),
    "python": Key(
        "",
        "Interpreter that builds the venvs: a command or path, or a version such as "
        "``3.13`` that ``uv python find`` resolves among the interpreters uv "
        "manages or finds on the host (never downloaded). Empty: this interpreter "
        "locally, ``python3`` over SSH. The app's ``requires-python`` and "
        "``.python-version`` are checked against it before the release is made.",
    ),
    "installer": Key(
        "auto",
        "``auto`` (``uv`` when on the host's PATH, else pip), ``pip`` or ``uv``.",
        choices=INSTALLERS,
    ),
    "keep": Key(
        5,
        "Releases kept per environment (older ones pruned; the running, previous and "
        "validated ones never), and production backups kept.",
        at_least=1,
    ),
    "port": Key(
        8500,
        "Port the app listens on (8500 preprod, 8501 prod by default).",
        at_least=1,
        at_most=65535,
    ),
    "url": Key(
        "http://127.0.0.1:{port}",
        "Base URL of the environment; health check paths are appended to it. "
        "Placeholders: ``{port}``, ``{env}``.",
        placeholders=("port", "env"),
    ),
    "public_url": Key(
        "",
        "The address users open (``https://mangetamain.example``), shown and linked "
        "in notifications — the health ``url`` may be a private one. Empty: ``url``.",
    ),
    "persistent": Key(
        [],
        "Directories under ``<root>/<env>/`` that survive releases and are archived "
        "into ``backups/`` before each production deploy.",
    ),
    "hosts": Key(
        [],
        "SSH hosts (ssh_config aliases or addresses) that run the environment. Empty: "
        "the machine where the task runs (or ``fab -H HOST``'s host). With hosts, "
        "``invoke deploy.*`` deploys to all of them in parallel, all or nothing.",
    ),
    "batch": Key(
        0,
        "Hosts switched at a time (a rolling deploy); 0 switches all at once.",
        at_least=0,
    ),
    "ssh_config": Key(
        "",
        "The ssh_config file for ``hosts``. Empty: ``~/.ssh/config``. Host keys are "
        "always checked against its ``UserKnownHostsFile`` (or "
        "``~/.ssh/known_hosts``); an unknown key is refused.",
    ),
    "window": Key(
        "",
        "When ``deploy.prod`` may change this environment: ``DAYS START-END "
        "[ZONE]``, e.g. ``Tue-Thu 08:00-16:00 Europe/Paris`` (an end before the "
        "start wraps past midnight; the zone's wall clock, UTC without a zone). "
        "Outside it the pre-flight refuses, unless ``--force``. Empty: any time.",
    ),
    "preflight": Key(
        list(PREFLIGHT_ITEMS),
        "What ``deploy.prod``'s pre-flight checks before anything changes (see "
        ":doc:`runbook`): ``serving`` (preprod serves the sha, healthy now), "
        "``smoke`` (``smoke.pages`` on preprod), ``logs`` (``smoke.log_errors``), "
        "``backup`` (``backup.restore_check``), ``window``. Empty: none.",
        choices=PREFLIGHT_ITEMS,
    ),
    "runtime": {
        "kind": Key(
            "supervisor",
            "``supervisor`` (the embedded default), ``compose`` (one container per "
            "host, mounting the release) or ``swarm`` (Docker Swarm services, one "
            "image per sha, blue/green behind haproxy; run from its manager).",
            choices=RUNTIME_KINDS,
        ),
        "command": Key(
            STREAMLIT_COMMAND,
            "The app's command line under supervisord. Placeholders: ``{python}``, "
            "``{venv}``, ``{port}``, ``{address}`` (the host of ``url``), "
            "``{release}``, ``{shared}``, ``{env}``.",
            placeholders=APP_PLACEHOLDERS,
        ),
        "environment": Key(
            {"PYTHONPATH": "src"},
            "Extra environment variables for the app (merged per key); values take "
            "the placeholders of ``runtime.command``. The app's secrets go in "
            "``<root>/<env>/shared/app.env`` instead.",
            placeholders=APP_PLACEHOLDERS,
        ),
        "supervisord": Key(
            "",
            "The ``supervisord`` program. Empty: the copy installed beside this "
            "interpreter locally, ``supervisord`` on PATH remotely.",
        ),
        "supervisorctl": Key("", "The ``supervisorctl`` program, found the same way."),
        "compose_file": Key(
            "30_docker/docker-compose-{env}.yml",
            'Compose file inside the release, for ``kind = "compose"``. '
            "Placeholder: ``{env}``.",
            placeholders=("env",),
        ),
        "service": Key("app", "Compose (or stack) service that runs the app."),
        "project": Key(
            "mangetamain-{env}",
            "Compose project, or swarm stack (``-blue``/``-green`` added behind "
            "haproxy). Placeholder: ``{env}``.",
            placeholders=("env",),
        ),
        "image": Key(
            "mangetamain-app",
            "The swarm's image repository: each release is ``IMAGE:SHA``, for ``kind "
            '= "swarm"``.',
        ),
        "dockerfile": Key(
            "30_docker/Dockerfile",
            "Dockerfile inside the release that builds ``IMAGE:SHA`` (its ``release`` "
            "stage), with the release as the build context.",
        ),
        "stack_file": Key(
            "30_docker/stack.yml",
            "Stack file inside the release (compose version 3.8), deployed with "
            "``docker stack deploy``. Placeholder: ``{env}``.",
            placeholders=("env",),
        ),
        "docker_host": Key(
            "",
            "The swarm manager's Docker API (``DOCKER_HOST``: ``unix:///...``, "
            "``ssh://user@host``). Empty: docker's default on the host.",
        ),
        "registry": Key(
            "",
            "Registry the nodes pull ``IMAGE:SHA`` from (``host:port``); the image is "
            "pushed there, and pulled ahead on each of ``nodes``. Empty: it is copied "
            "to each of ``nodes`` with ``docker save | docker load``.",
        ),
        "nodes": Key(
            [],
            "Docker APIs of the swarm's other nodes (``ssh://root@vm2``, "
            "``unix:///...``): each gets ``IMAGE:SHA`` before it starts (copied, or "
            "pulled from ``registry``). List them all: a slot's restart waits there.",
        ),
        "update_timeout": Key(
            300.0,
            "Seconds a swarm update, or a slot's start or stop, may take at most.",
            above=0,
        ),
    },
    "proxy": {
        "kind": Key(
            "auto",
            "``haproxy``: zero-downtime blue/green deploys — haproxy (one per host, "
            "under the root's supervisord) listens on the environment's ``url`` and "
            "routes to one of two slots; a new release starts on the idle slot, gets "
            "ready there and only then is switched to. ``none``: the app listens on "
            "``url`` itself and is restarted in place. ``auto``: ``haproxy`` when the "
            "host has it, else ``none`` (said in one line).",
            choices=PROXY_KINDS,
        ),
        "haproxy": Key("haproxy", "The ``haproxy`` program (1.8 or newer)."),
        "blue_port": Key(
            0,
            "Private port of the blue slot. 0: ``port`` + 10000 (− 10000 when "
            "``port`` is above 45535).",
            at_least=0,
            at_most=65535,
        ),
        "green_port": Key(
            0,
            "Private port of the green slot. 0: ``port`` + 20000 (− 20000 when "
            "``port`` is above 45535).",
            at_least=0,
            at_most=65535,
        ),
        "warm": Key(
            1800.0,
            "Seconds the previous release keeps running on its slot after a switch, "
            "so a rollback is only a switch back. A CI verdict ends it sooner "
            "(passed: stopped; failed: switched back to). 0: stopped at once.",
            at_least=0,
        ),
    },
    "health": {
        "deadline": Key(
            60.0,
            "Seconds to wait for readiness after a restart before the deploy fails "
            "and is rolled back.",
            above=0,
        ),
        "interval": Key(0.5, "Seconds between readiness rounds.", above=0),
        "successes": Key(
            1, "Consecutive passing rounds needed to be ready (2 in prod).", above=0
        ),
        "checks": Key(
            [
                {"path": "/_stcore/health", "body_contains": "ok"},
                # What a user sees; skipped with a note where Chromium is absent.
                {"path": "/", "rendered_contains": "Mangetamain", "timeout": 30},
            ],
            "The checks of a round, each a table (see below). All must pass.",
        ),
    },
    "smoke": {
        "pages": Key(
            APP_PAGES,
            "Pages a browser smoke opens (besides those the app's navigation lists), "
            "each a table: ``label`` (the navigation entry to choose; empty: the "
            "page at ``path``), ``path`` (loaded first; ``/``) and ``text`` (what it "
            "must show; empty: only no exception box). Default: the app's pages.",
        ),
        "max_load": Key(
            10.0, "Slowest page load, navigation to ``text``, in seconds.", above=0
        ),
        "log_errors": Key(
            LOG_ERRORS,
            "Regular expressions of an error line in the app's log (default: "
            "tracebacks, ``ERROR`` and ``CRITICAL`` records).",
            patterns=True,
        ),
        "on_deploy": Key(
            True, "Smoke the pages on each deploy too, preprod's included."
        ),
    },
    "backup": {
        "restore_check": Key(
            7.0, "Days a tested restore of a backup stays good.", above=0
        ),
    },
    "monitor": {
        "failures": Key(
            3,
            "Consecutive failed checks of the hourly monitor before an alert.",
            at_least=1,
        ),
        "successes": Key(
            2,
            "Consecutive passing checks before a down environment is recovered.",
            at_least=1,
        ),
        "reminder": Key(
            6 * 3600.0,
            "Seconds between reminders while an environment stays down.",
            above=0,
        ),
        "retries": Key(
            4,
            "Extra checks one monitor run makes while an environment is down, "
            '``retry_interval`` apart, so "recovered" is said minutes after the '
            "app is back rather than at the next hourly run (0: one check per run).",
            at_least=0,
            at_most=60,
        ),
        "retry_interval": Key(
            30.0,
            "Seconds between two checks of one monitor run (confirming a failure, "
            "re-checking while down, confirming a recovery).",
            above=0,
            at_most=600,
        ),
        "patience": Key(
            0.0,
            "While an environment is still down at the end of a monitor run, a "
            "re-checker in the background keeps checking it every "
            "``retry_interval`` for up to this many seconds, so the recovery is "
            "said within ``retry_interval`` of the app coming back; the next run "
            "takes over from it. 0 (the default): none. The VM example sets 3300, "
            "until the next hourly run.",
            at_least=0,
        ),
        "cert_days": Key(
            14,
            "Alert when the certificate of an ``https`` URL the monitor checks "
            "expires in fewer days than this (0: no certificate alert).",
            at_least=0,
        ),
        "urls": Key(
            [],
            "Public URLs the monitor also checks, as a visitor would (any status "
            "below 400; ``https`` verified, its certificate's days left compared "
            "with ``cert_days``). ``invoke health --url`` checks such URLs from "
            "outside the VM.",
        ),
    },
    "notify": {
        "discord": Key(True, "Send to Discord when ``DISCORD_WEBHOOK_URL`` is set."),
        "username": Key(
            "Mangetamain CI/CD",
            "Name the Discord messages are posted under: 1 to 80 characters, "
            "without ``clyde`` or ``discord`` in it (Discord refuses every message "
            "of a webhook whose name breaks these rules).",
            # Discord's published limits (tests/data/published_api.json).
            length=(1, 80),
            forbidden=("clyde", "discord"),
        ),
    },
    "ci": {
        "provider": Key(
            "local",
            "``local`` (run ``ci.command`` for the release) or ``github`` (ask "
            "GitHub Actions about the sha).",
            choices=CI_PROVIDERS,
        ),
        "command": Key(
            "nox --envdir {envdir} -s lint tests",
            "The local CI command, run in a scratch copy of the release (never in the "
            "release itself); exit 0 is success, not found (127) or not executable "
            "(126) inconclusive. Placeholder: ``{envdir}``.",
            placeholders=("envdir",),
        ),
        "workflow": Key(
            "ci.yml", "The GitHub workflow file whose run for the sha is the verdict."
        ),
        "repository": Key(
            "", "``OWNER/NAME`` on GitHub. Empty: ``$GITHUB_REPOSITORY``."
        ),
        "api_url": Key(
            "", "GitHub API base. Empty: ``$GITHUB_API_URL``, else the public API."
        ),
        "poll_interval": Key(
            5.0,
            "Seconds between polls of GitHub (longer when GitHub asks).",
            above=0,
        ),
        "deadline": Key(
            900.0,
            "Seconds after which a CI still pending (or a local command still "
            "running) is inconclusive.",
            above=0,
        ),
        "on_inconclusive": Key(
            "keep",
            "``keep`` the deploy and alert a person, or ``rollback``.",
            choices=ON_INCONCLUSIVE,
        ),
        "lock_wait": Key(
            300.0,
            "Seconds a CI verdict waits for a deploy or rollback to release the "
            "environment's lock.",
            at_least=0,
        ),
    },
}

#: Each health check's keys (a check is a table in ``health.checks``).
CHECK_SCHEMA: dict[str, Key] = {
    "path": Key("/", "Path appended to the environment's ``url``."),
    "status": Key(200, "Expected HTTP status.", at_least=100, at_most=599),
    "body_contains": Key(None, "Text the response body must contain."),
    "json_field": Key(
        None,
        "``name=value``: the JSON body's field must equal the value; dots reach into "
        "objects (``checks.db=ok``).",
    ),
    "max_response_time": Key(None, "Slowest acceptable answer, in seconds.", above=0),
    "timeout": Key(10.0, "Per-request timeout, in seconds.", above=0),
    "rendered_contains": Key(
        None,
        "Text the page must show once rendered by headless Chromium (Streamlit's raw "
        "HTML and ``/_stcore/health`` look the same for a broken app). Skipped with "
        "a note where Chromium is absent, or over SSH.",
    ),
}
#: The type of each check key (None defaults are strings, or numbers for times).
CHECK_KEYS: dict[str, type | tuple[type, ...]] = {
    "path": str,
    "status": int,
    "body_contains": str,
    "json_field": str,
    "max_response_time": (int, float),
    "timeout": (int, float),
    "rendered_contains": str,
}

#: Built-in per-environment values, applied before the user's own keys.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "preprod": {"port": 8500},
    "prod": {"port": 8501, "persistent": ["shared"], "health": {"successes": 2}},
}


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _defaults(spec) if isinstance(spec, dict) else copy.deepcopy(spec.default)
        for name, spec in schema.items()
    }


#: The embedded default, derived from :data:`SCHEMA`.
DEFAULTS: dict[str, Any] = {**_defaults(SCHEMA), "env": ENV_DEFAULTS}
