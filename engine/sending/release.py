"""Release-time checks of the dispatcher: the policy holds when a message actually leaves.

A plan is a promise made at planning time; by the time a message is claimed other
campaigns may have sent to the same user, a suppression may have arrived, or the
sender may start late.  So every claimed batch goes through :meth:`Release.screen`
before any adapter sees it, inside the sender's view of the ledger:

1. **Time** (not with ``--now``): a message claimed more than :data:`GRACE_SECONDS`
   after it was due is *late*.  Its target is its planned instant shifted by the same
   amount as the user's previous step of the campaign (``prev.sent_at + (send_at -
   prev.send_at)``), so drip steps keep their spacing however late the sender starts;
   a step whose previous step is still pending waits for it.  A target in the past by
   more than ``max_lateness`` seconds is skipped (``too_late``); otherwise the message
   goes at the first instant at or after ``max(target, now)`` outside the campaign's
   local quiet hours in the user's timezone (re-timed: back to ``planned`` with that
   ``next_attempt_at``).  Every message, on time or late, and every retry (whose time is
   the backoff's or the provider's Retry-After) goes out of those quiet hours: one claimed
   inside them waits for their end (``planned``, or ``failed`` for a retry).  No message
   goes after the campaign's end (``[campaign] ends_at``,
   else the plan's horizon: the start + every step's delay + 10 days): one that would is
   skipped (``campaign_end``), never sent later.
2. **Gap**: a message closer to a message of another campaign (sent, by ``sent_at``, or in
   flight) than the larger of the two campaigns' ``min_gap_hours`` is re-timed to that
   message + that gap, so each campaign's promise holds whichever went first (out of quiet hours; ``last_error`` says ``min_gap_other_campaigns``), or skipped as
   ``campaign_end`` when that is after the campaign's end.  ``--now`` skips this check.
3. **Cap**: the messages the user got in the trailing ``window_days`` (``sent``, by
   ``sent_at``) plus those in flight, from every campaign in the ledger, must stay
   under the message's campaign ``max_messages`` (and ``channel_caps`` per channel);
   else it is skipped, ``cap_other_campaigns`` when other campaigns' messages made the
   difference, ``cap`` otherwise.  Another campaign's cap holds too while its message to
   the user is inside that campaign's window (as with the gap, each campaign's promise
   holds whichever sent first: a campaign at 1 message per 30 days, then one at 3 per 7,
   leaves the user one message in those 30 days either way).  Checking the trailing window at every release keeps
   every rolling window under the cap: the last message of any window was checked
   against all the earlier ones.  When the cap leaves room for only some of a user's
   messages, the ones earlier in the plan go (by ``send_at``, then the order the plan
   was loaded in), whichever channel's lane claims first: a message in flight counts
   against another once a screen has released it (``released_at``) or when it comes
   earlier in the plan, and with ``--now`` the user's still-planned earlier messages
   count too (they go now as well).  So the same plan sent twice skips the same
   messages, and a drip's first step is never the one dropped for its last.
4. **Suppressions** are applied by the ledger when a run starts (``skip_suppressed``);
   one written while it sends (``winback sunset``, ``winback receive --ledger``, another
   tool) skips every message screened after it (``suppressed``): within one claim, about a
   quarter second of traffic, of the suppression's commit.  A spam complaint recorded on
   any channel (``winback receive`` writes it) skips the user's messages on every channel
   (``complaint``), unless the campaign's ``complaint_suppresses = "channel"``.

Two senders: ``engine.ledger.lock`` allows one ``winback send`` per ledger (a second one
stops at once with one line; crash recovery at start-up could not tell a live sender's
claims from a dead one's).  The cap would hold between two claimers even so: a screen
reads the user's messages and marks the rows it releases in one ``BEGIN IMMEDIATE``
transaction, so screens are ordered, and the later of two screens of one user's
messages counts every row the earlier one released (``tests/sending/test_release.py``
interleaves them).

The campaign's policy and the users' timezones for it are recorded in the ledger when a
plan is loaded, or on the next run if one was killed before (:mod:`engine.sending.planrecord`),
so a message of any campaign is checked against its own campaign's rules and zones.
"""

from __future__ import annotations

import json

import numpy as np

from engine.planning.timing import apply_quiet_hours
from engine.schema import GRACE_SECONDS  # a message claimed this late after it was due is on time
from engine.sending.planrecord import _ensure, has_plan_record, record_plan  # noqa: F401 (re-exported)
from engine.tz import OffsetLookup, is_timezone, offset_table

__all__ = ["Release", "record_plan", "has_plan_record", "GRACE_SECONDS", "DEFAULT_MAX_LATENESS", "RELEASE_SKIPS"]

