"""Unit tests of :mod:`cicd.core.config` and the schema, checks and settings it loads
with: the embedded default, merging, and every error.

An invalid configuration must fail before anything runs, with a
:class:`~cicd.core.errors.ConfigError` (exit code 2) whose message names the key to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cicd.core.config import find_pyproject, from_table, load
from cicd.core.errors import CicdError, ConfigError, UsageError
from cicd.core.settings import Settings

CICD_TABLE = "[tool.cicd]\nkeep = 2\n\n[tool.cicd.env.prod]\nport = 9001\n"


def settings(tmp_path: Path, table: dict[str, Any] | None = None) -> Settings:
    """Build settings from a ``[tool.cicd]`` table (empty: the embedded default)."""
    return from_table(table or {}, project_dir=tmp_path)


def config_error(tmp_path: Path, table: dict[str, Any]) -> str:
    """Return the message of the ConfigError that ``table`` must raise."""
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, table)
    return str(caught.value)


# -- the embedded default ---------------------------------------------------


def test_default_has_preprod_and_prod(tmp_path: Path) -> None:
    config = settings(tmp_path)

    assert sorted(config.envs) == ["preprod", "prod"]
    assert config.project_dir == tmp_path
    assert config.path is None


def test_default_ports_and_urls(tmp_path: Path) -> None:
    config = settings(tmp_path)
    preprod, prod = config.env("preprod"), config.env("prod")

    assert (preprod.port, prod.port) == (8500, 8501)
    assert preprod.url == "http://127.0.0.1:8500"
    assert prod.url == "http://127.0.0.1:8501"
    assert [c.url for c in preprod.health.checks] == [
        "http://127.0.0.1:8500/_stcore/health",
        "http://127.0.0.1:8500/",
    ]
    assert preprod.health.checks[0].body_contains == "ok"
    assert preprod.health.checks[1].rendered_contains == "Mangetamain"
    assert preprod.health.checks[0].status == 200


def test_default_runtime_keep_persistent_and_health(tmp_path: Path) -> None:
    config = settings(tmp_path)
    preprod, prod = config.env("preprod"), config.env("prod")

    assert preprod.runtime.kind == prod.runtime.kind == "supervisor"
    assert preprod.runtime.environment == {"PYTHONPATH": "src"}
    assert preprod.keep == prod.keep == 5
    assert preprod.persistent == ()
    assert prod.persistent == ("shared",)
    assert (preprod.health.successes, prod.health.successes) == (1, 2)
    assert prod.health.deadline == 60.0
    assert prod.runtime.compose_file == "30_docker/docker-compose-prod.yml"
    assert prod.runtime.project == "mangetamain-prod"
    assert prod.root == ".cicd"
    assert prod.app_dir == "10_preprod"
    assert prod.installer == "auto"
    assert prod.notify.discord is True


# -- merging ----------------------------------------------------------------


def test_env_overrides_merge_over_top_level(tmp_path: Path) -> None:
    config = settings(
        tmp_path,
        {
            "keep": 3,
            "url": "http://127.0.0.1:{port}/app",
            "runtime": {"environment": {"A": "1"}, "service": "web"},
            "health": {"deadline": 5},
            "env": {
                "prod": {
                    "keep": 7,
                    "runtime": {"environment": {"B": "2"}},
                    "health": {"interval": 0.25},
                }
            },
        },
    )
    preprod, prod = config.env("preprod"), config.env("prod")

    assert (preprod.keep, prod.keep) == (3, 7)
    assert prod.url == "http://127.0.0.1:8501/app"
    assert prod.health.checks[0].url == "http://127.0.0.1:8501/app/_stcore/health"
    assert prod.runtime.environment == {"PYTHONPATH": "src", "A": "1", "B": "2"}
    assert preprod.runtime.environment == {"PYTHONPATH": "src", "A": "1"}
    assert prod.runtime.service == preprod.runtime.service == "web"
    assert (prod.health.deadline, prod.health.interval) == (5.0, 0.25)
    assert prod.health.successes == 2
    assert preprod.health.interval == 0.5


def test_top_level_keys_override_embedded_env_defaults(tmp_path: Path) -> None:
    config = settings(tmp_path, {"persistent": ["data"], "health": {"successes": 3}})
    prod = config.env("prod")

    assert prod.persistent == ("data",)
    assert prod.health.successes == 3


def test_an_extra_environment_can_be_declared(tmp_path: Path) -> None:
    config = settings(tmp_path, {"env": {"staging": {"port": 8502}}})

    assert config.env("staging").url == "http://127.0.0.1:8502"
    assert config.env("staging").persistent == ()


def test_health_checks_are_built_from_the_table(tmp_path: Path) -> None:
    table = {
        "health": {
            "checks": [
                {"path": "/ready", "status": 204},
                {"path": "/meta", "json_field": "db=ok", "max_response_time": 1},
            ]
        }
    }

    checks = settings(tmp_path, table).env("preprod").health.checks

    assert [(c.url, c.status) for c in checks] == [
        ("http://127.0.0.1:8500/ready", 204),
        ("http://127.0.0.1:8500/meta", 200),
    ]
    assert checks[1].json_field == "db=ok"
    assert checks[1].max_response_time == 1.0


# -- errors -----------------------------------------------------------------

ERRORS = [
    pytest.param({"nope": 1}, "tool.cicd.nope", id="unknown-top"),
    pytest.param({"runtime": {"nope": 1}}, "tool.cicd.runtime.nope", id="unknown-rt"),
    pytest.param(
        {"env": {"prod": {"nope": 1}}}, "tool.cicd.env.prod.nope", id="unknown-env"
    ),
    pytest.param(
        {"health": {"checks": [{"path": "/", "nope": 1}]}},
        "tool.cicd.health.checks[0].nope",
        id="unknown-check-key",
    ),
    pytest.param({"keep": "5"}, "tool.cicd.keep", id="keep-string"),
    pytest.param({"port": True}, "tool.cicd.port", id="port-bool"),
    pytest.param({"persistent": [1]}, "tool.cicd.persistent", id="persistent-int"),
    pytest.param(
        {"env": {"prod": {"persistent": "shared"}}},
        "tool.cicd.env.prod.persistent",
        id="persistent-string",
    ),
    pytest.param({"runtime": "compose"}, "tool.cicd.runtime", id="runtime-not-table"),
    pytest.param(
        {"runtime": {"environment": {"A": 1}}},
        "tool.cicd.runtime.environment",
        id="environment-int",
    ),
    pytest.param({"notify": {"discord": "yes"}}, "tool.cicd.notify.discord", id="bool"),
    pytest.param({"health": {"checks": []}}, "tool.cicd.health.checks", id="no-check"),
    pytest.param(
        {"health": {"checks": [{"status": "200"}]}},
        "tool.cicd.health.checks[0].status",
        id="check-status-string",
    ),
    pytest.param(
        {"health": {"checks": [{"timeout": True}]}},
        "tool.cicd.health.checks[0].timeout",
        id="check-timeout-bool",
    ),
    pytest.param({"env": ["prod"]}, "tool.cicd.env", id="env-not-table"),
    pytest.param({"env": {"prod": 5}}, "tool.cicd.env.prod", id="env-prod-not-table"),
    pytest.param({"env": {"pre-prod": {}}}, "tool.cicd.env.pre-prod", id="env-name"),
    pytest.param({"runtime": {"kind": "k8s"}}, "runtime.kind", id="runtime-kind"),
    pytest.param({"installer": "conda"}, ".installer", id="installer"),
    pytest.param({"keep": 0}, ".keep", id="keep-zero"),
    pytest.param({"env": {"prod": {"port": 0}}}, "tool.cicd.env.prod.port", id="p0"),
    pytest.param(
        {"env": {"prod": {"port": 70000}}}, "tool.cicd.env.prod.port", id="p70000"
    ),
    pytest.param({"url": "http://127.0.0.1:{nope}"}, ".url", id="url-placeholder"),
    pytest.param(
        {"runtime": {"project": "app-{nope}"}},
        ".runtime.project",
        id="project-placeholder",
    ),
    pytest.param({"health": {"deadline": 0}}, "health.deadline", id="deadline-0"),
    pytest.param({"health": {"interval": 0}}, "health.interval", id="interval-0"),
    pytest.param({"health": {"successes": 0}}, "health.successes", id="successes-0"),
    pytest.param(
        {"runtime": {"command": "{pyhton} app.py"}},
        ".runtime.command",
        id="command-placeholder",
    ),
    pytest.param(
        {"runtime": {"environment": {"HOME": "{shard}"}}},
        ".runtime.environment",
        id="environment-placeholder",
    ),
    pytest.param(
        {"ci": {"command": "nox --envdir {env_dir}"}},
        ".ci.command",
        id="ci-command-placeholder",
    ),
    pytest.param({"monitor": {"failures": 0}}, ".monitor.failures", id="monitor-0"),
    pytest.param({"ci": {"lock_wait": -1.0}}, ".ci.lock_wait", id="lock-wait"),
    pytest.param(
        {"health": {"checks": [{"status": 42}]}},
        ".health.checks[0].status",
        id="check-status-range",
    ),
]


@pytest.mark.parametrize(("table", "key"), ERRORS)
def test_every_error_names_the_full_key(
    tmp_path: Path, table: dict[str, Any], key: str
) -> None:
    message = config_error(tmp_path, table)

    assert message.startswith("tool.cicd")
    assert key in message


def test_unknown_key_lists_the_known_keys(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"runtime": {"kind2": "compose"}})

    assert message.startswith("tool.cicd.runtime.kind2: unknown key")
    assert "kind" in message and "supervisord" in message


def test_wrong_type_shows_the_value(tmp_path: Path) -> None:
    assert config_error(tmp_path, {"keep": "5"}) == (
        "tool.cicd.keep: expected int, got '5'"
    )


def test_bad_values_show_the_value(tmp_path: Path) -> None:
    assert "'k8s'" in config_error(tmp_path, {"runtime": {"kind": "k8s"}})
    assert "'conda'" in config_error(tmp_path, {"installer": "conda"})
    assert "70000" in config_error(tmp_path, {"env": {"prod": {"port": 70000}}})
    assert "nope" in config_error(tmp_path, {"url": "http://127.0.0.1:{nope}"})


def test_config_error_is_a_usage_error_with_exit_code_2() -> None:
    assert ConfigError.exit_code == 2
    assert issubclass(ConfigError, UsageError)
    assert issubclass(ConfigError, CicdError)


def test_unknown_environment_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path).env("nope")

    assert "'nope'" in str(caught.value)
    assert "known: preprod, prod" in str(caught.value)


# -- load and find_pyproject ------------------------------------------------


def test_load_from_cicd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deploy.toml"
    path.write_text(CICD_TABLE)
    monkeypatch.setenv("CICD_CONFIG", str(path))

    config = load()

    assert config.path == path.resolve()
    assert config.project_dir == path.resolve().parent
    assert config.env("preprod").keep == 2
    assert config.env("prod").port == 9001


def test_load_explicit_path_wins_over_cicd_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(CICD_TABLE)
    monkeypatch.setenv("CICD_CONFIG", str(tmp_path / "missing.toml"))

    assert load(path).env("prod").port == 9001


def test_load_missing_cicd_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.toml"
    monkeypatch.setenv("CICD_CONFIG", str(missing))

    with pytest.raises(ConfigError) as caught:
        load()

    assert "CICD_CONFIG" in str(caught.value)
    assert str(missing) in str(caught.value)
    assert caught.value.exit_code == 2


def test_load_invalid_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[tool.cicd\nkeep = 5\n")
    monkeypatch.setenv("CICD_CONFIG", str(path))

    with pytest.raises(ConfigError) as caught:
        load()

    assert "invalid TOML" in str(caught.value)
    assert str(path) in str(caught.value)


def test_load_invalid_key_in_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.cicd.env.prod]\nkeep = '5'\n")
    monkeypatch.setenv("CICD_CONFIG", str(path))

    with pytest.raises(ConfigError, match=r"tool\.cicd\.env\.prod\.keep"):
        load()


def test_find_pyproject_finds_a_parent_with_a_cicd_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(CICD_TABLE)
    app = tmp_path / "10_preprod"
    (app / "src" / "pkg").mkdir(parents=True)
    (app / "pyproject.toml").write_text("[project]\nname = 'mangetamain'\n")

    assert find_pyproject(app / "src" / "pkg") == tmp_path / "pyproject.toml"


def test_find_pyproject_accepts_the_cicd_project_itself(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'cicd'\n")

    assert find_pyproject(tmp_path) == tmp_path / "pyproject.toml"


def test_load_walks_up_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(CICD_TABLE)
    deeper = tmp_path / "a" / "b"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)

    config = load()

    assert config.path == (tmp_path / "pyproject.toml").resolve()
    assert config.project_dir == tmp_path.resolve()
    assert config.env("prod").port == 9001


def test_load_without_any_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if find_pyproject(tmp_path) is not None:
        pytest.skip("a pyproject.toml of cicd sits above the temporary directory")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError, match="no configuration found.*CICD_CONFIG"):
        load()


# -- one schema ----------------------------------------------------------------


def test_the_schema_and_the_typed_settings_name_the_same_keys() -> None:
    import dataclasses

    from cicd.core.config_schema import CHECK_KEYS, CHECK_SCHEMA, SCHEMA
    from cicd.core.settings import SECTIONS, EnvSettings

    derived = {"name"} | set(SECTIONS)
    top = {f.name for f in dataclasses.fields(EnvSettings)} - derived
    assert top == {k for k, v in SCHEMA.items() if not isinstance(v, dict)}
    for section, cls in SECTIONS.items():
        assert {f.name for f in dataclasses.fields(cls)} == set(SCHEMA[section])
    assert set(CHECK_SCHEMA) == set(CHECK_KEYS)
    # Every key says what it means: the reference page is generated from it.
    assert all(spec.doc for spec in CHECK_SCHEMA.values())


def test_a_template_typo_fails_at_load_naming_the_known_placeholders(
    tmp_path: Path,
) -> None:
    message = config_error(tmp_path, {"runtime": {"command": "{pyhton} app.py"}})
    assert message.startswith("tool.cicd.env.preprod.runtime.command: unknown")
    assert "'pyhton'" in message and "{python}" in message
    assert "\n" not in message


def test_the_configuration_is_read_once_per_file_version(tmp_path: Path) -> None:
    path = tmp_path / "cicd.toml"
    path.write_text(CICD_TABLE)
    first = load(path)
    assert load(path) is first
    path.write_text(CICD_TABLE.replace("keep = 2", "keep = 4"))
    assert load(path).env("preprod").keep == 4


def test_the_ci_command_is_split_before_its_placeholders_are_filled() -> None:
    from cicd.ci.local import command_argv

    argv = command_argv("nox --envdir {envdir} -s lint", envdir="/srv/my app/ci-envs")
    assert argv == ["nox", "--envdir", "/srv/my app/ci-envs", "-s", "lint"]


def test_slot_ports_derive_from_the_port_and_are_checked() -> None:

    settings = from_table({}, project_dir=Path("."))
    assert settings.env("prod").proxy.slot_port("blue") == 18501
    assert settings.env("prod").proxy.slot_port("green") == 28501
    # A high port gets its slots below it.
    high = from_table(
        {"env": {"preprod": {"port": 50000}}, "proxy": {"kind": "haproxy"}},
        project_dir=Path("."),
    )
    assert high.env("preprod").proxy.slot_port("blue") == 40000
    assert high.env("preprod").proxy.slot_port("green") == 30000
    with pytest.raises(ConfigError, match="must differ"):
        from_table(
            {"proxy": {"kind": "haproxy", "blue_port": 9000, "green_port": 9000}},
            project_dir=Path("."),
        )
    # In place, slot ports are never used: a high port is fine.
    kept = from_table({"port": 50000, "proxy": {"kind": "none"}}, project_dir=Path("."))
    assert kept.env("preprod").port == 50000
    # "auto": checked only once the host is known to have haproxy.
    auto = from_table(
        {"env": {"preprod": {"port": 50000}, "prod": {"port": 50001}}},
        project_dir=Path("."),
    )
    assert auto.env("preprod").proxy.kind == "auto"
    with pytest.raises(ConfigError, match="proxy port 18500 is also prod's"):
        from_table(
            {"env": {"prod": {"port": 18500}}, "proxy": {"kind": "haproxy"}},
            project_dir=Path("."),
        )


def test_auto_checks_the_slot_ports_once_haproxy_is_found(tmp_path: Path) -> None:
    from invoke import Context

    from cicd.transport.runner import Runner
    from cicd.host.target import Target

    table = {"env": {"preprod": {"port": 50000}, "prod": {"port": 50001}}}
    settings = from_table(table, project_dir=tmp_path)
    runner = Runner(Context())
    runner.facts["which haproxy"] = "/usr/sbin/haproxy"
    assert Target(runner, settings, "preprod").is_proxied() is True
    clash = from_table(
        {"env": {"preprod": {"port": 9000, "proxy": {"blue_port": 9000}}}},
        project_dir=tmp_path,
    )
    with pytest.raises(ConfigError, match="must differ"):
        Target(runner, clash, "preprod").is_proxied()
    runner.facts["which haproxy"] = ""
    assert Target(runner, settings, "preprod").is_proxied() is False


@pytest.mark.parametrize(
    ("username", "said"),
    [
        ("", "must be 1 to 80 characters, got 0"),
        ("x" * 81, "must be 1 to 80 characters, got 81"),
        ("Our Discord bot", "must not contain 'discord'"),
        ("CLYDE", "must not contain 'clyde'"),
    ],
)
def test_a_username_discord_refuses_fails_at_load(
    tmp_path: Path, username: str, said: str
) -> None:
    # Discord refuses every message posted under such a name, the text-only retry
    # included: say so at load, in one line naming the key, not message by message.
    message = config_error(tmp_path, {"notify": {"username": username}})
    assert message.startswith("tool.cicd.env.")
    assert ".notify.username: " + said in message and "\n" not in message
    assert settings(tmp_path, {"notify": {"username": "x" * 80}})


# -- the pre-flight's keys: smoke, backup, window, preflight ----------------------


def test_the_pre_flight_defaults_cover_the_apps_three_pages(tmp_path: Path) -> None:
    prod = settings(tmp_path).env("prod")

    assert [(p.label, p.text) for p in prod.smoke.pages] == [
        ("Ratings", "Rating distribution"),
        ("Seasonality", "Recipes submitted per month of year"),
        ("Weekend effect", "Number of ratings by weekday"),
    ]
    assert prod.smoke.max_load == 10.0 and prod.smoke.on_deploy is True
    assert prod.backup.restore_check == 7.0
    assert prod.window == "" and prod.deploy_window() is None
    assert prod.preflight == ("serving", "smoke", "logs", "backup", "window")


def test_the_default_pages_are_the_apps_own() -> None:
    """The app's sidebar lists these labels, and each page shows its heading."""
    from cicd.core.config_schema import APP_PAGES

    views = Path(__file__).resolve().parents[2] / "10_preprod/src/mangetamain/views.py"
    source = views.read_text()
    for page in APP_PAGES:
        assert f'"{page["label"]}": render_' in source
        assert f'st.subheader("{page["text"]}")' in source


