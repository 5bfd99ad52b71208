"""A send refused for its plan or providers file leaves no ledger behind: nothing is loaded,
so fixing the file and re-planning is not then taken for a re-plan of messages already loaded.

Each case runs the real ``winback send`` on real files; the providers point at a closed
port on 127.0.0.1, so nothing could be delivered either way."""

from __future__ import annotations

import pyarrow.feather as feather
import pytest

from engine.cli import main
from tests.helpers import make_plan

PUSH = ('[channels.push]\nadapter = "webhook"\nurl = "http://127.0.0.1:9/hooks/push"\n'
        'secret_env = "WINBACK_TEST_PUSH_SECRET"\nmax_attempts = 1\n')
EMAIL = ('[channels.email]\nadapter = "sendgrid"\nbase_url = "http://127.0.0.1:9"\n'
         'api_key_env = "WINBACK_TEST_EMAIL_KEY"\n')

CASES = {
    "secret not set": (PUSH, {}, "names the environment variable WINBACK_TEST_PUSH_SECRET, which is not set"),
    "channel missing": (EMAIL, {"WINBACK_TEST_EMAIL_KEY": "k"}, "has messages on channel push but the providers "
                        "have no [channels.push]"),
    "bad value": (PUSH.replace("max_attempts = 1", 'rate_per_second = "fast"'), {"WINBACK_TEST_PUSH_SECRET": "s"},
                  "[channels.push] key 'rate_per_second' must be a number > 0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_providers_file_is_refused_before_the_ledger_exists(tmp_path, monkeypatch, capsys, case):
    # given a real plan of push messages and a providers file that cannot send them
    text, env, expected = CASES[case]
    monkeypatch.delenv("WINBACK_TEST_PUSH_SECRET", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # when sent, then one line says what is wrong, exit 2, and no ledger (nor its lock file) was made
    _refused_before_the_ledger(tmp_path, capsys, make_plan(4), text, "ConfigError: ", expected)


def _refused_before_the_ledger(tmp_path, capsys, plan_table, providers_text, kind, expected):
    """``winback send`` of ``plan_table`` with ``providers_text``: exit 2, one ``kind`` line holding
    ``expected``, and nothing in ``tmp_path`` but the two input files."""
    plan = tmp_path / "plan.arrow"
    feather.write_feather(plan_table, plan)
    providers = tmp_path / "providers.toml"
    providers.write_text(providers_text)
    code = main(["send", str(plan), "--providers", str(providers), "--ledger", str(tmp_path / "l.db"),
                 "--now", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(kind) and err.count("\n") == 1, err
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.arrow", "providers.toml"]


def test_a_file_that_is_not_a_plan_is_refused_before_the_ledger_exists(tmp_path, monkeypatch, capsys):
    # given a scores-like table passed where the plan goes
    monkeypatch.setenv("WINBACK_TEST_PUSH_SECRET", "s")
    not_plan = tmp_path / "scores.arrow"
    feather.write_feather(make_plan(3).drop_columns(["message_id", "send_at"]), not_plan)
    providers = tmp_path / "providers.toml"
    providers.write_text(PUSH)

    # when sent, then one line names the missing columns, exit 2, no ledger
    code = main(["send", str(not_plan), "--providers", str(providers), "--ledger", str(tmp_path / "l.db"),
                 "--now", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "the plan has no column message_id, send_at" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["providers.toml", "scores.arrow"]


def _nulled(t, name, rows):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = np.zeros(t.num_rows, bool)
    mask[list(rows)] = True
    col = pc.if_else(pa.array(mask), pa.scalar(None, t[name].type), t[name])
    return t.set_column(t.schema.get_field_index(name), name, col)


ROW_CASES = {
    "no channel": (lambda t: _nulled(t, "channel", [1, 2]), "column channel is null in 2 planned rows, e.g. message ids ['m1', 'm2']"),
    "no user": (lambda t: _nulled(t, "user_id", [0]), "column user_id is null in 1 planned rows, e.g. message ids ['m0']"),
    "no send time": (lambda t: _nulled(t, "send_at", [3]), "column send_at is null or not an instant in 1 planned rows"),
    "a column twice": (lambda t: t.append_column("channel", t["channel"]), "column 'channel' appears 2 times"),
}


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_a_planned_row_the_ledger_cannot_hold_is_refused_before_the_ledger_exists(tmp_path, monkeypatch, capsys,
                                                                                  case):
    # given a plan with a planned message lacking a channel, a user or a send time, or a doubled column
    edit, expected = ROW_CASES[case]
    monkeypatch.setenv("WINBACK_TEST_PUSH_SECRET", "s")
    # when sent, then one InputError line names the column and the messages, exit 2, no ledger
    _refused_before_the_ledger(tmp_path, capsys, edit(make_plan(4)), PUSH, "InputError: ", expected)


def test_a_plan_with_send_times_as_iso_text_loads_the_same_instants(tmp_path):
    """A plan re-saved by another tool with send_at as ISO text loads as the original does."""
    import pyarrow.compute as pc

    from engine.ledger.store import Ledger
    from tests.helpers import ledger_rows

    orig = make_plan(3)
    text = orig.set_column(orig.schema.get_field_index("send_at"), "send_at",
                           pc.strftime(orig["send_at"], "%Y-%m-%dT%H:%M:%SZ"))
    with Ledger(tmp_path / "a.db") as a, Ledger(tmp_path / "b.db") as b:
        assert a.load_plan(orig) == b.load_plan(text) == 3
    q = "SELECT message_id, send_at FROM messages ORDER BY message_id"
    assert ledger_rows(tmp_path / "a.db", q) == ledger_rows(tmp_path / "b.db", q)