#: a step whose previous step is still to go looks again this many seconds later
FOLLOW_SECONDS = 5.0
#: default of ``winback send --max-lateness``: seconds past its target a message may still go
DEFAULT_MAX_LATENESS = 6 * 3600
#: ``last_error`` of messages the release checks skip
RELEASE_SKIPS = ("cap", "cap_other_campaigns", "channel_cap", "complaint", "too_late", "campaign_end", "suppressed")
#: the rules of a message whose plan carried no policy (a hand-made plan): the default cap, no quiet hours
_DEFAULT_POLICY = {"max_messages": 3, "window_days": 7, "channel_caps": {}, "quiet_hours": None}

class Release:
    """The checks of one send run (see the module docstring).  ``now``: ``--now`` mode
    (no re-timing, no quiet hours; the cap still holds); ``max_lateness`` in seconds."""

    def __init__(self, ledger, *, now: bool = False, max_lateness: float = DEFAULT_MAX_LATENESS):
        self.ledger = ledger
        self.now_mode = now
        self.max_lateness = float(max_lateness)
        self.con = ledger.connection
        _ensure(self.con)
        self.policies: dict[str, dict] = {}
        for cid, meta in self.con.execute("SELECT campaign_id, meta FROM campaigns"):
            self.policies[cid] = json.loads(meta)
        self.skipped: dict[str, int] = {}
        self.retimed = 0
        self._lookups: dict[tuple[str, int], OffsetLookup] = {}
        #: (zone, quiet start, quiet end, UTC minute) -> the first allowed instant from that minute
        self._quiet: dict[tuple, int] = {}
        self._gap_of: dict | None = None
        # suppressions written while this run sends (winback sunset, receive, another tool): the
        # ledger applied the ones before it (skip_suppressed); these are checked at every screen
        self._supp_seen = self._suppression_top()
        self._late_addr: set[tuple] = set()
        self._late_user: set[tuple] = set()

    # -- one batch ------------------------------------------------------------------------
    def screen(self, rows: list[tuple], now: float) -> list[tuple]:
        """The rows of a claimed batch that may go out at ``now`` (epoch s); the others are
        re-timed (back to ``planned``) or skipped with a reason, in one transaction."""
        if not rows:
            return rows
        con = self.con
        con.execute("BEGIN IMMEDIATE")  # read and mark in one transaction: screens are ordered
        try:
            rows, stopped = self._suppressed_since_start(rows)
            if self.now_mode:  # everything at once: only the caps
                keep, capped, _ = self._caps(rows, now) if rows else ([], [], [])
                retime, skip = [], capped
            else:
                keep, retime, skip = self._screen_timed(rows, now) if rows else ([], [], [])
            skip = stopped + skip
            self._write(retime, skip, keep, now)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        self.retimed += len(retime)  # counted once committed
        for why, _ in skip:
            self.skipped[why] = self.skipped.get(why, 0) + 1
        return keep

    def _suppression_top(self) -> int:
        return self.con.execute("SELECT COALESCE(MAX(rowid), 0) FROM suppressions").fetchone()[0]

    def _suppressed_since_start(self, rows: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        """(rows still to screen, ("suppressed", row) for the rows a suppression written since the
        run began stops): the ledger's rule (:meth:`engine.ledger.store.Ledger.skip_suppressed`:
        the address on the channel, or the user on the channel for a suppression without one).
        Suppressions are only ever added, so a look at the largest rowid says whether any came."""
        top = self._suppression_top()
        if top != self._supp_seen:
            for ch, addr, uid, why in self.con.execute(
                    "SELECT channel, address, user_id, reason FROM suppressions WHERE rowid > ? AND rowid <= ?",
                    (self._supp_seen, top)):
                if addr is not None:
                    self._late_addr.add((ch, addr))
                if uid is not None and (addr is None or "bounce" not in (why or "").lower()):  # a person's request
                    self._late_user.add((ch, uid))
            self._supp_seen = top
        if not (self._late_addr or self._late_user):
            return rows, []
        keep, stopped = [], []
        for r in rows:
            hit = (r[2], r[5]) in self._late_addr or (r[2], r[1]) in self._late_user
            (stopped.append(("suppressed", r)) if hit else keep.append(r))
        return keep, stopped

    def _screen_timed(self, rows: list[tuple], now: float) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """(rows that go now, (instant, row[, why]) to re-time, (reason, row) to skip): the time,
        gap and cap checks of one batch, written by :meth:`screen`."""
        con = self.con
        ids = [r[13] for r in rows]
        marks = ",".join("?" * len(ids))
        info = {r[0]: r[1:] for r in con.execute(
            f"SELECT rowid, next_attempt_at, step_index, send_at, attempts FROM messages WHERE rowid IN ({marks})", ids)}
        prev = self._previous(rows, info)
        retime: list[tuple] = []
        skip: list[tuple] = []
        timed: list[tuple] = []
        for r in rows:
            due, step_index, send_at, attempts = info[r[13]]
            end = self._end(r[10])
            if attempts > 1:  # a retry: its time is the backoff's, out of quiet hours
                go = self._allowed(now, r[10], r[1])
            else:
                target = self._target(send_at, prev.get((r[10], r[1], step_index)), now)
                if due > send_at + 1:  # re-timed before: its new instant is the target
                    target = max(target, due)
                if target > now + 1:
                    go = self._allowed(target, r[10], r[1])
                elif now - target > self.max_lateness:
                    skip.append(("too_late", r))
                    continue
                else:  # late or not, it may have crossed into the user's quiet hours since its target
                    go = self._allowed(now, r[10], r[1])
            if end is not None and go > end:  # never after the campaign's end, however late
                skip.append(("campaign_end", r))
            elif go > now + 1:
                retime.append((go, r))
            else:
                timed.append(r)
        keep, capped, spaced = self._caps(timed, now) if timed else ([], [], [])
        for t, r in spaced:  # too close to another campaign's message: after it, out of quiet hours
            go = self._allowed(t, r[10], r[1])
            end = self._end(r[10])
            if end is not None and go > end:
                capped.append(("campaign_end", r))
            else:
                retime.append((go, r, "min_gap_other_campaigns"))
        return keep, retime, skip + capped

    def _previous(self, rows: list[tuple], info: dict) -> dict:
        """(campaign, user, step) -> the user's latest earlier step of the campaign:
        (state, sent_at, send_at, next_attempt_at), for the rows of later steps."""
        later = [r for r in rows if info[r[13]][1] > 0]
        out: dict = {}
        users = sorted({r[1] for r in later})
        wanted = {(r[10], r[1], info[r[13]][1]) for r in later}
        for i in range(0, len(users), 500):
            chunk = users[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found: dict = {}
            for cid, uid, k, state, p_sent, p_send, p_next in self.con.execute(
                    f"SELECT campaign_id, user_id, step_index, state, sent_at, send_at, next_attempt_at "
                    f"FROM messages WHERE user_id IN ({marks})", chunk):
                found.setdefault((cid, uid), []).append((k, state, p_sent, p_send, p_next))
            for (cid, uid, k) in wanted:
                if uid in chunk:
                    earlier = [x for x in found.get((cid, uid), ()) if x[0] < k]
                    if earlier:
                        out[(cid, uid, k)] = max(earlier)[1:]
        return out

    def _target(self, send_at: float, prev: tuple | None, now: float) -> float:
        """When a message should go (epoch s): its planned instant, shifted as much as the
        user's previous step of the campaign went out late (the step keeps its spacing);
        a step whose previous one is still to go follows it, spaced as planned."""
        if prev is None:
            return float(send_at)
        state, p_sent, p_send, p_next = prev
        if state == "sent" and p_sent is not None and p_sent - p_send > GRACE_SECONDS:
            return float(p_sent + (send_at - p_send))
        if state in ("planned", "failed", "in_flight"):
            return max(now + FOLLOW_SECONDS, float(p_next) + (send_at - p_send), float(send_at))
        return float(send_at)

    def _allowed(self, t: float, cid, uid) -> float:
        """The first instant >= ``t`` outside the campaign's quiet hours in the user's zone."""
        pol = self._policy(cid)
        quiet = pol.get("quiet_hours")
        if not quiet:
            return t
        qs, qe = int(quiet[0]), int(quiet[1])
        if qs == qe:
            return t
        zone = self._zone(uid, cid)
        # every instant of one UTC minute has one local minute (offsets are whole minutes), so
        # one answer per (zone, minute) serves every message claimed in it
        key = (zone, qs, qe, int(t) // 60)
        moved = self._quiet.get(key)
        if moved is None:
            if len(self._quiet) > 100_000:
                self._quiet.clear()
            off = self._lookup(zone, int(t))
            moved = self._quiet[key] = int(apply_quiet_hours(
                off, np.zeros(1, np.int64), np.array([key[3] * 60], np.int64), (qs, qe))[0])
        return max(t, float(moved))

    def _caps(self, rows: list[tuple], now: float) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """Rows within every cap at ``now``, (reason, row) for the rows over a cap, and
        (instant, row) for the rows closer than the campaign's ``min_gap_hours`` to another
        campaign's message (not in ``--now`` mode): the instant is that message + the gap."""
        con = self.con
        batch = {r[13] for r in rows}
        users = sorted({r[1] for r in rows})
        # per campaign: (window start, cap, channel caps, complaints stop every channel)
        rules = {}
        for cid in {r[10] for r in rows}:
            pol = self._policy(cid)
            rules[cid] = (now - float(pol.get("window_days", 7)) * 86400.0, int(pol.get("max_messages", 3)),
                          pol.get("channel_caps") or {}, pol.get("complaint_suppresses", "all") == "all",
                          0.0 if self.now_mode else self._gap(cid))
        # another campaign's message keeps the larger of the two campaigns' gaps (each one's promise)
        gaps = {} if self.now_mode else self._gaps()
        widest = max(gaps.values(), default=0.0)
        # ... and its cap: a message of another campaign in that campaign's window holds this one to it too
        others = self._windows(now)
        since_all = min(min(rule[0], now - max(rule[4], widest)) for rule in rules.values())
        since_all = min([since_all, *(w[0] for w in others.values())])
        contacts: dict[int, list[tuple]] = {}
        complained: set[int] = set()
        pending = " OR state = 'planned'" if self.now_mode else ""
        any_complaint = con.execute("SELECT 1 FROM suppressions WHERE reason = 'complaint' LIMIT 1").fetchone()
        for i in range(0, len(users), 500):
            chunk = users[i:i + 500]
            marks = ",".join("?" * len(chunk))
            if any_complaint:
                complained.update(u for (u,) in con.execute(
                    f"SELECT DISTINCT user_id FROM suppressions WHERE reason = 'complaint' AND user_id IN ({marks})",
                    chunk))
            # sent in the window, in flight, and (with --now, when they go now too) still planned;
            # the last column: counts against every message (sent, or in flight and released by a
            # screen; a released message handed back to planned by a stop counts as planned again)
            for rowid, uid, ch, cid, at, send_at, always in con.execute(
                    f"SELECT rowid, user_id, channel, campaign_id, CASE state WHEN 'sent' THEN sent_at "
                    f"WHEN 'planned' THEN NULL ELSE updated_at END, send_at, "
                    f"state = 'sent' OR (state = 'in_flight' AND released_at IS NOT NULL) FROM messages "
                    f"WHERE user_id IN ({marks}) AND ((state = 'sent' AND sent_at > ?) "
                    f"OR state = 'in_flight'{pending})", (*chunk, since_all)):
                if rowid not in batch:
                    contacts.setdefault(uid, []).append((ch, cid, at, None if always else (send_at, rowid)))
        keep, skip, spaced = [], [], []
        for r in rows:
            uid, ch, cid = r[1], r[2], r[10]
            since, cap, ch_caps, all_channels, gap = rules[cid]
            had = contacts.get(uid)
            if uid in complained and all_channels:
                skip.append(("complaint", r))  # a spam complaint on any channel stops every channel
                continue
            # a message not yet released counts only against the ones after it in the plan
            mine = [c for c in had if (c[3] is None or c[3] < (r[8], r[13])) and (c[2] is None or c[2] > since)] \
                if had else ()
            ch_cap = ch_caps.get(ch)
            near = self._near(had, cid, gap, gaps, now) if had and not self.now_mode else None
            if near is not None:
                spaced.append((near, r))
            elif len(mine) >= cap:
                own = sum(1 for c in mine if c[1] == cid)
                skip.append(("cap" if own >= cap else "cap_other_campaigns", r))
            elif had and self._over_other_cap(had, cid, (r[8], r[13]), others):
                skip.append(("cap_other_campaigns", r))
            elif ch_cap is not None and sum(1 for c in mine if c[0] == ch) >= int(ch_cap):
                skip.append(("channel_cap", r))
            else:
                keep.append(r)
                if had is None:
                    contacts[uid] = [(ch, cid, now, None)]
                else:
                    had.append((ch, cid, now, None))
        return keep, skip, spaced

    def _windows(self, now: float) -> dict:
        """campaign -> (window start at ``now``, max_messages) for every campaign the ledger knows."""
        out = {}
        for cid in self.policies:
            pol = self._policy(cid)
            out[cid] = (now - float(pol.get("window_days", 7)) * 86400.0, int(pol.get("max_messages", 3)))
        return out

    @staticmethod
    def _over_other_cap(had: list[tuple], cid, key: tuple, windows: dict) -> bool:
        """Whether one more message would break the cap of another campaign whose message the user
        got inside that campaign's window: every campaign's ``max_messages`` per ``window_days``
        holds over all campaigns, whichever sent first (A at 1 per 30 days, then B at 3 per 7: B
        may not add a second message in A's 30 days).  ``key``: the message's (send_at, rowid), for
        the in-flight rows that count against it (those earlier in the plan)."""
        for other in {c[1] for c in had if c[1] != cid}:
            rule = windows.get(other)
            if rule is None:
                continue
            since, cap = rule
            live = [c for c in had if (c[3] is None or c[3] < key) and (c[2] is None or c[2] > since)]
            if any(c[1] == other for c in live) and len(live) >= cap:
                return True
        return False

    @staticmethod
    def _near(had: list[tuple], cid, gap: float, gaps: dict, now: float) -> float | None:
        """The first instant (epoch s) the message of ``cid`` may go after the user's messages
        of other campaigns closer than the larger of the two campaigns' gaps, or None."""
        out = None
        for c in had:
            if c[1] == cid:
                continue
            g = max(gap, gaps.get(c[1], 0.0))
            at = c[2] if c[2] is not None else now  # in flight, not yet timed: counts as now
            if g > 0 and at > now - g and (out is None or at + g > out):
                out = at + g
        return out

    def _gap(self, cid) -> float:
        """The campaign's ``min_gap_hours`` in seconds (0: none recorded)."""
        return float(self._policy(cid).get("min_gap_hours") or 0.0) * 3600.0

    def _gaps(self) -> dict:
        """campaign -> :meth:`_gap`, for every campaign the ledger knows (asked once per run)."""
        if self._gap_of is None:
            self._gap_of = {cid: self._gap(cid) for cid in self.policies}
        return self._gap_of

    def _write(self, retime: list[tuple], skip: list[tuple], keep: list[tuple], now: float) -> None:
        """Re-time, skip and mark released, inside :meth:`screen`'s transaction."""
        con = self.con
        if retime:  # a re-timed message keeps why it moved, when it is not its lateness
            con.executemany(
                "UPDATE messages SET state = CASE WHEN attempts > 1 THEN 'failed' ELSE 'planned' END, "
                "attempts = attempts - 1, next_attempt_at = ?, "
                "last_error = COALESCE(?, last_error), updated_at = ? WHERE rowid = ? AND state = 'in_flight'",
                [(x[0], x[2] if len(x) > 2 else None, now, x[1][13]) for x in retime])
        if skip:
            con.executemany(
                "UPDATE messages SET state = 'skipped', attempts = attempts - 1, last_error = ?, updated_at = ? "
                "WHERE rowid = ? AND state = 'in_flight'", [(why, now, r[13]) for why, r in skip])
        if keep:
            con.executemany("UPDATE messages SET released_at = ? WHERE rowid = ?", [(now, r[13]) for r in keep])

    # -- lookups ----------------------------------------------------------------------------
    def _end(self, cid) -> float | None:
        """The campaign's end (epoch s; None: none recorded), see :func:`_end`."""
        end = (self.policies.get(cid) or {}).get("ends_at")
        return None if end is None else float(end)

    def retry_end(self, cid) -> float | None:
        """The instant a retry's Retry-After may not pass: the campaign's end (none with ``--now``)."""
        return None if self.now_mode else self._end(cid)

    def _policy(self, cid) -> dict:
        meta = self.policies.get(cid)
        return (meta or {}).get("policy") or _DEFAULT_POLICY

    def _lookup(self, zone: str, t: int) -> OffsetLookup:
        """The zone's UTC offsets from two days before ``t``'s UTC day to three days after,
        built once per (zone, day) and reused for every message of that day."""
        key = (zone, t // 86_400)
        off = self._lookups.get(key)
        if off is None:
            day = key[1] * 86_400
            off = self._lookups[key] = OffsetLookup(*offset_table([zone], day - 2 * 86_400, day + 4 * 86_400))
        return off

    def _zone(self, uid: int, cid) -> str:
        """The user's timezone name (from this campaign's plan; a ledger of an older version: from
        the last plan loaded) when it is one, else the campaign's, else UTC (a hand-edited plan's
        "Mars/Olympus" keeps the campaign's quiet hours, not UTC's)."""
        row = self.con.execute("SELECT timezone FROM campaign_zones WHERE campaign_id = ? AND user_id = ?",
                               (cid, uid)).fetchone() or \
            self.con.execute("SELECT timezone FROM user_zones WHERE user_id = ?", (uid,)).fetchone()
        if row and is_timezone(row[0]):
            return row[0]
        name = (self.policies.get(cid) or {}).get("timezone") or "UTC"
        return name if is_timezone(name) else "UTC"

