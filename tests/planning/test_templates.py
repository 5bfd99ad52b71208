"""Templates: vectorised rendering equals plain per-row rendering; escaping; defaults; errors."""

from __future__ import annotations

import html

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import template_literals, utf8_names
from engine.errors import ConfigError
from engine.planning.templates import parse_template, render

ROWS = pa.table({
    "first_name": pa.array(["Ann", "<Bob & 'Co'>", None]),
    "days_inactive": pa.array([3.5, None, 40.0]),
    "purchases": pa.array([1, 0, None], pa.int32()),
})


def render_slowly(parts, rows: list[dict], escape: bool) -> list[str]:
    """The obvious per-row rendering the vectorised one must equal."""
    out = []
    for row in rows:
        text = []
        for kind, value, default in parts:
            if kind == "lit":
                text.append(value)
                continue
            v = row[value]
            v = (default or "") if v is None else str(v)
            text.append(html.escape(v) if escape else v)
        out.append("".join(text))
    return out


names, literals = utf8_names, template_literals


@given(values=st.lists(st.one_of(st.none(), names), max_size=8),
       pieces=st.lists(st.one_of(literals, st.sampled_from(["{{ v }}", "{{v}}", "{{ v | default(\"x&y\") }}"])),
                       max_size=6),
       escape=st.booleans())
def test_render_equals_the_per_row_rendering(values, pieces, escape):
    """Property: for any values (nulls, markup, unicode) and template, the Arrow rendering
    equals rendering each row in plain Python with html.escape."""
    # given
    template = "".join(pieces)
    rows = pa.table({"v": pa.array(values, pa.string())})
    # when
    got = render(template, rows, escape=escape).to_pylist()
    # then
    assert got == render_slowly(parse_template(template), rows.to_pylist(), escape)


def test_email_values_are_escaped_but_the_template_text_is_not():
    # when
    body = render("<p>Hi {{ first_name | default('there') }}</p>", ROWS, escape=True)
    # then
    assert body.to_pylist() == ["<p>Hi Ann</p>", "<p>Hi &lt;Bob &amp; &#x27;Co&#x27;&gt;</p>", "<p>Hi there</p>"]


def test_numbers_render_as_text_and_null_as_empty():
    # when
    out = render("{{ days_inactive }}d/{{ purchases }}", ROWS)
    # then
    assert out.to_pylist() == ["3.5d/1", "d/0", "40d/"]


def test_list_struct_and_byte_columns_of_the_users_file_render_as_text():
    """Given pass-through users columns Arrow cannot cast to text (a list, a struct, bytes that
    are not UTF-8), when a template names them, then they render (list values joined by ', ',
    a struct as JSON, bytes as hex, null as the default) instead of stopping the plan."""
    rows = pa.table({"tags": pa.array([["vip", "eu"], None]), "meta": pa.array([{"tier": 2}, None]),
                     "blob": pa.array([b"\x00\xff", None], pa.binary()),
                     "orders": pa.array([[{"id": 7}], []])})
    out = render("{{ tags | default('none') }}; {{ meta }}; {{ blob }}; {{ orders }}", rows)
    assert out.to_pylist() == ['vip, eu; {"tier": 2}; 00ff; [{"id": 7}]', "none; ; ; []"]


def test_empty_table_and_literal_only_template():
    assert render("{{ first_name }}", ROWS.slice(0, 0)).to_pylist() == []
    assert render("no slots", ROWS).to_pylist() == ["no slots"] * 3
    assert render("", ROWS).to_pylist() == [""] * 3


def test_unknown_field_lists_the_available_columns():
    with pytest.raises(ConfigError, match=r"templates\.x\.body: unknown field \{\{ frist_name \}\}.*"
                                          r"available fields: days_inactive, first_name, purchases"):
        render("Hi {{ frist_name }}", ROWS, name="templates.x.body")


@pytest.mark.parametrize("bad", ["Hi {{ first_name", "Hi {{ first name }}", "{{ x | upper }}"])
def test_malformed_slots_are_refused(bad):
    with pytest.raises(ConfigError, match="not closed or not of the form"):
        parse_template(bad)


