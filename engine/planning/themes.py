"""What to say: a content theme and the top-K items per user and step (numba).

Themes (:data:`engine.schema.THEMES`), each an ordered candidate list per user:

* ``new_in_your_categories``: items added after the user's last activity and within
  ``new_days`` of the send, in the user's categories; newest first.
* ``leaving_soon``: items in the user's categories that expire within
  ``leaving_days`` after the send; most popular first.
* ``editorial``: the catalogue's editorial picks in the user's categories; most
  popular first.
* ``trending``: the items whose interactions grew most in the last 7 days
  (:func:`engine.items.trend_score` > 0); highest trend first, whatever the user's tastes.
* ``broaden``: popular items outside the user's categories (every category of the item
  has an affinity share below ``broaden_share``); most popular first.  For users
  whose old tastes may no longer hold.

For the three category themes, the user's categories are those with an affinity share
> 0, in order of share (ties: category name order); candidates are taken category by
category in that order, each category's list in the theme's order, and an item with
several categories counts under the first of them in the user's order.  Every list is
cut to its first ``pool`` entries when the catalogue is prepared.  An item is never
picked when the user consumed it (:mod:`engine.affinity`), when it was picked for the
user at an earlier step, when it is not yet added or already expired at the send time.

Choice: a step may pin a theme (then that theme, with what it finds, maybe nothing).
Otherwise each theme gets the value

    weight[theme] * PRIOR[theme] * found / K * (repeat_penalty if used at an earlier step)

where ``found`` (<= K) is how many items it finds; the personal themes (new,
leaving, editorial) are worth 0 for users whose ``affinity_confidence`` (decayed item
interactions) is below ``min_confidence``: long-lapsed users get trending or broaden.
The highest value wins (ties: the order of THEMES); no theme when every value is 0.

Exploration: a campaign may draw the theme at random for a share of users (``explore``
in ``[content]``): uniformly among the step's enabled themes (weight > 0) that found
at least one item, whatever the confidence and earlier steps.  Those users make a
randomised comparison of themes, which the heuristic choice above cannot give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import prange

from engine.jit import njit, pjit
from engine.planning.campaign import Content as ContentSettings
from engine.schema import SECONDS_PER_DAY, THEMES, NEVER

__all__ = ["ContentSettings", "StepContent", "Catalogue", "prepare", "pick", "PRIOR"]

#: default preference of each theme (order of THEMES) for a user whose tastes are known
PRIOR = np.array([1.0, 0.9, 0.8, 0.7, 0.6])
NEW, LEAVING, EDITORIAL, TRENDING, BROADEN = range(len(THEMES))


@dataclass(frozen=True)
class StepContent:
    """Per step: ``k`` items, theme ``weights`` (THEMES order), ``pin`` (theme code or -1).
    A campaign :class:`engine.campaign.Step` has the same three attributes."""

    k: int = 3
    weights: tuple[float, ...] = (1.0,) * len(THEMES)
    pin: int = -1


@dataclass
class Catalogue:
    """Candidate lists for a plan that starts at ``start`` (epoch s, UTC).

    For the themes NEW, LEAVING, EDITORIAL (row ``th`` of both arrays): per category
    ``c`` the theme's candidates in order are ``lists_rows[th, lists_ptr[th, c]:lists_ptr[th, c + 1]]``
    (``lists_rows`` is -1 padded to the longest); ``trending`` and ``popular``: global lists.
    """

    cat_ptr: np.ndarray
    cat_idx: np.ndarray
    added: np.ndarray
    expires: np.ndarray
    lists_ptr: np.ndarray
    lists_rows: np.ndarray
    trending: np.ndarray
    popular: np.ndarray


def _by_category(rows: np.ndarray, key_order: np.ndarray, cat_ptr, cat_idx, n_cat: int, pool: int):
    """Per category, ``rows`` in the order given by ``key_order`` (a permutation of rows), cut to ``pool``."""
    rows = rows[key_order]
    counts = cat_ptr[rows + 1] - cat_ptr[rows]
    owner = np.repeat(rows, counts)
    cats = cat_idx[np.concatenate([np.arange(cat_ptr[r], cat_ptr[r + 1]) for r in rows])] if len(rows) \
        else np.zeros(0, np.int32)
    rank = np.repeat(np.arange(len(rows)), counts)
    o = np.lexsort((rank, cats))
    cats, owner = cats[o], owner[o]
    ptr = np.zeros(n_cat + 1, np.int64)
    np.cumsum(np.bincount(cats, minlength=n_cat), out=ptr[1:])
    pos = np.arange(len(cats)) - ptr[cats]
    keep = pos < pool
    cats, owner = cats[keep], owner[keep]
    ptr = np.zeros(n_cat + 1, np.int64)
    np.cumsum(np.bincount(cats, minlength=n_cat), out=ptr[1:])
    return ptr, owner.astype(np.int64)


def prepare(items, popularity: np.ndarray, trend: np.ndarray, start: int, end: int,
            cfg: ContentSettings) -> Catalogue:
    """Candidate lists for sends in [start, end] (epoch s, UTC).

    Orders (ties always by catalogue row): new = ``added_at`` newest first; leaving =
    expiring in (start, end + leaving_days], most popular first; editorial = editorial
    and not expired at ``start``, most popular first; trending = trend > 0, highest
    first (ties: popularity); popular = every item, most popular first.
    """
    n_cat = max(len(items.categories), 1)
    m = len(items)
    rows = np.arange(m, dtype=np.int64)
    added, expires = items.added, items.expires
    live = expires > start
    lists = []
    sel = rows[live]
    lists.append(_by_category(sel, np.lexsort((sel, -added[sel])), items.cat_ptr, items.cat_idx, n_cat, cfg.pool))
    sel = rows[live & (expires <= end + int(cfg.leaving_days * SECONDS_PER_DAY))]
    lists.append(_by_category(sel, np.lexsort((sel, -popularity[sel])), items.cat_ptr, items.cat_idx, n_cat,
                              cfg.pool))
    sel = rows[live & items.editorial]
    lists.append(_by_category(sel, np.lexsort((sel, -popularity[sel])), items.cat_ptr, items.cat_idx, n_cat,
                              cfg.pool))
    sel = rows[live & (trend > 0)]
    trending = sel[np.lexsort((sel, -popularity[sel], -trend[sel]))][:cfg.pool]
    sel = rows[live]
    popular = sel[np.lexsort((sel, -popularity[sel]))][:cfg.pool]
    lists_rows = np.full((3, max([len(r) for _, r in lists] + [1])), -1, np.int64)
    for th, (_, r) in enumerate(lists):
        lists_rows[th, :len(r)] = r
    return Catalogue(cat_ptr=items.cat_ptr, cat_idx=items.cat_idx, added=added, expires=expires,
                     lists_ptr=np.stack([p for p, _ in lists]).astype(np.int64), lists_rows=lists_rows,
                     trending=trending, popular=popular)


@njit
def _eligible(i, t, added, expires, cons, lo, hi, taken, n_taken, prev, u):
    if added[i] > t or expires[i] <= t:
        return False
    for j in range(n_taken):
        if taken[j] == i:
            return False
    for j in range(prev.shape[1]):
        if prev[u, j] == i:
            return False
    # consumed: binary search in the user's sorted rows
    a, b = lo, hi
    while a < b:
        mid = (a + b) // 2
        if cons[mid] < i:
            a = mid + 1
        else:
            b = mid
    return not (a < hi and cons[a] == i)


@njit
def _take(i, th, t, added, expires, cons, lo, hi, picks, found, prev, u):
    """Add item ``i`` to theme ``th``'s picks when eligible; returns how many it has."""
    if _eligible(i, t, added, expires, cons, lo, hi, picks[th], found[th], prev, u):
        picks[th, found[th]] = i
        found[th] += 1
    return found[th]


