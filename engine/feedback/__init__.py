"""Feedback: the webhook receiver for provider events (opens, clicks, bounces,
complaints, unsubscribes) that writes outcome files and suppressions.

May import: engine.sending (signatures), engine.ledger, engine.io and the base modules.
"""
