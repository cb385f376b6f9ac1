"""Discord messages as a user meets them: ``invoke`` tasks in a subprocess, posting to
a real local HTTP server standing in for the webhook (nothing is patched).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cicd.reporting.notify import COLOURS
from tests.conftest import Project, invoke
from tests.discord_fake import FakeDiscord
from tests.integration.test_ssh import Hosts, fab, fleet_config, host_tables

HOOK = "/api/webhooks/42/n0tify-s3cret"
#: A laptop, not a workflow run: no GitHub variables leak in from the caller.
OUTSIDE = {"GITHUB_RUN_ID": "", "GITHUB_REPOSITORY": "", "GITHUB_SERVER_URL": ""}


class Discord:
    """The webhook: answers with ``status`` and keeps every JSON body posted."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.status = 200
        self.bodies: list[dict[str, Any]] = []
        # A success is answered as Discord does: the saved message (wait=true).
        self.fake = FakeDiscord(server, HOOK)
        server.expect_request(HOOK, method="POST").respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        self.bodies.append(request.get_json())
        if self.status == 404:
            return Response('{"message": "Unknown Webhook"}', 404)
        if self.status == 200:
            return self.fake.answer(request)
        return Response("", self.status)

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the tasks at this webhook."""
        return {**OUTSIDE, "DISCORD_WEBHOOK_URL": self.server.url_for(HOOK)}

    def embed(self, index: int = -1) -> dict[str, Any]:
        """The embed of a posted message."""
        embed: dict[str, Any] = self.bodies[index]["embeds"][0]
        return embed


@pytest.fixture
def discord(httpserver: HTTPServer) -> Discord:
    """A Discord webhook on the local test server."""
    return Discord(httpserver)


def one_error_line(stderr: str) -> str:
    """The only ``error:`` line of a task's stderr."""
    (line,) = [x for x in stderr.splitlines() if x.startswith("error:")]
    return line


def test_send_colours_the_embed_and_refuses_an_unknown_outcome(
    project: Project, discord: Discord
) -> None:
    sent = invoke(
        "notify.send",
        "--text",
        "📚 Docs failed",
        "--outcome",
        "failure",
        env=discord.env,
    )
    assert sent.returncode == 0, sent.stderr
    assert discord.embed()["color"] == COLOURS["failure"]
    assert discord.bodies[-1]["content"] == "📚 Docs failed"

    refused = invoke(
        "notify.send", "--text", "hi", "--outcome", "purple", env=discord.env
    )
    assert refused.returncode == 2
    assert "--outcome must be one of success, failure, warning, info" in (
        one_error_line(refused.stderr)
    )
    assert len(discord.bodies) == 1  # nothing sent


def test_a_refused_message_is_set_aside_reported_and_requeued(
    project: Project, discord: Discord
) -> None:
    discord.status = 404
    sent = invoke(
        "notify.send", "--text", "✅ PREPROD - Deployed abc1234", env=discord.env
    )
    assert sent.returncode == 0, sent.stderr
    assert "set aside in" in sent.stderr and "n0tify-s3cret" not in sent.stderr
    discord.status = 503
    invoke("notify.send", "--text", "🔄 later", env=discord.env)  # to the outbox

    discord.status = 200
    report = invoke("notify.flush", "--env", "preprod", env=discord.env)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert lines[0] == "preprod: delivered 1, 0 still kept"
    assert lines[1].startswith("preprod: 1 message(s) refused by Discord, set aside in")
    assert lines[1].endswith("rejected.jsonl:")
    assert "Discord answered 404 (Unknown Webhook)  ✅ PREPROD - Deployed abc1234" in (
        lines[2]
    )
    assert "invoke notify.flush --env preprod --requeue" in lines[3]
    assert discord.bodies[-1]["content"].startswith("⏰ Delayed: first sent at ")

    requeued = invoke("notify.flush", "--env", "preprod", "--requeue", env=discord.env)
    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stdout.splitlines() == [
        "preprod: 1 set-aside message(s) back in the outbox",
        "preprod: delivered 1, 0 still kept",
    ]
    body = discord.bodies[-1]
    assert body["content"].endswith("✅ PREPROD - Deployed abc1234")
    assert body["embeds"][0]["color"] == COLOURS["success"]
    assert not (project.root / "preprod" / "rejected.jsonl").read_text()


