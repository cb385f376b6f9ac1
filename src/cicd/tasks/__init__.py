"""The invoke collection of pipeline tasks, shared by ``tasks.py`` and ``fabfile.py``.

Task modules import only invoke at load time; the engine is imported inside each task
so ``invoke --list`` stays fast.

Importing it routes every output of the process through the redaction filter
(:func:`cicd.core.redact.install`): ``invoke``, ``fab`` and ``cicd`` all load it before
any task runs, so no library's debug log or traceback prints a secret.
"""

from invoke.collection import Collection

from cicd.core import redact
from cicd.tasks import (
    audit,
    backup,
    deploy,
    health,
    hooks,
    lock,
    notify,
    ops,
    report,
    secrets,
    setup,
    watch,
)
from cicd.tasks.boundary import guard

redact.install()

ns = Collection()
ns.add_collection(Collection.from_module(deploy, name="deploy"))
ns.add_collection(Collection.from_module(lock, name="lock"))
ns.add_collection(Collection.from_module(notify, name="notify"))
ns.add_collection(Collection.from_module(hooks, name="hooks"))
ns.add_collection(Collection.from_module(watch, name="watch"))
ns.add_collection(Collection.from_module(secrets, name="secrets"))
ns.add_collection(Collection.from_module(backup, name="backup"))
for _task in (
    ops.rollback,
    health.health,
    ops.status,
    ops.releases,
    ops.logs,
    audit.audit,
    report.report,
    ops.down,
    setup.setup,
    setup.start,
):
    ns.add_task(_task)  # type: ignore[arg-type]
# Every option and environment value is checked before any task body runs.
guard(ns)

__all__ = ["ns"]
