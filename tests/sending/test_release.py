"""Release-time checks on a real ledger: the cap across campaigns, lateness, and quiet hours at send time."""

from __future__ import annotations

import pyarrow as pa

from engine.ledger.store import Ledger, read_messages
from engine.sending.release import DEFAULT_MAX_LATENESS, GRACE_SECONDS, Release, record_plan
from tests.helpers import make_plan

NOW = 1_793_534_400.0  # 2026-11-01 12:00 UTC


def _plan(n, cid, prefix, send_at):
    p = make_plan(n, send_at=send_at, prefix=prefix)
    return p.set_column(p.schema.get_field_index("campaign_id"), "campaign_id", pa.array([cid] * n))


def _state(ledger):
    m = read_messages(ledger)
    return {r["message_id"]: (r["state"], r["last_error"]) for r in m.select(["message_id", "state", "last_error"])
            .to_pylist()}


def _a_sent_to_user_0_an_hour_ago(led) -> None:
    a = _plan(1, "A", "a", NOW - 3600)
    led.load_plan(a)
    record_plan(led, a, {"campaign_id": "A", "policy": {"max_messages": 3, "window_days": 7}})
    [row] = led.claim("push", 10, now=NOW - 3600, release_until=NOW - 3600)
    led.sent(row[-1], "p1", NOW - 3600)
    led.flush()


def _b_due_now(led, policy: dict) -> list:
    """Campaign B's messages to users 0 and 1, due now under ``policy``, claimed."""
    b = _plan(2, "B", "b", NOW)
    led.load_plan(b)
    record_plan(led, b, {"campaign_id": "B", "policy": policy})
    return led.claim("push", 10, now=NOW, release_until=NOW)


def test_the_cap_counts_every_campaigns_sends_and_names_the_other_campaign(tmp_path):
    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        # given campaign A sent to user 0 an hour ago; campaign B (cap 1 a week) plans users 0 and 1 now
        _a_sent_to_user_0_an_hour_ago(led)
        rows = _b_due_now(led, {"max_messages": 1, "window_days": 7})
        # when
        rel = Release(led)
        keep = rel.screen(rows, NOW)
    # then user 1's message goes, user 0's is skipped because of campaign A
    assert [r[0] for r in keep] == ["b1"]
    assert rel.skipped == {"cap_other_campaigns": 1}
    assert _state(ledger)["b0"] == ("skipped", "cap_other_campaigns")


def test_a_message_too_close_to_another_campaigns_message_waits_the_gap_and_says_why(tmp_path):
    from engine.planning.explain import _with_ledger

    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        # given campaign A sent to user 0 an hour ago; campaign B (min_gap_hours 12) is due for users 0 and 1 now
        _a_sent_to_user_0_an_hour_ago(led)
        rows = _b_due_now(led, {"max_messages": 3, "window_days": 7, "min_gap_hours": 12})
        # when
        rel = Release(led)
        keep = rel.screen(rows, NOW)
    # then user 1's goes now; user 0's waits until 12 hours after A's, and the ledger says why
    assert [r[0] for r in keep] == ["b1"] and rel.retimed == 1
    m = {r["message_id"]: r for r in read_messages(ledger).to_pylist()}
    assert m["b0"]["state"] == "planned" and m["b0"]["last_error"] == "min_gap_other_campaigns"
    assert abs(m["b0"]["next_attempt_at"].timestamp() - (NOW - 3600 + 12 * 3600)) < 1
    out = {"user_id": 0, "steps": [{"message_id": "b0", "reason": None, "send_at": m["b0"]["send_at"]}]}
    _with_ledger(out, ledger, "B")
    assert out["steps"][0]["sent"]["why"] == "min_gap_other_campaigns" and out["steps"][0]["sent"]["retimed_to"]


def test_a_message_later_than_max_lateness_is_skipped_and_a_slightly_late_one_goes(tmp_path):
    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        late = _plan(1, "C", "late", NOW - DEFAULT_MAX_LATENESS - 3600)
        ok = _plan(1, "C", "ok", NOW - GRACE_SECONDS / 2)
        for p in (late, ok):
            led.load_plan(p)
        record_plan(led, ok, {"campaign_id": "C", "policy": {"max_messages": 5, "window_days": 7}})
        rows = led.claim("push", 10, now=NOW, release_until=NOW)
        rel = Release(led)
        keep = rel.screen(rows, NOW)
    assert [r[0] for r in keep] == ["ok0"]
    assert _state(ledger)["late0"] == ("skipped", "too_late") and rel.skipped == {"too_late": 1}


