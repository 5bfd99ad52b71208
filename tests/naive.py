"""Slow, obvious reference implementations of every numba kernel, for the tests to compare against."""

from __future__ import annotations

import numpy as np


def user_index_lookup(ids, queries) -> np.ndarray:
    """engine.userindex.UserIndex.lookup: position of the first row holding each id, else -1."""
    first: dict[int, int] = {}
    for i, uid in enumerate(ids):
        first.setdefault(int(uid), i)
    return np.array([first.get(int(q), -1) for q in queries], dtype=np.int64)


def repeated_ids(ids) -> np.ndarray:
    """engine.userindex.UserIndex.repeats: True where an earlier position holds the same id."""
    seen: set[int] = set()
    out = []
    for uid in ids:
        out.append(int(uid) in seen)
        seen.add(int(uid))
    return np.array(out, dtype=bool)


# --- scoring (engine.kernels, engine.bgnbd) -------------------------------------------------

def score_accumulate(n_users, uidx, ts, ev, ch, val, as_of, is_activity, window_days, local_offset, half_life):
    """engine.kernels: per-user loops over plain Python lists.

    Active days and the first activity in the window count activity at most ``window_days``
    days before ``as_of`` (the model window); ``local_offset(u, t)`` gives the user's UTC
    offset in seconds at instant t.
    Returns a dict of per-user results comparable to the kernel's accumulators.
    """
    import math

    from engine.schema import BOUNCE, CLICK, COMPLAINT, OPEN, PURCHASE, SEND, SESSION, UNSUBSCRIBE

    out = {k: [] for k in ("days", "first_window", "first", "last", "purchases", "valued", "revenue", "last_purchase",
                           "sends90", "opens90", "clicks90", "last_eng", "suppressed", "streak", "sends7",
                           "sends30", "hour", "weekday", "eng")}
    for u in range(n_users):
        rows = [i for i in range(len(uidx)) if uidx[i] == u]
        act = [ts[i] for i in rows if is_activity[ev[i]]]
        win = [t for t in act if 0 <= as_of - t <= window_days * 86400]
        out["days"].append(len({t // 86400 for t in win}))
        out["first_window"].append(min(win) if win else None)
        out["first"].append(min(act) if act else None)
        out["last"].append(max(act) if act else None)
        buys = [i for i in rows if ev[i] == PURCHASE]
        out["purchases"].append(len(buys))
        out["valued"].append(sum(1 for i in buys if not math.isnan(val[i])))
        out["revenue"].append(sum(val[i] for i in buys if not math.isnan(val[i])))
        out["last_purchase"].append(max((ts[i] for i in buys), default=None))
        s90, o90, c90, le, sup, stk = [], [], [], [], [], []
        for c in range(3):
            sends = sorted((ts[i] for i in rows if ev[i] == SEND and ch[i] == c), reverse=True)
            eng = [ts[i] for i in rows if ev[i] in (OPEN, CLICK) and ch[i] == c]
            s90.append(sum(1 for t in sends if as_of - t <= 90 * 86400))
            o90.append(sum(1 for i in rows if ev[i] == OPEN and ch[i] == c and as_of - ts[i] <= 90 * 86400))
            c90.append(sum(1 for i in rows if ev[i] == CLICK and ch[i] == c and as_of - ts[i] <= 90 * 86400))
            last_e = max(eng) if eng else None
            le.append(last_e)
            flags = 0
            for i in rows:
                if ch[i] == c:
                    flags |= {UNSUBSCRIBE: 1, BOUNCE: 2, COMPLAINT: 4}.get(ev[i], 0)
            sup.append(flags)
            streak = 0
            for t in sends[:8]:  # the most recent sends, up to the kernel's buffer of 8
                if last_e is None or t > last_e:
                    streak += 1
            stk.append(streak)
        out["sends90"].append(s90)
        out["opens90"].append(o90)
        out["clicks90"].append(c90)
        out["last_eng"].append(le)
        out["suppressed"].append(sup)
        out["streak"].append(stk)
        sends_all = [ts[i] for i in rows if ev[i] == SEND and ch[i] >= 0]
        out["sends7"].append(sum(1 for t in sends_all if as_of - t <= 7 * 86400))
        out["sends30"].append(sum(1 for t in sends_all if as_of - t <= 30 * 86400))
        hour = [0.0] * 24
        wd = [0.0] * 7
        n_eng = 0
        for i in rows:
            if ev[i] in (OPEN, CLICK, SESSION):
                w = 0.5 ** ((as_of - ts[i]) / 86400.0 / half_life)
                if ts[i] % 86400 == 0:  # a date with no time of day: its weekday, no hour
                    wd[((ts[i] // 86400) + 3) % 7] += w
                else:
                    local = ts[i] + local_offset(u, ts[i])
                    hour[(local // 3600) % 24] += w
                    wd[((local // 86400) + 3) % 7] += w
                n_eng += 1
        out["hour"].append(hour)
        out["weekday"].append(wd)
        out["eng"].append(n_eng)
    return out


def bgnbd_p_alive(x, t_x, T, r, alpha, a, b):
    """P(alive) by the closed form, one user at a time."""
    if x == 0:
        return 1.0
    return 1.0 / (1.0 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))


def lapse_forms(t, H, x, t_x, T, r, alpha, a, b):
    """engine.scoring.lapse._forms: P(alive), E[X(T, T+t]] and P(none in (T, T+H]) user by user,
    each from its own 40-digit textbook formula (tests/naive_bgnbd.py)."""
    from tests import naive_bgnbd as nb

    rows = [(nb.p_alive(xi, ti, Ti, r, alpha, a, b), nb.expected(t, xi, ti, Ti, r, alpha, a, b),
             nb.p_none(H, xi, ti, Ti, r, alpha, a, b)) for xi, ti, Ti in zip(x, t_x, T)]
    return tuple(np.array([row[k] for row in rows], np.float64).reshape(-1) for k in range(3))


# --- planning (engine.plan_time) ------------------------------------------------------------

def level_capacity(t, order, lower, cap, quiet_minute_of, max_shift_hours, counts: dict):
    """engine.plan_time.level_capacity with dicts: try 0, +1, -1, +2, -2, ... hours."""
    out = [-1] * len(t)
    for i in order:
        for step in range(2 * max_shift_hours + 1):
            shift = (step + 1) // 2
            if step % 2 == 0:
                shift = -shift
            cand = t[i] + shift * 3600
            if cand < lower[i] or counts.get(cand // 3600, 0) >= cap or quiet_minute_of(i, cand):
                continue
            counts[cand // 3600] = counts.get(cand // 3600, 0) + 1
            out[i] = cand
            break
    return out


# --- fatigue and labels (engine.fatigue) ----------------------------------------------------

def fatigue_budget(sends, streaks, reachable, complained, cap):
    """engine.fatigue.fatigue_budget, one user at a time."""
    out = []
    for u in range(len(sends)):
        budget = max(0, cap - int(sends[u]))
        reach = [int(streaks[u][c]) for c in range(len(streaks[u])) if reachable[u][c]]
        quiet = min(reach) if reach else 0
        if quiet >= 3:
            budget -= 1
        if quiet >= 8:
            budget = min(budget, 1)
        if complained[u]:
            budget = 0
        out.append(max(budget, 0))
    return out


def lifecycle(days_inactive, p_alive):
    """engine.fatigue.lifecycle: threshold ladder per user."""
    import math

    out = []
    for d, p in zip(days_inactive, p_alive):
        if math.isnan(d):
            out.append(4)
        elif d <= 14:
            out.append(1 if p < 0.5 else 0)
        elif d <= 30:
            out.append(1)
        elif d <= 90:
            out.append(2)
        elif d <= 180:
            out.append(3)
        else:
            out.append(4)
    return out


def contact_rating(sends, opens, clicks):
    """engine.fatigue.contact_rating: stars from (opens + 2 clicks) / sends."""
    out = []
    for s, o, c in zip(sends, opens, clicks):
        if s == 0:
            out.append(3)
            continue
        rate = (o + 2 * c) / s
        if rate >= 0.5:
            out.append(5)
        elif rate >= 0.25:
            out.append(4)
        elif rate >= 0.1:
            out.append(3)
        elif rate > 0:
            out.append(2)
        else:
            out.append(1 if s >= 3 else 2)
    return out


def quintiles(values, higher_is_better=True):
    """engine.fatigue.quintiles: 1 + 5 * (number of strictly worse values) // (number of values)."""
    import math

    ok = [v for v in values if not math.isnan(v)]
    out = []
    for v in values:
        if math.isnan(v):
            out.append(1)
            continue
        worse = sum(1 for w in ok if (w < v if higher_is_better else w > v))
        out.append(1 + worse * 5 // len(ok))
    return out


def partition_by_block(uidx, shift):
    """engine.scoring.partition (block_counts + scatter; sort_block with shift 0): the event
    order after a stable sort by ``uidx >> shift``."""
    return sorted(range(len(uidx)), key=lambda i: (int(uidx[i]) >> shift, i))


# --- send time (engine.sendtime) ------------------------------------------------------------

def best_times(hour_hist, wd_hist, user_tz, n_zones, k):
    """engine.sendtime.best_times, one user at a time: (best_hour, best_weekday, confidence) lists."""
    def shares(hist, bins):
        pop = [[0.0] * bins for _ in range(n_zones)]
        for u, z in enumerate(user_tz):
            for j in range(bins):
                pop[z][j] += float(hist[u][j])
        glob = [sum(pop[z][j] for z in range(n_zones)) for j in range(bins)]
        out = []
        for z in range(n_zones):
            tot = sum(pop[z])
            if tot > 0:
                out.append([v / tot for v in pop[z]])
            elif sum(glob) > 0:
                out.append([v / sum(glob) for v in glob])
            elif bins == 24:  # no time of day anywhere: 10:00 local by a hair
                row = [1.0 / bins] * bins
                row[10] += 1e-9
                out.append([v / sum(row) for v in row])
            else:
                out.append([1.0 / bins] * bins)
        return out

    ph, pw = shares(hour_hist, 24), shares(wd_hist, 7)
    hours, days, conf = [], [], []
    for u, z in enumerate(user_tz):
        post = [float(hour_hist[u][h]) + k * ph[z][h] for h in range(24)]
        bh = max(range(24), key=lambda h: (post[h], -h))
        postw = [float(wd_hist[u][d]) + k * pw[z][d] for d in range(7)]
        bw = max(range(7), key=lambda d: (postw[d], -d))
        n = sum(float(v) for v in hour_hist[u])
        around = post[bh] + post[(bh + 1) % 24] + post[(bh - 1) % 24]
        hours.append(bh)
        days.append(bw)
        conf.append(n / (n + k) * around / sum(post))
    return hours, days, conf


def cohort_prior(pop_h, user_tz, code, hour_hist, everyone, weight):
    """engine.scoring.cohorts (fit + group_priors), one user at a time: each user's prior over 24
    local hours, pop_z[h] * s_c[h] / s[h] normalised, with s_c = (n_c + K s) / (N_c + K)."""
    s_tot = sum(float(v) for v in everyone)
    s = [float(v) / s_tot if s_tot > 0 else 1.0 / 24 for v in everyone]
    rows = []
    for u, z in enumerate(user_tz):
        c = code[u]
        row = [float(pop_h[z][h]) for h in range(24)]
        if c >= 0:
            n_c = [sum(float(hour_hist[v][h]) for v in range(len(code)) if code[v] == c) for h in range(24)]
            N_c = sum(n_c)
            for h in range(24):
                tilt = ((n_c[h] + weight * s[h]) / (N_c + weight)) / s[h] if s[h] > 0 else 1.0
                row[h] *= tilt
        tot = sum(row)
        rows.append([v / tot for v in row] if tot > 0 else [1.0 / 24] * 24)
    return rows


# --- content (engine.affinity, engine.themes) -------------------------------------------------

def item_affinity(n_users, n_cat, uidx, ts, ev, rows, item_cats, as_of, half_life, event_weight):
    """engine.affinity: per-user category sums, mass, per-item popularity/recent/prior, consumed sets."""
    aff = [[0.0] * n_cat for _ in range(n_users)]
    mass = [0.0] * n_users
    m = len(item_cats)
    pop, recent, prior = [0.0] * m, [0] * m, [0] * m
    consumed = [set() for _ in range(n_users)]
    for e in range(len(uidx)):
        i = rows[e]
        if i < 0 or event_weight[ev[e]] == 0:
            continue
        age = (as_of - ts[e]) / 86400.0
        w = event_weight[ev[e]] * 2.0 ** (-age / half_life)
        for c in item_cats[i]:
            aff[uidx[e]][c] += w / len(item_cats[i])
        mass[uidx[e]] += w
        pop[i] += w
        if age < 7:
            recent[i] += 1
        elif age < 35:
            prior[i] += 1
        consumed[uidx[e]].add(i)
    return aff, mass, pop, recent, prior, consumed


def theme_picks(shares, conf, last_active, consumed, send_at, active, item_cats, added, expires, editorial,
                popularity, trend, start, end, k, weights, pin, prev_items, prev_themes, new_days, leaving_days,
                min_conf, broaden_share, pool, repeat_penalty, prior, draw=None):
    """engine.themes.prepare + pick, by sorting every candidate list in Python; see the module docstring."""
    day = 86400
    n_cat = len(shares[0]) if len(shares) else 0
    m = len(item_cats)
    live = [i for i in range(m) if expires[i] > start]

    def per_cat(rows, key):
        return {c: sorted([i for i in rows if c in item_cats[i]], key=key)[:pool] for c in range(n_cat)}

    new_l = per_cat(live, lambda i: (-added[i], i))
    leave_l = per_cat([i for i in live if expires[i] <= end + int(leaving_days * day)], lambda i: (-popularity[i], i))
    edit_l = per_cat([i for i in live if editorial[i]], lambda i: (-popularity[i], i))
    trending = sorted([i for i in live if trend[i] > 0], key=lambda i: (-trend[i], -popularity[i], i))[:pool]
    popular = sorted(live, key=lambda i: (-popularity[i], i))[:pool]
    themes, items = [], []
    for u in range(len(conf)):
        if not active[u] or k == 0:
            themes.append(-1)
            items.append([])
            continue
        t = send_at[u]
        liked = sorted([c for c in range(n_cat) if shares[u][c] > 0], key=lambda c: (-shares[u][c], c))
        rank = {c: a for a, c in enumerate(liked)}
        floor = t - int(new_days * day)
        if last_active[u] is not None:
            floor = max(floor, last_active[u])

        def ok(i, chosen):
            return added[i] <= t < expires[i] and i not in consumed[u] and i not in prev_items[u] and i not in chosen

        found = {}
        for th, lists, extra in ((0, new_l, lambda i: added[i] > floor),
                                 (1, leave_l, lambda i: expires[i] <= t + int(leaving_days * day)),
                                 (2, edit_l, lambda i: True)):
            chosen = []
            for c in liked:
                for i in lists[c]:
                    if len(chosen) == k:
                        break
                    if extra(i) and min(rank.get(x, n_cat) for x in item_cats[i]) >= rank[c] and ok(i, chosen):
                        chosen.append(i)
            found[th] = chosen
        found[3] = []
        for i in trending:
            if len(found[3]) < k and ok(i, found[3]):
                found[3].append(i)
        found[4] = []
        for i in popular:
            if len(found[4]) < k and all(shares[u][x] < broaden_share for x in item_cats[i]) and ok(i, found[4]):
                found[4].append(i)
        if pin >= 0:
            best = pin
        elif draw is not None and draw[u] >= 0:
            enabled = [th for th in range(5) if weights[th] > 0 and found[th]]
            best = enabled[min(int(draw[u] * len(enabled)), len(enabled) - 1)] if enabled else -1
        else:
            best, best_v = -1, 0.0
            for th in range(5):
                if weights[th] <= 0 or (th < 3 and conf[u] < min_conf):
                    continue
                v = weights[th] * prior[th] * len(found[th]) / k
                if th in prev_themes[u]:
                    v *= repeat_penalty
                if v > best_v:
                    best, best_v = th, v
        themes.append(best)
        items.append(found[best] if best >= 0 else [])
    return themes, items


def fatigue_weeks(n_users, uidx, ts, ev, as_of, weeks=26):
    """Per user and week back from as_of (0 = the last 7 days): sends and opens (saturating at 255),
    and the most recent week with an unsubscribe or complaint (-1: none); one event at a time."""
    from engine.schema import COMPLAINT, OPEN, SEND, UNSUBSCRIBE

    sends = [[0] * weeks for _ in range(n_users)]
    opens = [[0] * weeks for _ in range(n_users)]
    stop = [-1] * n_users
    for u, t, e in zip(uidx, ts, ev):
        age = as_of - int(t)
        if age < 0 or age // (7 * 86400) >= weeks:
            continue
        w = age // (7 * 86400)
        if e == SEND:
            sends[u][w] = min(255, sends[u][w] + 1)
        elif e == OPEN:
            opens[u][w] = min(255, opens[u][w] + 1)
        elif e in (UNSUBSCRIBE, COMPLAINT):
            stop[u] = w if stop[u] < 0 else min(stop[u], w)
    return sends, opens, stop


def fatigue_budget_learned(beta_u, q_u, sent, complained, cap, window_days, u0, value_days, cost):
    """One user at a time: count further messages while q e^(-beta load) > u0 (1 + load) (q M + cost)."""
    import math

    out = []
    M = 3 * value_days / window_days  # the future responses at 3 messages per window, whatever the cap
    for b, q, n, c in zip(beta_u, q_u, sent, complained):
        k = 0
        while not c and n + k < cap and q * math.exp(-b * (n + k)) > u0 * (1 + n + k) * (q * M + cost):
            k += 1
        out.append(k)
    return out


def kernel_best_hours(hour_hist, user_tz, pop_h, kernel, rho, k):
    """Per user with evidence: argmax over h* of log pop[h*] + sum_h x_h log(rho K(h-h*) + (1-rho) pop[h])
    (first maximum wins) and n/(n+k) x the Dirichlet posterior share of h* +- 1; None for no evidence."""
    import math

    out = []
    for u in range(len(hour_hist)):
        x = [float(v) for v in hour_hist[u]]
        n = sum(x)
        if not n > 0:
            out.append(None)
            continue
        p = pop_h[user_tz[u]]
        lp = []
        for hs in range(24):
            v = math.log(p[hs] + 1e-12)
            for h in range(24):
                if x[h] > 0:
                    v += x[h] * math.log(rho * kernel[(h - hs) % 24] + (1 - rho) * p[h] + 1e-300)
            lp.append(v)
        bh = max(range(24), key=lambda h: (lp[h], -h))
        around = sum(x[(bh + d) % 24] + k * p[(bh + d) % 24] for d in (-1, 0, 1))
        out.append((bh, n / (n + k) * around / (n + k)))
    return out


def fatigue_user_sums(sends, opens, beta, drift=0.0):
    """Per user, from the definitions: loads L_w = (s_w - 1)/2 + s_(w+1)/2, shares p_w ~ s_w exp(-beta L_w - drift w),
    S = O sum p L - sum o L, I = O (sum p L^2 - (sum p L)^2), E = sum s exp(-beta L - drift w), O = sum min(o, s),
    S_d = O sum p w - sum o w, I_bd = O (sum p L w - sum p L sum p w), I_dd = O (sum p w^2 - (sum p w)^2)."""
    import math

    out = []
    for u in range(len(sends)):
        s = [float(v) for v in sends[u]]
        o = [min(float(a), b) for a, b in zip(opens[u], s)]
        W = len(s)
        L = [0.5 * max(s[w] - 1, 0) + 0.5 * (s[w + 1] if w + 1 < W else 0.0) for w in range(W)]
        e = [s[w] * math.exp(-beta[u] * L[w] - drift * w) for w in range(W)]
        E, O = sum(e), sum(o)
        if E > 0:
            p = [v / E for v in e]
            mean = sum(pw * lw for pw, lw in zip(p, L))
            mw = sum(pw * w for w, pw in enumerate(p))
            var = sum(pw * lw * lw for pw, lw in zip(p, L)) - mean * mean
            cov = sum(pw * lw * w for w, (pw, lw) in enumerate(zip(p, L))) - mean * mw
            vw = sum(pw * w * w for w, pw in enumerate(p)) - mw * mw
            S, I = O * mean - sum(ow * lw for ow, lw in zip(o, L)), O * max(var, 0.0)
            Sd, Ibd, Idd = O * mw - sum(ow * w for w, ow in enumerate(o)), O * cov, O * max(vw, 0.0)
        else:
            S = I = Sd = Ibd = Idd = 0.0
        out.append((S, I, E, O, Sd, Ibd, Idd))
    return out


def max_in_windows(times, t, window):
    """engine.planning.pressure.max_in_windows: slide the window's end over every candidate second."""
    out = []
    for row, ti in zip(times, t):
        xs = [x for x in row if x != np.iinfo(np.int64).min]
        best = 0
        for s in [ti] + [x for x in xs if ti <= x < ti + window]:
            best = max(best, sum(1 for x in xs if s - window < x <= s))
        # every other end in [t, t + window) holds no more than one of these
        for s in range(ti, ti + window, max(1, window // 50)):
            assert sum(1 for x in xs if s - window < x <= s) <= best
        out.append(best)
    return np.array(out, np.int64)


def cut_summary(day_bits, end, horizon):
    """engine.scoring.lapse_learned.cut_summary: every bit index of every user, one at a time."""
    n, w = day_bits.shape
    count, first, last, later = [], [], [], []
    for u in range(n):
        days = [j * 64 + b for j in range(w) for b in range(64) if (int(day_bits[u, j]) >> b) & 1]
        before = [d for d in days if d < end]
        count.append(len(before))
        first.append(min(before) if before else -1)
        last.append(max(before) if before else -1)
        later.append(any(end <= d < end + horizon for d in days))
    return (np.array(count, np.int32), np.array(first, np.int32), np.array(last, np.int32),
            np.array(later, bool))


def logistic_newton_terms(Z, w, t, beta):
    """engine.scoring.lapse_learned.newton_terms: the textbook matrix formulas, row by row in Python."""
    n, k = Z.shape
    g = np.zeros(k)
    h = np.zeros((k, k))
    for i in range(n):
        p = 1.0 / (1.0 + np.exp(-float(sum(Z[i, j] * beta[j] for j in range(k)))))
        g += Z[i] * w[i] * (p - t[i])
        h += np.outer(Z[i], Z[i]) * w[i] * p * (1.0 - p)
    return g, h


def tz_hour_posteriors(hist, users, shifts, prior, profile, kernel, rho, within, floor=1e-3):
    """Per user row: (index, mass) of the shift with the most posterior mass within ``within`` hours,
    from P(s | x) ~ prior[s] sum_h* pop[h*] prod_h (rho K(h + s - h*) + (1 - rho) / 24) ** x[h]
    with pop = (1 - floor) profile + floor / 24 (first maximum wins; ties: the larger own posterior)."""
    import math

    pop = [(1 - floor) * p + floor / 24 for p in profile]
    out = []
    for u in users:
        x = [float(v) for v in hist[u]]
        lp = []
        for j, s in enumerate(shifts):
            terms = []
            for hs in range(24):
                v = math.log(pop[hs])
                for h in range(24):
                    if x[h] > 0:
                        hl = (h + s) % 24
                        v += x[h] * math.log(rho * kernel[(hl - hs) % 24] + (1 - rho) / 24)
                terms.append(v)
            m = max(terms)
            lp.append((math.log(prior[j]) if prior[j] > 0 else -math.inf) + m + math.log(sum(math.exp(t - m) for t in terms)))
        top = max(lp)
        p = [math.exp(v - top) for v in lp]
        tot = sum(p)

        def near(a, b):
            d = (shifts[a] - shifts[b]) % 24
            return d <= within or 24 - d <= within

        mass = [sum(p[jj] for jj in range(len(shifts)) if near(jj, j)) for j in range(len(shifts))]
        bj = 0
        for j in range(1, len(shifts)):
            if mass[j] > mass[bj] or (mass[j] == mass[bj] and p[j] > p[bj]):
                bj = j
        out.append((bj, mass[bj] / tot))
    return out


# --- Pareto/NBD (engine.scoring.pareto_nbd, pareto_nbd_fit) -----------------------------------

def _pareto_a0(mp, x, t_x, T, r, alpha, s, beta):
    """The note's A0 (eq. 19-20) by mpmath's 2F1, in mpmath numbers at the caller's precision."""
    rsx = r + s + x
    if alpha >= beta:
        def part(t):
            return mp.hyp2f1(rsx, s + 1, rsx + 1, (alpha - beta) / (alpha + t)) / (alpha + t) ** rsx
    else:
        def part(t):
            return mp.hyp2f1(rsx, r + x, rsx + 1, (beta - alpha) / (beta + t)) / (beta + t) ** rsx
    return part(t_x) - part(T)


def pareto_nbd_loglik(x, t_x, T, r, alpha, s, beta, dps=30):
    """log L of one user by Fader & Hardie's note (2005), eq. 18-20, with mpmath's 2F1 at ``dps`` digits."""
    import mpmath as mp

    with mp.workdps(dps):
        r, alpha, s, beta, t_x, T = (mp.mpf(v) for v in (r, alpha, s, beta, t_x, T))
        rsx = r + s + x
        a0 = _pareto_a0(mp, x, t_x, T, r, alpha, s, beta)
        head = mp.gamma(r + x) * alpha**r * beta**s / mp.gamma(r)
        return float(mp.log(head * (1 / ((alpha + T) ** (r + x) * (beta + T) ** s) + s / rsx * a0)))


def pareto_nbd_p_alive(x, t_x, T, r, alpha, s, beta, dps=30):
    """P(alive | x, t_x, T): the note's eq. 36, 1 / (1 + s/(r+s+x) (alpha+T)^(r+x) (beta+T)^s A0), by 2F1."""
    import mpmath as mp

    with mp.workdps(dps):
        r, alpha, s, beta, t_x, T = (mp.mpf(v) for v in (r, alpha, s, beta, t_x, T))
        rsx = r + s + x
        a0 = _pareto_a0(mp, x, t_x, T, r, alpha, s, beta)
        return float(1 / (1 + s / rsx * (alpha + T) ** (r + x) * (beta + T) ** s * a0))


def pareto_nbd_p_none(H, x, t_x, T, r, alpha, s, beta, dps=30):
    """P(no transaction in (T, T+H] | x, t_x, T) = 1 - P(alive) + P(alive) [(a/(a+H))^(r+x) (b/(b+H))^s
    + int_0^H (a/(a+t))^(r+x) s b^s/(b+t)^(s+1) dt], a = alpha+T, b = beta+T, by mpmath.quad."""
    import mpmath as mp

    pa = mp.mpf(pareto_nbd_p_alive(x, t_x, T, r, alpha, s, beta, dps))
    with mp.workdps(dps):
        a, b, rx, s = mp.mpf(alpha) + T, mp.mpf(beta) + T, mp.mpf(r) + x, mp.mpf(s)
        stay = (a / (a + H)) ** rx * (b / (b + H)) ** s
        stay += mp.quad(lambda t: (a / (a + t)) ** rx * s * b**s / (b + t) ** (s + 1), [0, H])
        return float(1 - pa + pa * stay)


def pareto_nbd_expected(t, x, t_x, T, r, alpha, s, beta, dps=30):
    """E[X(T, T+t] | x, t_x, T] = P(alive) E[lambda] E[min(lifetime, t)] over the alive posterior, with
    E[min(lifetime, t)] = int_0^t P(lifetime > u) du = int_0^t (b/(b+u))^s du (b = beta+T), by mpmath.quad."""
    import mpmath as mp

    pa = mp.mpf(pareto_nbd_p_alive(x, t_x, T, r, alpha, s, beta, dps))
    with mp.workdps(dps):
        a, b, s = mp.mpf(alpha) + T, mp.mpf(beta) + T, mp.mpf(s)
        life = mp.quad(lambda u: (b / (b + u)) ** s, [0, t])
        return float(pa * (mp.mpf(r) + x) / a * life)


def decode_events(rows, ids, as_of, ts_div, events, channels, channel_events, max_value, min_ts):
    """engine.io.decode._decode: each row (a dict of Python values, ``ts`` the raw integer
    in its unit, ``ts_div`` units per second) checked rule by rule in the order of
    ``EVENTS_REASONS``; returns ``(reasons, good)``: the first broken rule's name or None
    per row, and the good rows as ``(uidx, ts seconds, event code, channel code, value,
    item)`` tuples."""
    import math

    first: dict[int, int] = {}
    for i, uid in enumerate(ids):
        first.setdefault(int(uid), i)
    reasons, good = [], []
    for row in rows:
        uid, name, ts = row["user_id"], row["event"], row["ts"]
        ch, value, item = row.get("channel"), row.get("value"), row.get("item_id")
        secs = None if ts is None else ts // ts_div  # floored, as a whole second
        ev = events.index(name) if name in events else -1
        c = channels.index(ch) if ch in channels else -1
        v = math.nan if value is None else value
        rules = [  # checked in this order; the first that holds is the row's reason
            ("null_user_id", lambda: uid is None),
            ("unknown_user", lambda: uid not in first),
            ("null_event", lambda: name is None),
            ("unknown_event", lambda: ev < 0),
            ("null_ts", lambda: secs is None),
            ("early_ts", lambda: secs < min_ts),
            ("future_ts", lambda: secs > as_of),
            ("unknown_channel", lambda: ch is not None and c < 0),
            ("missing_channel", lambda: name in channel_events and c < 0),
            ("bad_value", lambda: not math.isnan(v) and not abs(v) <= max_value),
            ("negative_value", lambda: v < 0 and name == "purchase"),
        ]
        broken = next((r for r, hit in rules if hit()), None)
        reasons.append(broken)
        if broken is None:
            good.append((first[uid], secs, ev, c, v, item))
    return reasons, good


def day_offsets(off_table, group, mixed):
    """engine.scoring.offsets.day_offsets: per zone and run of ``group`` slots, the one
    offset they share, else ``mixed``."""
    out = []
    for row in off_table.tolist():
        parts = [row[i:i + group] for i in range(0, len(row), group)]
        out.append([p[0] if len(set(p)) == 1 else mixed for p in parts])
    return np.array(out, np.int32).reshape(len(off_table), -1)


def fatigue_pairs(sends, P):
    """engine.scoring.fatigue_model.pair_counts: each user-week with sends, one at a time."""
    sends = np.asarray(sends)
    pairs = np.zeros((sends.shape[1], P, P), np.int64)
    for row in sends.tolist():
        for j, s in enumerate(row):
            s = min(s, P - 1)  # clipped first: with P = 1 nothing counts
            if s > 0:
                nxt = row[j + 1] if j + 1 < len(row) else 0
                pairs[j, s, min(nxt, P - 1)] += 1
    return pairs


def class_runs(keys, lapsed):
    """engine.scoring.lapse_learned.class_runs on ``keys << 1 | lapsed``: a dict of counts per key."""
    counts: dict[int, list[float]] = {}
    for k, lap in zip(np.asarray(keys).tolist(), np.asarray(lapsed).tolist()):
        c = counts.setdefault(k, [0.0, 0.0])
        c[0 if lap else 1] += 1.0
    uk = sorted(counts)
    return (np.array(uk, np.int64), np.array([counts[k][0] for k in uk]), np.array([counts[k][1] for k in uk]))
