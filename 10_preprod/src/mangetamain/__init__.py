"""Mangetamain: recipe-rating analytics of Food.com-style data.

The package holds a Streamlit app (:mod:`mangetamain.app`) whose analyses are
DuckDB SQL queries (:mod:`mangetamain.queries`) over two Parquet tables,
``recipes`` and ``interactions``, loaded by :mod:`mangetamain.data` from a local
directory or an S3-compatible bucket. :mod:`mangetamain.sample` generates the
small synthetic dataset shipped in ``data/sample``.
"""

__version__ = "0.1.0"
