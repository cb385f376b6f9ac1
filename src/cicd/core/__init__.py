"""What the pipeline knows, with no I/O of its own.

The configuration schema, the release layout, the ledger model and its replay into
state, messages, errors and redaction: pure code every other layer builds on.
"""
