"""Sending: the adapter Protocol that adapters/ implement, providers files, the asyncio
dispatcher, the rate limiter, retries, signatures and the dry run.

May import: engine.planning, engine.scoring, engine.ledger, engine.io and the base modules.
Never imports adapters/ statically: adapters are found by name (providers.ADAPTER_CLASSES).
"""
