"""Step 1, score: one row per user with lapse risk, best send time and fatigue budget.

``score(users, events, as_of=...)`` reads users once, streams the events in record
batches through the fused numba pass (:mod:`engine.kernels`), fits BG/NBD on the
compressed (x, t_x, T) rows (:mod:`engine.bgnbd`), smooths send times toward each
timezone's population (:mod:`engine.sendtime`), and derives budgets and labels
(:mod:`engine.fatigue`).  Memory is O(users); events are never held whole.

Model inputs, in days: ``frequency`` = distinct active (UTC) days in the model window
(activity at most ``model_window_days``, default 730, before ``as_of``; older activity
only sets ``last_active_at``) minus one; ``recency_days`` = last minus first active day;
``tenure_days`` = ``as_of`` minus the first active day.  BG/NBD gives every user with
no repeat activity P(alive) = 1 by construction; winback instead lets the first
active day carry a dropout chance for those users (the MBG/NBD convention of
Batislam, Denizel & Filiztekin 2007): ``p_alive = 1 / (1 + a/b ((alpha+T)/alpha)^r)``
with ``T`` the days since their only activity (since ``signup_at`` when they never were
active, and the model window, 730 days, when that is unknown too), so a one-time
visitor from a year ago is not "certainly alive", and no user gets NaN; ``lapse_risk`` is
P(no activity in the next ``horizon_days``) under the model (:mod:`engine.scoring.lapse`).

Per-user columns are the ``docs/architecture.md`` scores table plus ``engagements``
(open/click/session events counted into the send-time histogram).  The unengaged
streak counts at most the 8 most recent sends per channel (``kernels.RECENT_SENDS``).

Scoring runs in three phases so that a partitioned dataset (``winback partition``) can be
scored one partition at a time, on one machine or on Dask workers
(:mod:`engine.distributed`), with the same result as one pass over everything:

1. :func:`aggregate` one partition: the fused pass gives its :class:`Partial`, which
   carries the partition's sufficient statistics (:class:`PartStats`: BG/NBD
   compressed rows with weights, per-timezone send-time histograms keyed by timezone
   name, value counts of the RFM keys).
2. :func:`reduce_stats` sums the statistics of all partitions and fits BG/NBD once:
   :class:`Population`.
3. :func:`finalize` one partition with the population: its scores table.

``score()`` is these three phases on a single partition.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from pyarrow import ipc

from engine.scoring.settings import Settings, activity_mask as _activity_mask, settings  # noqa: F401
from engine.errors import ModelError
from engine.io.meta import SCORE, read_meta, with_meta
from engine.io.duplicates import DuplicateSample, duplicates_warning
from engine.io.readers import iter_events, load_users
from engine.schema import NEVER, SECONDS_PER_DAY
from engine.scoring import cohorts, fatigue_model, kernels, lapse_learned, lapse_models, sendtime, tzhours
from engine.scoring.bgnbd import BGNBD, compress
from engine.scoring.bgnbd_rows import compress_for_fit
from engine.scoring.columns import derive, rfm_keys
from engine.scoring.fatigue import quintile_cuts as _quintile_cuts
from engine.tz import from_epoch_seconds, offset_table, zone_index

#: event batches decoded at once in the fused pass, at most one per core (threads of the reader;
#: the decode kernel releases the GIL), so that reading keeps up with the fold on every core.
#: Measured at 1M users (2 cores, 5 runs each): the pass 4.70 -> 4.28 s (BG/NBD-process world,
#: 49.8M events), 5.6 -> 5.2 s (seed 7, 59.5M events); medians, one decoder against two
DECODERS = 2

__all__ = ["score", "summary_of", "Settings", "PartStats", "Partial", "Population", "settings", "aggregate",
           "reduce_stats", "finalize"]


def score(users, events, *, as_of=None, on_bad_rows: str = "error", quarantine=None,
          batch_rows: int = 1 << 20, progress: bool = False, items=None, later_events: str = "bad",
          **options) -> pa.Table:
    """Score every user as of ``as_of`` (UTC; default now); returns a ``pyarrow.Table``.

    ``users``/``events``: paths (Arrow IPC, Parquet, CSV or directories) or
    ``pyarrow.Table`` s (streamed in record batches through the same validation as
    files, no copy to disk).  ``quarantine``: a directory
    that receives ``users.rejected.arrow`` and ``events.rejected.arrow`` when
    ``on_bad_rows="quarantine"``.  ``options`` are the scoring settings, each with its
    default and unit in :class:`engine.scoring.settings.Settings` (``activity``,
    ``default_timezone``, ``policy_cap`` messages per ``policy_window_days``,
    ``half_life_days`` of the send-time histogram, its ``prior_weight``, ...).
    ``horizon_days``: ``lapse_risk`` is P(no activity in the next ``horizon_days`` days);
    ``penalizer``: the BG/NBD fit's L2 coefficient (:class:`engine.scoring.bgnbd.BGNBD`, 0 = none);
    ``fatigue``: "learned" budgets (:mod:`engine.scoring.fatigue_model`) or the fixed "rule".
    ``items``: the catalogue (path or table; see :mod:`engine.items`): then item events
    add ``category_affinity`` (shares per category, in the order of the metadata's
    ``items.categories``), ``affinity_confidence`` (decayed item interactions, half-life
    ``affinity_half_life_days``), ``top_category`` and ``consumed_items``, and the
    schema metadata ``winback.item_stats`` carries each item's popularity and trend
    (:func:`engine.items.decode_table`).
    ``later_events="ignore"``: events after ``as_of`` are skipped instead of being bad rows
    (what a backtest scoring at its cut wants; :func:`engine.io.readers.iter_events`).
    The returned table's schema metadata ``winback.score`` holds as_of, the BG/NBD
    parameters and diagnostics and the timing; :func:`summary_of` reads it back.
    """
    t_start = time.perf_counter()
    cfg = settings(as_of=as_of, **options)
    part = aggregate(users, events, cfg, on_bad_rows=on_bad_rows, quarantine=quarantine,
                     batch_rows=batch_rows, progress=progress, items=items, later_events=later_events)
    # the lapse model is chosen on a thread beside the fits and beside finalize's columns that do not
    # depend on it (send times, budgets, channels, RFM): at 1M users it takes 0.7 s
    with ThreadPoolExecutor(1, thread_name_prefix="winback-lapse") as pool:
        pop = reduce_stats([part.stats], cfg, pool=pool)
        out = finalize(part, pop)
    meta = summary_of(out)
    meta["seconds"] = round(time.perf_counter() - t_start, 3)
    return _with_meta(out, meta)


@dataclasses.dataclass
class PartStats:
    """Sufficient statistics of one partition for the population models (small, picklable).

    ``bgnbd``: compressed unique (x, t_x, T) rows in days and their weights (users);
    ``hour_hist``/``wd_hist``: per timezone name, the sum of the users' decayed
    engagement histograms ([24] and [7] int64 in ``sendtime.POP_UNIT``, exact in any
    order); ``rfm``: per RFM key ("r", "f", "m"), the distinct key values and how many
    users have each.
    """

    bgnbd: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    hour_hist: dict[str, np.ndarray]
    wd_hist: dict[str, np.ndarray]
    rfm: dict[str, tuple[np.ndarray, np.ndarray]]
    users: int
    events: int
    users_rejected: int
    events_rejected: int
    aggregation_seconds: float
    #: with a catalogue: per item (catalogue order) popularity, recent_7d, prior_28d, and
    #: the counts of item events and of events naming items not in the catalogue
    items: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    item_events: tuple[int, int] = (0, 0)
    #: the latest activity event of any user, epoch seconds UTC (NEVER: none)
    newest_activity: int = NEVER
    #: address values rewritten / found to be no address, per column (engine.io.addresses)
    addresses: dict = dataclasses.field(default_factory=dict)
    #: lines about the inputs read (columns read under the contract's spelling)
    notes: list = dataclasses.field(default_factory=list)
    fatigue: dict | None = None  # engine.scoring.fatigue_model.part_stats
    hour_spread: np.ndarray | None = None  # engine.scoring.sendtime.mode_spread
    lapse: dict | None = None  # engine.scoring.lapse_learned.part_stats
    tz_profile: tuple | None = None  # engine.scoring.tzhours.part_profile
    duplicates: dict | None = None  # engine.io.duplicates.DuplicateSample.result
    cohorts: dict | None = None  # engine.scoring.cohorts.part_sums, with send_time_cohort


@dataclasses.dataclass
class Partial:
    """One aggregated partition: its users, accumulators, BG/NBD inputs and statistics."""

    cfg: Settings
    table: pa.Table
    acc: kernels.Accumulators
    zones: list[str]
    user_tz: np.ndarray
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    in_window: np.ndarray
    stats: PartStats
    items: object = None  # engine.items.Items
    item_acc: object = None  # engine.affinity.ItemAccumulators
    fatigue: object = None  # engine.scoring.fatigue_model.FatigueAccumulators
    rfm: dict | None = None  # engine.scoring.columns.rfm_keys, made once in aggregate for finalize
    cohort_codes: tuple | None = None  # engine.scoring.cohorts.codes, read once in aggregate for finalize


@dataclasses.dataclass
class Population:
    """What the whole population contributes to every user's score: the fitted BG/NBD
    model, the send-time prior shares per timezone name, and the RFM quintile cut points."""

    params: dict
    model: dict
    hour_share: dict[str, np.ndarray]
    wd_share: dict[str, np.ndarray]
    rfm_cuts: dict[str, np.ndarray | None]
    #: with a catalogue: (popularity, recent_7d, prior_28d, item events, unknown item events)
    item_stats: tuple | None = None
    fatigue: dict | None = None  # engine.scoring.fatigue_model.fit_stats
    hour_spread: dict | None = None  # engine.scoring.sendtime.fit_spread
    lapse_model: dict | None = None  # engine.scoring.lapse_learned.choose
    tz_profile: dict | None = None  # engine.scoring.tzhours.fit_profile
    cohorts: dict | None = None  # engine.scoring.cohorts.fit, with send_time_cohort
    pareto: dict | None = None  # engine.scoring.lapse_models.fit_pareto, when Pareto/NBD scores
    newest_activity: int = NEVER  # the latest activity of any user (epoch s UTC; NEVER: none)
    #: (lapse_model, pareto) still being made on reduce_stats' pool; :meth:`lapse` waits for it
    pending_lapse: object = None

    def lapse(self) -> tuple[dict | None, dict | None]:
        """``(lapse_model, pareto)``, waiting for them when :func:`reduce_stats` chose on a pool."""
        if self.pending_lapse is not None:
            self.lapse_model, self.pareto = self.pending_lapse.result()
            self.pending_lapse = None
        return self.lapse_model, self.pareto

    def __getstate__(self):  # pickled (a Dask client) only once the choice is made
        self.lapse()
        return self.__dict__


def _day0(acc: kernels.Accumulators, as_of: int) -> int:
    """The UTC day of bit 0 of the active-day bitset (the as_of day is the last bit)."""
    return int(as_of // SECONDS_PER_DAY - (acc.day_bits.shape[1] * 64) + 1)


def aggregate(users, events, cfg: Settings, *, on_bad_rows: str = "error", quarantine=None,
              batch_rows: int = 1 << 20, progress: bool = False, items=None, later_events: str = "bad") -> Partial:
    """Phase 1: load one partition's users, stream its events through the fused pass.

    ``items`` (a path, table or :class:`engine.items.Items`): the catalogue; item
    events then also feed :mod:`engine.affinity`.
    """
    qu = qe = None
    if quarantine is not None:
        os.makedirs(quarantine, exist_ok=True)
        qu = os.path.join(quarantine, "users.rejected.arrow")
        qe = os.path.join(quarantine, "events.rejected.arrow")
    as_of = cfg.as_of
    is_act = _activity_mask(list(cfg.activity))
    u = load_users(users, on_bad_rows=on_bad_rows, quarantine=qu, infer_timezones=True)
    table = u.table
    # a mistyped --send-time-cohort is said before the pass, not after it
    cohort_codes = (cohorts.codes(table, cfg.send_time_cohort, source=users if isinstance(users, (str, os.PathLike))
                                  else "users") if cfg.send_time_cohort else None)
    zones, user_tz = zone_index(table, cfg.default_timezone)
    window_start = as_of - cfg.model_window_days * SECONDS_PER_DAY
    off_table, off_t0 = offset_table(zones, window_start, as_of)
    acc = kernels.Accumulators.zeros(table.num_rows, cfg.model_window_days + 1)
    day0 = _day0(acc, as_of)
    n_events = 0
    fat = fatigue_model.FatigueAccumulators.zeros(table.num_rows)
    cat = item_acc = None
    if items is not None:
        from engine.io.items import load_items
        from engine.scoring import affinity  # only with a catalogue

        cat = load_items(items, on_bad_rows=on_bad_rows,
                         quarantine=None if quarantine is None else os.path.join(quarantine, "items.rejected.arrow"))
        item_acc = affinity.ItemAccumulators.zeros(table.num_rows, len(cat), len(cat.categories))
    t_pass = time.perf_counter()
    # batches are read on a second thread (read_ahead), the fused pass runs on every core, and
    # the affinity kernel (it releases the GIL) on a thread of its own beside the pass
    pool = ThreadPoolExecutor(1, thread_name_prefix="winback-affinity") if cat is not None else None
    pending = None
    n_threads = kernels.threads()
    folder = kernels.Folder(acc, user_tz=user_tz, off_table=off_table, off_t0=off_t0, as_of=as_of,
                            is_activity=is_act, day0=day0, window_days=cfg.model_window_days,
                            half_life_days=cfg.half_life_days, n_threads=n_threads,
                            also=lambda uidx, ts, ev, bounds: fatigue_model.accumulate_arrays(fat, uidx, ts, ev, as_of,
                                                                                          bounds))
    dups = DuplicateSample(table.num_rows)

    def then(batch):  # on the thread that decoded the batch: its block counts, and the duplicate sample
        dups.add(batch)
        return folder.counts(batch)

    try:
        notes = [n for n in (u.renamed, getattr(cat, "renamed", "")) if n]
        # each batch's block counts are taken on the thread that decoded it (Folder.counts), beside the fold
        for batch, counts in iter_events(events, u, as_of=as_of, on_bad_rows=on_bad_rows, quarantine=qe,
                                         batch_rows=batch_rows, progress=progress, read_ahead=2,
                                         later=later_events, notes=notes, decoders=min(DECODERS, n_threads),
                                         then=then):
            if pending is not None:
                pending.result()
            if pool is not None:
                pending = pool.submit(affinity.accumulate_items, item_acc, batch, cat, as_of=as_of,
                                      half_life_days=cfg.affinity_half_life_days)
            folder.add(batch, counts)  # also the fatigue counts (fat)
            n_events += len(batch)
        folder.flush()
        if pending is not None:
            pending.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    pass_seconds = time.perf_counter() - t_pass
    events_rejected = 0
    if qe is not None and os.path.exists(qe):
        with pa.memory_map(qe) as src:
            events_rejected = ipc.open_file(src).read_all().num_rows
    days_active = kernels.frequency_from_bits(acc.day_bits)
    # the learned lapse model's rows (a sort of every user's key per cut) on a thread beside the other statistics
    side = ThreadPoolExecutor(2, thread_name_prefix="winback-lapse-rows")
    lapse_later = side.submit(lapse_learned.part_stats, acc.day_bits, as_of=as_of, day0=day0,
                              window_days=cfg.model_window_days, horizon_days=cfg.horizon_days,
                              mode=cfg.lapse_model)
    dups_later = side.submit(dups.result)  # (the sort releases the GIL)
    side.shutdown(wait=False)
    in_window = days_active > 0
    first_day = np.where(in_window, acc.first_act_window // SECONDS_PER_DAY, 0)
    last_day = np.where(in_window, acc.last_act // SECONDS_PER_DAY, 0)
    x = np.maximum(days_active - 1, 0).astype(np.float64)
    t_x = np.where(in_window, last_day - first_day, 0).astype(np.float64)
    T = np.where(in_window, as_of / SECONDS_PER_DAY - first_day, 0.0)
    hour_pop = sendtime.population_sums(acc.hour_hist, user_tz, len(zones))
    wd_pop = sendtime.population_sums(acc.wd_hist, user_tz, len(zones))
    keys = rfm_keys(acc, as_of, x, in_window)
    bgnbd_rows = compress_for_fit(x[in_window], t_x[in_window], T[in_window], None)
    rfm = {k: tuple(np.unique(v[~np.isnan(v)], return_counts=True)) for k, v in keys.items()}
    fatigue_stats = fatigue_model.part_stats(fat)
    hour_spread = sendtime.mode_spread(acc.hour_hist)
    cohort_sums = cohorts.part_sums(acc.hour_hist, acc.wd_hist, *cohort_codes) if cohort_codes else None
    lapse_rows = lapse_later.result()
    acc.day_bits = acc.day_bits[:0]  # spent (96 bytes a user): dropped before finalize
    stats = PartStats(
        bgnbd=bgnbd_rows,
        hour_hist={z: hour_pop[i] for i, z in enumerate(zones)},
        wd_hist={z: wd_pop[i] for i, z in enumerate(zones)},
        rfm=rfm,
        users=table.num_rows, events=n_events, users_rejected=u.rejected, events_rejected=events_rejected,
        addresses=u.addresses, notes=notes,
        aggregation_seconds=pass_seconds,
        items=None if cat is None else (item_acc.popularity, item_acc.recent, item_acc.prior),
        item_events=(0, 0) if cat is None else (item_acc.item_events, item_acc.unknown_item_events),
        fatigue=fatigue_stats, hour_spread=hour_spread,
        lapse=lapse_rows, duplicates=dups_later.result(), cohorts=cohort_sums,
        newest_activity=int(acc.last_act.max()) if len(acc.last_act) else NEVER,
        tz_profile=(tzhours.part_profile(acc.hour_hist, table["timezone_source"], zones, user_tz)
                    if "timezone_source" in table.column_names else None))
    return Partial(cfg=cfg, table=table, acc=acc, zones=zones, user_tz=user_tz, x=x, t_x=t_x, T=T,
                   in_window=in_window, stats=stats, items=cat, item_acc=item_acc, fatigue=fat, rfm=keys,
                   cohort_codes=cohort_codes)


def reduce_stats(stats: list[PartStats], cfg: Settings, *, pool: ThreadPoolExecutor | None = None) -> Population:
    """Phase 2: sum the partitions' statistics and fit BG/NBD once on the merged rows.

    ``pool``: the lapse model is chosen there, beside the fits and sums here and beside the
    columns of :func:`finalize` that do not need it; the Population then holds it as
    ``pending_lapse`` until :meth:`Population.lapse` (called by finalize, or by pickling)
    waits for it.  Without a pool it is chosen here.  The result is the same either way."""
    lapse_rows = lapse_learned.merge_stats([s.lapse for s in stats])  # one partition's: as they are, at once
    kw = dict(as_of=cfg.as_of, horizon_days=cfg.horizon_days, penalizer=cfg.penalizer, mode=cfg.lapse_model)
    bg = [np.concatenate([s.bgnbd[i] for s in stats]) for i in range(4)]
    x, t_x, T, w = compress(*bg[:3], weights=bg[3])[:4]
    later = pool.submit(_choose_lapse, lapse_rows, kw, (x, t_x, T, w)) if pool is not None else None
    model = BGNBD(penalizer=cfg.penalizer)
    try:
        model.fit(x, t_x, T, weights=w)
    except ModelError as exc:
        from engine.scoring.columns import stale_warning

        stale = stale_warning(max((getattr(s, "newest_activity", NEVER) for s in stats), default=NEVER), cfg.as_of)
        raise ModelError(f"scoring stopped: {exc}" + (f"; {stale}" if stale else ""), exc.diagnostics) from None
    zones: dict[str, int] = {}
    for s in stats:
        for z in s.hour_hist:
            zones.setdefault(z, len(zones))
    pops, pop_sums = [], []
    for attr, bins in (("hour_hist", 24), ("wd_hist", 7)):
        pop = np.zeros((len(zones), bins), np.int64)
        for s in stats:
            for z, h in getattr(s, attr).items():
                pop[zones[z]] += h
        pops.append(sendtime.population_shares(pop * sendtime.POP_UNIT))
        pop_sums.append(pop)
    cuts = {}
    for k in ("r", "f", "m"):
        vals = np.concatenate([s.rfm[k][0] for s in stats])
        counts = np.concatenate([s.rfm[k][1] for s in stats]).astype(np.int64)
        cuts[k] = _quintile_cuts(vals, counts)
    item_stats = None
    with_items = [s.items for s in stats if s.items is not None]
    if with_items:
        pop_, recent, prior = (np.sum([x[i] for x in with_items], axis=0) for i in range(3))
        item_stats = (pop_, recent, prior, sum(s.item_events[0] for s in stats),
                      sum(s.item_events[1] for s in stats))
    fatigue_pop = fatigue_model.fit_stats([s.fatigue for s in stats if s.fatigue is not None])
    choice, pareto = (None, None) if later is not None else _choose_lapse(lapse_rows, kw, (x, t_x, T, w))
    return Population(params=dict(model.params_), model={"name": "BG/NBD", "units": "days", **model.params_,
                                                          **model.diagnostics_},
                      hour_share={z: pops[0][i] for z, i in zones.items()},
                      wd_share={z: pops[1][i] for z, i in zones.items()}, rfm_cuts=cuts, item_stats=item_stats,
                      fatigue=fatigue_pop,
                      hour_spread=sendtime.fit_spread([s.hour_spread for s in stats]),
                      lapse_model=choice, pareto=pareto, pending_lapse=later,
                      newest_activity=max((getattr(s, "newest_activity", NEVER) for s in stats), default=NEVER),
                      tz_profile=tzhours.fit_profile([getattr(s, "tz_profile", None) for s in stats]),
                      cohorts=(cohorts.fit([getattr(s, "cohorts", None) for s in stats], pop_sums[0].sum(axis=0),
                                           pop_sums[1].sum(axis=0), cfg.send_time_cohort)
                               if cfg.send_time_cohort else None))


def _choose_lapse(lapse_rows, kw: dict, rows: tuple) -> tuple[dict, dict | None]:
    """The lapse model decision (:func:`engine.scoring.lapse_learned.choose`) and, only when it
    picks Pareto/NBD, that model fitted on every user's compressed ``rows`` (x, t_x, T, weights)."""
    choice = lapse_learned.choose(lapse_rows, **kw)
    pareto = lapse_models.fit_pareto(*rows, kw["penalizer"]) if choice["used"] == "pareto" else None
    return choice, pareto


