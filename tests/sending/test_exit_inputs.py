"""The events of `winback send --events` in every shape the data contract allows, and bad ones refused
before the ledger is touched."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from engine.errors import InputError
from engine.ledger.store import read_messages
from engine.sending.dispatcher import send
from tests.helpers import make_plan
from tests.sending.test_dispatcher import Recorder

START = time.time() - 60


def _plan():
    return pa.concat_tables([make_plan(3, send_at=START),
                             make_plan(3, send_at=START, step_index=1, prefix="s", exit_on="activity")])


def _ts(seconds, unit="us", tz="UTC"):
    return pa.array([int(s * {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]) for s in seconds], pa.timestamp(unit, tz))


#: user 2 had a session after the start, user 0 one before it, user 1 only an open
AFTER, BEFORE = START + 30, START - 3600
GOOD = {
    "s": dict(ts=_ts([AFTER, BEFORE, AFTER], "s")),
    "ms": dict(ts=_ts([AFTER, BEFORE, AFTER], "ms")),
    "ns": dict(ts=_ts([AFTER, BEFORE, AFTER], "ns")),
    "naive": dict(ts=_ts([AFTER, BEFORE, AFTER], "us", None)),
    "paris": dict(ts=_ts([AFTER, BEFORE, AFTER], "us", "Europe/Paris")),
    "iso_text": dict(ts=pa.array([time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s)) for s in (AFTER, BEFORE, AFTER)])),
    "text_ids": dict(user_id=pa.array(["2", "0", "1"])),
    "uint64_ids": dict(user_id=pa.array([2, 0, 1], pa.uint64())),
    "dict_ids": dict(user_id=pa.array(["2", "0", "1"]).dictionary_encode()),
    "dict_events": dict(event=pa.array(["session", "session", "open"]).dictionary_encode()),
}


def _events(**over):
    cols = {"user_id": pa.array([2, 0, 1], pa.int64()), "ts": _ts([AFTER, BEFORE, AFTER]),
            "event": pa.array(["session", "session", "open"])}
    cols.update(over)
    return pa.table(cols)


def _write(table, path):
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        feather.write_feather(table, path, chunksize=1)  # one record batch per row: many batches
    return path


@pytest.mark.parametrize("fmt", [".arrow", ".parquet", ".csv"])
@pytest.mark.parametrize("shape", sorted(GOOD))
def test_every_contract_shape_of_the_events_exits_the_same_user(tmp_path, shape, fmt):
    """Given events with timestamps of any unit, naive or in another zone, or ISO text, and ids
    as text, uint64 or dictionary, as Arrow (many batches), Parquet or CSV, when sent, then
    exactly user 2's later step exits, as with plain int64 ids and UTC microseconds."""
    events = _write(_events(**GOOD[shape]), tmp_path / f"events{fmt}")
    adapter = Recorder()
    summary = send(_plan(), {"push": adapter}, tmp_path / "l.db", now=True, events=events)
    assert summary.exited == 1
    assert sorted(adapter.sent_ids()) == ["m0", "m1", "m2", "s0", "s1"]


def test_an_events_file_with_no_rows_exits_no_one(tmp_path):
    events = _write(_events().slice(0, 0), tmp_path / "events.arrow")
    adapter = Recorder()
    summary = send(_plan(), {"push": adapter}, tmp_path / "l.db", now=True, events=events)
    assert summary.exited == 0 and len(adapter.sent_ids()) == 6


BAD = {
    "null_id": (dict(user_id=pa.array([2, None, 1], pa.int64())), "user_id", "row 1"),
    "null_ts": (dict(ts=pa.array([int(AFTER * 1e6), None, None], pa.timestamp("us", "UTC"))), "ts", "row 1"),
    "text_id": (dict(user_id=pa.array(["2", "abc", "1"])), "user_id", "'abc'"),
    "huge_uint64": (dict(user_id=pa.array([2, 2**64 - 1, 1], pa.uint64())), "user_id", "row 1"),
    "bad_iso": (dict(ts=pa.array(["2026-13-45", "2026-11-01", "x"])), "ts", "row 0"),
    "number_ts": (dict(ts=pa.array([1.5, 2.5, 3.5])), "ts", "ts"),
}


