"""Scoring: the fused numba pass over events, the BG/NBD fit, send time, fatigue budget,
content affinity, the score pipeline and partitioned (Dask) scoring.

May import: engine.io and the base modules (errors, schema, tz, progress, jit).
"""
