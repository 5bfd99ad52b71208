"""``min_gap_hours`` across campaigns: at planning time from the ledger, and at release time."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow.compute as pc

from engine.ledger.store import Ledger, read_messages
from engine.planning.campaign import load_campaign
from engine.planning.planner import plan
from engine.tz import to_epoch_seconds
from tests.helpers import TimerClock
from tests.test_guarantees import DAY, START, _run_with, world_scores  # noqa: F401 (a fixture)

GAP = 12 * 3600


def one_step(cid: str, gap: float = GAP) -> object:
    return load_campaign({
        "campaign": {"id": cid, "timezone": "America/New_York", "holdout": 0.0},
        "audience": {"where": "days_inactive >= 14"},
        "policy": {"max_messages": 3, "window_days": 7, "min_gap_hours": gap / 3600, "quiet_hours": []},
        "steps": [{"name": "a", "channels": ["push", "email", "sms"]}],
    })


def closest_pairs(messages) -> float:
    """The shortest time between two messages of different campaigns to one user (s; inf: none)."""
    uid, at, cid = messages["user_id"], messages["at"], messages["campaign_id"]
    best = np.inf
    order = np.lexsort((at, uid))
    for i, j in zip(order, order[1:]):
        if uid[i] == uid[j] and cid[i] != cid[j]:
            best = min(best, abs(at[j] - at[i]))
    return best


def rows(*plans) -> dict:
    """user_id, campaign_id and send_at (epoch s) of the planned messages of ``plans``."""
    ok = [p.filter(pc.is_null(p["reason"])) for p in plans]
    return {"user_id": np.concatenate([p["user_id"].to_numpy() for p in ok]),
            "campaign_id": np.concatenate([np.array(p["campaign_id"].to_pylist()) for p in ok]),
            "at": np.concatenate([to_epoch_seconds(p["send_at"]) for p in ok])}


def test_a_campaign_planned_against_the_ledger_keeps_the_gap_from_another_campaign(world_scores, tmp_path):
    # given campaign A planned and loaded into the ledger (scheduled, not sent yet)
    ledger = tmp_path / "l.db"
    a = plan(world_scores, one_step("gap-a"), as_of=START, ledger=ledger)
    with Ledger(ledger) as led:
        led.load_plan(a)
    # when campaign B, which wants the same best hours, is planned with that ledger
    blind = plan(world_scores, one_step("gap-b"), as_of=START)
    b = plan(world_scores, one_step("gap-b"), as_of=START, ledger=ledger)
    # then blind, B would have sent at A's instants; with the ledger it keeps 12 hours from every A message
    assert closest_pairs(rows(a, blind)) == 0
    assert closest_pairs(rows(a, b)) >= GAP
    assert len(rows(b)["at"]) > 0.8 * len(rows(blind)["at"])  # moved, not dropped


def test_two_plans_made_blind_keep_the_gap_at_release_time(world_scores, tmp_path):
    # given two one-step plans made without a ledger, both for the same instants
    a = plan(world_scores, one_step("gap-a"), as_of=START)
    b = plan(world_scores, one_step("gap-b"), as_of=START)
    ledger = tmp_path / "l.db"
    with Ledger(ledger) as led:
        led.load_plan(a)
    first = float(to_epoch_seconds(a.filter(pc.is_null(a["reason"]))["send_at"]).min())
    # when one sender releases both on a clock that moves (never the wall time)
    summary, adapter = asyncio.run(_run_with(TimerClock(first), b, ledger))
    # then the second message to a user went 12 hours after the first, re-timed, not dropped
    assert summary.retimed > 0
    m = read_messages(ledger)
    sent = m.filter(pc.equal(m["state"], "sent"))
    at = {mid: t for t, msg in adapter.sent for mid in [msg.message_id]}
    got = {"user_id": sent["user_id"].to_numpy(), "campaign_id": np.array(sent["campaign_id"].to_pylist()),
           "at": np.array([at[x] for x in sent["message_id"].to_pylist()])}
    assert closest_pairs(got) >= GAP - 1
    planned = sum(x.filter(pc.is_null(x["reason"])).num_rows for x in (a, b))
    assert sent.num_rows + sum(summary.skipped.values()) >= planned - 5


def _sent(ledger, adapter) -> dict:
    m = read_messages(ledger)
    sent = m.filter(pc.equal(m["state"], "sent"))
    at = {msg.message_id: t for t, msg in adapter}
    return {"user_id": sent["user_id"].to_numpy(), "campaign_id": np.array(sent["campaign_id"].to_pylist()),
            "at": np.array([at[x] for x in sent["message_id"].to_pylist()])}


def test_a_short_gap_campaign_keeps_a_long_gap_campaigns_spacing_when_planned(world_scores, tmp_path):
    """Campaign A promises 12 h between two messages to a user, from it or any other; B allows
    1 h.  B planned after A was sent keeps A's 12 h from A's messages (the larger gap)."""
    ledger = tmp_path / "l.db"
    a = plan(world_scores, one_step("long-a"), as_of=START)
    first = float(to_epoch_seconds(a.filter(pc.is_null(a["reason"]))["send_at"]).min())
    asyncio.run(_run_with(TimerClock(first), a, ledger))
    b = plan(world_scores, one_step("short-b", gap=3600), as_of=START, ledger=ledger)
    assert closest_pairs(rows(a, b)) >= GAP
    assert rows(b)["at"].size > 0


def test_a_short_gap_campaign_sent_blind_is_retimed_to_the_long_gap(world_scores, tmp_path):
    """The same at release time: B planned blind for A's very instants, sent after A, goes
    12 h after A's message to each user (re-timed, not dropped), not 1 h."""
    ledger = tmp_path / "l.db"
    a = plan(world_scores, one_step("long-a"), as_of=START)
    b = plan(world_scores, one_step("short-b", gap=3600), as_of=START)
    first = float(to_epoch_seconds(a.filter(pc.is_null(a["reason"]))["send_at"]).min())
    _, sent_a = asyncio.run(_run_with(TimerClock(first), a, ledger))
    summary, sent_b = asyncio.run(_run_with(TimerClock(first), b, ledger))
    assert summary.retimed > 0 and summary.sent > 0
    assert closest_pairs(_sent(ledger, sent_a.sent + sent_b.sent)) >= GAP - 1


def test_a_gap_longer_than_the_cap_window_is_kept_from_messages_older_than_the_window(world_scores, tmp_path):
    """Campaign A promises 10 days between two messages to a user; B (window 7 days, gap 1 h) is
    planned 8 days after A was sent.  A's messages are older than B's 7-day window, yet B keeps
    A's 10 days from them when planned (it read the ledger back 10 days, not only 7)."""
    from engine.tz import parse_as_of

    ledger = tmp_path / "l.db"
    long_gap = 10 * DAY
    a = plan(world_scores, one_step("ten-days-a", gap=long_gap), as_of=START)
    first = float(to_epoch_seconds(a.filter(pc.is_null(a["reason"]))["send_at"]).min())
    asyncio.run(_run_with(TimerClock(first), a, ledger))
    later = parse_as_of(START) + 8 * DAY
    b = plan(world_scores, one_step("short-b", gap=3600), as_of=later, ledger=ledger)
    assert rows(b)["at"].size > 0
    assert closest_pairs(rows(a, b)) >= long_gap
