"""The dispatch loop against a small in-test adapter (a real object behind the Adapter protocol).

The same loop runs against the local provider server in tests/sending/test_send_kill.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from tests.helpers import make_plan
from engine.sending.protocol import Result
from engine.sending.dispatcher import Channel, dispatch, send
from engine.errors import ConfigError, DispatchError, InputError, Interrupted
from engine.ledger.store import Ledger, read_messages, read_suppressions
from engine.schema import TIMESTAMP


class Recorder:
    """An adapter that answers from a rule and records every call (time, ids, concurrency)."""

    name = "recorder"

    def __init__(self, rule=None, *, max_batch: int = 1, latency: float = 0.0, on_call=None):
        self.rule = rule or (lambda msg, attempt: Result(msg.message_id, "sent", provider_id="p-" + msg.message_id))
        self.max_batch = max_batch
        self.latency = latency
        self.on_call = on_call
        self.calls: list[tuple[float, list[str]]] = []
        self.attempts: dict[str, int] = {}
        self.active = 0
        self.max_active = 0
        self.closed = False

    async def send(self, batch):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.calls.append((time.time(), [m.message_id for m in batch]))
        if self.on_call:
            self.on_call(self)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            out = []
            for m in batch:
                self.attempts[m.message_id] = self.attempts.get(m.message_id, 0) + 1
                out.append(self.rule(m, self.attempts[m.message_id]))
            return out
        finally:
            self.active -= 1

    async def aclose(self):
        self.closed = True

    def sent_ids(self) -> list[str]:
        return [i for _, ids in self.calls for i in ids]


def test_every_message_goes_out_once_and_a_rerun_sends_nothing(tmp_path):
    # given 300 planned push messages and an adapter with a little latency
    plan, adapter = make_plan(300), Recorder(latency=0.001)
    ledger = tmp_path / "ledger.db"

    # when we send now, then send again on the same ledger
    first = send(plan, {"push": Channel(adapter, concurrency=8)}, ledger, now=True)
    second = send(plan, {"push": Channel(adapter, concurrency=8)}, ledger, now=True)

    # then each message reached the adapter exactly once, all are sent, the rerun had nothing to do
    assert sorted(adapter.sent_ids()) == sorted(f"m{i}" for i in range(300))
    assert first.sent == 300 and first.complete and second.sent == 0 and second.complete
    assert first.states == {"push": {"sent": 300}}
    assert adapter.max_active <= 8
    t = read_messages(ledger)
    assert set(t.column("provider_id").to_pylist()) == {f"p-m{i}" for i in range(300)}


def test_messages_wait_for_their_send_at(tmp_path):
    # given messages due 0.4 s from now
    due = time.time() + 0.4
    adapter = Recorder()

    # when sent without --now
    summary = send(make_plan(5, send_at=due), {"push": adapter}, tmp_path / "l.db")

    # then none went out before its send_at (the plan's second resolution: floor of due)
    assert summary.sent == 5
    assert min(t for t, _ in adapter.calls) >= int(due)


def test_retries_honour_retry_after_and_backoff(tmp_path):
    # given a provider that answers 429 Retry-After 0.3 s to every first attempt
    def rule(m, attempt):
        if attempt == 1:
            return Result(m.message_id, "retry", retry_after=0.3, error="429 too many requests")
        return Result(m.message_id, "sent")

    adapter = Recorder(rule)

    # when 10 messages are sent
    summary = send(make_plan(10), {"push": adapter}, tmp_path / "l.db", now=True)

    # then each went twice, and no second attempt came before its Retry-After
    assert summary.sent == 10 and summary.retried == 10
    first, second = {}, {}
    for t, ids in adapter.calls:
        for i in ids:
            (second if i in first else first)[i] = t
    assert all(second[i] - first[i] >= 0.3 - 1e-3 for i in first)
    assert set(read_messages(tmp_path / "l.db").column("attempts").to_pylist()) == {2}


def test_gives_up_after_max_attempts(tmp_path):
    adapter = Recorder(lambda m, a: Result(m.message_id, "retry", retry_after=0.0, error="503 unavailable"))
    summary = send(make_plan(3), {"push": Channel(adapter, max_attempts=3)}, tmp_path / "l.db", now=True)
    rows = read_messages(tmp_path / "l.db").to_pylist()
    assert summary.complete and summary.dead == 3
    assert {r["state"] for r in rows} == {"dead"} and {r["attempts"] for r in rows} == {3}
    assert rows[0]["last_error"] == "gave up after 3 attempts: 503 unavailable"


def test_hard_bounce_suppresses_the_address_for_later_steps(tmp_path):
    # given step 0 now and step 1 a moment later, and user 1's address bouncing hard
    def rule(m, a):
        if m.to == "tok1":
            return Result(m.message_id, "failed", error="400 hard bounce")
        return Result(m.message_id, "sent")

    real = time.time()
    later = int(real) + 2  # plan instants are whole seconds
    plan = pa.concat_tables([make_plan(3, send_at=real - 10), make_plan(3, send_at=later, step_index=1, prefix="s")])
    adapter = Recorder(rule)
    offset = later - real - 0.3  # an injected clock that reaches step 1 in 0.3 s

    # when the campaign is sent
    summary = send(plan, {"push": adapter}, tmp_path / "l.db", clock=lambda: time.time() + offset)

    # then the bounce is dead and suppressed, and step 1 to that address is skipped, not sent
    states = {r["message_id"]: (r["state"], r["last_error"]) for r in read_messages(tmp_path / "l.db").to_pylist()}
    assert states["m1"] == ("dead", "400 hard bounce")
    assert states["s1"] == ("skipped", "suppressed")
    assert "s1" not in adapter.sent_ids() and summary.complete
    assert read_suppressions(tmp_path / "l.db").column("address").to_pylist() == ["tok1"]


def test_users_who_came_back_leave_the_sequence(tmp_path):
    # given a two-step plan whose step 1 exits on activity, and fresh events where user 2 had a session
    start = time.time() - 60
    plan = pa.concat_tables([make_plan(3, send_at=start), make_plan(3, send_at=start, step_index=1, prefix="s",
                                                                      exit_on="activity")])
    events = tmp_path / "events.arrow"
    feather.write_feather(pa.table({
        "user_id": pa.array([2, 0], pa.int64()),
        "ts": pa.array([int((start + 30) * 1e6), int((start - 3600) * 1e6)], TIMESTAMP),
        "event": ["session", "session"],
    }), events)
    adapter = Recorder()

    # when sent with the events
    summary = send(plan, {"push": adapter}, tmp_path / "l.db", now=True, events=events)

    # then user 2's step 1 is skipped (user 0's session was before the campaign), everything else sent
    assert summary.exited == 1
    assert sorted(adapter.sent_ids()) == ["m0", "m1", "m2", "s0", "s1"]


def test_sigint_drains_and_a_rerun_resumes(tmp_path):
    # given an adapter that raises SIGINT in this process at its 20th request
    def on_call(ad):
        if len(ad.calls) == 20:
            os.kill(os.getpid(), signal.SIGINT)

    adapter = Recorder(latency=0.01, on_call=on_call)
    ledger = tmp_path / "l.db"
    plan = make_plan(200)

    # when sending 200 messages
    with pytest.raises(Interrupted, match="run the same command again to resume") as info:
        send(plan, {"push": Channel(adapter, rate_per_second=500, concurrency=4)}, ledger, now=True)

    # then the run drained: nothing is left in flight, and what the adapter took is recorded as sent
    rows = read_messages(ledger).to_pylist()
    assert "in_flight" not in {r["state"] for r in rows}
    sent = {r["message_id"] for r in rows if r["state"] == "sent"}
    assert sent == set(adapter.sent_ids()) and 20 <= len(sent) < 200
    assert info.value.summary.pending == 200 - len(sent)

    # and a rerun sends the rest, each message exactly once overall
    summary = send(plan, {"push": Channel(adapter, concurrency=4)}, ledger, now=True)
    assert summary.complete and sorted(adapter.sent_ids()) == sorted(f"m{i}" for i in range(200))


def test_max_seconds_stops_cleanly_with_messages_pending(tmp_path):
    adapter = Recorder()
    summary = send(make_plan(50), {"push": Channel(adapter, rate_per_second=50)}, tmp_path / "l.db",
                   now=True, max_seconds=0.3)
    assert not summary.complete and summary.stopped == "max_seconds"
    assert 5 <= summary.sent <= 20
    assert summary.pending == 50 - summary.sent
    assert "in_flight" not in {r for c in summary.states.values() for r in c}


def test_batches_respect_max_batch_and_the_limiter_charges_per_request(tmp_path):
    # given an email-like adapter taking 50 messages per request, limited to 5 requests per second
    adapter = Recorder(max_batch=50)

    # when 200 messages go out
    summary = send(make_plan(200, channel="email"), {"email": Channel(adapter, rate_per_second=5, concurrency=2)},
                   tmp_path / "l.db", now=True)

    # then they went in requests of at most 50, paced at 5 requests per second (not 5 messages)
    assert summary.sent == 200
    sizes = [len(ids) for _, ids in adapter.calls]
    assert max(sizes) == 50 and sum(sizes) == 200
    times = sorted(t for t, _ in adapter.calls)
    assert all(b - a >= 1 / 5 / 0.99 * 0.9 for a, b in zip(times, times[1:]))


def test_broken_adapter_stops_the_run_without_losing_messages(tmp_path):
    def rule(m, a):
        raise TypeError("bad template field")

    with pytest.raises(DispatchError, match="adapter failed with TypeError: bad template field"):
        send(make_plan(10), {"push": Recorder(rule)}, tmp_path / "l.db", now=True)
    states = {r["state"] for r in read_messages(tmp_path / "l.db").to_pylist()}
    assert states == {"planned"}


def test_a_channel_without_provider_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"channel sms .*\[channels.sms\]"):
        send(make_plan(2, channel="sms"), {"push": Recorder()}, tmp_path / "l.db", now=True)


def test_dry_run_touches_nothing(tmp_path):
    ledger = tmp_path / "l.db"
    adapter = Recorder()
    summary = send(make_plan(30), {"push": adapter}, ledger, dry_run=True)
    assert not ledger.exists() and adapter.calls == []
    assert sum(summary.dry_run.column("messages").to_pylist()) == 30
    assert summary.samples[0]["to"] == "***"  # addresses are masked in the preview


def test_one_sender_per_ledger(tmp_path):
    ledger = tmp_path / "l.db"

    async def main():
        slow = Recorder(latency=0.2)
        first = asyncio.ensure_future(dispatch(make_plan(2), {"push": slow}, ledger, now=True))
        await asyncio.sleep(0.1)
        with pytest.raises(DispatchError, match="another 'winback send' is using the ledger"):
            await dispatch(make_plan(2), {"push": Recorder()}, ledger, now=True)
        return await first

    assert asyncio.run(main()).sent == 2


def test_missing_plan_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        send(tmp_path / "nope.arrow", {"push": Recorder()}, tmp_path / "l.db")


def test_empty_plan_finishes_at_once(tmp_path):
    summary = send(make_plan(0), {"push": Recorder()}, tmp_path / "l.db", now=True)
    assert summary.complete and summary.sent == 0


def test_cli_help_explains_every_option_with_examples(capsys):
    from engine.cli import main

    with pytest.raises(SystemExit) as info:
        main(["send", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for option in ("--providers", "--ledger", "--now", "--dry-run", "--events", "--at-most-once", "--max-seconds"):
        assert option in out
    assert "winback send plan.arrow --providers providers.toml --ledger ledger.db --now" in out


def test_cli_bad_plan_is_one_line_and_nonzero(tmp_path, capsys):
    from engine.cli import main

    # given a plan file that does not exist, when sent, then one line on stderr, exit 2, no ledger
    code = main(["send", str(tmp_path / "nope.arrow"), "--providers", str(tmp_path / "p.toml"),
                 "--ledger", str(tmp_path / "l.db"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("InputError: plan ") and err.count("\n") == 1
    assert not (tmp_path / "l.db").exists()


def test_cancelling_the_dispatch_task_leaves_a_consistent_ledger(tmp_path):
    # given a dispatch running inside a caller's event loop
    ledger = tmp_path / "l.db"
    adapter = Recorder(latency=0.01)
    plan = make_plan(300)

    async def main():
        task = asyncio.ensure_future(dispatch(plan, {"push": Channel(adapter, rate_per_second=400,
                                                                              concurrency=4)}, ledger, now=True))
        await asyncio.sleep(0.3)
        # when the caller cancels it
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())

    # then nothing is left in flight, what went out is recorded, and a rerun finishes the rest once
    rows = read_messages(ledger).to_pylist()
    assert "in_flight" not in {r["state"] for r in rows}
    assert {r["message_id"] for r in rows if r["state"] == "sent"} == set(adapter.sent_ids())
    assert send(plan, {"push": adapter}, ledger, now=True).complete
    assert sorted(adapter.sent_ids()) == sorted(f"m{i}" for i in range(300))


def test_a_broadcast_plan_is_recorded_once_for_the_broadcast_guard(tmp_path):
    from engine.ledger.store import read_broadcasts

    plan = make_plan(3)
    plan = plan.replace_schema_metadata({"winback.plan": '{"campaign_id": "c1", "broadcast": true}'})
    send(plan, {"push": Recorder()}, tmp_path / "l.db", now=True)
    send(plan, {"push": Recorder()}, tmp_path / "l.db", now=True)  # rerun: nothing new loaded
    assert read_broadcasts(tmp_path / "l.db").column("campaign_id").to_pylist() == ["c1"]


@pytest.mark.parametrize("at_most_once", [False, True])
def test_messages_in_flight_at_a_crash_are_resent_unless_at_most_once(tmp_path, at_most_once):
    # given a ledger a crashed run left with 3 of 10 messages in flight
    ledger = tmp_path / "l.db"
    led = Ledger(ledger)
    led.load_plan(make_plan(10))
    led.claim("push", 3, now=time.time(), release_until=float("inf"))
    led._con.close()  # killed: no flush, no close
    adapter = Recorder()

    # when the send is run again
    summary = send(make_plan(10), {"push": adapter}, ledger, now=True, at_most_once=at_most_once)

    # then at-least-once resends them; at-most-once marks them dead and never sends them
    assert summary.recovered == 3 and summary.complete
    if at_most_once:
        assert len(adapter.sent_ids()) == 7 and summary.states["push"] == {"sent": 7, "dead": 3}
    else:
        assert len(adapter.sent_ids()) == 10 and summary.states["push"] == {"sent": 10}


def test_cli_dry_run_prints_per_channel_step_hour_and_touches_nothing(tmp_path, capsys):
    from engine.cli import main

    # given a plan file and a providers file (no secret needed for a dry run)
    plan = tmp_path / "plan.arrow"
    feather.write_feather(make_plan(12), plan)
    providers = tmp_path / "providers.toml"
    providers.write_text('[channels.push]\nadapter = "webhook"\nurl = "http://127.0.0.1:9/hooks/push"\n'
                         'secret_env = "WINBACK_TEST_UNSET_SECRET"\nrate_per_second = 10\n')

    # when it is a dry run
    code = main(["send", str(plan), "--providers", str(providers), "--ledger", str(tmp_path / "l.db"),
                 "--dry-run", "--no-progress"])

    # then it prints the counts and masked samples, exits 0, and creates no ledger
    out = capsys.readouterr().out
    assert code == 0
    assert "dry run: 12 messages planned" in out and "ledger:" not in out
    assert "push" in out and "step0" in out and "sample push: m0" in out
    assert not (tmp_path / "l.db").exists()


class OneAtATime(Recorder):
    """A Recorder that also offers the optional ``send_one`` fast path (max_batch 1)."""

    def __init__(self, rule=None, **kw):
        super().__init__(rule, **kw)
        self.one_calls = 0

    async def send_one(self, m):
        self.one_calls += 1
        return (await self.send([m]))[0]


def test_send_one_fast_path_records_sends_retries_and_dead_letters(tmp_path):
    # given an adapter with send_one: m0 fails hard, m1 needs a retry, the rest go through
    def rule(m, attempt):
        if m.message_id == "m0":
            return Result(m.message_id, "failed", error="400 hard bounce")
        if m.message_id == "m1" and attempt == 1:
            return Result(m.message_id, "retry", retry_after=0.05, error="503 unavailable")
        return Result(m.message_id, "sent", provider_id="p-" + m.message_id)

    adapter = OneAtATime(rule, latency=0.001)

    # when 200 messages are sent through it
    summary = send(make_plan(200), {"push": Channel(adapter, concurrency=8)}, tmp_path / "l.db", now=True)

    # then the dispatcher used send_one for every request and the ledger holds every outcome
    assert adapter.one_calls == len(adapter.calls) == 201
    assert summary.sent == 199 and summary.dead == 1 and summary.retried == 1 and summary.complete
    rows = {r["message_id"]: r for r in read_messages(tmp_path / "l.db").to_pylist()}
    assert rows["m0"]["state"] == "dead" and rows["m1"]["attempts"] == 2
    assert rows["m5"]["provider_id"] == "p-m5"
    assert read_suppressions(tmp_path / "l.db").column("address").to_pylist() == ["tok0"]


def test_a_plan_with_extra_columns_still_loads_and_sends(tmp_path):
    # given a plan.arrow with columns the dispatcher does not use (a theme string, an
    # items list<int64> with nulls and empty lists) written to disk with its metadata
    plan = make_plan(50)
    plan = plan.append_column("theme", pa.array([None if i % 7 == 0 else f"t{i % 3}" for i in range(50)],
                                                 pa.string()))
    items = [None if i % 5 == 0 else list(range(i % 4)) for i in range(50)]
    plan = plan.append_column("items", pa.array(items, pa.list_(pa.int64())))
    path = tmp_path / "plan.arrow"
    feather.write_feather(plan, path)
    adapter = Recorder()

    # when it is previewed, then sent from the file (and from the table)
    preview = send(path, {"push": adapter}, tmp_path / "l.db", now=True, dry_run=True)
    summary = send(path, {"push": adapter}, tmp_path / "l.db", now=True)
    again = send(plan, {"push": adapter}, tmp_path / "l.db", now=True)

    # then every message went out once and the extra columns changed nothing
    assert preview.dry_run.column("messages").to_pylist() == [50]
    assert summary.sent == 50 and summary.complete and again.sent == 0
    assert sorted(adapter.sent_ids()) == sorted(f"m{i}" for i in range(50))


def test_webhook_body_is_byte_for_byte_the_json_module_encoding():
    """The webhook adapter writes its body field by field on the send path; it must be the
    exact bytes of ``json.dumps(doc, separators=(",", ":"), ensure_ascii=False)``."""
    import json

    from engine.sending.protocol import Message
    from adapters.webhook import _json_doc, message_json

    cases = [
        Message("m1", 5, "push", "s", None, "tok", None, "", 1.79e9),
        Message('a"b\\c\n\u2028é😀', np.int64(7), "email", "s\x00", "v", "x@y.z", "Sub\tj", "b\u00a0", 1.79e9,
                "tpl", "camp"),
        Message("m3", True, "sms", "s", "v", "+15550001", "S", "b", 0, "", ""),
        Message("m4", 1, "sms", 3, "v", "+15550001", "S", "b", 0),  # not a str: the encoder's answer
    ]
    for m in cases:
        assert message_json(m) == json.dumps(_json_doc(m), separators=(",", ":"), ensure_ascii=False).encode()


def test_cli_dry_run_on_a_ledger_says_what_is_new_and_refuses_a_replan_as_a_send_would(tmp_path, capsys):
    from engine.cli import main

    # given a ledger that holds plan v1 (20 messages, none due yet) and a re-plan v2 with a new subject
    ledger = tmp_path / "ledger.db"
    due = float(int(time.time()) + 3600)
    v1 = make_plan(20, send_at=due)
    send(v1, {"push": Channel(Recorder())}, ledger, max_seconds=0.2, handle_signals=False)
    v2 = v1.set_column(v1.schema.get_field_index("subject"), "subject", pa.array(["Fixed subject"] * 20))
    more = make_plan(25, send_at=due)  # v1 and five more users
    paths = {}
    for name, table in (("v1", v1), ("v2", v2), ("more", more)):
        paths[name] = tmp_path / f"{name}.arrow"
        feather.write_feather(table, paths[name])
    providers = tmp_path / "providers.toml"
    providers.write_text('[channels.push]\nadapter = "webhook"\nurl = "http://127.0.0.1:9/hooks/push"\n'
                         'secret_env = "WINBACK_TEST_UNSET_SECRET"\nrate_per_second = 10\n')
    before = read_messages(ledger)

    def dry(name, *extra):
        code = main(["send", str(paths[name]), "--providers", str(providers), "--ledger", str(ledger),
                     "--dry-run", "--no-progress", *extra])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    # when the same plan, a larger one, the re-plan, and the re-plan with --replan are dry-run
    same, more_out, refused, allowed = dry("v1"), dry("more"), dry("v2"), dry("v2", "--replan")

    # then each says what a send would do, and the ledger holds exactly what it held
    assert same[0] == 0 and "0 of them are new" in same[1]
    assert more_out[0] == 0 and "5 of them are new" in more_out[1] and "holds the other 20" in more_out[1]
    assert refused[0] == 2 and "20 that this plan changes" in refused[1] and "--replan" in refused[1]
    assert "Traceback" not in refused[1]
    assert allowed[0] == 0 and "20 pending messages would take this plan's version" in allowed[1]
    assert read_messages(ledger).equals(before)


def test_a_replanned_campaign_sends_the_new_version_only_when_asked(tmp_path):
    # given plan v1 loaded by a send that stopped before anything was due
    ledger = tmp_path / "ledger.db"
    v1 = make_plan(20, send_at=time.time() + 3600)
    first = send(v1, {"push": Channel(Recorder())}, ledger, max_seconds=0.2, handle_signals=False)
    assert first.loaded == 20 and first.sent == 0
    # when the campaign is re-planned with a new subject and sent: refused, nothing sent or changed
    v2 = v1.set_column(v1.schema.get_field_index("subject"), "subject", pa.array(["Fixed subject"] * 20))
    seen: list[str] = []

    def rule(msg, attempt):
        seen.append(msg.subject)
        return Result(msg.message_id, "sent", provider_id="p-" + msg.message_id)

    with pytest.raises(ConfigError, match="20 that this plan changes.*--replan"):
        send(v2, {"push": Channel(Recorder(rule))}, ledger, now=True, handle_signals=False)
    assert seen == [] and set(read_messages(ledger).column("state").to_pylist()) == {"planned"}
    # and with replan: every message goes once, with the new subject
    done = send(v2, {"push": Channel(Recorder(rule))}, ledger, now=True, handle_signals=False, replan=True)
    assert done.replanned == {"changed": 20, "dropped": 0} and done.sent == 20
    assert seen == ["Fixed subject"] * 20
