"""Fabric entry point: ``fab -H HOST TASK`` runs the pipeline tasks over SSH.

It is the very collection ``invoke`` uses (``tasks.py``); only the context differs:
a Fabric Connection to HOST instead of a local invoke Context.
"""

from cicd.cli import exit_2_on_parse_errors
from cicd.tasks import ns

# A mistyped task or flag is bad input: exit 2, as every other refusal.
exit_2_on_parse_errors()

__all__ = ["ns"]
