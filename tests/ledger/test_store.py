"""The SQLite ledger: loading, claiming, results, crash recovery, suppressions; real files."""

from __future__ import annotations

import sqlite3

import numpy as np
import pyarrow as pa
import pytest

from engine.errors import InputError
from engine.ledger.store import CLAIM_COLUMNS, Ledger, read_messages, read_suppressions
from engine.schema import TIMESTAMP

T0 = 1_790_000_000  # a fixed instant, epoch seconds


def make_plan(n: int, *, start: int = 0, channel: str = "push", send_at: int = T0,
              reasons: list | None = None, step_index: int = 0, exit_on: str | None = None) -> pa.Table:
    ids = [f"m{i}" for i in range(start, start + n)]
    return pa.table({
        "message_id": ids,
        "campaign_id": ["c1"] * n,
        "user_id": pa.array(range(start, start + n), pa.int64()),
        "step": ["s"] * n,
        "step_index": pa.array([step_index] * n, pa.int16()),
        "variant": ["a"] * n,
        "channel": [channel] * n,
        "send_at": pa.array(np.full(n, send_at * 1_000_000), TIMESTAMP),
        "reason": pa.array(reasons or [None] * n, pa.string()),
        "to": [f"addr{i}" for i in range(start, start + n)],
        "subject": ["hi"] * n,
        "body": ["body"] * n,
        "exit_on": [exit_on] * n,
    })


def states(path) -> dict[str, str]:
    t = read_messages(path)
    return dict(zip(t.column("message_id").to_pylist(), t.column("state").to_pylist()))


def test_loading_is_idempotent_and_skips_unplanned_rows(tmp_path):
    # given a plan with 5 rows, 2 of them not planned (holdout, no consent)
    plan = make_plan(5, reasons=[None, "holdout", None, "no_consent", None])
    with Ledger(tmp_path / "l.db") as led:
        # when it is loaded twice
        first = led.load_plan(plan)
        second = led.load_plan(plan)
        # and a newer plan for the same campaign: m3 (unplanned before) to m6, m4 already loaded
        third = led.load_plan(make_plan(4, start=3))
    # then only planned rows went in, the reload added nothing, the new plan only its new ids
    assert (first, second, third) == (3, 0, 3)
    assert sorted(states(tmp_path / "l.db")) == ["m0", "m2", "m3", "m4", "m5", "m6"]


def test_a_replan_that_changes_pending_messages_is_refused_unless_asked_and_never_touches_sent_ones(tmp_path):
    # given plan v1 of campaign c1 for m0..m3, m0 already sent and m1 claimed (in flight)
    path = tmp_path / "l.db"
    from engine.errors import ConfigError

    with Ledger(path) as led:
        assert led.load_plan(make_plan(4)) == 4
        rows = led.claim("push", 2, now=T0, release_until=T0)
        led.sent(rows[0][-1], "p0", T0)
        led.flush()
        # v2: a new subject for m0..m2, m3 no longer planned (not in the audience), m4 new
        v2 = make_plan(5, reasons=[None, None, None, "not_in_audience", None])
        v2 = v2.set_column(v2.schema.get_field_index("subject"), "subject",
                           pa.array(["new", "new", "new", "hi", "new"]))
        # when it is loaded as it is: refused, with the counts, and nothing written
        with pytest.raises(ConfigError, match=r"campaign 'c1': 1 that this plan changes .* and 1 that it no "
                                              r"longer plans.*--replan"):
            led.load_plan(v2, source="plan-v2.arrow")
        assert states(path) == {"m0": "sent", "m1": "in_flight", "m2": "planned", "m3": "planned"}
        # the same plan again is no change at all
        assert led.load_plan(make_plan(4)) == 0 and led.replanned == {"changed": 0, "dropped": 0}
        # and with replan: m2 takes the new subject, m3 is skipped, m4 added; sent m0 and in-flight m1 untouched
        assert led.load_plan(v2, replan=True) == 1
        assert led.replanned == {"changed": 1, "dropped": 1}
    t = {r["message_id"]: r for r in read_messages(path).to_pylist()}
    subject = dict(sqlite3.connect(path).execute("SELECT message_id, subject FROM messages").fetchall())
    assert {k: (v["state"], subject[k]) for k, v in t.items()} == {
        "m0": ("sent", "hi"), "m1": ("in_flight", "hi"), "m2": ("planned", "new"), "m3": ("skipped", "hi"),
        "m4": ("planned", "new")}
    assert t["m3"]["last_error"] == "replanned"
    # a pending message whose content, channel or time changed takes the new version when asked
    with Ledger(path) as led:
        v3 = make_plan(3, start=2, channel="email", send_at=T0 + 3600)  # m2 changes; m3 (skipped), m4 change
        with pytest.raises(ConfigError, match="2 that this plan changes"):
            led.load_plan(v3)
        assert led.load_plan(v3, replan=True) == 0 and led.replanned == {"changed": 2, "dropped": 0}
    t = {r["message_id"]: r for r in read_messages(path).to_pylist()}
    assert (t["m2"]["channel"], t["m2"]["send_at"].timestamp(), t["m2"]["state"]) == ("email", T0 + 3600, "planned")
    assert (t["m3"]["state"], t["m3"]["channel"]) == ("skipped", "push")  # final states stay as they were


