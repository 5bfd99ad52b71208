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
    StorageError,
    WinbackError,
)

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    # io and contract
    "read_table": "engine.io.readers",
    "load_users": "engine.io.readers",
    "iter_events": "engine.io.readers",
    "Users": "engine.io.readers",
    "UserIndex": "engine.io.readers",
    "EventBatch": "engine.io.readers",
    "validate": "engine.io.validation",
    "ValidationReport": "engine.io.validation",
    "generate": "engine.synth.generator",
    "partition": "engine.io.partition",
    "score_partitioned": "engine.scoring.distributed",
    "plan_partitioned": "engine.planning.partitioned",
    "load_items": "engine.io.items",
    "Items": "engine.io.items",
    # score
    "score": "engine.scoring.pipeline",
    "BGNBD": "engine.scoring.bgnbd",
    "ParetoNBD": "engine.scoring.pareto_nbd",
    "backtest": "engine.scoring.backtest",
    "summary_of": "engine.scoring.pipeline",
    # plan
    "load_campaign": "engine.planning.campaign",
    "Campaign": "engine.planning.campaign",
    "render": "engine.planning.templates",
    "compile_rule": "engine.planning.rules",
    "plan": "engine.planning.planner",
    "explain": "engine.planning.explain",
    # send
    "dispatch": "engine.sending.dispatcher",
    "send": "engine.sending.dispatcher",
    "DispatchSummary": "engine.sending.summary",
    "Ledger": "engine.ledger.store",
    "read_messages": "engine.ledger.read",
    "read_suppressions": "engine.ledger.read",
    "RateLimiter": "engine.sending.limiter",
    "compute_backoff": "engine.sending.retry",
    # report
    "Receiver": "engine.feedback.receiver",
    "simulate": "engine.synth.simulate",
    "write_outcomes": "engine.synth.simulate",
    "report": "engine.reporting.measure",
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
    "StorageError",
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
