"""Canonical contact addresses: one spelling per address, and no non-address on a channel.

A users file from a real CRM holds ``" John@Example.COM "`` beside ``"john@example.com"``,
empty strings, and values that are no address at all.  Left as they are, the first reaches
the provider with its spaces (and bounces), a suppression recorded for one spelling misses
the other, and an empty string counts as "has an email".  So the users reader
(:func:`engine.io.readers.load_users`) passes every address column through here:

=============  ==========================================  ==============================
column         canonical form                               not an address (becomes null)
=============  ==========================================  ==============================
``email``      trimmed, lower case (providers and mail      no single ``@``, a space
               systems match addresses without case)        inside, no dot in the domain
``phone``      E.164: ``+`` and 7-15 digits; spaces,        no leading ``+`` (the country
               dashes, dots and parentheses removed         is unknown), other characters
``push_token`` trimmed                                      empty, or a space inside
=============  ==========================================  ==============================

A value that is not an address is not a bad row: the user simply has no address on that
channel (the plan's reason ``no_address``), and the score summary counts both fixes
(:func:`canonical`).  An empty or blank value is no address either, silently.  A phone
written without its country (``4155550100``) is not guessed: write it as ``+14155550100``.  The common case costs one vectorised regular-expression pass per
column: only values not already canonical are rewritten.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["canonical", "canonical_addresses", "describe", "ADDRESS_COLUMNS", "CHANNEL_COLUMN"]

#: the users columns that hold an address
ADDRESS_COLUMNS = ("email", "phone", "push_token")
#: the address column of each provider channel
CHANNEL_COLUMN = {"email": "email", "sms": "phone", "push": "push_token"}

_CANONICAL = {
    "email": r"^[^\sA-Z@]+@[^\sA-Z@.]+(\.[^\sA-Z@.]+)+$",
    "phone": r"^\+[1-9][0-9]{6,14}$",
    "push_token": r"^\S+$",
}
_PHONE_SEPARATORS = r"[\s\-().]"


def _rewrite(kind: str, values: pa.Array) -> pa.Array:
    """The canonical spelling of values that are not yet canonical (not yet re-checked)."""
    out = pc.utf8_trim_whitespace(values)
    if kind == "email":
        return pc.utf8_lower(out)
    if kind == "phone":
        return pc.replace_substring_regex(out, _PHONE_SEPARATORS, "")
    return out


def canonical(kind: str, values: pa.Array) -> tuple[pa.Array, int, int, list[str]]:
    """``values`` (strings, ``kind`` one of :data:`ADDRESS_COLUMNS`) in canonical form.

    Returns the new array, how many values were rewritten, how many were not an address
    (now null; empty and blank values become null too, uncounted), and up to three
    examples of the values that were not an address.  Nulls stay null.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    ok = pc.match_substring_regex(values, _CANONICAL[kind])
    todo = pc.invert(pc.fill_null(ok, True))
    if not pc.any(todo).as_py():
        return values, 0, 0, []
    idx = pc.indices_nonzero(todo)
    before = values.take(idx)
    after = _rewrite(kind, before)
    good = pc.fill_null(pc.match_substring_regex(after, _CANONICAL[kind]), False)
    fixed = pc.if_else(good, after, pa.scalar(None, pa.string()))
    empty = pc.equal(pc.utf8_trim_whitespace(before), "")
    bad = pc.and_(pc.invert(good), pc.invert(empty))
    examples = [v for v in before.filter(bad).slice(0, 3).to_pylist()]
    n_bad = int(pc.sum(bad).as_py() or 0)
    n_fixed = int(pc.sum(good).as_py() or 0)
    # scatter the rewritten values back over the originals
    positions = pc.cumulative_sum(todo.cast(pa.int64()))  # 1-based rank of each rewritten row
    take = pc.if_else(todo, pc.subtract(positions, 1), pa.scalar(0, pa.int64()))
    out = pc.if_else(todo, fixed.take(take), values)
    return out, n_fixed, n_bad, examples


def canonical_addresses(channels: list[str], addresses: list[str | None]) -> list[str | None]:
    """Addresses given one by one with their provider channel (``email``, ``sms``, ``push``), in
    their channel's canonical form: one vectorised pass per channel.  An address that is none
    is kept as given (it matches nothing).  For suppressions written from outside the users
    file (provider webhooks, lists), so they match the plans' spelling."""
    out = list(addresses)
    for channel in set(channels):
        kind = CHANNEL_COLUMN.get(channel)
        if kind is None:
            continue
        idx = [i for i, c in enumerate(channels) if c == channel and isinstance(addresses[i], str)]
        if idx:
            fixed, _, _, _ = canonical(kind, pa.array([addresses[i] for i in idx], pa.string()))
            for i, a in zip(idx, fixed.to_pylist()):
                out[i] = a if a is not None else addresses[i]
    return out


def describe(addresses: dict) -> list[str]:
    """One readable line per column of a users reader's ``addresses`` counts."""
    lines = []
    for col, a in addresses.items():
        parts = []
        if a["normalised"]:
            how = {"email": "trimmed, lower case", "phone": "E.164", "timezone": "IANA spelling"}.get(col, "trimmed")
            parts.append(f"{a['normalised']:,} written in canonical form ({how})")
        if a["not_an_address"] and col == "timezone":
            parts.append(f"{a['not_an_address']:,} not an IANA timezone name, so those users get their phone's "
                         "zone, their engagement hours' zone or the default one (e.g. "
                         + ", ".join(repr(e) for e in a["examples"])
                         + "; write names such as 'America/New_York'; winback validate lists the rows)")
        elif a["not_an_address"] and col == "signup_at":
            parts.append(f"{a['not_an_address']:,} before 1971, read as unknown (a placeholder or a unit "
                         "mistake, e.g. " + ", ".join(repr(e) for e in a["examples"]) + ")")
        elif a["not_an_address"]:
            hint = "; write phones as +<country code><number>" if col == "phone" else ""
            parts.append(f"{a['not_an_address']:,} not an address, so no {col} for those users (e.g. "
                         + ", ".join(repr(e) for e in a["examples"]) + hint + ")")
        lines.append(f"{col}: " + "; ".join(parts))
    return lines
