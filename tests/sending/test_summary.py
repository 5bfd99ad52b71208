"""What a send did: the summary's counts and what is still pending."""

from __future__ import annotations

from engine.sending.summary import DispatchSummary


def test_pending_counts_planned_failed_and_in_flight_on_every_channel():
    s = DispatchSummary("ledger.db", states={
        "email": {"planned": 3, "sent": 10, "failed": 2, "dead": 1},
        "sms": {"in_flight": 4, "skipped": 7}})
    assert s.pending == 3 + 2 + 4


def test_a_new_summary_is_empty_and_owns_its_dicts():
    a, b = DispatchSummary("a.db"), DispatchSummary("b.db")
    assert (a.sent, a.dead, a.pending, a.complete, a.stopped) == (0, 0, 0, False, None)
    a.skipped["min_gap"] = 1
    a.per_channel["email"] = {"sent": 1.0}
    assert b.skipped == {} and b.per_channel == {} and b.samples == []