def test_the_log_patterns_find_tracebacks_and_errors_only(tmp_path: Path) -> None:
    import re

    patterns = [re.compile(p) for p in settings(tmp_path).env("prod").smoke.log_errors]

    def flagged(line: str) -> bool:
        return any(p.search(line) for p in patterns)

    assert flagged("Traceback (most recent call last):")
    assert flagged("2026-12-07 10:00:01.123 ERROR root: the data is gone")
    assert flagged("CRITICAL:mangetamain:out of memory")
    assert not flagged("  You can now view your Streamlit app in your browser.")
    assert not flagged("ERRORS_SEEN=0 in a word that only starts with it")


def test_pages_and_a_window_are_set_per_environment(tmp_path: Path) -> None:
    prod = settings(
        tmp_path,
        {
            "smoke": {"pages": [{"label": "Home", "text": "Hello"}], "max_load": 3},
            "env": {"prod": {"window": "Mon-Fri 09:00-17:00 Europe/Paris"}},
        },
    ).env("prod")

    assert [(p.label, p.path, p.text) for p in prod.smoke.pages] == [
        ("Home", "/", "Hello")
    ]
    assert prod.smoke.max_load == 3.0
    window = prod.deploy_window()
    assert window is not None and window.zone.key == "Europe/Paris"


