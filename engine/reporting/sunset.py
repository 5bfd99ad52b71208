"""Sunset: who stops getting marketing messages, and the suppressions that make it so.

A user is sunset by a campaign with ``[policy] sunset = true`` when, outside the
holdout, they received the **whole sequence** (a message at every step), or at least
``sunset_after`` messages when that is set (N unanswered messages), and did not come
back (no session, purchase or click) in the report window.  A user who got one step
of three because their fatigue budget or the cap stopped the rest is *not* sunset: the
campaign never asked them everything.

:func:`sunset_list` computes the list the report writes (``sunset.arrow``/``.csv``, with
the channels each user was messaged on); :func:`apply_sunset` (``winback sunset``)
writes those users to the ledger's ``suppressions`` (by user id, reason ``sunset``),
which every later plan and send honour; with ``dry_run`` it only counts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import InputError
from engine.io.plans import plan_meta
from engine.io.readers import read_table
from engine.schema import CHANNELS

__all__ = ["sunset_list", "apply_sunset", "skipped_at_send", "SUNSET_REASON"]

SUNSET_REASON = "sunset"
#: the columns of the list the report writes (:func:`sunset_list`), which ``winback sunset`` needs
SUNSET_COLUMNS = ("user_id", "messages_received", "channels", "reason")


def sunset_list(plan: pa.Table, msgs: pa.Table, users: np.ndarray, reengaged: np.ndarray,
                treat: np.ndarray) -> pa.Table:
    """The sunset users: ``users`` sorted ids; ``msgs`` the delivered messages (user_id,
    step, channel); ``reengaged``/``treat`` per user.  Columns user_id, messages_received,
    channels (|-joined), reason."""
    meta = plan_meta(plan)
    policy = meta.get("policy") or {}
    n_steps = len(meta.get("steps") or []) or (int(pc.max(plan["step_index"]).as_py()) + 1 if plan.num_rows else 0)
    after = int(policy.get("sunset_after") or 0)
    needed = after if after > 0 else n_steps
    empty = pa.table({"user_id": pa.array([], pa.int64()), "messages_received": pa.array([], pa.int64()),
                      "channels": pa.array([], pa.string()), "reason": pa.array([], pa.string())})
    if not policy.get("sunset_after_steps", True) or needed == 0 or not len(users):
        return empty
    uid = msgs["user_id"].to_numpy() if msgs.num_rows else np.zeros(0, np.int64)
    pos = np.searchsorted(users, uid)
    n_sent = np.bincount(pos, minlength=len(users)) if len(uid) else np.zeros(len(users), np.int64)
    done = treat & (n_sent >= needed) & ~reengaged
    if not done.any():
        return empty
    chans = np.zeros((len(users), len(CHANNELS)), bool)
    if len(uid) and "channel" in msgs.column_names:
        code = pc.index_in(pc.cast(msgs["channel"], pa.string()), value_set=pa.array(list(CHANNELS)))
        code = code.fill_null(-1).to_numpy(zero_copy_only=False)
        ok = code >= 0
        chans[pos[ok], code[ok]] = True
    why = (f"received {after} messages of the campaign" if after > 0 else "received the whole sequence") + \
        ", no activity since"
    idx = np.nonzero(done)[0]
    return pa.table({"user_id": pa.array(users[idx], pa.int64()),
                     "messages_received": pa.array(n_sent[idx], pa.int64()),
                     "channels": pa.array(["|".join(c for c, on in zip(CHANNELS, chans[i]) if on) for i in idx],
                                          pa.string()),
                     "reason": pa.array([why] * len(idx), pa.string())})


def skipped_at_send(plan: pa.Table, ledger) -> dict[str, int]:
    """Messages of ``plan`` the send did not deliver, by reason (the ledger's
    ``last_error`` of skipped and dead messages: exited, suppressed, cap_other_campaigns,
    too_late, complaint, ...); empty without a ledger."""
    if ledger is None or not os.path.exists(ledger):
        return {}
    from engine.ledger.read import read_messages

    m = read_messages(ledger)
    m = m.filter(pc.and_(pc.is_in(m["state"], value_set=pa.array(["skipped", "dead"])),
                         pc.is_in(m["message_id"], value_set=plan["message_id"])))
    if m.num_rows == 0:
        return {}
    why = pc.if_else(pc.equal(m["state"], "dead"), pa.scalar("dead"), m["last_error"].fill_null("skipped"))
    counts = pc.value_counts(why).to_pylist()
    return {c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: -c["counts"])}


def apply_sunset(sunset, ledger, *, channels: list[str] | None = None, dry_run: bool = False,
                 now: float | None = None) -> dict:
    """Suppress the users of ``sunset`` (a sunset.arrow/.csv path, a report directory or a
    table) in ``ledger``: one suppression per user and channel (``channels``, default the
    channels each user was messaged on), by user id, reason ``sunset``.  Returns
    ``{"users", "suppressions", "new", "dry_run", "notes"}``; ``dry_run`` writes nothing.  A
    channel of the list's ``channels`` column written with another case or surrounding whitespace
    (``Email``, ``email ``) is that channel (said in ``notes``); any other (``e-mail``) is an
    :class:`InputError` naming the rows, and nothing is written."""
    from engine.io.names import did_you_mean

    table, source = _sunset_table(sunset)
    for c in channels or []:
        if c not in CHANNELS:
            raise InputError(f"unknown channel {c!r} for --channels{did_you_mean(c, CHANNELS)}; use "
                             f"{', '.join(CHANNELS)}")
    missing = [c for c in SUNSET_COLUMNS if c not in table.column_names]
    if missing:  # a plan or a scores file here would suppress every user it lists, on every channel
        raise InputError(f"{source}: not a sunset list: no column {', '.join(map(repr, missing))} (it has "
                         f"{', '.join(table.column_names[:8])}); pass the sunset.arrow or sunset.csv 'winback "
                         "report' wrote, or its report directory")
    if not os.path.exists(ledger):  # a typo would put the suppressions where no plan or send reads them
        raise InputError(f"ledger {ledger} does not exist; pass the ledger 'winback send' and 'winback plan "
                         "--ledger' use, so the sunset users are suppressed where the next campaign looks")
    at = time.time() if now is None else float(now)
    uids = table["user_id"].to_pylist()
    # --channels replaces the list's channels: then they are neither read nor checked
    per_user, notes = ([None] * len(uids), []) if channels else _channels(table, source)
    rows = []
    for u, chans in zip(uids, per_user):
        if u is None:
            continue
        use = channels or chans or list(CHANNELS)
        rows += [{"channel": c, "address": None, "user_id": int(u), "reason": SUNSET_REASON, "at": at} for c in use]
    out = {"users": len({r["user_id"] for r in rows}), "suppressions": len(rows), "dry_run": dry_run,
           "notes": notes}
    existing = set()
    if os.path.exists(ledger):
        from engine.ledger.read import read_suppressions

        sup = read_suppressions(ledger)
        existing = {(c, u) for c, u, a in zip(sup["channel"].to_pylist(), sup["user_id"].to_pylist(),
                                              sup["address"].to_pylist()) if a is None}
    fresh = [r for r in rows if (r["channel"], r["user_id"]) not in existing]
    if dry_run:
        out["new"] = len(fresh)
        return out
    from engine.ledger.store import Ledger

    with Ledger(ledger) as led:
        out["new"] = led.add_suppressions(fresh)
    return out


def _channels(table: pa.Table, source: str) -> tuple[list[list[str]], list[str]]:
    """Per row, the channels of its ``channels`` column (``email|sms``), trimmed and lower-cased,
    and the note saying how many needed it; a channel that is none of engine.schema.CHANNELS
    even so is one :class:`InputError` (a suppression on it would match nothing)."""
    from engine.io.badrows import MAX_EXAMPLES, format_examples
    from engine.io.names import renamed_note, unknown_message

    values = table["channels"].to_pylist()
    out, renamed, bad, bad_rows = [], {}, [], []
    for i, text in enumerate(values):
        use = []
        for raw in (text if isinstance(text, str) else "").split("|"):
            c = raw.strip().lower()
            if not c:
                continue
            if c not in CHANNELS:
                bad.append(raw)
                if not bad_rows or bad_rows[-1] != i:
                    bad_rows.append(i)
                continue
            if c != raw:
                renamed[c] = renamed.get(c, 0) + 1
            use.append(c)
        out.append(list(dict.fromkeys(use)))
    if bad_rows:
        head = unknown_message(source, "channels", "a channel", bad, CHANNELS,
                               format_examples(table, np.asarray(bad_rows[:MAX_EXAMPLES])), len(bad_rows))
        raise InputError(f"{head}; a suppression on it would match nothing and the user would still be "
                         "messaged. Fix the list (channels separated by |) and run again (nothing was written "
                         "to the ledger).")
    note = renamed_note(renamed, "channel")
    return out, [note] if note else []


def _sunset_table(sunset) -> tuple[pa.Table, str]:
    if isinstance(sunset, pa.Table):
        return sunset, "the sunset list"
    path = Path(sunset)
    if path.is_dir():
        path = path / "sunset.arrow"
    if not path.exists():
        raise InputError(f"sunset list {path} does not exist; run 'winback report' first (it writes "
                         "REPORT/sunset.arrow) and pass that file or the report directory")
    return read_table(path, "sunset list"), str(path)
