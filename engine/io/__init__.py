"""Inputs and outputs: reading and validating users, events, items and plans (bad rows,
quarantine), the one table reader, atomic writes, the user-id index and partition files.

May import: engine.errors, engine.schema, engine.tz, engine.progress, engine.jit.
"""
