"""Streamlit entry point of the Mangetamain app.

Run from the ``10_preprod`` directory::

    PYTHONPATH=src python -m streamlit run src/mangetamain/app.py

The page logic lives in :func:`mangetamain.views.run_app`; this script only
calls it, with an absolute import so it works with ``PYTHONPATH=src`` and no
installation.
"""

from mangetamain.views import run_app

run_app()
