"""Message templates rendered for all rows at once with Arrow string kernels.

A template is text with ``{{ field }}`` slots naming columns of the plan's user rows
(scores and users columns, plus ``step``, ``variant``, ``channel``; with a catalogue
also ``theme`` and ``items[0].title``-style fields naming any column of a picked item),
optionally with a fallback: ``{{ first_name | default("there") }}``.  Rendering splits the template into
literals and slots once, then joins whole columns with ``binary_join_element_wise``:
no Python per user.  For email, field values are HTML-escaped (``& < > " '``); the
template's own text is trusted.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError

__all__ = ["render", "parse_template", "html_escape"]

_SLOT = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\]\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(?:\|\s*default\(\s*(?:\"([^\"]*)\"|'([^']*)')\s*\)\s*)?\}\}")


def parse_template(text: str) -> list[tuple[str, str | None, str | None]]:
    """Split into parts: ("lit", text, None) or ("field", name, default)."""
    parts, pos = [], 0
    for m in _SLOT.finditer(text):
        if m.start() > pos:
            parts.append(("lit", text[pos:m.start()], None))
        default = m.group(2) if m.group(2) is not None else m.group(3)
        parts.append(("field", m.group(1), default))
        pos = m.end()
    if pos < len(text):
        parts.append(("lit", text[pos:], None))
    if "{{" in "".join(p[1] for p in parts if p[0] == "lit"):
        raise ConfigError(f"template {text!r}: a '{{{{' slot is not closed or not of the form "
                          "{{ field }} or {{ field | default(\"...\") }}")
    return parts


def html_escape(arr):
    """HTML-escape a string array (``&`` first, then ``< > " '``)."""
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;")):
        arr = pc.replace_substring(arr, old, new)
    return arr


def render(template: str, rows: pa.Table, *, escape: bool = False, name: str = "template") -> pa.Array:
    """Render ``template`` for every row of ``rows``; returns a string array."""
    n = rows.num_rows
    pieces = []
    for kind, text, default in parse_template(template):
        if kind == "lit":
            pieces.append(text)
            continue
        if text not in rows.column_names:
            raise ConfigError(f"{name}: unknown field {{{{ {text} }}}}; available fields: "
                              f"{', '.join(sorted(rows.column_names))}")
        col = rows[text]
        if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
            col = pc.cast(col, pa.string())
        col = pc.fill_null(col, default or "")
        pieces.append(html_escape(col) if escape else col)
    if not pieces:
        return pa.array([""] * n, pa.string())
    if all(isinstance(p, str) for p in pieces):
        return pa.array(["".join(pieces)] * n, pa.string())
    out = pc.binary_join_element_wise(*pieces, "")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