def test_a_replan_that_holds_out_users_the_campaign_already_messaged_is_refused(tmp_path):
    # given campaign c1 sent to users 0 and 1 (m0 sent, m1 in flight), m2 and m3 pending
    from engine.errors import ConfigError

    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.load_plan(make_plan(4))
        rows = led.claim("push", 2, now=T0, release_until=T0)
        led.sent(rows[0][-1], "p0", T0)
        led.flush()
        # when a re-plan (another holdout share) puts users 0 and 2 in the holdout
        v2 = make_plan(4, reasons=["holdout", None, "holdout", None])
        # then it is refused, --replan too, naming the messaged user, and nothing changes
        for replan in (False, True):
            with pytest.raises(ConfigError, match=r"1 user this plan holds out already got messages of campaign "
                                                  r"'c1' \(e.g. users 0\).*new campaign id"):
                led.load_plan(v2, source="plan-v2.arrow", replan=replan)
        assert states(path) == {"m0": "sent", "m1": "in_flight", "m2": "planned", "m3": "planned"}
        # and holding out only users it never messaged is an ordinary re-plan
        assert led.load_plan(make_plan(4, reasons=[None, None, "holdout", None]), replan=True) == 0
        assert led.replanned == {"changed": 0, "dropped": 1}


def test_plan_without_message_id_or_with_duplicates_is_refused(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        with pytest.raises(InputError, match="no column message_id"):
            led.load_plan(make_plan(2).drop_columns(["message_id"]), source="p.arrow")
        dup = pa.concat_tables([make_plan(2), make_plan(1)])
        with pytest.raises(InputError, match=r"message_id repeats in 1 ids .*\['m0'\]"):
            led.load_plan(dup, source="p.arrow")
    # and nothing was loaded
    assert states(tmp_path / "l.db") == {}


def test_claim_moves_due_messages_to_in_flight_in_batches(tmp_path):
    # given 10 messages due at T0 and 5 due an hour later
    with Ledger(tmp_path / "l.db") as led:
        led.load_plan(make_plan(10))
        led.load_plan(make_plan(5, start=10, send_at=T0 + 3600))
        # when we claim at T0 in batches of 4
        a = led.claim("push", 4, now=T0, release_until=T0)
        b = led.claim("push", 100, now=T0, release_until=T0)
        c = led.claim("push", 100, now=T0, release_until=T0)
        # then each message is claimed once, only due ones, attempts counting this attempt
        assert len(a) == 4 and len(b) == 6 and c == []
        row = dict(zip(CLAIM_COLUMNS, a[0]))
        assert row["attempts"] == 1 and row["channel"] == "push" and row["to_addr"].startswith("addr")
        assert led.next_due("push") == T0 + 3600
        # and with release_until = infinity (--now) the later ones are claimable too
        assert len(led.claim("push", 100, now=T0, release_until=float("inf"))) == 5
        assert led.claim("email", 100, now=T0, release_until=float("inf")) == []
    assert set(states(tmp_path / "l.db").values()) == {"in_flight"}


def test_results_are_buffered_until_flush(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.load_plan(make_plan(3))
        key = {r[0]: r[-1] for r in led.claim("push", 3, now=T0, release_until=T0)}
        # when results are recorded but not flushed
        led.sent(key["m0"], "prov-0", T0 + 1)
        led.retry(key["m1"], T0 + 60, "503 busy", T0 + 1)
        led.dead(key["m2"], "400 hard bounce", T0 + 1, channel="push", address="addr2", user_id=2, suppress=True)
        # then another reader still sees them in flight
        assert set(states(path).values()) == {"in_flight"}
        assert led.flush() == 3
    # and after the flush every state, the provider id and the suppression are on disk
    t = read_messages(path).to_pylist()
    by = {r["message_id"]: r for r in t}
    assert by["m0"]["state"] == "sent" and by["m0"]["provider_id"] == "prov-0"
    assert by["m1"]["state"] == "failed" and by["m1"]["next_attempt_at"].timestamp() == T0 + 60
    assert by["m2"]["state"] == "dead" and by["m2"]["last_error"] == "400 hard bounce"
    sup = read_suppressions(path).to_pylist()
    assert [(s["channel"], s["address"], s["user_id"]) for s in sup] == [("push", "addr2", 2)]


def test_retry_is_claimed_only_when_due(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        led.load_plan(make_plan(1))
        (row,) = led.claim("push", 1, now=T0, release_until=T0)
        led.retry(row[-1], T0 + 30, "429", T0)
        led.flush()
        # when claimed before its next attempt time, then nothing; at it, the message with attempt 2
        assert led.claim("push", 1, now=T0 + 29.9, release_until=float("inf")) == []
        rows = led.claim("push", 1, now=T0 + 30, release_until=float("inf"))
        assert [dict(zip(CLAIM_COLUMNS, r))["attempts"] for r in rows] == [2]


@pytest.mark.parametrize("at_most_once, expected", [(False, {"m0": "planned", "m1": "failed", "m2": "sent"}),
                                                     (True, {"m0": "dead", "m1": "dead", "m2": "sent"})])
def test_recovery_after_a_crash(tmp_path, at_most_once, expected):
    # given a ledger a killed run left with m0 (first attempt) and m1 (second attempt) in flight
    path = tmp_path / "l.db"
    led = Ledger(path)
    led.load_plan(make_plan(3))
    key = {r[0]: r[-1] for r in led.claim("push", 3, now=T0, release_until=T0)}
    led.retry(key["m1"], T0, "503", T0)
    led.sent(key["m2"], "p2", T0)
    led.flush()
    led.claim("push", 1, now=T0, release_until=T0)  # m1 again: attempt 2
    led._con.close()  # the process dies: no close(), no flush

    # when a new run opens it and recovers
    with Ledger(path) as led2:
        n = led2.recover(at_most_once=at_most_once)

    # then in-flight messages go back to where they were (or die with at-most-once)
    assert n == 2
    assert states(path) == expected
    rows = {r["message_id"]: r for r in read_messages(path).to_pylist()}
    if at_most_once:
        assert rows["m0"]["last_error"] == "in flight at crash"
    else:
        assert rows["m0"]["attempts"] == 0 and rows["m1"]["attempts"] == 1


def test_unclaim_restores_state_and_attempts(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        led.load_plan(make_plan(2))
        led.claim("push", 2, now=T0, release_until=T0)
        led.unclaim(["m0", "m1"])
        assert [dict(zip(CLAIM_COLUMNS, r))["attempts"] for r in led.claim("push", 5, now=T0, release_until=T0)] == [1, 1]


def test_exit_rules_and_suppressions_skip_pending_messages(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        # given step 0 for users 0-3 and a step 1 with an exit rule for the same users
        led.load_plan(make_plan(4))
        step1 = make_plan(4, step_index=1, exit_on="activity").set_column(
            0, "message_id", pa.array([f"s1-{i}" for i in range(4)]))
        led.load_plan(step1)
        # when user 1 came back and addr3 is suppressed
        assert led.skip_exited([1, 99]) == 1
        assert led.add_suppressions([{"channel": "push", "address": "addr3", "reason": "unsubscribe"}]) == 1
        assert led.add_suppressions([{"channel": "push", "address": "addr3", "reason": "unsubscribe"}]) == 0
        assert led.skip_suppressed() == 2
    # then only user 1's later step exits (step 0 is never an exit), and addr3 gets nothing
    s = states(path)
    assert s["s1-1"] == "skipped" and s["m1"] == "planned"
    assert s["m3"] == s["s1-3"] == "skipped"
    reasons = {r["message_id"]: r["last_error"] for r in read_messages(path).to_pylist()}
    assert reasons["s1-1"] == "exited" and reasons["m3"] == "suppressed"


def test_suppressions_of_an_earlier_version_match_plans_with_canonical_addresses(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path):
        pass
    # given a ledger of an earlier version: suppressions stored as the provider spelt them
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO suppressions (channel, address, user_id, reason, at) VALUES (?,?,?,?,?)",
                    [("email", " John@Example.COM ", None, "unsubscribe", 1.0),
                     ("sms", "+1 (415) 555-0100", None, "STOP", 2.0),
                     ("email", "kept@x.com", None, "bounce", 3.0)])
    con.execute("DELETE FROM ledger_info WHERE key = 'addresses'")
    con.commit()
    con.close()
    # when it is opened by this version and a plan with canonical addresses is loaded
    plan = make_plan(4, channel="email")
    plan = plan.set_column(plan.schema.get_field_index("to"), "to",
                           pa.array(["john@example.com", "other@x.com", "kept@x.com", " John@Example.COM "]))
    sms = make_plan(1, start=10, channel="sms").set_column(
        make_plan(1).schema.get_field_index("to"), "to", pa.array(["+14155550100"]))
    with Ledger(path) as led:
        led.load_plan(plan)
        led.load_plan(sms)
        skipped = led.skip_suppressed()
    # then the old suppressions hold for both spellings, the old rows are kept, once
    s = states(path)
    assert skipped == 4 and s == {"m0": "skipped", "m1": "planned", "m2": "skipped", "m3": "skipped",
                                  "m10": "skipped"}
    sup = read_suppressions(path)
    assert sorted(sup.column("address").to_pylist()) == sorted(
        [" John@Example.COM ", "john@example.com", "+1 (415) 555-0100", "+14155550100", "kept@x.com"])
    with Ledger(path):  # opening again changes nothing
        pass
    assert read_suppressions(path).num_rows == 5


def test_retries_an_earlier_version_set_for_year_5000_are_given_up_once(tmp_path):
    """Earlier versions heeded any Retry-After: a retry due in year 5000 (and a channel pause
    that long) kept a send waiting forever.  This version gives them up on opening; a retry
    due tomorrow and a pause of an hour stay."""
    import time

    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.load_plan(make_plan(3))
    now = time.time()
    con = sqlite3.connect(path)
    con.execute("UPDATE messages SET state = 'failed', attempts = 1, last_error = 'HTTP 429', "
                "next_attempt_at = ? WHERE message_id = 'm0'", (95_617_584_000.0,))  # year 5000
    con.execute("UPDATE messages SET state = 'failed', attempts = 1, next_attempt_at = ? "
                "WHERE message_id = 'm1'", (now + 86400,))
    con.executemany("INSERT INTO pauses (channel, until) VALUES (?, ?)",
                    [("push", 95_617_584_000.0), ("email", now + 3600)])
    con.execute("DELETE FROM ledger_info WHERE key = 'retry_after'")
    con.commit()
    con.close()
    with Ledger(path):
        pass
    s = states(path)
    assert s == {"m0": "dead", "m1": "failed", "m2": "planned"}
    error = {r["message_id"]: r["last_error"] for r in read_messages(path).to_pylist()}["m0"]
    assert error.startswith("HTTP 429; given up: a Retry-After beyond what a send waits")
    con = sqlite3.connect(path)
    assert con.execute("SELECT channel FROM pauses").fetchall() == [("email",)]
    con.close()


def test_reading_a_missing_or_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_messages(tmp_path / "nope.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.commit()
    with pytest.raises(InputError, match="not a winback ledger"):
        read_suppressions(other)


def test_empty_ledger_reads_as_empty_tables(tmp_path):
    with Ledger(tmp_path / "l.db"):
        pass
    assert read_messages(tmp_path / "l.db").num_rows == 0
    assert read_suppressions(tmp_path / "l.db").schema.field("at").type == TIMESTAMP


def test_wal_mode_is_on(tmp_path):
    with Ledger(tmp_path / "l.db"):
        pass
    assert sqlite3.connect(tmp_path / "l.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("update_from", [True, False])
def test_multi_row_statements_keep_every_value(tmp_path, monkeypatch, update_from):
    """Loads and sent-results go to SQLite in multi-row statements (64 rows, then powers of
    two): every row and value arrives, with or without ``UPDATE ... FROM`` (SQLite < 3.33)."""
    import engine.ledger.store as ledger_module

    monkeypatch.setattr(ledger_module, "_UPDATE_FROM", update_from)
    n = 64 * 3 + 37  # full statements and a remainder of 32 + 4 + 1
    plan = make_plan(n, exit_on="click")
    with Ledger(tmp_path / "l.db") as led:
        assert led.load_plan(plan) == n
        assert led.load_plan(make_plan(n + 5, exit_on="click")) == 5  # the first n ids are already there
        rows = led.claim("push", 1000, now=T0, release_until=T0)
        assert len(rows) == n + 5
        for r in rows[:n]:
            led.sent(r[-1], "p-" + r[0], T0 + 1)
        assert led.flush() == n
    t = read_messages(tmp_path / "l.db").to_pylist()
    by_id = {r["message_id"]: r for r in t}
    assert len(t) == n + 5
    for i in (0, 63, 64, 191, 192, n - 1):
        r = by_id[f"m{i}"]
        assert (r["state"], r["provider_id"], r["user_id"], r["to_addr"]) == ("sent", f"p-m{i}", i, f"addr{i}")
        assert r["sent_at"].timestamp() == T0 + 1 and r["attempts"] == 1
    assert {by_id[f"m{i}"]["state"] for i in range(n, n + 5)} == {"in_flight"}
    con = sqlite3.connect(tmp_path / "l.db")
    assert con.execute("SELECT COUNT(*) FROM messages WHERE exit_on = 'click' AND step = 's' "
                       "AND body = 'body' AND send_at = ?", (T0,)).fetchone()[0] == n + 5


def test_claim_with_results_writes_them_in_the_same_transaction(tmp_path):
    # given 3 claimed messages: one sent, one to retry at once, one dead; their results buffered
    with Ledger(tmp_path / "l.db") as led:
        led.load_plan(make_plan(5))
        a, b, c = led.claim("push", 3, now=T0, release_until=T0)
        led.sent(a[-1], "p-a", T0)
        led.retry(b[-1], T0, "503 unavailable", T0)
        led.dead(c[-1], "400 bad", T0)
        # when the next claim carries them
        rows = led.claim("push", 10, now=T0, release_until=T0, with_results=True)
        # then the results are written and nothing is left buffered, and the retry is claimed first
        assert led.pending_writes == 0
        assert [r[0] for r in rows] == [b[0], "m3", "m4"]
        assert [dict(zip(CLAIM_COLUMNS, r))["attempts"] for r in rows] == [2, 1, 1]
    st = states(tmp_path / "l.db")
    assert (st[a[0]], st[c[0]]) == ("sent", "dead")


def test_retry_dead_revives_only_retryable_deaths_of_the_given_campaigns(tmp_path):
    from tests.helpers import ledger_rows, make_plan

    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.load_plan(make_plan(5))
        led.load_plan(make_plan(1, prefix="other").set_column(1, "campaign_id", pa.array(["c2"])))
        con = led.connection
        for mid, err in (("m0", "gave up after 8 attempts: 503 Service Unavailable"),
                         ("m1", "gave up after 1 attempts: 429; the provider asked for no retry for 90,000 s "
                                "(Retry-After), longer than the 24 h a send waits"),
                         ("m2", "gave up after 2 attempts: 429; the provider's Retry-After (9,000 s) falls after "
                                "the campaign's end"),
                         ("m3", "400 invalid push address"), ("m4", "in flight at crash"),
                         ("other0", "gave up after 8 attempts: timeout")):
            con.execute("UPDATE messages SET state = 'dead', attempts = 8, last_error = ? WHERE message_id = ?",
                        (err, mid))
        con.commit()
        assert led.gave_up(["c1"]) == 1 and led.gave_up(["c1", "c2"]) == 2 and led.gave_up([]) == 0
        assert led.retry_dead(["c1"]) == 1
    rows = dict((m, (s, a)) for m, s, a in ledger_rows(path, "SELECT message_id, state, attempts FROM messages"))
    assert rows["m0"] == ("planned", 0)
    assert all(rows[m][0] == "dead" for m in ("m1", "m2", "m3", "m4", "other0"))
