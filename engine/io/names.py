"""Names a hand-written file spells loosely: event names, channels.

A name that differs from a valid one only by case or surrounding whitespace
(``Unsubscribe``, ``email ``) is that name; the caller says how many it read so in
one line (:func:`renamed_note`).  Any other name is unknown: the caller refuses the
file with :func:`unknown_message` (column, count, the names with the nearest valid
one, example rows), since a name that matches nothing is otherwise silently lost.
"""

from __future__ import annotations

import difflib
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["canonical", "did_you_mean", "renamed_note", "unknown_message"]


def canonical(values: pa.Array | pa.ChunkedArray, choices: Sequence[str]) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """``(names, renamed, unknown)`` for a string column: ``names`` trimmed and lower-cased
    (nulls stay null), ``renamed`` the rows that needed it to be one of ``choices``, ``unknown``
    the non-null rows that are none of them even so."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    allowed = pa.array(list(choices), pa.string())
    names = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    exact = np.asarray(pc.is_in(values, value_set=allowed).fill_null(False), bool)
    ok = np.asarray(pc.is_in(names, value_set=allowed).fill_null(False), bool)
    null = np.asarray(values.is_null(), bool)
    return names, ok & ~exact, ~ok & ~null


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(str(name).strip().lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def renamed_note(counts: dict[str, int], noun: str) -> str | None:
    """``read 2 event names as 'unsubscribe', 1 as 'bounce' (case/whitespace)`` (``noun``
    singular: ``event name``; most first), or None when nothing was read so."""
    parts = sorted(((n, name) for name, n in counts.items() if n), key=lambda p: (-p[0], p[1]))
    if not parts:
        return None
    (n, name), rest = parts[0], parts[1:]
    return (f"read {n:,} {noun}{'s' if n != 1 else ''} as {name!r}"
            + "".join(f", {k:,} as {other!r}" for k, other in rest) + " (case/whitespace)")


def unknown_message(source: str, column: str, noun: str, bad: Sequence[str], choices: Sequence[str],
                    examples: str, count: int) -> str:
    """The first part of the error for ``count`` rows of ``column`` holding an unknown ``noun``:
    the distinct ``bad`` names (up to five), each with the nearest valid one, and the example rows."""
    distinct = list(dict.fromkeys(bad))
    names = ", ".join(f"{b!r}{did_you_mean(b, choices)}" for b in distinct[:5])
    more = f" and {len(distinct) - 5:,} more" if len(distinct) > 5 else ""
    return (f"{source}: column '{column}': {count:,} row{'s' if count != 1 else ''} with {noun} that is not "
            f"one of {', '.join(choices)}: {names}{more}; e.g. {examples}")
