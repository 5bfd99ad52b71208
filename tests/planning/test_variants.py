"""What each variant says: template, subject and body per (step, variant) cell."""

from __future__ import annotations

from engine.planning.campaign import load_campaign
from engine.planning.variants import all_texts, cell_text, template_names
from tests.helpers import EXAMPLES

EXAMPLE = EXAMPLES / "winback_offers.toml"


def test_a_variant_changes_only_the_steps_it_lists_and_only_what_it_sets():
    cmp = load_campaign(EXAMPLE)
    names = [v.name for v in cmp.variants]
    control, offer_first = names.index("control"), names.index("offer-first")
    first, reminder = 0, 1
    tpl = cmp.templates[cmp.steps[first].template]
    # the control is the step's template as written
    assert cell_text(cmp, first, control) == (cmp.steps[first].template, tpl.subject, tpl.body)
    # offer-first: another subject on the first step, the template's body
    name, subject, body = cell_text(cmp, first, offer_first)
    assert name == cmp.steps[first].template and body == tpl.body
    assert subject != tpl.subject and "this week only" in subject
    # and not on a step it does not list
    rem = cmp.templates[cmp.steps[reminder].template]
    assert cell_text(cmp, reminder, offer_first) == (cmp.steps[reminder].template, rem.subject, rem.body)


def test_template_names_and_all_texts_cover_every_cell_and_text():
    cmp = load_campaign(EXAMPLE)
    grid = template_names(cmp)
    assert len(grid) == len(cmp.steps) and all(len(row) == len(cmp.variants) for row in grid)
    assert [row[0] for row in grid] == [s.template for s in cmp.steps]
    where = [w for w, _ in all_texts(cmp)]
    assert len(where) == len(set(where))
    for n in cmp.templates:
        assert f"templates.{n}.subject" in where and f"templates.{n}.body" in where
    offer_first = [v.name for v in cmp.variants].index("offer-first")
    assert f"variants[{offer_first}].subject" in where
    assert f"variants[{offer_first}].body" not in where  # it sets no body
