"""The channels of a send: how each is sent (:class:`Channel`), built from the providers.

:func:`channels_for` resolves a providers TOML path, its parsed dict or a mapping of
channel -> :class:`Channel` / adapter / ``ChannelConfig`` to built channels;
:func:`message_of` is the :class:`~engine.sending.protocol.Message` of a claimed ledger row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from engine.errors import ConfigError
from engine.sending.protocol import Adapter, Message
from engine.sending.retry import DEFAULT_MAX_ATTEMPTS

__all__ = ["Channel", "channels_for", "before_ledger", "message_of"]


@dataclass
class Channel:
    """How one channel is sent: its adapter, rate (requests per second), concurrency."""

    adapter: Adapter
    rate_per_second: float | None = None
    concurrency: int = 10
    max_attempts: int = DEFAULT_MAX_ATTEMPTS




def before_ledger(plan, source: str, providers: Any) -> Any:
    """What a send checks before a ledger is created or a message loaded, so that a bad plan
    or providers file leaves no ledger behind: the plan's columns, and ``providers`` parsed
    and checked for every channel the plan has planned messages on (configured, its secrets
    set); returns the parsed providers.  A mapping of built channels passes unchanged."""
    from engine.ledger.store import check_plan_columns, check_plan_rows

    check_plan_columns(plan, source)
    check_plan_rows(plan, source)
    if not (isinstance(providers, (str, os.PathLike)) or (isinstance(providers, Mapping) and "channels" in providers)):
        return providers
    import pyarrow as pa
    import pyarrow.compute as pc

    from engine.sending.providers import load_providers

    configs = load_providers(providers)
    column = plan.column("channel")
    if "reason" in plan.column_names:
        column = column.filter(pc.is_null(plan.column("reason")))
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    channels_for(configs, sorted(c for c in pc.unique(column).to_pylist() if c is not None))
    return configs


def message_of(r: tuple) -> Message:
    """The :class:`Message` of a claimed ledger row (columns in ``engine.ledger.CLAIM_COLUMNS`` order)."""
    return Message(r[0], r[1], r[2], r[3], r[4], r[5] or "", r[6], r[7] or "", r[8], r[9], r[10], r[12])


def channels_for(providers: Any, needed: list[str]) -> tuple[dict[str, Channel], bool]:
    """Resolve ``providers`` (a providers TOML path or a mapping) to built channels."""
    owned = False
    if isinstance(providers, (str, os.PathLike)) or (isinstance(providers, Mapping) and "channels" in providers):
        from engine.sending.providers import load_providers  # a providers TOML path or its parsed dict

        providers = load_providers(providers)
    missing = [c for c in needed if c not in providers]
    if missing:
        raise ConfigError(
            f"the plan (or this ledger) has messages on channel {', '.join(missing)} but the providers have no "
            f"[channels.{missing[0]}] (they configure {', '.join(sorted(providers)) or 'nothing'}). "
            "Add the channel to the providers file, or re-plan without it.")
    out: dict[str, Channel] = {}
    for name in needed:
        spec = providers[name]
        if isinstance(spec, Channel):
            out[name] = spec
        elif hasattr(spec, "send") and hasattr(spec, "max_batch"):
            out[name] = Channel(adapter=spec)
        else:  # a ChannelConfig from adapters.config
            from engine.sending.providers import build_adapter

            out[name] = Channel(
                adapter=build_adapter(spec),
                rate_per_second=getattr(spec, "rate_per_second", None),
                concurrency=int(getattr(spec, "concurrency", None) or 10),
                max_attempts=int(getattr(spec, "max_attempts", None) or DEFAULT_MAX_ATTEMPTS),
            )
            owned = True
    return out, owned