@njit
def _pick_kernel(u0, u1, shares, conf, last_active, cons_ptr, cons, send_at, active, prev, prev_themes, draw,
                 cat_ptr, cat_idx, added, expires, lists_ptr, lists_rows, trending, popular,
                 k, weights, pin, prior, new_sec, leaving_sec, min_conf, broaden_share, repeat_penalty,
                 out_theme, out_items):
    n_cat = shares.shape[1]
    n_th = 5
    found = np.zeros(n_th, np.int64)
    picks = np.empty((n_th, max(k, 1)), np.int64)
    order = np.empty(n_cat, np.int64)
    pos = np.empty(n_cat, np.int64)
    for u in range(u0, u1):
        out_theme[u] = -1
        for j in range(k):
            out_items[u, j] = -1
        if not active[u] or k == 0:
            continue
        t = send_at[u]
        lo, hi = cons_ptr[u], cons_ptr[u + 1]
        # the user's categories: share > 0, by share descending, ties by code
        n_liked = 0
        for c in range(n_cat):
            if shares[u, c] > 0:
                order[n_liked] = c
                n_liked += 1
        for a in range(1, n_liked):  # insertion sort (few categories)
            c = order[a]
            b = a - 1
            while b >= 0 and (shares[u, order[b]] < shares[u, c]):
                order[b + 1] = order[b]
                b -= 1
            order[b + 1] = c
        for c in range(n_cat):
            pos[c] = n_cat
        for a in range(n_liked):
            pos[order[a]] = a
        new_floor = t - new_sec
        if last_active[u] != NEVER and last_active[u] > new_floor:
            new_floor = last_active[u]
        for th in range(n_th):
            found[th] = 0
            if pin >= 0 and th != pin:
                continue
            if pin < 0 and weights[th] <= 0:
                continue
            if th < 3:
                for a in range(n_liked):
                    c = order[a]
                    for q in range(lists_ptr[th, c], lists_ptr[th, c + 1]):
                        i = lists_rows[th, q]
                        if th == NEW and added[i] <= new_floor:
                            break
                        if th == LEAVING and expires[i] > t + leaving_sec:
                            continue
                        first = True
                        for j in range(cat_ptr[i], cat_ptr[i + 1]):
                            if pos[cat_idx[j]] < a:
                                first = False
                        if first and _take(i, th, t, added, expires, cons, lo, hi, picks, found, prev, u) == k:
                            break
                    if found[th] == k:
                        break
            else:
                lst = trending if th == TRENDING else popular
                for q in range(len(lst)):
                    i = lst[q]
                    if th == BROADEN:
                        liked = False
                        for j in range(cat_ptr[i], cat_ptr[i + 1]):
                            if shares[u, cat_idx[j]] >= broaden_share:
                                liked = True
                        if liked:
                            continue
                    if _take(i, th, t, added, expires, cons, lo, hi, picks, found, prev, u) == k:
                        break
        if pin >= 0:
            best = pin
        elif draw[u] >= 0:
            # exploring: uniformly among the enabled themes that found something
            n_av = 0
            for th in range(n_th):
                if weights[th] > 0 and found[th] > 0:
                    n_av += 1
            best = -1
            if n_av > 0:
                j = min(int(draw[u] * n_av), n_av - 1)
                for th in range(n_th):
                    if weights[th] > 0 and found[th] > 0:
                        if j == 0:
                            best = th
                            break
                        j -= 1
        else:
            best = -1
            best_v = 0.0
            for th in range(n_th):
                if th < 3 and conf[u] < min_conf:
                    continue
                v = weights[th] * prior[th] * found[th] / k
                if (prev_themes[u] >> th) & 1:
                    v *= repeat_penalty
                if v > best_v:
                    best_v = v
                    best = th
        out_theme[u] = best
        if best >= 0:
            for j in range(found[best]):
                out_items[u, j] = picks[best, j]