PREFLIGHT_ERRORS = [
    pytest.param(
        {"env": {"prod": {"window": "Tue-Thu 8-16 Europe/Paris"}}},
        "tool.cicd.env.prod.window: hours are HH:MM-HH:MM",
        id="window-hours",
    ),
    pytest.param(
        {"env": {"prod": {"window": "Tue-Thu 08:00-16:00 Europe/Pariss"}}},
        "tool.cicd.env.prod.window: unknown time zone 'Europe/Pariss'",
        id="window-zone",
    ),
    pytest.param(
        {"window": "Tues 08:00-16:00"},
        ".window: unknown day in 'Tues'",
        id="window-day",
    ),
    pytest.param(
        {"smoke": {"log_errors": ["ERROR", "(unclosed"]}},
        ".smoke.log_errors: '(unclosed' is not a regular expression",
        id="log-pattern",
    ),
    pytest.param(
        {"smoke": {"pages": [{"label": "Ratings", "path": "ratings"}]}},
        "tool.cicd.smoke.pages[0]: a smoke page's path must start with '/'",
        id="page-path",
    ),
    pytest.param(
        {"smoke": {"pages": [{"label": "Ratings", "title": "x"}]}},
        "tool.cicd.smoke.pages[0]: unknown key 'title'",
        id="page-key",
    ),
    pytest.param(
        {"smoke": {"pages": [{"text": 3}]}},
        "tool.cicd.smoke.pages[0]: a smoke page's text must be a string",
        id="page-type",
    ),
    pytest.param(
        {"smoke": {"pages": [{"text": "a\nb"}]}},
        "tool.cicd.smoke.pages[0].text: expected one line of text",
        id="page-newline",
    ),
    pytest.param(
        {"smoke": {"pages": ["Ratings"]}},
        "tool.cicd.smoke.pages[0]: expected a table",
        id="page-not-table",
    ),
    pytest.param(
        {"smoke": {"pages": {"label": "x"}}},
        "tool.cicd.smoke.pages: expected an array of tables",
        id="pages-not-array",
    ),
    pytest.param(
        {"smoke": {"max_load": 0}},
        ".smoke.max_load: must be greater than 0",
        id="max-load",
    ),
    pytest.param(
        {"backup": {"restore_check": -1}},
        ".backup.restore_check: must be greater than 0",
        id="restore-check",
    ),
    pytest.param(
        {"preflight": ["serving", "smok"]},
        ".preflight: expected one of serving, smoke, logs, backup, window, got 'smok'",
        id="preflight-item",
    ),
]


@pytest.mark.parametrize(("table", "said"), PREFLIGHT_ERRORS)
def test_a_bad_pre_flight_key_fails_at_load_naming_it(
    tmp_path: Path, table: dict[str, Any], said: str
) -> None:
    message = config_error(tmp_path, table)

    assert message.startswith("tool.cicd") and said in message
    assert "\n" not in message
