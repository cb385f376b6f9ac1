"""Fabric entry point: ``fab -H HOST TASK`` runs the pipeline tasks over SSH.

It is the very collection ``invoke`` uses (``tasks.py``); only the context differs:
a Fabric Connection to HOST instead of a local invoke Context.
"""

from cicd.tasks import ns

__all__ = ["ns"]
