"""invoke entry point: ``invoke --list`` shows every pipeline task.

The tasks run on this machine. ``fab -H HOST TASK`` runs the same pipeline collection
over SSH (see ``fabfile.py``).

The developers' ``infra.*`` tasks, which provision the real components the tests use
(Debian packages with apt-get as root, dockerd, sshd), are test tooling, not part of
the pipeline: they live in ``tools/testinfra/`` and are added only when
``CICD_DEV_TASKS=1`` is set, so an operator's ``invoke --list`` never offers to run
apt-get. An environment variable rather than a second collection file keeps one
``invoke`` program (the same exit-2 rule for typos) and one ``tasks.py``; the tests
import the tasks' module directly, and ``.ci/run`` uses the standard-library command
line ``python3 -m tools.testinfra`` (no invoke needed before the project is
installed), so neither depends on the variable.
"""

import os

from invoke.collection import Collection

from cicd.cli import exit_2_on_parse_errors
from cicd.tasks import ns

#: Set to 1 to add the test infrastructure's ``infra.*`` tasks.
DEV_TASKS = "CICD_DEV_TASKS"

if os.environ.get(DEV_TASKS) == "1" and "infra" not in ns.collections:
    from tools.testinfra import tasks as infra_tasks

    ns.add_collection(Collection.from_module(infra_tasks, name="infra"))
# A mistyped task or flag is bad input: exit 2, as every other refusal.
exit_2_on_parse_errors()

__all__ = ["ns"]