def test_flush_without_a_webhook_still_reports_what_is_kept(
    project: Project, discord: Discord
) -> None:
    discord.status = 400
    invoke("notify.send", "--text", "❌ bad", env=discord.env)
    report = invoke("notify.flush", "--env", "preprod", env=OUTSIDE)
    assert report.stdout.splitlines()[0] == (
        "preprod: DISCORD_WEBHOOK_URL is not set; 0 kept"
    )
    assert "Discord answered 400  ❌ bad" in report.stdout


@pytest.mark.slow
def test_deploy_messages_link_the_runs_and_say_ci_only_when_watched(
    project: Project, discord: Discord
) -> None:
    project.write(preprod='public_url = "https://preprod.mangetamain.example"')
    config = project.config_path.read_text().replace(
        "[tool.cicd.env.prod]\n",
        '[tool.cicd.env.prod]\npublic_url = "https://mangetamain.example"\n',
    )
    project.config_path.write_text(config)
    workflow = {
        **discord.env,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "acme/mangetamain",
        "GITHUB_RUN_ID": "9001",
    }
    sha = project.repo.commit("v1", message="Add the charts")

    deployed = invoke("deploy.preprod", "--sha", sha, env=workflow)

    assert deployed.returncode == 0, deployed.stderr
    started, succeeded = discord.bodies[-2:]
    assert started["content"].startswith("🚀 PREPROD - Deployment started")
    assert started["embeds"][0]["color"] == COLOURS["warning"]
    assert succeeded["embeds"][0]["color"] == COLOURS["success"]
    assert "CI verification in progress" not in json.dumps(discord.bodies)
    links = {f["name"]: f["value"] for f in succeeded["embeds"][0]["fields"]}
    assert links == {
        "Commit": f"[{sha[:7]}](https://github.example/acme/mangetamain/commit/{sha})",
        "CD run": "[#9001](https://github.example/acme/mangetamain/actions/runs/9001)",
        "URL": "https://preprod.mangetamain.example",
    }

    prod = invoke(
        "deploy.prod",
        "--confirm",
        "DEPLOY",
        "--sha",
        sha,
        "--force",
        "--reason",
        "not validated yet",
        env=workflow,
    )

    assert prod.returncode == 0, prod.stderr
    content = discord.bodies[-1]["content"]
    assert "Deployment successful" in content
    assert "URL: https://mangetamain.example" in content
    assert f"127.0.0.1:{project.ports['prod']}" not in content
    assert "URL: https://mangetamain.example" in prod.stderr  # the console too


def test_fab_deploy_messages_name_the_host(
    project: Project, discord: Discord, ssh_hosts: Hosts
) -> None:
    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    sha = project.repo.commit("v1")

    deployed = fab(fleet, "-H", "h1", "deploy.preprod", "--sha", sha, env=discord.env)

    assert deployed.returncode == 0, deployed.stderr
    started, succeeded = discord.bodies[-2:]
    for body in (started, succeeded):
        assert body["content"].endswith("\nHost: h1")
        fields = {f["name"]: f["value"] for f in body["embeds"][0]["fields"]}
        assert fields["Host"] == "h1"


def test_a_fleet_deploy_names_every_host(
    project: Project, discord: Discord, ssh_hosts: Hosts
) -> None:
    fleet = ssh_hosts(2)
    fleet_config(project, fleet)
    sha = project.repo.commit("v1")

    deployed = invoke("deploy.preprod", "--sha", sha, env=discord.env)

    assert deployed.returncode == 0, deployed.stderr
    succeeded = discord.bodies[-1]
    assert succeeded["content"].endswith("\nHosts: h1, h2")
    fields = {f["name"]: f["value"] for f in succeeded["embeds"][0]["fields"]}
    assert fields["Hosts"] == "h1, h2"
