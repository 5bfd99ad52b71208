"""Send time for sparse users: the cohort prior against the timezone prior and the population's hour.

On a generated world (which records each user's true preferred local hour), the users get
two extra columns before scoring:

* ``daypart``: the true preferred hour's part of the day (morning < 11, midday < 16,
  evening < 21, night), wrong (a random part) for ``--noise`` of the users: a cohort that
  carries real information, as a segment or a plan often does;
* ``shuffled``: the same values in a random order: a cohort that carries none.

Each way of scoring is judged by the share of users whose ``best_hour_local`` is within one
hour of the true preferred hour, split by the user's engagements before as_of (0, 1-4,
5-9, 10+), beside the trivial baseline: the timezone population's best hour for everyone.

    python benchmarks/compare_cohort_hours.py --users 50000 --seeds 1,2 [--noise 0.2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from engine.scoring.pipeline import score, summary_of
from engine.synth.generator import DEFAULT_AS_OF, generate

CLASSES = ((0, 0), (1, 4), (5, 9), (10, np.inf))
PARTS = np.array(["morning", "midday", "evening", "night"])


def within_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a.astype(np.int64) - b.astype(np.int64)) % 24
    return np.minimum(d, 24 - d) <= 1


def with_cohorts(world: Path, out: Path, noise: float, seed: int) -> np.ndarray:
    """Write ``out`` (the users with ``daypart`` and ``shuffled``); returns the true hours by user row."""
    users = feather.read_table(world / "users.arrow")
    truth = feather.read_table(world / "truth.arrow")
    assert users["user_id"].equals(truth["user_id"])
    pref = truth["preferred_hour_local"].to_numpy().astype(np.int64)
    rng = np.random.default_rng(seed)
    part = PARTS[np.select([pref < 11, pref < 16, pref < 21], [0, 1, 2], 3)]
    part = np.where(rng.random(len(pref)) < noise, rng.choice(PARTS, len(pref)), part)
    users = users.append_column("daypart", pa.array(part)).append_column("shuffled", pa.array(rng.permutation(part)))
    feather.write_feather(users, out)
    return pref


def row(label: str, hit: np.ndarray, n_eng: np.ndarray, seconds: float | None) -> str:
    cells = [f"{label:34s} {hit.mean():6.3f}"]
    for lo, hi in CLASSES:
        sel = (n_eng >= lo) & (n_eng <= hi)
        cells.append(f"{hit[sel].mean():6.3f}" if sel.any() else "     -")
    return "  ".join(cells) + (f"  {seconds:5.1f} s" if seconds is not None else "")


def run(n_users: int, seed: int, noise: float, base: Path) -> None:
    world = base / f"w{seed}"
    generate(n_users, seed=seed, out_dir=world)
    pref = with_cohorts(world, base / f"users{seed}.arrow", noise, seed)
    head = "  ".join(f"{lo}-{'' if hi == np.inf else hi:<3}".replace("-   ", "+   ") if lo else "0     "
                     for lo, hi in CLASSES)
    print(f"\nseed {seed}, {n_users:,} users, daypart wrong for {noise:.0%}: share within 1 h of the true hour")
    print(f"{'':34s}    all  {head}")
    n_eng = None
    for label, cohort in (("timezone prior (default)", ""), ("+ cohort daypart (informative)", "daypart"),
                          ("+ cohort shuffled (no information)", "shuffled"), ("+ cohort plan (generator's)", "plan"),
                          ("+ cohort signup_at (month)", "signup_at")):
        t0 = time.perf_counter()
        s = score(base / f"users{seed}.arrow", world / "events.arrow", as_of=DEFAULT_AS_OF, send_time_cohort=cohort)
        seconds = time.perf_counter() - t0
        assert s["user_id"].equals(feather.read_table(world / "users.arrow")["user_id"])
        if n_eng is None:
            n_eng = s["engagements"].to_numpy()
            pop = summary_of(s)["send_time"]["population_best_hour"]
            zones = s["timezone"].fill_null("UTC").to_pylist()
            pop_hour = np.array([pop.get(z, pop.get("UTC", 0)) for z in zones])
            print(row("population best hour (baseline)", within_one(pop_hour, pref), n_eng, None))
        print(row(label, within_one(s["best_hour_local"].to_numpy(), pref), n_eng, seconds))
    print("users per class:" + "".join(f"  {lo}-{hi}: {int(((n_eng >= lo) & (n_eng <= hi)).sum()):,}"
                                       for lo, hi in CLASSES))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seeds", default="1,2", help="comma-separated generator seeds (default 1,2)")
    ap.add_argument("--noise", type=float, default=0.2, help="share of users whose daypart is wrong (default 0.2)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="winback-cohorts-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            run(args.users, seed, args.noise, Path(tmp))


if __name__ == "__main__":
    main()