def _with_meta(table: pa.Table, meta: dict) -> pa.Table:
    return with_meta(table, SCORE, meta, default=float)


def finalize(part: Partial, pop: Population) -> pa.Table:
    """Phase 3: one partition's scores table, given the whole population's :class:`Population`.

    Finalizing consumes ``part``: its largest accumulators (send ages, histograms, weekly
    counts, item pairs) are released as soon as their columns are built, so that peak memory
    is the scores table plus what is still to convert, not both whole (10M users: about 3 GiB).
    """
    cfg = part.cfg
    # the third step of the timezone rule (engine.scoring.tzhours): zones from engagement hours
    part.table, tz_info = tzhours.infer(part.table, part.acc.hour_hist, part.acc.eng_count, pop.tz_profile,
                                        pop.hour_spread, default_tz=cfg.default_timezone, as_of=cfg.as_of,
                                        min_engagements=cfg.tz_min_engagements, min_posterior=cfg.tz_min_posterior,
                                        within_hours=cfg.tz_within_hours)
    if tz_info["inferred"]:
        part.zones, part.user_tz = zone_index(part.table, cfg.default_timezone)
    table = part.table
    consumed = None
    if part.items is not None:  # the consumed-items sort (nogil) runs beside _derive
        from engine.scoring import affinity
        pool = ThreadPoolExecutor(1, thread_name_prefix="winback-consumed")
        consumed = pool.submit(affinity.consumed_csr, part.item_acc.pairs, table.num_rows, len(part.items),
                               part.items.ids)
        pool.shutdown(wait=False)
    cols, meta = derive(part, pop)
    meta["warnings"].extend(getattr(part.stats, "notes", []))
    dup = getattr(part.stats, "duplicates", None)
    if dup is not None:
        meta["duplicate_events"] = {k: v for k, v in dup.items() if k != "example"}
        warning = duplicates_warning(dup, table["user_id"])
        if warning:
            meta["warnings"].append(warning)
    replaced = [name for name in cols if name in table.column_names]
    if replaced:  # said, not silent: a scores file passed as USERS replaces every one of them
        meta["warnings"].append(
            f"{len(replaced)} users column(s) share a name with a score column and were replaced by the score: "
            f"{', '.join(replaced[:6])}{', ...' if len(replaced) > 6 else ''} (was a scores file passed as USERS? "
            "rename the columns to keep them)")
    out = table
    for name, arr in cols.items():
        if name in out.column_names:
            out = out.drop_columns([name])
        out = out.append_column(name, arr)
    s = part.stats
    meta.update(as_of=from_epoch_seconds(np.array([cfg.as_of])).to_pylist()[0].isoformat(),
                users=s.users, events=s.events, users_rejected=s.users_rejected, events_rejected=s.events_rejected,
                addresses=s.addresses,
                aggregation_seconds=round(s.aggregation_seconds, 3), activity=list(cfg.activity),
                default_timezone=cfg.default_timezone, timezone_inference=tz_info,
                policy={"cap": cfg.policy_cap, "window_days": cfg.policy_window_days})
    if part.items is not None:
        out = affinity.with_items(out, part, pop, meta, consumed.result())
    return _with_meta(out, meta)


def summary_of(scores: pa.Table) -> dict:
    """The ``winback.score`` metadata of a scores table as a dict ({} when absent)."""
    return read_meta(scores, SCORE)
