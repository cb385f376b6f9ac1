"""The app's secrets on the swarm: ``shared/app.env`` through the stack's ``env_file``.

On the real two-node swarm of ``test_swarm`` (skipped when it is not up): the
pipeline names the file in ``CICD_APP_ENV``, ``docker stack deploy`` reads it on
the manager, and every task starts with the secret in its environment; nothing
passes through the job's environment.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from cicd.pipeline.deploy import deploy_preprod
from cicd.reporting.notify import Notifier
from tests.conftest import Project
from tests.integration.test_swarm import (  # noqa: F401 (fixture)
    STACK,
    Swarm,
    commit_swarm_app,
    in_netns,
    swarm_project,
)

#: The stand-in server, which first writes the secret it got into its page.
SERVE_SECRET = (
    '["sh", "-c", "printf %s \\"$APP_SECRET\\" > /www/secret; '
    "httpd -f -p $CICD_PORT -h /www & trap 'kill $!; sleep 1; exit 0' TERM; wait\"]"
)
#: The test stack, reading the app's secrets file as 30_docker/stack.yml does.
SECRET_STACK = STACK.replace(
    "    environment:\n",
    "    env_file:\n      - ${CICD_APP_ENV:-/dev/null}\n    environment:\n",
    1,
)


@pytest.mark.slow
def test_the_swarm_app_gets_its_secrets_from_app_env(
    swarm_project: tuple[Project, Swarm],  # noqa: F811 (the imported fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, swarm = swarm_project
    monkeypatch.setattr("tests.integration.test_swarm.STACK", SECRET_STACK)
    monkeypatch.delenv("APP_SECRET", raising=False)
    shared = project.root / "preprod" / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "app.env").write_text("APP_SECRET=swarm s3cr3t\n")
    (shared / "app.env").chmod(0o600)

    def body() -> dict[str, Any]:
        v1 = commit_swarm_app(project.repo, "v1", swarm.image, command=SERVE_SECRET)
        target = project.target()
        deploy_preprod([target], v1, Notifier(target))
        secret = requests.get(project.url() + "secret", timeout=5).text
        assert secret == "swarm s3cr3t"
        return {}

    in_netns(swarm.manager_netns, body)
