"""Sphinx configuration of the Mangetamain CI/CD documentation.

Built by ``nox -s docs`` (html, then doctest, then an offline linkcheck). Local
extensions live in ``_ext``: the task reference and the configuration tables are
generated from the code at build time, so they cannot drift from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "Mangetamain CI/CD"
author = "Mangetamain team"
copyright = "2026, Mangetamain team"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
    "taskdoc",
    "configdoc",
    "moduledoc",
    "archdoc",
]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
html_theme = "furo"
html_title = "Mangetamain CI/CD"
exclude_patterns: list[str] = []

# The build must work offline and contact nothing but this machine: linkcheck checks
# internal links (and loopback URLs, if any) only; every other URL is skipped.
linkcheck_ignore = [r"https?://(?!127\.0\.0\.1|localhost).*"]
linkcheck_timeout = 5

# Keep "--flag" as typed: Sphinx would render it as an en dash, and a flag copied
# from the task reference would then be wrong.
smartquotes_action = "qe"
