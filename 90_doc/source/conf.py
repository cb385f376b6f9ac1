"""Sphinx configuration of the Mangetamain CI/CD documentation."""

from __future__ import annotations

project = "Mangetamain CI/CD"
author = "Mangetamain team"
copyright = "2026, Mangetamain team"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
html_theme = "furo"
html_title = "Mangetamain CI/CD"
exclude_patterns: list[str] = []