@given(values=st.lists(st.one_of(st.none(), names), max_size=8), negate=st.booleans(), escape=st.booleans())
def test_conditional_blocks_equal_the_per_row_choice(values, negate, escape):
    """Property: {% if [not] v %}..{% else %}..{% endif %} picks, row by row, the branch a
    plain Python truth test (null and "" are false) picks, and fills its slots the same."""
    rows = pa.table({"v": pa.array(values, pa.string()), "w": pa.array(["<w>"] * len(values), pa.string())})
    template = "x{% if " + ("not " if negate else "") + "v %}[{{ v }}]{% else %}({{ w }}){% endif %}y"
    got = render(template, rows, escape=escape).to_pylist()
    esc = html.escape if escape else (lambda s: s)
    want = []
    for v in values:
        truth = bool(v) != negate
        want.append("x" + (f"[{esc(v or '')}]" if truth else f"({esc('<w>')})") + "y")
    assert got == want


def test_blocks_nest_and_bad_blocks_are_refused():
    rows = pa.table({"a": [True, True, False], "b": pa.array([1, 0, 1], pa.int64())})
    out = render("{% if a %}A{% if b %}B{% endif %}{% else %}-{% endif %}", rows).to_pylist()
    assert out == ["AB", "A", "-"]
    for bad, words in [("{% if a %}x", "not closed"), ("x{% endif %}", "without an open"),
                       ("{% for a %}", "not of the form"), ("{% if zz %}x{% endif %}", "unknown field")]:
        with pytest.raises(ConfigError, match=words):
            render(bad, rows)


def test_a_field_absent_from_the_scores_renders_its_default_and_is_said_but_a_bare_one_is_refused(tmp_path):
    """{{ first_name | default("there") }} over scores without first_name (a users file that
    has none, as CDNOW) renders "there" for everyone with one summary line; {{ first_name }}
    or {% if first_name %} without a default is still a typo to refuse."""
    from engine.planning.campaign import load_campaign
    from engine.planning.planner import plan
    from tests.helpers import one_step, reachable_users

    scores = reachable_users(4)
    assert "first_name" in scores.column_names
    scores = scores.drop_columns(["first_name"])
    doc = one_step()
    doc["templates"] = {"t": {"subject": 'Hi {{ first_name | default("there") }}',
                              "body": '{{ first_name | default("friend") }}, come back'}}
    led = str(tmp_path / "l.db")
    out = plan(scores, load_campaign(doc), as_of="2026-11-02T00:00:00Z", ledger=led)
    sent = out.filter(pa.compute.is_null(out["reason"]))
    assert sent.num_rows and set(sent["subject"].to_pylist()) == {"Hi there"}
    assert set(sent["body"].to_pylist()) == {"friend, come back"}
    import json

    summary = json.loads(out.schema.metadata[b"winback.plan"])["summary"]
    assert any("first_name is in no scores column" in w for w in summary["warnings"])
    for body in ("{{ first_name }}, come back", "{% if first_name %}hi{% endif %}"):
        doc["templates"]["t"]["body"] = body
        with pytest.raises(ConfigError, match="unknown field"):
            plan(scores, load_campaign(doc), as_of="2026-11-02T00:00:00Z", ledger=led)


def test_a_plan_against_a_ledger_that_does_not_exist_yet_says_so(tmp_path):
    """A typo in plan --ledger would plan without the earlier sends and suppressions: said."""
    import json

    from engine.ledger.store import Ledger
    from engine.planning.campaign import load_campaign
    from engine.planning.planner import plan
    from tests.helpers import one_step, reachable_users

    scores, doc = reachable_users(4), one_step()
    doc["templates"] = {"t": {"subject": "Hi", "body": "Back?"}}

    def warnings(ledger):
        out = plan(scores, load_campaign(doc), as_of="2026-11-02T00:00:00Z", ledger=str(ledger))
        return json.loads(out.schema.metadata[b"winback.plan"])["summary"].get("warnings", [])

    assert any("ledgr.db does not exist yet" in w for w in warnings(tmp_path / "ledgr.db"))
    Ledger(tmp_path / "ledger.db").close()
    assert not any("does not exist" in w for w in warnings(tmp_path / "ledger.db"))
