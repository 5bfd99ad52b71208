"""Guarantees that must hold across runs and campaigns, not only inside one send: a suppression
written while a send runs, each campaign's own timezone default, a run killed between loading a
plan and recording its policy, and caps whichever campaign sent first.  Real ledgers on disk."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from engine.io.meta import PLAN, with_meta
from engine.ledger.store import Ledger, read_messages
from engine.sending.dispatcher import Channel, send
from engine.sending.release import Release, record_plan
from tests.helpers import make_plan
from tests.sending.test_dispatcher import Recorder

NOW = 1_793_534_400.0  # 2026-11-01 12:00 UTC
QUIET = [21 * 60, 8 * 60]  # 21:00-08:00 local


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()


def _plan(n, cid, prefix, send_at, timezone=None):
    p = make_plan(n, send_at=send_at, prefix=prefix)
    p = p.set_column(p.schema.get_field_index("campaign_id"), "campaign_id", pa.array([cid] * n))
    return p if timezone is None else p.append_column("timezone", pa.array([timezone] * n))


def _states(ledger) -> dict:
    return {r["message_id"]: (r["state"], r["last_error"]) for r in read_messages(ledger).to_pylist()}


def test_a_suppression_written_while_sending_stops_the_messages_claimed_after_it(tmp_path):
    # given 60 push messages sent at 50 a second, and another process (a second connection, as
    # 'winback sunset' or 'winback receive --ledger' would be) suppressing users 20..59 after the 5th request:
    # 20..39 by address, 40..59 by user (no address)
    ledger = tmp_path / "ledger.db"
    sent_after: list[str] = []
    state = {"suppressed": False}

    def on_call(rec):
        if state["suppressed"]:
            sent_after.extend(rec.calls[-1][1])
        elif len(rec.calls) == 5:
            with Ledger(ledger) as other:
                other.add_suppressions([{"channel": "push", "address": f"tok{u}", "user_id": u,
                                         "reason": "unsubscribe"} for u in range(20, 40)] +
                                       [{"channel": "push", "address": None, "user_id": u, "reason": "sunset"}
                                        for u in range(40, 60)])
            state["suppressed"] = True

    adapter = Recorder(on_call=on_call)
    # when the send runs to the end
    summary = send(make_plan(60), {"push": Channel(adapter, rate_per_second=50, concurrency=1)}, ledger, now=True)
    # then after the suppression only messages already claimed went to those users (a claim is
    # about a quarter second of traffic: at most 16 here), the rest were skipped as suppressed
    stopped = {f"m{u}" for u in range(20, 60)}
    late = [m for m in sent_after if m in stopped]
    assert len(late) <= 16, late
    st = _states(ledger)
    skipped = {m for m, (s, why) in st.items() if s == "skipped" and why == "suppressed"}
    assert skipped == stopped - set(adapter.sent_ids()) and len(skipped) >= 40 - 16
    # and nothing was lost or sent twice: every message is sent once or skipped
    assert sorted(adapter.sent_ids()) == sorted(set(adapter.sent_ids()))
    assert len(set(adapter.sent_ids())) + len(skipped) == 60
    assert summary.suppressed == len(skipped) and "suppressed" not in summary.skipped


def test_one_campaigns_timezone_default_does_not_move_anothers_quiet_hours(tmp_path):
    # given user 0 without a timezone of their own, planned by campaign A in A's default (UTC) for 20:00 UTC
    # and by campaign B in B's (Pacific/Auckland), both with quiet hours 21:00-08:00; B's plan loaded last
    late = NOW + 11.5 * 3600  # 23:30 UTC: inside A's quiet hours in UTC, 12:30 in Auckland
    with Ledger(tmp_path / "l.db") as led:
        a = _plan(1, "A", "a", NOW + 8 * 3600, timezone="UTC")
        b = _plan(1, "B", "b", NOW + 30 * 86400, timezone="Pacific/Auckland")
        for p, cid, zone in ((a, "A", "UTC"), (b, "B", "Pacific/Auckland")):
            led.load_plan(p)
            record_plan(led, p, {"campaign_id": cid, "timezone": zone,
                                 "policy": {"max_messages": 3, "window_days": 7, "quiet_hours": QUIET}})
        # when A's sender starts late, at 23:30 UTC
        rows = led.claim("push", 10, now=late, release_until=late)
        keep = Release(led).screen(rows, late)
    # then A's message waits for 08:00 UTC, the end of A's quiet hours in the zone A planned it in
    assert keep == []
    m = {r["message_id"]: r for r in read_messages(tmp_path / "l.db").to_pylist()}
    assert m["a0"]["state"] == "planned" and m["a0"]["next_attempt_at"].timestamp() == NOW + 20 * 3600


def test_a_run_killed_between_loading_a_plan_and_recording_its_policy_keeps_the_policy(tmp_path):
    # given a plan with quiet hours 21:00-08:00 UTC whose messages reached the ledger, but the run was
    # killed before it recorded the campaign's policy (load_plan commits on its own)
    late = NOW + 11.5 * 3600  # 23:30 UTC
    plan = with_meta(_plan(5, "Q", "q", late - 60), PLAN, {
        "campaign_id": "Q", "as_of": _iso(NOW - 3600), "ends_at": _iso(NOW + 10 * 86400), "timezone": "UTC",
        "policy": {"max_messages": 3, "window_days": 7, "quiet_hours": QUIET}})
    ledger = tmp_path / "l.db"
    with Ledger(ledger) as led:
        assert led.load_plan(plan) == 5
    # when the same plan is sent again at 23:30 UTC (nothing new to load)
    adapter = Recorder()
    summary = send(plan, {"push": adapter}, ledger, clock=lambda: late, max_seconds=1.0, handle_signals=False)
    # then the rerun recorded the policy: nothing went out in the quiet hours, all wait for 08:00
    assert adapter.sent_ids() == [] and summary.sent == 0 and summary.retimed == 5
    assert {s for s, _ in _states(ledger).values()} == {"planned"}


def test_each_campaigns_cap_holds_whichever_campaign_sent_first(tmp_path):
    # given campaign A (1 message per 30 days) and campaign B (3 per 7 days), and user 0 who got one
    # message of the first campaign an hour ago
    rules = {"A": {"max_messages": 1, "window_days": 30}, "B": {"max_messages": 3, "window_days": 7}}
    for first, second in (("A", "B"), ("B", "A")):
        ledger = tmp_path / f"{first}{second}.db"
        with Ledger(ledger) as led:
            p = _plan(1, first, "x", NOW - 3600)
            led.load_plan(p)
            record_plan(led, p, {"campaign_id": first, "policy": rules[first]})
            [row] = led.claim("push", 10, now=NOW - 3600, release_until=NOW - 3600)
            led.sent(row[-1], "p1", NOW - 3600)
            led.flush()
            q = _plan(2, second, "y", NOW)
            led.load_plan(q)
            record_plan(led, q, {"campaign_id": second, "policy": rules[second]})
            # when the second campaign's messages to users 0 and 1 are screened now
            rel = Release(led)
            keep = rel.screen(led.claim("push", 10, now=NOW, release_until=NOW), NOW)
        # then user 0 gets nothing more in A's 30 days, either order; user 1 gets the message
        assert [r[0] for r in keep] == ["y1"], (first, second)
        assert _states(ledger)["y0"] == ("skipped", "cap_other_campaigns")


def test_an_unsubscribe_from_another_address_stops_the_user_but_a_bounce_stops_only_its_address(tmp_path):
    # given users 0..3 planned on push to tok0..tok3, and suppressions naming the user with an address the
    # ledger does not send to: an unsubscribe (user 0) and a complaint (user 1), a hard bounce (user 2)
    ledger = tmp_path / "l.db"
    stops = [{"channel": "push", "address": "old-token-0", "user_id": 0, "reason": "unsubscribe"},
             {"channel": "push", "address": "old-token-1", "user_id": 1, "reason": "complaint"},
             {"channel": "push", "address": "old-token-2", "user_id": 2, "reason": "hard_bounce"}]
    with Ledger(ledger) as led:
        led.load_plan(make_plan(4))
        led.add_suppressions(stops)
    # when sent (the suppressions are in the ledger at start)
    adapter = Recorder()
    send(make_plan(4), {"push": adapter}, ledger, now=True)
    # then the person's requests stop their messages; the old address's bounce does not stop the new one
    assert sorted(adapter.sent_ids()) == ["m2", "m3"]
    # and the same holds for suppressions written while a send runs (the release check)
    ledger2 = tmp_path / "l2.db"
    with Ledger(ledger2) as led:
        led.load_plan(make_plan(4, send_at=NOW))
        rel = Release(led)
        led.add_suppressions(stops)
        keep = rel.screen(led.claim("push", 10, now=NOW, release_until=NOW), NOW)
    assert sorted(r[0] for r in keep) == ["m2", "m3"]


def test_a_complaint_spelt_with_capitals_stops_every_channel(tmp_path):
    # given a 'Complaint' written by another tool on sms for user 0 (the reason as that tool spells it), and a
    # ledger of an earlier version holding ' Complaint ' for user 1 as written
    import sqlite3

    ledger = tmp_path / "l.db"
    plan = pa.concat_tables([make_plan(2, send_at=NOW, prefix="p"),
                             make_plan(2, send_at=NOW, prefix="e", channel="email", to=["a@x.test", "b@x.test"])])
    with Ledger(ledger) as led:
        led.load_plan(plan)
        led.add_suppressions([{"channel": "sms", "address": None, "user_id": 0, "reason": "Complaint"}])
    con = sqlite3.connect(ledger)
    con.execute("INSERT INTO suppressions VALUES ('sms', NULL, 1, ' Complaint ', 0)")
    con.execute("DELETE FROM ledger_info WHERE key = 'reasons'")  # as an earlier version left it
    con.commit()
    con.close()
    # when the push and email messages are screened
    with Ledger(ledger) as led:
        keep = Release(led).screen(led.claim("push", 10, now=NOW, release_until=NOW) +
                                   led.claim("email", 10, now=NOW, release_until=NOW), NOW)
    # then both users' complaints stop every channel
    assert keep == []
    assert {s for s, _ in _states(ledger).values()} == {"skipped"}


def test_a_step_planned_a_window_after_an_earlier_one_is_not_lost_when_that_one_went_late(tmp_path):
    # given 2 messages per 7 days, quiet hours 21:00-08:00 and a user whose best hour (22:00) is inside them,
    # steps after 0, 2 and 3 days: each lands at 08:00, so the third would sit exactly 7 days after the first
    from engine.planning.campaign import load_campaign
    from engine.planning.planner import plan
    from tests.helpers import campaign_dict, reachable_users

    scores = reachable_users(1, best_hour_local=pa.array([22], pa.int8()), send_time_confidence=[0.9])
    doc = campaign_dict({"quiet_hours": ["21:00", "08:00"], "min_gap_hours": 1, "max_messages": 2}, holdout=0.0,
                        steps=[{"name": n, "delay_days": d, "channels": ["email"], "template": "t"}
                               for n, d in (("a", 0), ("b", 2), ("c", 3))])
    doc["campaign"]["approved"] = True
    p = plan(scores, load_campaign(doc), as_of="2026-11-02T00:00:00Z", ledger=str(tmp_path / "l.db"))
    at = [t.as_py().timestamp() for t in p["send_at"]]
    # then the plan keeps the third step clear of the first one's window edge
    assert p["reason"].to_pylist() == [None, None, None]
    assert at[2] - at[0] > 7 * 86400
    # and when the first went out a minute late, the send still releases the third at its time
    with Ledger(tmp_path / "l.db") as led:
        led.load_plan(p)
        record_plan(led, p, {"campaign_id": p["campaign_id"][0].as_py(),
                             "policy": {"max_messages": 2, "window_days": 7, "quiet_hours": [21 * 60, 8 * 60]}})
        for k, late in ((0, 60), (1, 0)):
            [row] = led.claim("email", 1, now=at[k] + late, release_until=at[k] + late)
            led.sent(row[-1], f"p{k}", at[k] + late)
            led.flush()
        rows = led.claim("email", 1, now=at[2], release_until=at[2])
        keep = Release(led).screen(rows, at[2])
    assert len(keep) == 1
