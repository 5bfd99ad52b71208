"""What each variant says: the template, subject and body of a (step, variant) cell.

A ``[[variants]]`` table may set ``template`` (a ``[templates.NAME]``) or ``subject``
and/or ``body`` (text with the same ``{{ field }}`` slots and ``{% if %}`` blocks),
for the steps it lists in ``steps`` (default: every step); whatever it does not set
comes from the step's template.  The report compares the variants with each other
(:mod:`engine.reporting.variants`): the variants are a randomised split of the treated
audience by a hash of (campaign id, user id), so their difference is causal.
"""

from __future__ import annotations

__all__ = ["cell_text", "all_texts", "template_names"]


def cell_text(cmp, k: int, v: int) -> tuple[str, str | None, str | None]:
    """(template name, subject, body) of step ``k`` for variant ``v``; subject and body
    are None when no template defines them (the plan then shows the step's name)."""
    step, var = cmp.steps[k], cmp.variants[v]
    on = var.applies(step.name)
    name = var.template if on and var.template else step.template
    tpl = cmp.templates.get(name)
    subject = var.subject if on and var.subject is not None else (tpl.subject if tpl else None)
    body = var.body if on and var.body is not None else (tpl.body if tpl else None)
    return name, subject, body


def all_texts(cmp) -> list[tuple[str, str]]:
    """(where, text) of every template text the campaign may render, for field checks."""
    out = [(f"templates.{n}.{key}", text) for n, t in cmp.templates.items()
           for key, text in (("subject", t.subject), ("body", t.body))]
    out += [(f"variants[{i}].{key}", text) for i, v in enumerate(cmp.variants)
            for key, text in (("subject", v.subject), ("body", v.body)) if text is not None]
    return out


def template_names(cmp) -> list[list[str]]:
    """Per step, per variant: the template name the plan's ``template`` column shows."""
    return [[cell_text(cmp, k, v)[0] for v in range(len(cmp.variants))] for k in range(len(cmp.steps))]
