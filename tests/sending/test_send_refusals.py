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
    plan = tmp_path / "plan.arrow"
    feather.write_feather(make_plan(4), plan)
    providers = tmp_path / "providers.toml"
    providers.write_text(text)

    # when sent
    code = main(["send", str(plan), "--providers", str(providers), "--ledger", str(tmp_path / "l.db"),
                 "--now", "--no-progress"])

    # then one line says what is wrong, exit 2, and no ledger (nor its lock file) was made
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ConfigError: ") and err.count("\n") == 1, err
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
