"""Send a plan: the asyncio dispatcher over rate-limited channel adapters.

Per channel there is one *scheduler* task and a pool of ``concurrency`` *worker*
tasks.  The scheduler claims due messages from the ledger in batches (one
transaction per claim) into a small queue and otherwise sleeps until the next
message is due (one sleeping scheduler per channel, asking the ledger for the
earliest ``send_at`` / ``next_attempt_at``; never one task per message).  A worker
takes up to ``adapter.max_batch`` queued messages, waits for its slot from the
channel's :class:`~engine.limiter.RateLimiter`, calls ``adapter.send`` and buffers
the results in the ledger, which writes them with the next claim's transaction, or
after ~100 rows or ~50 ms, whichever comes first.

The limiter charges **one slot per request**: one message per request for SMS,
push and webhooks (so ``rate_per_second`` is messages per second there), one batch
per request for batched email (SendGrid limits API calls, not recipients).

Retries (429, 5xx, timeouts) go back to the ledger as ``failed`` with a
``next_attempt_at`` from :func:`engine.retry.next_attempt_at` (never before the
provider's Retry-After); after ``max_attempts`` or on a permanent failure a message
is ``dead``, and a failure meaning the address is gone suppresses it.

Exit rules and suppressions are applied before anything is released: later drip
steps of users who did what their step's ``exit_on`` names after the campaign start
(``events``: files or a ``winback receive`` directory, re-read during a long send,
:mod:`engine.sending.exits`) become ``skipped`` / ``exited``; messages to suppressed addresses
become ``skipped`` / ``suppressed`` (again whenever a run suppresses an address).
Every claimed batch then passes the release checks (:mod:`engine.sending.release`): the cap
over every campaign in the ledger and, without ``now``, lateness and quiet hours.

SIGINT/SIGTERM: stop claiming, hand queued messages back, wait for requests in
flight, flush the ledger, raise :class:`engine.errors.Interrupted`.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import pyarrow as pa

from engine.sending.channels import Channel, before_ledger, channels_for, message_of
from engine.sending.protocol import SENT, Result
from engine.errors import DispatchError, Interrupted
from engine.ledger.store import Ledger
from engine.sending.limiter import RateLimiter
from engine.progress import bar
from engine.sending.scrub import scrub
from engine.sending.exits import ExitWatch
from engine.sending.release import DEFAULT_MAX_LATENESS, Release, has_plan_record, record_plan
from engine.sending.retry import next_attempt_at, suppresses, unheeded
from engine.io.plans import campaign_ids, plan_meta, read_plan
from engine.ledger.lock import LedgerLock
from engine.ledger.identity import check_plan_ledger, read_binding, write_binding
from engine.sending.dryrun import dry_run_summary
from engine.sending.summary import DispatchSummary

__all__ = ["Channel", "DispatchSummary", "dispatch", "send"]

FLUSH_ROWS = 100  # write results every this many rows ...
FLUSH_SECONDS = 0.05  # ... or this many seconds
MAX_QUEUE = 2048  # claimed messages waiting for a worker, per channel
MAX_CLAIM = 512  # rows per claim transaction (keeps event-loop stalls to a few ms)


class _Lane:
    """Per-channel run state (queue, limiter, counters)."""

    __slots__ = ("name", "channel", "limiter", "queue", "idle", "closed", "wake", "busy", "workers",
                 "sending", "high", "low", "sent", "retried", "dead", "t0", "more", "retrying")

    def __init__(self, name: str, channel: Channel, limiter: RateLimiter):
        self.name = name
        self.channel = channel
        self.limiter = limiter
        #: claimed rows waiting for a worker (FIFO)
        self.queue: collections.deque = collections.deque()
        #: futures of workers waiting for rows, woken one per queued row
        self.idle: collections.deque = collections.deque()
        #: the lane was drained: workers exit instead of waiting for rows
        self.closed = False
        self.wake = asyncio.Event()
        self.busy = 0
        self.workers: list[asyncio.Task] = []
        self.sending: set[asyncio.Task] = set()
        per_round = max(1, channel.concurrency) * max(1, channel.adapter.max_batch)
        # claimed-but-unsent messages count as "in flight" at a crash: keep the queue
        # short, about a quarter second of traffic when the channel is rate limited
        high = min(max(2 * per_round, 64), MAX_QUEUE)
        if limiter.rate != math.inf:
            high = min(high, max(16, per_round, int(limiter.rate * max(1, channel.adapter.max_batch) / 4)))
        self.high = int(high)
        # refill at a quarter: claims of ~3/4 of the queue (fewer, larger claim transactions)
        self.low = self.high // 4
        self.sent = self.retried = self.dead = 0
        #: messages waiting for a retry right now (for the progress bar)
        self.retrying = 0
        self.t0 = time.monotonic()
        #: the last claim was full, so more may be due: workers ask for a refill at low water
        self.more = True


class _Run:
    def __init__(self, ledger: Ledger, lanes: dict[str, _Lane], *, now: bool,
                 clock: Callable[[], float], progress: bool, total: int, release: Release | None = None,
                 exits: ExitWatch | None = None):
        self.ledger = ledger
        self.exits = exits
        self.release = release
        self.lanes = lanes
        self.now = now
        self.clock = clock
        self.stop = asyncio.Event()
        self.stopped: str | None = None
        self.error: BaseException | None = None
        self.bar = bar(progress, total=total, desc="send", unit="msg")
        self.suppressed_new = False

    def halt(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
        self.stop.set()
        for lane in self.lanes.values():
            lane.wake.set()

    async def run(self) -> None:
        flusher = asyncio.create_task(self._flusher())
        try:
            outcomes = await asyncio.gather(
                *(self._schedule(lane) for lane in self.lanes.values()), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        finally:
            flusher.cancel()
            try:
                await flusher
            except asyncio.CancelledError:
                pass
            self.ledger.flush()
            self._progress()
            self.bar.close()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if self.ledger.pending_writes:
                self._flush()
            self._progress()

    def _flush(self) -> None:
        self.ledger.flush()
        if self.suppressed_new:
            self.suppressed_new = False
            self.ledger.skip_suppressed()

    def _progress(self) -> None:
        b = self.bar
        done = sum(lane.sent + lane.dead for lane in self.lanes.values())
        if done > b.n:
            b.update(done - b.n)
        parts = {}
        for lane in self.lanes.values():
            rate = lane.sent / max(1e-9, time.monotonic() - lane.t0)
            parts[lane.name] = f"{lane.sent} sent {lane.dead} failed {max(lane.retrying, 0)} retrying {rate:.0f}/s"
        b.set_postfix(parts, refresh=False)

    # -- scheduler: claims due messages, sleeps until the next one is due -------------------
    async def _schedule(self, lane: _Lane) -> None:
        ledger, clock, queue = self.ledger, self.clock, lane.queue
        lane.workers = [asyncio.create_task(self._work(lane)) for _ in range(max(1, lane.channel.concurrency))]
        try:
            while not self.stop.is_set():
                if len(queue) <= lane.low:
                    if self.suppressed_new:
                        self._flush()  # results, then the new suppressions apply
                    t = clock()
                    if self.exits:  # users who came back since the last look leave the sequence
                        self.exits.maybe_poll(t)
                    want = min(MAX_CLAIM, lane.high - len(queue))
                    # buffered results are written in the claim's transaction (one commit for
                    # both), so retries just recorded are claimable
                    rows = ledger.claim(lane.name, want, now=t, release_until=math.inf if self.now else t,
                                        with_results=True)
                    lane.more = len(rows) == want
                    if rows and self.release is not None:
                        rows = self.release.screen(rows, t)  # cap, quiet hours, lateness at release
                        if not rows:
                            continue  # the claimed rows were re-timed or skipped: claim again
                    if rows:
                        queue.extend(rows)
                        lane.retrying -= sum(1 for row in rows if row[11] > 1)
                        idle = lane.idle
                        for _ in range(min(len(rows), len(idle))):
                            fut = idle.popleft()
                            if not fut.done():
                                fut.set_result(None)
                        continue
                    if not queue and lane.busy == 0 and not ledger.pending_writes:
                        due = ledger.next_due(lane.name)
                        if due is None:
                            break  # every message of this channel is final
                        await self._sleep(lane, due - clock())
                        continue
                    due = ledger.next_due(lane.name)
                    await self._sleep(lane, None if due is None else max(due - clock(), 0.001))
                else:
                    await self._sleep(lane, None)
        except BaseException:
            self.halt("error")
            raise
        finally:
            await self._drain(lane)

    async def _sleep(self, lane: _Lane, seconds: float | None) -> None:
        wake = lane.wake
        handle = None
        if seconds is not None:
            # an injected clock may keep its own timers (tests move a fake clock, never sleep)
            call_later = getattr(self.clock, "call_later", None) or asyncio.get_running_loop().call_later
            handle = call_later(max(seconds, 0.0), wake.set)
        try:
            await wake.wait()
        finally:
            if handle is not None:
                handle.cancel()
            wake.clear()

    async def _drain(self, lane: _Lane) -> None:
        """Stop the lane: hand queued messages back, cancel idle workers, await the rest."""
        queue = lane.queue
        back = [row[0] for row in queue]
        queue.clear()
        lane.closed = True
        self.ledger.flush()
        self.ledger.unclaim(back)
        for task in lane.workers:
            if task not in lane.sending:
                task.cancel()
        while lane.idle:
            fut = lane.idle.popleft()
            if not fut.done():
                fut.set_result(None)
        await asyncio.gather(*lane.workers, return_exceptions=True)

    # -- worker: batch -> limiter -> adapter -> ledger ------------------------------------
    async def _work(self, lane: _Lane) -> None:
        queue, idle, ledger, clock, stop = lane.queue, lane.idle, self.ledger, self.clock, self.stop
        adapter, limiter = lane.channel.adapter, lane.limiter
        max_batch, max_attempts, name = max(1, adapter.max_batch), lane.channel.max_attempts, lane.name
        limited = limiter.interval > 0.0
        ready, acquire = limiter.ready, limiter.acquire
        send, record, sent = adapter.send, self._record, ledger.sent
        # an adapter of one message per request may offer ``send_one(message) -> Result``
        one = getattr(adapter, "send_one", None) if max_batch == 1 else None
        create_future = asyncio.get_running_loop().create_future
        me = asyncio.current_task()
        sending = lane.sending
        while True:
            if not queue:
                if stop.is_set() or lane.closed:
                    return
                fut = create_future()
                idle.append(fut)
                await fut
                continue
            if stop.is_set():
                return  # the lane's drain hands queued rows back
            if max_batch == 1:
                batch = [queue.popleft()]
            else:
                batch = [queue.popleft()]
                while len(batch) < max_batch and queue:
                    batch.append(queue.popleft())
            lane.busy += 1
            if lane.more and len(queue) <= lane.low:
                lane.more = False  # one refill request is enough
                lane.wake.set()
            grant = -1
            if limited and not ready():
                try:
                    grant = await acquire(1)
                except asyncio.CancelledError:
                    lane.busy -= 1
                    ledger.unclaim([r[0] for r in batch])
                    raise
                if stop.is_set():
                    limiter.complete(grant)
                    lane.busy -= 1
                    ledger.unclaim([r[0] for r in batch])
                    return
            elif limited:
                grant = limiter.granted
            sending.add(me)
            try:
                try:
                    if one is not None:
                        results = (await one(message_of(batch[0])),)
                    else:
                        results = await send([message_of(r) for r in batch])
                finally:  # the answer is in: the limiter's window may move on (engine.sending.limiter)
                    if limited:
                        limiter.complete(grant)
                if len(results) != len(batch):
                    raise DispatchError(
                        f"the {name} adapter returned {len(results)} results for {len(batch)} "
                        "messages; an adapter must answer every message of a batch, in order")
            except Exception as exc:  # a configuration or programming error in the adapter
                sending.discard(me)
                lane.busy -= 1
                ledger.unclaim([r[0] for r in batch])
                if self.error is None:
                    self.error = exc
                self.halt("error")
                return
            sending.discard(me)
            t = clock()
            retried = lane.retried
            for r, res in zip(batch, results):
                if res.status == SENT:
                    sent(r[13], res.provider_id, t)
                    lane.sent += 1
                else:
                    record(lane, r, res, t, max_attempts)
            lane.busy -= 1
            if ledger.pending_writes >= FLUSH_ROWS:
                self._flush()
            if retried != lane.retried or self.suppressed_new or (lane.busy == 0 and not queue):
                lane.wake.set()  # a retry may be due sooner, or the lane may be done

    def _record(self, lane: _Lane, row: tuple, res: Result, t: float, max_attempts: int) -> None:
        ledger, status = self.ledger, res.status
        if res.error:  # any adapter's error text: no secret reaches the ledger
            res = res._replace(error=scrub(res.error))
        retry = status == "retry" and row[11] < max_attempts
        why = retry and res.retry_after and unheeded(res, t, self.release and self.release.retry_end(row[10]))
        if status == SENT:
            ledger.sent(row[13], res.provider_id, t)
            lane.sent += 1
        elif retry and not why:
            if res.retry_after:  # written now, not with the buffered results: a crash must not lose it
                ledger.pause(lane.name, t + res.retry_after)
            ledger.retry(row[13], next_attempt_at(res, row[11], t), res.error, t)
            lane.retried += 1
            lane.retrying += 1
        else:
            error = res.error if status != "retry" else f"gave up after {row[11]} attempts: {res.error}{'; ' + why if why else ''}"
            gone = status != "retry" and suppresses(res.error)
            ledger.dead(row[13], error, t, channel=row[2], address=row[5], user_id=row[1], suppress=gone)
            self.suppressed_new |= gone
            lane.dead += 1


async def dispatch(
    plan: str | os.PathLike | pa.Table,
    providers: str | os.PathLike | Mapping[str, Any],
    ledger_path: str | os.PathLike,
    *,
    now: bool = False,
    dry_run: bool = False,
    events: str | os.PathLike | list | None = None,
    at_most_once: bool = False,
    clock: Callable[[], float] | None = None,
    progress: bool = False,
    max_seconds: float | None = None,
    handle_signals: bool = True,
    max_lateness: float = DEFAULT_MAX_LATENESS,
    other_ledger: bool = False,
    replan: bool = False,
    retry_dead: bool = False,
) -> DispatchSummary:
    """Send every planned message of ``plan`` through ``providers``, tracked in ``ledger_path``.

    ``plan``: a plan.arrow path or table; ``providers``: a providers TOML path or a
    mapping channel -> :class:`Channel` / adapter / ``ChannelConfig``.  Messages go out
    at their ``send_at`` (epoch seconds from ``clock``, default ``time.time``), or all
    at once with ``now=True``; retries always wait for their ``next_attempt_at``.
    Rerunning on the same ledger resumes.  ``dry_run`` touches nothing and returns a
    preview (``summary.dry_run`` counts per channel/step/hour, ``summary.samples``), with
    ``summary.loaded`` the messages new to the ledger and the refusal or counts of a re-plan,
    as a send would meet them (:meth:`Ledger.load_plan` rolled back).
    ``max_seconds`` stops (cleanly, like a signal, but without raising) after that many
    seconds.  Every claimed message passes :class:`engine.sending.release.Release` first: the cap
    over every campaign in the ledger, and (without ``now``) a late message is re-timed
    to its next allowed instant keeping its step spacing, or skipped past ``max_lateness``
    seconds.  A plan made with ``winback plan --ledger`` goes out only through that ledger (a
    :class:`ConfigError` otherwise, before anything is created; ``other_ledger`` skips the
    check: :mod:`engine.ledger.identity`).  A re-plan whose pending messages differ from the
    ledger's is refused unless ``replan`` (:meth:`engine.ledger.store.Ledger.load_plan`).  Returns a :class:`DispatchSummary`; raises :class:`Interrupted` after a
    SIGINT/SIGTERM drain and :class:`DispatchError` when an adapter breaks.
    """
    clock = clock or time.time
    table, source = read_plan(plan)
    ledger_path = Path(ledger_path)
    meta = plan_meta(table)  # checked by read_plan: a hand-edited policy is refused before the ledger is touched
    # a plan file planned without --ledger is bound to the first ledger that sends it
    unbound = not isinstance(plan, pa.Table) and not (meta.get("ledger") or {}).get("path")
    bound = read_binding(plan) if unbound else None
    check_plan_ledger(meta, ledger_path, source=source, allow_other=other_ledger, bound=bound)
    summary = DispatchSummary(ledger=str(ledger_path))
    if dry_run:
        return dry_run_summary(summary, table, source, providers, ledger_path, events=events, replan=replan)
    providers = before_ledger(table, source, providers)  # a bad plan or providers file: no ledger made
    exits = ExitWatch(None, events).read()  # exit_on per step (a bad file: nothing loaded); re-read while sending
    t_start = time.monotonic()
    with LedgerLock(ledger_path), Ledger(ledger_path) as ledger:
        summary.loaded = ledger.load_plan(table, source=source, replan=replan)
        summary.replanned = dict(ledger.replanned)
        if unbound and bound is None:
            write_binding(plan, ledger_path)
        campaigns = campaign_ids(table)
        if retry_dead:  # messages that died of an outage get a new round (the release checks still apply)
            summary.revived = ledger.retry_dead(campaigns)
        if summary.loaded or any(summary.replanned.values()) or not has_plan_record(ledger, table, meta):
            record_plan(ledger, table, meta)  # the campaign's policy and zones, for the release checks
        if summary.loaded and meta.get("broadcast"):  # read by the plan's broadcast guard
            ledger.record_broadcast(str(meta.get("campaign_id") or meta.get("id") or ""))
        counts = ledger.counts()  # one scan: channels still to send, totals, retries pending
        if any(states.get("in_flight") for states in counts.values()):  # a run was killed
            summary.recovered = ledger.recover(at_most_once=at_most_once)
        summary.exited = exits.poll(clock(), ledger)
        suppressed_before = ledger.skip_suppressed()  # suppressions of earlier runs, receive and sunset
        summary.suppressed = suppressed_before + exits.suppressed
        if summary.recovered or summary.exited or summary.suppressed:
            counts = ledger.counts()
        pending_states = ("planned", "failed", "in_flight")
        needed = [c for c, states in counts.items() if any(states.get(s) for s in pending_states)]
        channels, owned = channels_for(providers, needed)
        total = sum(n for c in counts.values() for s, n in c.items() if s in pending_states)
        lanes = {name: _Lane(name, ch, RateLimiter(ch.rate_per_second, track=True)) for name, ch in channels.items()}
        if summary.recovered:  # the killed run's last requests may still reach the provider
            for lane in lanes.values():
                lane.limiter.hold(1.0)
        for name, states in counts.items():
            if name in lanes:
                lanes[name].retrying = states.get("failed", 0)
        release = Release(ledger, now=now, max_lateness=max_lateness)
        run = _Run(ledger, lanes, now=now, clock=clock, progress=progress, total=total, release=release,
                   exits=exits)
        loop = asyncio.get_running_loop()
        installed = []
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, run.halt, signal.Signals(sig).name)
                    installed.append(sig)
                except (ValueError, RuntimeError, NotImplementedError):
                    pass  # not the main thread: the caller handles signals
        timer = loop.call_later(max_seconds, run.halt, "max_seconds") if max_seconds else None
        try:
            await run.run()
        finally:
            if timer is not None:
                timer.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            if owned:
                for ch in channels.values():
                    await ch.adapter.aclose()
            summary.states = ledger.counts()
            summary.skipped = {why: n for why, n in release.skipped.items() if why != "suppressed"}
            summary.retimed = release.retimed
            summary.exited = exits.exited
            summary.notes = list(exits.notes)  # event names read under their obvious spelling
            # (suppressions written while sending: skipped at the screen)
            summary.suppressed = suppressed_before + exits.suppressed + release.skipped.get("suppressed", 0)
            summary.seconds = time.monotonic() - t_start
            for name, lane in lanes.items():
                summary.per_channel[name] = {
                    "sent": lane.sent, "retried": lane.retried, "dead": lane.dead,
                    "rate": lane.sent / max(summary.seconds, 1e-9)}
                summary.sent += lane.sent
                summary.retried += lane.retried
                summary.dead += lane.dead
        summary.gave_up = ledger.gave_up(campaigns)
    summary.stopped = run.stopped
    summary.complete = summary.pending == 0
    if run.error is not None:
        raise DispatchError(
            f"sending stopped: an adapter failed with {type(run.error).__name__}: {scrub(str(run.error))}. "
            f"{summary.sent} messages were sent and recorded in {ledger_path}; fix the provider "
            "configuration and run the same command again to resume.") from None
    if run.stopped in ("SIGINT", "SIGTERM"):
        exc = Interrupted(
            f"stopped by {run.stopped} after draining: {summary.sent} sent this run, "
            f"{summary.pending} still pending in {ledger_path}; run the same command again to resume")
        exc.summary = summary  # type: ignore[attr-defined]
        raise exc
    return summary


def send(plan, providers, ledger_path, **kwargs: Any) -> DispatchSummary:
    """Blocking :func:`dispatch` (runs its own event loop); same arguments."""
    return asyncio.run(dispatch(plan, providers, ledger_path, **kwargs))
