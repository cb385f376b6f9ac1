"""cicd: deploy-first CI/CD for the Mangetamain app.

Every step of the pipeline is a task name: ``invoke`` runs it on the machine where it
is called, ``fab -H HOST`` runs the very same task over SSH.
"""

__version__ = "0.1.0"
