"""Benchmark-only data: activity drawn from a BG/NBD process, not from ``winback generate``.

Each user ``u`` is born at ``b_u`` (uniform over the two years before as_of), makes a
first transaction at birth and then transacts as a Poisson process of rate
``lambda_u ~ Gamma(r, alpha)`` per day, dropping out after each transaction with
probability ``p_u ~ Beta(a, b)`` (Fader, Hardie & Lee 2005).  Rates are heterogeneous
(a long tail of heavy users), user ids are sparse random 63-bit integers (the hash-map
lookup, not the dense table), and the events file is in time order, as real logs arrive.

Per transaction: a ``session`` event, one to three more sessions within the hour, and a
``purchase`` (log-normal value) with probability 0.3.  Every user is also sent email
every ``send_every_days`` (14) during the last 180 days, opened with probability 0.3 when
still alive and 0.05 after dropout, clicked on a tenth of the opens; a few unsubscribe.

    python benchmarks/bgnbd_world.py --users 200000 -o /tmp/bg-200k   # about 10M events
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np

AS_OF_S = int(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp())
DAY = 86400
#: BG/NBD parameters (days): mean rate 0.15 transactions/day, mean dropout 0.1 per transaction
PARAMS = {"r": 0.6, "alpha": 4.0, "a": 0.9, "b": 8.0}
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Asia/Tokyo", "America/Los_Angeles",
         "Australia/Sydney", "Europe/London")
EVENTS = ("session", "purchase", "send", "open", "click", "unsubscribe", "bounce", "complaint")


def _transactions(rng, n, params, window_days):
    """Per user the birth (s) and the transaction times (s), as (users, times) of all transactions."""
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], n)  # per day
    p = rng.beta(params["a"], params["b"], n)
    birth = AS_OF_S - rng.uniform(1, window_days, n) * DAY
    T = (AS_OF_S - birth) / DAY
    # repeat transactions in (birth, as_of]: N ~ Poisson(lam T) arrivals, kept until the
    # dropout after the K-th transaction (K ~ Geometric(p) counting the first at birth)
    N = rng.poisson(lam * T)
    K = rng.geometric(p) - 1  # repeat transactions before dropping out
    C = np.minimum(N, K)
    # the C smallest of N uniforms on (0, T): S_i / S_{N+1} with S cumulative Exp(1) sums,
    # S_{N+1} = S_C + Gamma(N + 1 - C)
    users = np.repeat(np.arange(n), C)
    cs = np.concatenate(([0.0], np.cumsum(rng.exponential(1.0, users.size))))
    starts = np.concatenate(([0], np.cumsum(C)))
    prev = cs[starts[:-1]]  # the running sum before each user's first gap
    s_i = cs[1:] - np.repeat(prev, C)
    s_c = cs[starts[1:]] - prev
    total = s_c + rng.gamma(np.maximum(N + 1 - C, 1e-12), 1.0)
    t_rep = birth[users] + (T[users] * s_i / total[users]) * DAY
    times = np.concatenate((birth, t_rep))
    who = np.concatenate((np.arange(n), users))
    return who, np.minimum(times, AS_OF_S - 1), lam, p, K > N  # alive: not dropped out by as_of


def generate(n_users: int, out_dir: Path, *, seed: int = 11, send_every_days: int = 14,
             window_days: int = 730) -> dict:
    """Write ``users.arrow`` and ``events.arrow`` (time order) under ``out_dir``; returns counts."""
    import pyarrow as pa
    import pyarrow.feather as feather

    rng = np.random.default_rng(seed)
    who, t_tx, lam, p, alive = _transactions(rng, n_users, PARAMS, window_days)
    ids = rng.choice(np.iinfo(np.int64).max, size=n_users, replace=False) if n_users < 1 << 20 else \
        np.unique(rng.integers(1, np.iinfo(np.int64).max, int(n_users * 1.01)))[:n_users]
    rng.shuffle(ids)
    zone = rng.integers(0, len(ZONES), n_users)
    # sessions: one at each transaction plus 0-3 more within the hour
    extra = rng.integers(0, 4, who.size)
    s_who = np.concatenate((who, np.repeat(who, extra)))
    s_t = np.concatenate((t_tx, np.repeat(t_tx, extra) + rng.uniform(0, 3600, extra.sum())))
    buy = rng.random(who.size) < 0.3
    b_who, b_t = who[buy], t_tx[buy] + 60
    b_val = np.round(rng.lognormal(3.0, 0.8, b_who.size), 2)
    # campaign email every send_every_days in the last 180 days, to users born before it
    sends_at = AS_OF_S - np.arange(1, 180 // send_every_days + 1) * send_every_days * DAY + 9 * 3600
    birth = t_tx[:n_users]
    m_who = np.concatenate([np.flatnonzero(birth < s) for s in sends_at])
    m_t = np.concatenate([np.full(int((birth < s).sum()), s) for s in sends_at]) + rng.uniform(0, 7200, m_who.size)
    p_open = np.where(alive[m_who], 0.3, 0.05)
    opened = rng.random(m_who.size) < p_open
    o_who, o_t = m_who[opened], m_t[opened] + rng.exponential(6 * 3600, opened.sum())
    clicked = rng.random(o_who.size) < 0.1
    c_who, c_t = o_who[clicked], o_t[clicked] + 120
    unsub = rng.random(m_who.size) < 0.002
    u_who, u_t = m_who[unsub], m_t[unsub] + 600
    parts = [(s_who, s_t, 0, -1, None), (b_who, b_t, 1, -1, b_val), (m_who, m_t, 2, 0, None),
             (o_who, o_t, 3, 0, None), (c_who, c_t, 4, 0, None), (u_who, u_t, 5, 0, None)]
    e_who = np.concatenate([x[0] for x in parts])
    e_t = np.minimum(np.concatenate([x[1] for x in parts]), AS_OF_S - 1).astype(np.int64)
    e_ev = np.concatenate([np.full(x[0].size, x[2], np.int8) for x in parts])
    e_ch = np.concatenate([np.full(x[0].size, x[3], np.int8) for x in parts])
    e_val = np.concatenate([x[4] if x[4] is not None else np.full(x[0].size, np.nan) for x in parts])
    order = np.argsort(e_t, kind="stable")  # time order, as logs arrive
    e_who, e_t, e_ev, e_ch, e_val = e_who[order], e_t[order], e_ev[order], e_ch[order], e_val[order]
    out_dir.mkdir(parents=True, exist_ok=True)
    users = pa.table({"user_id": ids, "timezone": pa.array(np.array(ZONES, object)[zone], pa.string()),
                      "email": pa.array([f"u{i}@example.com" for i in range(n_users)], pa.string()),
                      "consent_email": np.ones(n_users, bool)})
    feather.write_feather(users, out_dir / "users.arrow", compression="uncompressed")
    ev_dict = pa.DictionaryArray.from_arrays(pa.array(e_ev), pa.array(EVENTS))
    ch_dict = pa.DictionaryArray.from_arrays(pa.array(np.maximum(e_ch, 0), mask=e_ch < 0),
                                             pa.array(["email", "sms", "push"]))
    events = pa.table({"user_id": ids[e_who], "ts": pa.array(e_t * 1_000_000, pa.timestamp("us", tz="UTC")),
                       "event": ev_dict, "channel": ch_dict,
                       "value": pa.array(e_val, mask=np.isnan(e_val))})
    feather.write_feather(events, out_dir / "events.arrow", compression="uncompressed", chunksize=1 << 20)
    return {"users": n_users, "events": int(e_t.size), "alive": float(alive.mean()),
            "transactions_per_user": float(who.size / n_users)}


def ensure(n_users: int, out_dir: Path, seed: int = 11) -> dict | None:
    """Generate the world into ``out_dir`` unless its events file is already there."""
    if (out_dir / "events.arrow").exists():
        return None
    return generate(n_users, out_dir, seed=seed)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200_000, help="users (default 200000, about 10M events)")
    ap.add_argument("--seed", type=int, default=11, help="random seed (default 11)")
    ap.add_argument("-o", "--out", required=True, help="output directory (users.arrow, events.arrow)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    info = generate(args.users, Path(args.out), seed=args.seed)
    print(f"{info['users']:,} users, {info['events']:,} events ({info['transactions_per_user']:.1f} transactions "
          f"a user, {info['alive']:.0%} alive) in {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
