"""invoke entry point: ``invoke --list`` shows every pipeline task.

The tasks run on this machine. ``fab -H HOST TASK`` runs the same collection over
SSH (see ``fabfile.py``).
"""

from cicd.tasks import ns

__all__ = ["ns"]
