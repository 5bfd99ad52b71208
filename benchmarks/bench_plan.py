"""Planning a three-step campaign over many users.

As a pytest-benchmark suite (``WINBACK_BENCH_USERS`` users, default 100k)::

    pytest benchmarks/bench_plan.py -o python_files='bench_*.py' --benchmark-enable

Side by side, printing the ratio against a baseline measured in the same run::

    python benchmarks/bench_plan.py            # 1M users x 3 steps
    python benchmarks/bench_plan.py --quick    # 100k users x 3 steps

The baseline is "batch and blast" written with the same tools: the audience rule as
one ``pyarrow.compute`` expression, the first consented channel, one fixed UTC send
time per step, and the n x steps output table.  It is the floor any planner pays for
reading the columns and writing the rows; the ratio shows what channel ranking,
DST-exact local times, quiet hours, caps, gaps, capacity levelling, holdout, variants
and template rendering cost on top of it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.planning.campaign import load_campaign
from engine.planning.planner import plan
from engine.schema import CHANNELS

AS_OF = "2026-11-01T00:00:00Z"
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Paris", "Asia/Kolkata",
         "Asia/Tokyo", "Australia/Sydney", "America/Sao_Paulo", None]

CAMPAIGN = {
    "campaign": {"id": "bench-winback", "holdout": 0.1, "timezone": "UTC"},
    "audience": {"where": "lapse_risk >= 0.3 and days_inactive >= 14 and (reachable_email or reachable_push)"},
    "policy": {"max_messages": 3, "window_days": 7, "min_gap_hours": 16, "quiet_hours": ["21:00", "08:00"],
               "channel_caps": {"push": 2}, "capacity_per_hour": {"email": 40_000, "push": 30_000, "sms": 2_000}},
    "steps": [
        {"name": "we-miss-you", "delay_days": 0, "channels": ["push", "email"], "template": "miss"},
        {"name": "whats-new", "delay_days": 3, "channels": ["email", "push"], "template": "new"},
        {"name": "last-chance", "delay_days": 4, "channels": ["email", "sms"], "template": "last"},
    ],
    "variants": [{"name": "plain", "weight": 0.5}, {"name": "discount-10", "weight": 0.5}],
    "templates": {
        "miss": {"subject": "{{ first_name | default(\"Hey\") }}, we miss you", "body": "Hi {{ first_name }}!"},
        "new": {"subject": "What's new", "body": "Hi {{ first_name | default(\"there\") }}, see what's new."},
        "last": {"subject": "Last chance ({{ variant }})", "body": "{{ first_name }}, last message."},
    },
}


def make_scores(n: int, seed: int = 11) -> pa.Table:
    """A scores table shaped like 'winback score' output, only the columns plan reads (+ a name)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    cols = {"user_id": ids,
            "timezone": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, len(ZONES), n).astype(np.int32)),
                                                       pa.array(ZONES, pa.string())).cast(pa.string())}
    for c, addr in (("email", "email"), ("sms", "phone"), ("push", "push_token")):
        has = rng.random(n) < 0.8
        cols[f"consent_{c}"] = pa.array(rng.random(n) < 0.7)
        cols[addr] = pc.if_else(pa.array(has), pc.binary_join_element_wise(c, pc.cast(pa.array(ids), pa.string()), ":"),
                                pa.nulls(n, pa.string()))
        cols[f"{c}_suppressed"] = pa.array(rng.random(n) < 0.03)
        cols[f"{c}_response_rate"] = rng.beta(1, 8, n)
        cols[f"{c}_unengaged_streak"] = rng.integers(0, 10, n)
    cols |= {"lapse_risk": rng.random(n), "p_alive": rng.random(n), "days_inactive": rng.uniform(0, 300, n),
             "monetary": pa.array(rng.gamma(2, 20, n), mask=rng.random(n) < 0.6),
             "best_hour_local": rng.integers(0, 24, n).astype(np.int8),
             "send_time_confidence": rng.random(n).astype(np.float32),
             "sends_7d": rng.integers(0, 3, n).astype(np.int32), "sends_30d": rng.integers(0, 8, n).astype(np.int32),
             "fatigue_budget": rng.integers(0, 4, n).astype(np.int8),
             "first_name": pa.array(np.array(["Ann", "Bo", "Cy", None], dtype=object)[rng.integers(0, 4, n)], pa.string())}
    return pa.table(cols)


def blast(scores: pa.Table, n_steps: int = 3) -> pa.Table:
    """Baseline: rule + first consented channel + fixed send time per step, n x steps rows."""
    start = 1_793_491_200
    aud = pc.and_(pc.greater_equal(scores["lapse_risk"], 0.3), pc.greater_equal(scores["days_inactive"], 14.0))
    channel = pa.nulls(scores.num_rows, pa.string())
    for c in reversed(CHANNELS):
        channel = pc.if_else(scores[f"consent_{c}"], pa.scalar(c), channel)
    channel = pc.if_else(aud, channel, pa.nulls(scores.num_rows, pa.string()))
    n = scores.num_rows
    return pa.table({
        "user_id": pa.concat_arrays([scores["user_id"].combine_chunks()] * n_steps),
        "step_index": np.repeat(np.arange(n_steps, dtype=np.int16), n),
        "channel": pa.concat_arrays([channel.combine_chunks()] * n_steps),
        "send_at": pa.array(np.repeat(start + np.arange(n_steps) * 3 * 86400, n) * 1_000_000,
                            pa.timestamp("us", tz="UTC")),
    })


def test_plan_three_steps(benchmark):
    """pytest-benchmark: plan() over WINBACK_BENCH_USERS users x 3 steps."""
    scores = make_scores(int(os.environ.get("WINBACK_BENCH_USERS", "100000")))
    cmp = load_campaign(CAMPAIGN)
    result = benchmark.pedantic(plan, args=(scores, cmp), kwargs={"as_of": AS_OF}, rounds=3, iterations=1)
    assert result.num_rows == 3 * scores.num_rows


def test_blast_baseline(benchmark):
    scores = make_scores(int(os.environ.get("WINBACK_BENCH_USERS", "100000")))
    benchmark(blast, scores)


def _best(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100k users instead of 1M")
    ap.add_argument("--users", type=int, default=None, help="number of users (overrides --quick)")
    ap.add_argument("--rounds", type=int, default=2, help="best of this many rounds (default 2)")
    args = ap.parse_args(argv)
    n = args.users or (100_000 if args.quick else 1_000_000)
    t0 = time.perf_counter()
    scores = make_scores(n)
    print(f"scores: {n:,} users built in {time.perf_counter() - t0:.1f} s")
    cmp = load_campaign(CAMPAIGN)
    plan(make_scores(1000), cmp, as_of=AS_OF)  # compile the numba kernel outside the timing
    out = {}
    t_plan = _best(lambda: out.setdefault("p", plan(scores, cmp, as_of=AS_OF)), args.rounds)
    t_blast = _best(lambda: blast(scores), args.rounds)
    p = out["p"]
    planned = p["reason"].null_count
    print(f"winback plan : {t_plan:7.2f} s  ({n * 3 / t_plan / 1e6:.2f} M user-steps/s, {planned:,} messages planned)")
    print(f"blast floor  : {t_blast:7.2f} s")
    print(f"ratio plan/blast: {t_plan / t_blast:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
