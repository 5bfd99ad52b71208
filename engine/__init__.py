"""winback: score, plan, send and measure re-engagement campaigns.

The same steps as the ``winback`` command line, as functions that take and return
``pyarrow.Table`` objects (or paths), with no global state and no printing::

    import engine
    scores = engine.score("users.arrow", "events.arrow", as_of="2026-11-01")
    plan = engine.plan(scores, "examples/winback_lapsing.toml")
    summary = engine.send(plan, "providers.toml", "ledger.db", now=True)
    result = engine.report(plan, "outcomes/", out_dir="report/")

Names are imported lazily, so ``import engine`` is cheap and a step's heavy
dependencies load only when that step is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.errors import (
    ConfigError,
    DependencyError,
    DispatchError,
    InputError,
    Interrupted,
    ModelError,
    PolicyError,
    RuleError,
    WinbackError,
)

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    # io and contract
    "read_table": "engine.io",
    "load_users": "engine.io",
    "iter_events": "engine.io",
    "Users": "engine.io",
    "UserIndex": "engine.io",
    "EventBatch": "engine.io",
    "validate": "engine.validate",
    "ValidationReport": "engine.validate",
    "generate": "engine.generate",
    "partition": "engine.partition",
    "score_partitioned": "engine.distributed",
    "plan_partitioned": "engine.plan_dist",
    "load_items": "engine.items",
    "Items": "engine.items",
    # score
    "score": "engine.score",
    "BGNBD": "engine.bgnbd",
    # plan
    "load_campaign": "engine.campaign",
    "Campaign": "engine.campaign",
    "render": "engine.templates",
    "compile_rule": "engine.rules",
    "plan": "engine.plan",
    "explain": "engine.plan",
    # send
    "dispatch": "engine.dispatch",
    "send": "engine.dispatch",
    "DispatchSummary": "engine.dispatch",
    "Ledger": "engine.ledger",
    "read_messages": "engine.ledger",
    "read_suppressions": "engine.ledger",
    "RateLimiter": "engine.limiter",
    "compute_backoff": "engine.retry",
    # report
    "Receiver": "engine.receive",
    "simulate": "engine.simulate",
    "write_outcomes": "engine.simulate",
    "report": "engine.report",
}

__all__ = [
    "WinbackError",
    "InputError",
    "ConfigError",
    "RuleError",
    "ModelError",
    "PolicyError",
    "DispatchError",
    "Interrupted",
    "DependencyError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
