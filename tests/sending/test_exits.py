"""Exit rules at send time: a later step of a user who came back after the start is skipped as exited."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from engine.errors import InputError
from engine.ledger.store import Ledger, read_messages
from engine.sending.exits import POLL_SECONDS, ExitWatch
from engine.tz import from_epoch_seconds
from tests.helpers import make_plan

START = 1_793_491_200.0  # 2026-11-01 UTC: the campaign's first send


def _events(rows):
    return pa.table({"user_id": pa.array([r[0] for r in rows], pa.int64()),
                     "ts": from_epoch_seconds(np.array([r[1] for r in rows], np.int64)),
                     "event": [r[2] for r in rows]})


def _states(ledger):
    m = read_messages(ledger)
    return dict(zip(m["message_id"].to_pylist(), zip(m["state"].to_pylist(), m["last_error"].to_pylist())))


def test_users_who_did_the_steps_exit_event_after_the_start_leave_later_steps(tmp_path):
    # given step 0 at the start and step 1 (exit on activity) and step 2 (exit on purchase) later, users 0-3
    ledger = tmp_path / "ledger.db"
    feedback = tmp_path / "feedback"
    feedback.mkdir()
    with Ledger(ledger) as led:
        led.load_plan(make_plan(4, send_at=START, step_index=0, prefix="a"))
        led.load_plan(make_plan(4, send_at=START + 86400, step_index=1, prefix="b", exit_on="activity"))
        led.load_plan(make_plan(4, send_at=START + 2 * 86400, step_index=2, prefix="c", exit_on="purchase"))
        # user 0 clicked after the start, user 1 had a session before it, user 2 only opened, user 3 bought
        feather.write_feather(_events([(0, START + 60, "click"), (1, START - 60, "session"), (2, START + 60, "open"),
                                       (3, START + 60, "purchase")]), feedback / "part-00001.arrow")
        watch = ExitWatch(led, feedback)
        # when
        assert watch and watch.poll(now=0.0) == 3  # b0, b3 and c3
        # then nothing more is skipped until a new event arrives, and polls wait POLL_SECONDS
        assert watch.poll(now=1.0) == 0
        feather.write_feather(_events([(1, START + 90, "purchase")]), feedback / "part-00002.arrow")
        assert watch.maybe_poll(now=1.0 + POLL_SECONDS / 2) == 0
        assert watch.maybe_poll(now=1.0 + POLL_SECONDS) == 2  # b1 and c1
        assert watch.exited == 5
    states = _states(ledger)
    assert {m for m, (s, why) in states.items() if s == "skipped" and why == "exited"} == {"b0", "b3", "c3", "b1", "c1"}
    assert all(states[f"a{u}"][0] == "planned" for u in range(4))  # the first step is never skipped


def test_no_sources_is_falsy_and_a_missing_or_bad_source_is_named(tmp_path):
    with Ledger(tmp_path / "ledger.db") as led:
        assert not ExitWatch(led, None) and ExitWatch(led, None).maybe_poll(0.0) == 0
        with pytest.raises(InputError, match="does not exist; pass an events file or the directory"):
            ExitWatch(led, tmp_path / "absent")
        feather.write_feather(pa.table({"user_id": [1], "event": ["click"]}), tmp_path / "e.arrow")
        with pytest.raises(InputError, match="no column 'ts'"):
            ExitWatch(led, tmp_path / "e.arrow").poll(0.0)


def _stop_events(rows):
    t = _events([(u, at, ev) for u, at, ev, _ in rows])
    return t.append_column("channel", pa.array([r[3] for r in rows], pa.string()))


def test_unsubscribes_complaints_and_bounces_in_the_sources_suppress_every_pending_message(tmp_path):
    # given push messages of two steps to users 0-3; user 1 unsubscribed from push, user 2 complained
    # without naming a channel, user 3 bounced on email (not this plan's channel), user 0 only opened
    from engine.ledger.read import read_suppressions

    ledger = tmp_path / "ledger.db"
    with Ledger(ledger) as led:
        led.load_plan(make_plan(4, send_at=START, step_index=0, prefix="a"))
        led.load_plan(make_plan(4, send_at=START + 86400, step_index=1, prefix="b", exit_on="none"))
        src = tmp_path / "esp-export.arrow"
        feather.write_feather(_stop_events([(1, START - 600, "unsubscribe", "push"), (2, START + 60, "complaint", None),
                                            (3, START + 60, "bounce", "email"), (0, START + 60, "open", "push")]), src)
        watch = ExitWatch(led, src)
        assert watch.would_suppress(make_plan(4)) == 0  # nothing read yet
        watch.read()
        assert watch.would_suppress(pa.concat_tables([make_plan(4, prefix="a"), make_plan(4, prefix="b")])) == 4
        # when polled
        watch.poll(now=0.0)
        assert watch.suppressed == 4 and watch.exited == 0
    # then every message of users 1 and 2 is skipped as suppressed, at any step; users 0 and 3 keep theirs,
    # and the ledger keeps the suppressions for the next plan
    states = _states(ledger)
    assert {m for m, (s, why) in states.items() if why == "suppressed"} == {"a1", "b1", "a2", "b2"}
    assert all(states[m][0] == "planned" for m in ("a0", "b0", "a3", "b3"))
    sup = read_suppressions(ledger)
    got = set(zip(sup["user_id"].to_pylist(), sup["channel"].to_pylist(), sup["reason"].to_pylist()))
    assert {(1, "push", "unsubscribe"), (2, "email", "complaint"), (2, "sms", "complaint"), (2, "push", "complaint"),
            (3, "email", "bounce")} <= got


def test_a_send_with_an_unsubscribe_in_its_events_never_sends_to_that_user(tmp_path):
    """The real dispatcher and a real webhook server on 127.0.0.1: a user who unsubscribed in
    the --events file gets nothing, the others get one request each."""
    import asyncio

    from aiohttp import web

    from adapters.webhook import WebhookAdapter
    from engine.sending.dispatcher import Channel, dispatch
    from tests.helpers import local_server

    seen = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request.headers["Idempotency-Key"])
        return web.json_response({"ok": True}) if len(seen) <= 20 else web.Response(status=400)

    src = tmp_path / "events.arrow"
    feather.write_feather(_stop_events([(2, START, "unsubscribe", "push")]), src)

    async def main():
        async with local_server(handle) as base:
            adapter = WebhookAdapter(base + "/hook", "secret")
            try:
                return await dispatch(make_plan(4), {"push": Channel(adapter, max_attempts=2)}, tmp_path / "l.db",
                                      now=True, events=[src], handle_signals=False, max_seconds=20)
            finally:
                await adapter.aclose()

    summary = asyncio.run(main())
    assert sorted(seen) == ["m0", "m1", "m3"] and summary.suppressed == 1
    assert _states(tmp_path / "l.db")["m2"] == ("skipped", "suppressed")
