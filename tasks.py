"""invoke entry point: ``invoke --list`` shows every pipeline task.

The tasks run on this machine. ``fab -H HOST TASK`` runs the same pipeline collection
over SSH (see ``fabfile.py``). This checkout also adds the developers' ``infra.*``
tasks, which provision the real components the tests use (Docker, sshd); they are
test tooling, not part of the pipeline, so they live in ``tools/testinfra/``.
"""

from invoke.collection import Collection

from cicd.cli import exit_2_on_parse_errors
from cicd.tasks import ns
from tools.testinfra import tasks as infra_tasks

ns.add_collection(Collection.from_module(infra_tasks, name="infra"))
# A mistyped task or flag is bad input: exit 2, as every other refusal.
exit_2_on_parse_errors()

__all__ = ["ns"]
