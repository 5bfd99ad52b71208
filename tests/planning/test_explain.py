"""``winback explain``: everything the plan decided for one user, and why."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.feather as feather

from engine.cli import main
from engine.planning.explain import explain
from tests.helpers import reachable_users

SPRING = "2026-03-27T00:00:00Z"  # Europe springs forward on 2026-03-29


def test_explain_cli_shows_every_step_and_the_scores(tmp_path, capsys):
    # given: user 1001 prefers 23:00 (quiet) and has a suppressed email address
    scores = reachable_users(3, best_hour_local=pa.array([10, 23, 10], pa.int8()),
                             email_suppressed=[False, True, False])
    feather.write_feather(scores, tmp_path / "scores.arrow")
    doc_path = tmp_path / "c.toml"
    doc_path.write_text('[campaign]\nid = "x"\nholdout = 0\napproved = true\n[audience]\nwhere = ""\n'
                        '[[steps]]\nname = "one"\nchannels = ["email"]\n'
                        '[[steps]]\nname = "two"\ndelay_days = 2\nchannels = ["sms"]\n')
    assert main(["plan", str(tmp_path / "scores.arrow"), str(doc_path), "--as-of", SPRING,
                 "--ledger", str(tmp_path / "ledger.db"), "-o", str(tmp_path / "plan.arrow")]) == 0
    capsys.readouterr()
    # when
    code = main(["explain", "1001", "--plan", str(tmp_path / "plan.arrow"), "--scores", str(tmp_path / "scores.arrow")])
    out = capsys.readouterr().out
    # then
    assert code == 0
    assert "user 1001" in out and "step 0 one: not sent - suppressed" in out and "step 1 two: sms" in out
    assert "p_alive" in out and "email response 0.300  suppressed" in out
    assert "audience rule: true" in out and "holdout: no" in out
    # and the library answer carries the rule result, the channel ranking and the moves
    got = explain(1001, feather.read_table(tmp_path / "plan.arrow"), scores)
    assert got["in_audience"] is True and got["steps"][1]["channel"] == "sms"
    assert [c["channel"] for c in got["channels"][0]["ranking"]] == ["email"]
    assert got["channels"][0]["ranking"][0]["suppressed"] is True
    assert got["steps"][1]["moved"] == "from the best hour 23:00 to 08:00 local (quiet hours)"
    # and an unknown user is one line, non-zero
    assert main(["explain", "5", "--plan", str(tmp_path / "plan.arrow")]) != 0
    assert "not in the plan" in capsys.readouterr().err


def test_explain_reads_a_plan_that_went_through_another_tool_and_names_a_missing_column(tmp_path, capsys):
    """send_at as ISO text or epoch seconds explains as the typed plan does; a plan without
    its step column is one line naming it (both were tracebacks)."""
    import pyarrow.compute as pc

    scores = reachable_users(3)
    feather.write_feather(scores, tmp_path / "scores.arrow")
    doc = tmp_path / "c.toml"
    doc.write_text('[campaign]\nid = "x"\nholdout = 0\napproved = true\n[audience]\nwhere = ""\n'
                   '[[steps]]\nname = "one"\nchannels = ["email"]\n')
    assert main(["plan", str(tmp_path / "scores.arrow"), str(doc), "--as-of", SPRING,
                 "--ledger", str(tmp_path / "ledger.db"), "-o", str(tmp_path / "plan.arrow")]) == 0
    plan = feather.read_table(tmp_path / "plan.arrow")
    i = plan.schema.get_field_index("send_at")
    capsys.readouterr()
    assert main(["explain", "1001", "--plan", str(tmp_path / "plan.arrow")]) == 0
    want = capsys.readouterr().out
    for name, edited in (("iso", plan.set_column(i, "send_at", pc.strftime(plan["send_at"], "%Y-%m-%dT%H:%M:%SZ"))),
                         ("secs", plan.set_column(i, "send_at", pc.divide(pc.cast(plan["send_at"], pa.int64()),
                                                                          1_000_000)))):
        feather.write_feather(edited, tmp_path / f"{name}.arrow")
        assert main(["explain", "1001", "--plan", str(tmp_path / f"{name}.arrow")]) == 0
        assert capsys.readouterr().out == want
    feather.write_feather(plan.drop_columns(["step"]), tmp_path / "cut.arrow")
    assert main(["explain", "1001", "--plan", str(tmp_path / "cut.arrow")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("InputError: ") and "the plan has no column step " in err and err.count("\n") == 1
