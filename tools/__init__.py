"""Developer tooling of this repository: not part of the ``cicd`` package.

:mod:`tools.testinfra` provisions the real components that the tests, the benches
and CI's ``.ci/run`` use. Run from the repository root (``PYTHONPATH=.`` when the
project is not installed).
"""