_BLOCK = 4096


@pjit
def _pick_blocks(shares, conf, last_active, cons_ptr, cons, send_at, active, prev, prev_themes, draw,
                 cat_ptr, cat_idx, added, expires, lists_ptr, lists_rows, trending, popular,
                 k, weights, pin, prior, new_sec, leaving_sec, min_conf, broaden_share, repeat_penalty,
                 out_theme, out_items):
    """Blocks of users on every core; each user's result depends on that user alone."""
    n = shares.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for b in prange(n_blocks):
        _pick_kernel(b * _BLOCK, min(n, (b + 1) * _BLOCK), shares, conf, last_active, cons_ptr, cons, send_at,
                     active, prev, prev_themes, draw, cat_ptr, cat_idx, added, expires, lists_ptr, lists_rows, trending,
                     popular, k, weights, pin, prior, new_sec, leaving_sec, min_conf, broaden_share,
                     repeat_penalty, out_theme, out_items)


def pick(shares, conf, last_active, cons_ptr, cons_rows, send_at, active, cat: Catalogue, step,
         cfg: ContentSettings, prev_items=None, prev_themes=None, draw=None):
    """Theme code (int8, -1 = none) and item rows ([n, k] int64, -1 padded) per user.

    ``shares`` [n, C] affinity shares; ``conf`` [n] affinity confidence; ``last_active``
    [n] epoch s (``NEVER`` = none); ``cons_ptr``/``cons_rows`` the consumed CSR;
    ``send_at`` [n] epoch s; ``active`` [n] which users to fill; ``step`` a
    :class:`StepContent` or campaign :class:`~engine.campaign.Step`; ``prev_items`` [n, P] item rows picked at earlier steps (-1
    padded) and ``prev_themes`` [n] bitmask of themes used at earlier steps; ``draw``
    [n] a uniform number in [0, 1) for users who explore (their theme is drawn among
    the enabled themes that found items), -1 for the others (default: nobody explores).
    """
    n = len(conf)
    k = int(step.k)
    if prev_items is None:
        prev_items = np.full((n, 0), -1, np.int64)
    if prev_themes is None:
        prev_themes = np.zeros(n, np.int64)
    if draw is None:
        draw = np.full(n, -1.0)
    n_cat = shares.shape[1]
    if cat.lists_ptr.shape[1] != n_cat + 1:
        raise ValueError("affinity width and catalogue categories differ")
    out_theme = np.empty(n, np.int64)
    out_items = np.empty((n, max(k, 1)), np.int64)
    _pick_blocks(np.ascontiguousarray(shares, np.float32), np.asarray(conf, np.float64),
                 np.asarray(last_active, np.int64), cons_ptr, cons_rows, np.asarray(send_at, np.int64),
                 np.asarray(active, np.bool_), np.ascontiguousarray(prev_items, np.int64),
                 np.asarray(prev_themes, np.int64), np.asarray(draw, np.float64), cat.cat_ptr, cat.cat_idx,
                 cat.added, cat.expires, cat.lists_ptr, cat.lists_rows, cat.trending, cat.popular, k,
                 np.asarray(step.weights, np.float64), int(step.pin),
                 PRIOR, int(cfg.new_days * SECONDS_PER_DAY), int(cfg.leaving_days * SECONDS_PER_DAY),
                 float(cfg.min_confidence), float(cfg.broaden_share), float(cfg.repeat_penalty),
                 out_theme, out_items)
    return out_theme.astype(np.int8), out_items[:, :k]