@pytest.mark.parametrize("fmt", [".arrow", ".parquet"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_events_are_refused_before_anything_is_written_to_the_ledger(tmp_path, case, fmt):
    """Given an events file whose session rows have a null or unreadable id or instant, when sent,
    then one InputError names the file, the column and an example row, nothing is sent, and no
    message is loaded into (or claimed in) the ledger."""
    over, column, example = BAD[case]
    events = _write(_events(**over), tmp_path / f"events{fmt}")
    ledger = tmp_path / "l.db"
    adapter = Recorder()
    with pytest.raises(InputError) as info:
        send(_plan(), {"push": adapter}, ledger, now=True, events=events)
    text = str(info.value)
    assert str(events) in text and f"column {column}" in text and example in text, text
    assert adapter.sent_ids() == []
    assert not ledger.exists() or read_messages(ledger).num_rows == 0


def test_the_cli_reports_bad_events_in_one_line_and_exits_non_zero(tmp_path, capsys):
    from engine.cli import main
    from engine.io.atomic import write_table

    plan = tmp_path / "plan.arrow"
    write_table(_plan(), plan)
    providers = tmp_path / "providers.toml"
    providers.write_text('[channels.push]\nadapter = "file"\npath = "out.jsonl"\nrate_per_second = 100\n')
    events = _write(_events(user_id=pa.array([2, None, 1], pa.int64())), tmp_path / "events.parquet")
    code = main(["send", str(plan), "--providers", str(providers), "--ledger", str(tmp_path / "l.db"), "--now",
                 "--events", str(events), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "column user_id" in err and str(events) in err
    assert not (tmp_path / "l.db").exists() or read_messages(tmp_path / "l.db").num_rows == 0


def _cli_send(tmp_path, capsys, events_csv: str, *extra):
    """``winback send`` of 4 email messages (users 0-3) with a hand-written events CSV, through a
    real file adapter and a real ledger; returns (exit code, stdout, stderr, ledger path)."""
    from engine.cli import main
    from engine.io.atomic import write_table

    plan = tmp_path / "plan.arrow"
    write_table(make_plan(4, send_at=START, channel="email", to=[f"u{i}@example.test" for i in range(4)]), plan)
    providers = tmp_path / "providers.toml"
    providers.write_text(f'[channels.email]\nadapter = "file"\npath = "{tmp_path / "out.jsonl"}"\n'
                         'rate_per_second = 100\n')
    events = tmp_path / "unsubs.csv"
    events.write_text(events_csv)
    ledger = tmp_path / "l.db"
    code = main(["send", str(plan), "--providers", str(providers), "--ledger", str(ledger), "--now",
                 "--events", str(events), "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, out, err, ledger


ISO = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(AFTER))


def test_stop_events_spelt_with_another_case_or_spaces_still_suppress_and_are_said(tmp_path, capsys):
    # given an ESP export with 'Unsubscribe', 'unsubscribe ' and 'BOUNCE' on channels 'Email' and
    # ' email', plus an ordinary open (not an exit event) that must be read quietly
    csv = ("user_id,ts,event,channel\n"
           f"0,{ISO},Unsubscribe,email\n1,{ISO},unsubscribe ,Email\n2,{ISO},BOUNCE, email\n3,{ISO},open,email\n")
    # when it is dry-run, then sent
    code, dry, _, ledger = _cli_send(tmp_path, capsys, csv, "--dry-run")
    assert code == 0
    code, out, err, ledger = _cli_send(tmp_path, capsys, csv)
    # then the dry run says in one line how the names were read, and users 0-2 get nothing
    assert "--events: read 2 event names as 'unsubscribe', 1 as 'bounce' (case/whitespace)" in dry, dry
    assert "--events: read 2 channels as 'email' (case/whitespace)" in dry, dry
    assert "3 messages would be skipped (suppressed)" in dry
    assert code == 0 and "Traceback" not in err, err
    assert "--events: read 2 event names as 'unsubscribe', 1 as 'bounce' (case/whitespace)" in out, out  # the send too
    states = {m["user_id"]: (m["state"], m["last_error"]) for m in read_messages(ledger).to_pylist()}
    assert states == {0: ("skipped", "suppressed"), 1: ("skipped", "suppressed"), 2: ("skipped", "suppressed"),
                      3: ("sent", None)}


@pytest.mark.parametrize("row,column,hint", [("unsubscribed,email", "event", "did you mean 'unsubscribe'?"),
                                             ("unsubscribe,e-mail", "channel", "did you mean 'email'?")])
def test_an_unknown_event_name_or_channel_stops_the_send_before_anything_is_sent(tmp_path, capsys, row,
                                                                                 column, hint):
    # given an export whose second row has an event name or a channel that is no name of the contract
    csv = f"user_id,ts,event,channel\n0,{ISO},unsubscribe,email\n1,{ISO},{row}\n2,{ISO},session,\n"
    # when sent (and dry-run)
    dry_code, _, dry_err, _ = _cli_send(tmp_path, capsys, csv, "--dry-run")
    code, out, err, ledger = _cli_send(tmp_path, capsys, csv)
    # then one line names the file, the column, the count, the row and the nearest name; exit 2; the
    # ledger holds no message and nothing went out
    assert dry_code == 2 and dry_err == err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"InputError: events {tmp_path / 'unsubs.csv'}: column '{column}': 1 row with ")
    assert "row 1 {user_id: " in err and hint in err and "nothing was sent or claimed" in err
    assert not ledger.exists() or read_messages(ledger).num_rows == 0
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").read_text() == ""


# -- what `winback receive` writes -----------------------------------------------------------------
def _receiver_part(directory, rows, number=0, hard=True):
    """A part file as `winback receive` writes it (``hard=False``: the schema before ``hard``)."""
    from engine.feedback.parts import EVENT_SCHEMA, write_part

    directory.mkdir(exist_ok=True)
    write_part(directory, [dict({"message_id": None, "reason": None, "hard": None}, **r) for r in rows], number)
    path = directory / f"part-{number:06d}.arrow"
    if not hard:  # an older part file: no 'hard' column
        with pa.OSFile(str(path)) as src:
            t = pa.ipc.open_file(src).read_all().drop_columns(["hard"])
        path.unlink()
        feather.write_feather(t, path)
    return EVENT_SCHEMA


def _two_channel_plan():
    return pa.concat_tables([make_plan(5, send_at=START, channel="push", prefix="m"),
                             make_plan(5, send_at=START, channel="email", prefix="e",
                                       to=[f"u{i}@example.test" for i in range(5)])])


def _states(ledger):
    return {m["message_id"]: m["state"] for m in read_messages(ledger).to_pylist()}


def test_every_name_receive_writes_is_read_by_send_events():
    # given the names the receiver takes on /events, then send --events reads every one of them
    from engine.feedback.events import CHANNELS as RECEIVED_CHANNELS, GENERIC_EVENTS
    from engine.sending.exits import FEEDBACK_CHANNELS, FEEDBACK_EVENTS

    assert GENERIC_EVENTS <= set(FEEDBACK_EVENTS) and RECEIVED_CHANNELS <= set(FEEDBACK_CHANNELS)


def test_a_receive_directory_with_survey_answers_webhook_stops_and_soft_bounces_is_sent_with(tmp_path):
    # given a receive directory: user 0 unsubscribed on 'webhook' from push message m0, user 1 on
    # 'webhook' with no message, user 2 answered a survey, user 3 soft-bounced and user 4 hard-bounced
    # on email
    at = int(AFTER * 1e6)
    _receiver_part(tmp_path / "feedback", [
        {"user_id": 0, "ts": at, "event": "unsubscribe", "channel": "webhook", "message_id": "m0"},
        {"user_id": 1, "ts": at, "event": "unsubscribe", "channel": "webhook"},
        {"user_id": 2, "ts": at, "event": "reason", "channel": "email", "message_id": "e2",
         "reason": "too_many_messages"},
        {"user_id": 3, "ts": at, "event": "bounce", "channel": "email", "hard": False},
        {"user_id": 4, "ts": at, "event": "bounce", "channel": "email", "hard": True}])
    push, email = Recorder(), Recorder()
    # when a plan of push and email messages to users 0-4 is sent with it
    send(_two_channel_plan(), {"push": push, "email": email}, tmp_path / "l.db", now=True,
         events=tmp_path / "feedback")
    # then user 0 loses only push (the channel m0 went out on), user 1 every channel, user 4 email;
    # the survey answer and the soft bounce stop nothing
    assert sorted(push.sent_ids()) == ["m2", "m3", "m4"]
    assert sorted(email.sent_ids()) == ["e0", "e2", "e3"]


def test_a_bounce_in_an_older_part_file_without_hard_is_still_a_stop(tmp_path):
    # given a part file written before the 'hard' column, with a bounce for user 1
    _receiver_part(tmp_path / "feedback", [{"user_id": 1, "ts": int(AFTER * 1e6), "event": "bounce",
                                            "channel": "push"}], hard=False)
    adapter = Recorder()
    # when sent
    send(make_plan(3, send_at=START), {"push": adapter}, tmp_path / "l.db", now=True, events=tmp_path / "feedback")
    # then the bounce is read as hard
    assert sorted(adapter.sent_ids()) == ["m0", "m2"]


def test_a_file_refused_mid_send_does_not_claim_that_nothing_was_sent(tmp_path):
    from engine.ledger.store import Ledger
    from engine.sending.exits import ExitWatch

    # given a watch over a directory that was read and applied at the start of a send
    _receiver_part(tmp_path / "feedback", [{"user_id": 1, "ts": int(AFTER * 1e6), "event": "open",
                                            "channel": "push"}])
    with Ledger(tmp_path / "l.db") as ledger:
        watch = ExitWatch(ledger, tmp_path / "feedback").read()
        watch.poll(START, ledger)
        # when a file with an unknown event name arrives and the next poll reads it
        _write(_events(event=pa.array(["session", "unsubscribed", "open"])), tmp_path / "feedback" / "x.csv")
        with pytest.raises(InputError) as err:
            watch.poll(START + 60, ledger)
    # then the error names the row and says sent messages stay sent, not that nothing was sent
    text = str(err.value)
    assert "did you mean 'unsubscribe'?" in text and "nothing was sent" not in text
    assert "the messages it sent before this file changed stay sent" in text
