"""The synthetic world's catalogue, item-level events with drifting tastes, and the theme truth.

Model (times are epoch seconds UTC, durations in days; ``window0 = as_of - days``; the
numbers are in :data:`ITEM_PARAMS`):

* **Catalogue** of ``n_items`` items (default ``clip(n_users // 20, 200, 100_000)``).
  Each item has a first category drawn from :data:`CATEGORIES` with the unequal
  weights of :data:`CATEGORY_WEIGHTS`, and with probability 0.3 a second, different
  one.  ``added_at``: 30 % uniform over the 730 days before ``window0`` (the back
  catalogue), 45 % uniform over ``[window0, as_of - 60 d)``, 25 % uniform over the 60
  days before ``as_of`` ("new since you left"); one item per category is always in the
  back catalogue and never expires, so every category has an item at any event time.
  ``expires_at``: null for most; 8 % in ``(as_of, as_of + 21 d]`` ("leaving soon"),
  5 % already expired at a uniform instant between ``added_at + 7 d`` and ``as_of``
  (for items added at least 30 days before ``as_of``), 5 % in ``(as_of + 21 d,
  as_of + 180 d]``.  ``editorial`` True for 4 %.  Latent popularity is Zipf-like within
  the first category: ``rank ** -zipf_s`` (1.0) with the rank a random permutation.
  ``item_id`` is unique and not sequential; titles are deterministic text, ~4 %
  holding an HTML-special character (``&``, ``<``, ``'``).
* **Tastes**: each user has an old taste ``old ~ Dirichlet(0.3 * 12 * w)`` over the
  categories (``w`` the category weights: concentrated, mean ``w``), a drift
  ``d ~ Beta(1, 3)`` (mean 0.25, above 0.5 for 1 user in 8) and a current taste ``cur = (1 - d) * old + d * new`` with
  ``new`` another such Dirichlet draw.  At time ``t`` the taste is
  ``(1 - f) * old + f * cur`` with ``f = (t - window0) / (as_of - window0)`` clipped to
  [0, 1]: linear from the window's start to ``as_of``.
* **Item events**: 70 % of sessions and every purchase carry an ``item_id``.  The
  category comes from the user's taste at the event time (a mixture: ``cur`` with
  probability ``f``, else ``old``); the item is drawn among the items of that category
  (first or second) available at the event time (``added_at <= t < expires_at``)
  proportionally to popularity: per category, items sorted by ``added_at`` with a
  prefix cumulative sum of popularity and ``searchsorted``; a draw that lands on an
  item already expired is drawn again (up to ``_REDRAWS`` times, exact in the limit);
  when none is available the event's ``item_id`` is null.
* **Theme truth** (``truth.theme``, one of :data:`engine.schema.THEMES`, and
  ``truth.taste_drift`` = ``d``): ``d > 0.5`` -> ``broaden``; else a gone user whose
  dropout was more than 180 days before ``as_of`` -> ``trending``; else drawn from
  new_in_your_categories 0.4, leaving_soon 0.2, editorial 0.2, trending 0.2.  The
  outcome simulator multiplies the open probability of a themed message by
  :func:`engine.world.theme_factor`.

The catalogue draws from ``default_rng([seed, 0x17E45, 0xCA7])`` and each chunk of
users from ``default_rng([seed, ci, 0x17E45])``, apart from the streams of every
other column, which therefore stay byte-for-byte those of a world without items.
Everything is vectorised numpy; the only loop is over the few redraws.  Both binary
searches of an item draw get sorted queries (an argsort each): 1M users with the
default 50,000 items take ~31 s instead of ~26 s without items, 0.86 GB peak RSS.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError
from engine.schema import SECONDS_PER_DAY, THEME_CODE, THEMES, TIMESTAMP

__all__ = ["CATEGORIES", "CATEGORY_WEIGHTS", "default_n_items", "resolve_n_items", "catalogue", "Catalogue",
           "ChunkItems", "chunk_items", "with_items", "truth_with_theme"]

CATEGORIES: tuple[str, ...] = ("drama", "comedy", "documentary", "thriller", "kids", "sci-fi",
                               "romance", "sports", "music", "news", "food", "travel")
CATEGORY_WEIGHTS = np.array([0.18, 0.15, 0.10, 0.10, 0.08, 0.07, 0.07, 0.07, 0.06, 0.05, 0.04, 0.03])
ITEM_PARAMS = {
    "second_category": 0.3, "back_catalogue": 0.30, "recent": 0.25, "recent_days": 60, "back_days": 730,
    "leaving_soon": 0.08, "leaving_days": 21, "expired": 0.05, "expires_later": 0.05, "editorial": 0.04,
    "zipf_s": 1.0, "taste_alpha": 0.3, "drift_beta": (1.0, 3.0), "session_item": 0.7,
    "broaden_drift": 0.5, "trending_gone_days": 180,
    "theme_p": {"new_in_your_categories": 0.4, "leaving_soon": 0.2, "editorial": 0.2, "trending": 0.2},
}
_K = len(CATEGORIES)
_NO_EXPIRY = np.iinfo(np.int64).max
_REDRAWS = 6
_BIG = np.int64(1 << 40)   # category * _BIG + instant orders by category, then time
_ADJ = np.array(["Silent", "Golden", "Last", "Hidden", "Broken", "Wild", "Midnight", "Secret", "Lost", "Bright",
                 "Final", "Distant", "Electric", "Quiet", "Burning", "Frozen", "Little", "Endless", "Crimson", "Open"])
_NOUN = np.array(["River", "City", "Garden", "Signal", "Kitchen", "Road", "Harbor", "Mountain", "Season", "Letter",
                  "Orbit", "Stage", "Island", "Frontier", "Table", "Storm", "Archive", "Circuit", "Voyage", "Match"])
#: title suffixes; the last three carry HTML-special characters
_SUFFIX = np.array(["", ": Part II", " Revisited", " (Live)", " & Friends", " <Uncut>", "'s Secret"])
_SUFFIX_P = np.array([0.82, 0.06, 0.04, 0.04, 0.015, 0.015, 0.01])


def default_n_items(n_users: int) -> int:
    """Catalogue size when none is given: ``clip(n_users // 20, 200, 100_000)``."""
    return int(np.clip(n_users // 20, 200, 100_000))


def resolve_n_items(n_items: int | None, n_users: int) -> int:
    """``n_items``, or the default for ``n_users`` when None; ConfigError when negative."""
    n = default_n_items(n_users) if n_items is None else int(n_items)
    if n < 0:
        raise ConfigError(f"--items must be 0 (no catalogue) or more, got {n}")
    return n


def catalogue(seed: int, n_items: int, as_of: int, days: int, events_schema: pa.Schema):
    """(Catalogue, events schema with ``item_id``), or (None, ``events_schema``) when ``n_items`` is 0."""
    if not n_items:
        return None, events_schema
    return Catalogue(seed, n_items, as_of, days), events_schema.append(pa.field("item_id", pa.int64()))


def _dirichlet(rng, n: int) -> np.ndarray:
    """``n`` tastes ~ Dirichlet(taste_alpha * K * w) as rows, by normalised gammas."""
    g = rng.gamma(ITEM_PARAMS["taste_alpha"] * _K * CATEGORY_WEIGHTS, 1.0, (n, _K))
    s = g.sum(axis=1, keepdims=True)
    return np.where(s > 0, g / np.where(s > 0, s, 1.0), 1.0 / _K)


class Catalogue:
    """The items (arrays by item position) and, per category, the sampling index."""

    def __init__(self, seed: int, n_items: int, as_of: int, days: int):
        P = ITEM_PARAMS
        rng = np.random.default_rng([seed, 0x17E45, 0xCA7])
        n = int(n_items)
        self.as_of, self.window0 = int(as_of), int(as_of) - days * SECONDS_PER_DAY
        w = CATEGORY_WEIGHTS / CATEGORY_WEIGHTS.sum()
        self.item_id = 50_000_000 + rng.permutation(n).astype(np.int64) * 97 + 13
        cat1 = rng.choice(_K, n, p=w)
        cat2 = rng.choice(_K, n, p=w)
        cat2 = np.where(cat2 == cat1, (cat1 + 1 + rng.integers(0, _K - 1, n)) % _K, cat2)
        cat2 = np.where(rng.random(n) < P["second_category"], cat2, -1)
        # added_at: back catalogue, over the window, or recent
        u = rng.random(n)
        recent0 = self.as_of - P["recent_days"] * SECONDS_PER_DAY
        back = self.window0 - (rng.random(n) * P["back_days"] * SECONDS_PER_DAY).astype(np.int64)
        mid = self.window0 + (rng.random(n) * max(recent0 - self.window0, 0)).astype(np.int64)
        rec = recent0 + (rng.random(n) * (self.as_of - recent0)).astype(np.int64)
        added = np.where(u < P["back_catalogue"], back, np.where(u < 1 - P["recent"], mid, rec))
        # expires_at: leaving soon, already expired, later, or never (_NO_EXPIRY = null)
        v = rng.random(n)
        soon = self.as_of + rng.integers(1, P["leaving_days"] * SECONDS_PER_DAY + 1, n)
        lo = added + 7 * SECONDS_PER_DAY
        past = lo + (rng.random(n) * np.maximum(self.as_of - lo, 0)).astype(np.int64)
        later = self.as_of + rng.integers(P["leaving_days"] * SECONDS_PER_DAY + 1, 180 * SECONDS_PER_DAY + 1, n)
        c1, c2, c3 = np.cumsum([P["leaving_soon"], P["expired"], P["expires_later"]])
        can_expire = added < self.as_of - 30 * SECONDS_PER_DAY
        expires = np.where(v < c1, soon, np.where((v < c2) & can_expire, past,
                                                  np.where((v >= c2) & (v < c3), later, _NO_EXPIRY)))
        editorial = rng.random(n) < P["editorial"]
        # one back-catalogue item per category that never expires: every category always has an item
        m = min(n, _K)
        cat1[:m], cat2[:m] = np.arange(m), -1
        added[:m] = self.window0 - P["back_days"] * SECONDS_PER_DAY
        expires[:m] = _NO_EXPIRY
        # popularity: Zipf-like in a random rank order within the first category
        order = np.lexsort((rng.random(n), cat1))
        first = np.searchsorted(cat1[order], cat1[order], side="left")
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n) - first + 1
        self.pop = rank.astype(np.float64) ** -P["zipf_s"]
        self.cat1, self.cat2, self.added, self.expires, self.editorial = cat1, cat2, added, expires, editorial
        sfx = rng.choice(len(_SUFFIX), n, p=_SUFFIX_P)
        a, b = rng.integers(0, len(_ADJ), n), rng.integers(0, len(_NOUN), n)
        self.title = pc.binary_join_element_wise(pa.array(_ADJ[a]), pa.array(_NOUN[b]), " ")
        self.title = pc.binary_join_element_wise(self.title, pa.array(_SUFFIX[sfx]), "")
        # per category: member items sorted by added_at, all categories in one array ordered by
        # (category, added_at), with the prefix sums of their popularity
        member = np.concatenate([np.arange(n), np.nonzero(cat2 >= 0)[0]])
        mcat = np.concatenate([cat1, cat2[cat2 >= 0]]).astype(np.int64)
        o = np.lexsort((added[member], mcat))
        self._idx, self._key = member[o], mcat[o] * _BIG + added[member[o]]
        self._cum = np.cumsum(self.pop[self._idx])
        first = np.searchsorted(mcat[o], np.arange(_K))
        self._first = first
        self._base = np.where(first > 0, self._cum[np.maximum(first - 1, 0)], 0.0)

    def __len__(self) -> int:
        return len(self.item_id)

    def table(self) -> pa.Table:
        """The catalogue in the ``ITEMS_REQUIRED`` + ``ITEMS_OPTIONAL`` schema (the latent popularity
        stays out: like tastes, it shows only through the events)."""
        n = len(self)
        names = pa.array(CATEGORIES, pa.string())
        two = self.cat2 >= 0
        flat = np.stack([self.cat1, np.where(two, self.cat2, 0)], axis=1).ravel()
        keep = np.ones(2 * n, bool)
        keep[1::2] = two
        offsets = np.concatenate([[0], np.cumsum(1 + two)]).astype(np.int32)
        category = pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(flat[keep])))
        never = self.expires == _NO_EXPIRY
        return pa.table({
            "item_id": pa.array(self.item_id, pa.int64()),
            "title": self.title,
            "category": category,
            "added_at": pa.array(self.added * 1_000_000, TIMESTAMP),
            "expires_at": pa.array(np.where(never, 0, self.expires) * 1_000_000, TIMESTAMP, mask=never),
            "editorial": pa.array(self.editorial, pa.bool_()),
        })

    def draw(self, rng, cat: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Item ids for events of category ``cat`` at ``ts`` (epoch s), by popularity among the
        items available then; -1 where none is.

        Both binary searches get sorted queries (much faster than random ones on large
        chunks); the draws are the same as with the events in their own order.
        """
        out = np.full(len(cat), -1, np.int64)
        q = cat.astype(np.int64) * _BIG + ts
        o = np.argsort(q)
        end = np.empty(len(q), np.int64)
        end[o] = np.searchsorted(self._key, q[o], side="right")   # past the items added by ts
        cat = cat.astype(np.int64)
        sel = np.nonzero(end > self._first[cat])[0]
        lo, end, t = self._base[cat[sel]], end[sel], ts[sel]
        for _ in range(_REDRAWS):
            if not len(sel):
                break
            x = lo + rng.random(len(sel)) * (self._cum[end - 1] - lo)
            o = np.argsort(x)
            j = np.empty(len(x), np.int64)
            j[o] = np.searchsorted(self._cum, x[o], side="right")
            item = self._idx[np.minimum(j, end - 1)]
            ok = self.expires[item] > t
            out[sel[ok]] = self.item_id[item[ok]]
            sel, lo, end, t = sel[~ok], lo[~ok], end[~ok], t[~ok]
        return out


class ChunkItems:
    """Per chunk of users: the ``item_id`` of each of the chunk's event rows (-1 = null; rows
    in generate.py's order: sessions, purchases, then campaign rows), drifts and theme codes."""

    def __init__(self, items, drift, theme):
        self.items, self.drift, self.theme = items, drift, theme


def _taste_category(rng, old, cur, owner, ts, window0, as_of) -> np.ndarray:
    """Category of each event from its user's taste at ``ts``: ``cur`` with probability f, else ``old``.

    One ``searchsorted`` over the users' CDFs laid end to end (user k's old taste at
    ``[2k, 2k + 1)``, current at ``[2k + 1, 2k + 2)``); events come grouped by user, so the
    queries are nearly sorted.
    """
    n_users = len(old)
    f = np.clip((ts - window0) / max(as_of - window0, 1), 0.0, 1.0)
    row = 2 * owner.astype(np.int64) + (rng.random(len(owner)) < f)
    cdf = np.minimum(np.cumsum(np.stack([old, cur], axis=1).reshape(2 * n_users, _K), axis=1), 1.0)
    cdf[:, -1] = 1.0
    flat = (cdf + np.arange(2 * n_users)[:, None]).ravel()
    cat = np.searchsorted(flat, row + rng.random(len(owner)), side="right") - row * _K
    return np.minimum(cat, _K - 1)


def chunk_items(seed: int, ci: int, cat: Catalogue | None, u: dict, act: dict, n_rows: int) -> ChunkItems | None:
    """Tastes, item events and themes of chunk ``ci`` (users ``u``, activity ``act`` and the
    number of event rows of generate.py); None without a catalogue."""
    if cat is None:
        return None
    P = ITEM_PARAMS
    rng = np.random.default_rng([seed, ci, 0x17E45])
    n = u["n"]
    old, new = _dirichlet(rng, n), _dirichlet(rng, n)
    drift = rng.beta(*P["drift_beta"], n)
    cur = (1.0 - drift[:, None]) * old + drift[:, None] * new
    s_owner, s_ts = act["sess"]
    p_owner, p_ts, _ = act["purchase"]
    owner = np.concatenate([s_owner, p_owner])
    ts = np.concatenate([s_ts, p_ts])
    carry = np.concatenate([rng.random(len(s_owner)) < P["session_item"], np.ones(len(p_owner), bool)])
    items = np.full(n_rows, -1, np.int64)                      # sessions, purchases, then campaign rows
    c = _taste_category(rng, old, cur, owner[carry], ts[carry], cat.window0, cat.as_of)
    items[:len(owner)][carry] = cat.draw(rng, c, ts[carry])
    # themes
    names = list(P["theme_p"])
    p = np.array([P["theme_p"][k] for k in names])
    drawn = np.array([THEME_CODE[k] for k in names])[rng.choice(len(names), n, p=p / p.sum())]
    long_gone = ~act["alive"] & (act["dropout_at"] < cat.as_of - P["trending_gone_days"] * SECONDS_PER_DAY)
    theme = np.where(drift > P["broaden_drift"], THEME_CODE["broaden"],
                     np.where(long_gone, THEME_CODE["trending"], drawn)).astype(np.int8)
    return ChunkItems(items, drift, theme)


def with_items(batch: pa.RecordBatch, chi: ChunkItems | None, sel, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the ``item_id`` column of rows ``sel`` of ``chi`` appended (all null when
    ``chi`` is None: the bad rows); ``batch`` itself when ``schema`` has no ``item_id``."""
    if "item_id" not in schema.names:
        return batch
    if chi is None:
        col = pa.nulls(batch.num_rows, pa.int64())
    else:
        items = chi.items[sel]
        col = pa.array(items, pa.int64(), mask=items < 0)
    return pa.RecordBatch.from_arrays(batch.columns + [col], schema=schema)


def truth_with_theme(truth: pa.Table, chi: ChunkItems | None) -> pa.Table:
    """``truth`` with ``theme`` (string, one of THEMES) and ``taste_drift`` appended (as is without items)."""
    if chi is None:
        return truth
    theme = pa.array(np.array(THEMES, dtype=object)[chi.theme], pa.string())
    return truth.append_column("theme", theme).append_column("taste_drift", pa.array(chi.drift))