def test_a_late_message_whose_new_time_is_in_quiet_hours_waits_for_the_windows_end(tmp_path):
    # given a message due at 20:00 UTC, claimed at 22:30 (late) with quiet hours 22:00-08:00 in UTC
    due = NOW + 8 * 3600
    claimed = NOW + 10.5 * 3600
    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        p = _plan(1, "Q", "q", due)
        led.load_plan(p)
        record_plan(led, p, {"campaign_id": "Q", "timezone": "UTC",
                             "policy": {"max_messages": 5, "window_days": 7, "quiet_hours": [22 * 60, 8 * 60]}})
        rows = led.claim("push", 10, now=claimed, release_until=claimed)
        rel = Release(led)
        assert rel.screen(rows, claimed) == []
        assert rel.retimed == 1
    m = read_messages(ledger)
    assert m["state"].to_pylist() == ["planned"]
    next_at = m["next_attempt_at"][0].as_py()
    assert next_at.timestamp() == NOW + 20 * 3600  # 08:00 the next morning


def test_two_claimers_on_one_ledger_never_release_more_than_the_cap_in_any_order(tmp_path):
    """Two connections claiming and screening in any interleaving keep every user within the cap:
    a claim commits its rows in flight before its screen, and a screen counts every row in flight,
    so of two claims of one user's messages the later screen always sees the earlier one."""
    import random

    import numpy as np

    for seed in range(6):
        ledger = tmp_path / f"l{seed}.db"
        with Ledger(ledger) as one, Ledger(ledger) as two:
            plans = [_plan(20, cid, cid, NOW).set_column(2, "user_id", pa.array(np.arange(20) % 5, pa.int64()))
                     for cid in ("A", "B")]  # 4 messages per user per campaign, cap 3
            for p, cid in zip(plans, ("A", "B")):
                one.load_plan(p)
                record_plan(one, p, {"campaign_id": cid, "policy": {"max_messages": 3, "window_days": 7}})
            senders = [(one, Release(one, now=True)), (two, Release(two, now=True))]
            rng = random.Random(seed)
            claimed: list[tuple] = []
            kept: list[tuple] = []
            while True:
                led, rel = senders[rng.randrange(2)]
                if claimed and rng.random() < 0.5:  # screen a batch claimed earlier, by whichever sender took it
                    rel_of, rows = claimed.pop(rng.randrange(len(claimed)))
                    kept += rel_of.screen(rows, NOW)
                    continue
                rows = led.claim("push", rng.randint(1, 6), now=NOW, release_until=NOW)
                if rows:
                    claimed.append((rel, rows))
                elif not claimed:
                    break
            per_user = np.bincount([r[1] for r in kept], minlength=5)
            assert per_user.max() <= 3 and per_user.sum() >= 5, (seed, per_user)


def test_when_the_cap_has_room_for_some_the_earlier_planned_messages_go_whichever_lane_screens_first(tmp_path):
    """One user, a three-step drip on two channels, cap 2, everything claimed at once with
    --now: steps 0 and 1 go and step 2 is skipped, in every order of the lanes' screens, and
    a still-planned earlier step counts against a later one claimed before it."""
    import itertools

    steps = [(0, "email", NOW), (1, "push", NOW + 86_400), (2, "email", NOW + 2 * 86_400)]
    for order in itertools.permutations(range(3)):
        for claim_first_only in (False, True):
            path = tmp_path / f"l{''.join(map(str, order))}{int(claim_first_only)}.db"
            with Ledger(path) as led:
                for k, ch, at in steps:
                    p = make_plan(1, send_at=at, step_index=k, prefix=f"s{k}_", channel=ch)
                    led.load_plan(p)
                record_plan(led, p, {"campaign_id": "c1", "policy": {"max_messages": 2, "window_days": 7}})
                rel = Release(led, now=True)
                batches = {ch: led.claim(ch, 10, now=NOW, release_until=float("inf")) for ch in ("email", "push")}
                by_step = {r[3]: (ch, r) for ch, rows in batches.items() for r in rows}
                if claim_first_only:  # the later steps' lanes claimed and screen before step 0 is claimed
                    led.unclaim([by_step["step0"][1][0]])
                for k in order:
                    ch, row = by_step[f"step{k}"]
                    if claim_first_only and k == 0:
                        continue
                    rel.screen([row], NOW)
                if claim_first_only:
                    rows = led.claim("email", 10, now=NOW, release_until=float("inf"))
                    assert [r[3] for r in rows] == ["step0"]
                    rel.screen(rows, NOW)
            state = _state(path)
            assert state["s2_0"] == ("skipped", "cap"), (order, claim_first_only, state)
            assert state["s0_0"][0] == state["s1_0"][0] == "in_flight", (order, claim_first_only, state)
