"""Message templates rendered for all rows at once with Arrow string kernels.

A template is text with ``{{ field }}`` slots naming columns of the plan's user rows
(scores and users columns, plus ``step``, ``variant``, ``channel``; with a catalogue
also ``theme`` and ``items[0].title``-style fields naming any column of a picked item),
optionally with a fallback: ``{{ first_name | default("there") }}``, and conditional
blocks ``{% if offer %}...{% else %}...{% endif %}`` (also ``{% if not field %}``; a
field is false when null, false, 0 or empty; blocks nest).  Rendering splits the template into
literals and slots once, then joins whole columns with ``binary_join_element_wise``:
no Python per user.  For email, field values are HTML-escaped (``& < > " '``); the
template's own text is trusted.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError
from engine.io.coerce import to_text

__all__ = ["render", "parse_template", "html_escape", "template_fields"]

_SLOT = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\]\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(?:\|\s*default\(\s*(?:\"([^\"]*)\"|'([^']*)')\s*\)\s*)?\}\}")


_BLOCK = re.compile(r"\{%\s*(?:(if)\s+(not\s+)?([A-Za-z_][A-Za-z0-9_]*)|(else)|(endif))\s*%\}")


def _blocks(text: str):
    """The template as a tree: a list of strings (flat text) and
    ``("if", field, negate, then_nodes, else_nodes)`` nodes."""
    root: list = []
    stack = [(root, None)]          # (node list being filled, the open "if" node)
    pos = 0
    for m in _BLOCK.finditer(text):
        stack[-1][0].append(text[pos:m.start()])
        pos = m.end()
        if m.group(1):
            node = ["if", m.group(3), bool(m.group(2)), [], []]
            stack[-1][0].append(node)
            stack.append((node[3], node))
        elif m.group(4):
            if len(stack) == 1 or stack[-1][0] is stack[-1][1][4]:
                raise ConfigError(f"template {text!r}: {{% else %}} without an open {{% if ... %}}")
            stack[-1] = (stack[-1][1][4], stack[-1][1])
        else:
            if len(stack) == 1:
                raise ConfigError(f"template {text!r}: {{% endif %}} without an open {{% if ... %}}")
            stack.pop()
    stack[-1][0].append(text[pos:])
    if len(stack) > 1:
        raise ConfigError(f"template {text!r}: an {{% if ... %}} is not closed with {{% endif %}}")
    rest = "".join(_flat_text(root))
    if "{%" in rest:
        raise ConfigError(f"template {text!r}: a '{{%' block is not of the form {{% if field %}}, "
                          "{% if not field %}, {% else %} or {% endif %}")
    return root


def _flat_text(nodes):
    for n in nodes:
        if isinstance(n, str):
            yield n
        else:
            yield from _flat_text(n[3])
            yield from _flat_text(n[4])


def template_fields(text: str) -> set[str]:
    """Every field a template reads: its ``{{ slots }}`` and its ``{% if %}`` conditions."""
    return _fields(text, defaulted=True)


def bare_fields(text: str) -> set[str]:
    """The fields a template reads without a ``default(...)``: slots without one and
    ``{% if %}`` conditions (a field with a default everywhere may be absent from the data)."""
    return _fields(text, defaulted=False)


def _fields(text: str, defaulted: bool) -> set[str]:
    out: set[str] = set()

    def walk(nodes):
        for n in nodes:
            if isinstance(n, str):
                out.update(name for kind, name, default in parse_template(n)
                           if kind == "field" and (defaulted or default is None))
            else:
                out.add(n[1])
                walk(n[3])
                walk(n[4])
    walk(_blocks(text))
    return out


def _truthy(col) -> pa.Array:
    """False where null, false, 0 or the empty string."""
    t = col.type
    if pa.types.is_boolean(t):
        out = col
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        out = pc.not_equal(col, "")
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        out = pc.not_equal(col, 0)
    else:
        out = pc.is_valid(col)
    return pc.fill_null(out, False)


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
    if "{%" not in template:
        return _render_flat(template, rows, escape, name)
    return _render_nodes(_blocks(template), rows, escape, name)


def _render_nodes(nodes, rows: pa.Table, escape: bool, name: str) -> pa.Array:
    parts = []
    for node in nodes:
        if isinstance(node, str):
            if node:
                parts.append(_render_flat(node, rows, escape, name))
            continue
        _, field, negate, then, other = node
        if field not in rows.column_names:
            raise ConfigError(f"{name}: unknown field {{% if {field} %}}; available fields: "
                              f"{', '.join(sorted(rows.column_names))}")
        cond = _truthy(rows[field])
        cond = pc.invert(cond) if negate else cond
        a, b = _render_nodes(then, rows, escape, name), _render_nodes(other, rows, escape, name)
        parts.append(pc.if_else(cond, a, b))
    if not parts:
        return pa.array([""] * rows.num_rows, pa.string())
    out = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _render_flat(template: str, rows: pa.Table, escape: bool, name: str) -> pa.Array:
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
            col = to_text(col, list_sep=", ")  # lists, structs and bytes of a users file too
        col = pc.fill_null(col, default or "")
        pieces.append(html_escape(col) if escape else col)
    if not pieces:
        return pa.array([""] * n, pa.string())
    if all(isinstance(p, str) for p in pieces):
        return pa.array(["".join(pieces)] * n, pa.string())
    out = pc.binary_join_element_wise(*pieces, "")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
