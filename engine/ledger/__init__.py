"""The send ledger: one SQLite file per sender holding every planned message, its state,
attempts and results, the suppressions and the broadcasts; the one-sender lock; read-only views.

May import: engine.io and the base modules (errors, schema, tz, progress).
"""
