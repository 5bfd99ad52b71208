"""Reporting: lift against the holdout, statistics, plots and the HTML report.

May import: engine.planning, engine.ledger, engine.io and the base modules.
"""
