"""Timezones from engagement hours against the campaign default, on a generated world.

A share of the users lose their timezone (and their phone, so only the hours can tell);
scoring infers zones from engagement hours (engine.scoring.tzhours); each blanked user's
offset at as_of (inferred, else the default's) is compared with the true zone's.

    python benchmarks/compare_tz_hours.py --users 50000 --seed 1 [--share 0.3] [--one-zone]

``--one-zone`` moves every user into America/New_York first: inference must not spread them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from engine.scoring.pipeline import score, summary_of
from engine.synth.generator import DEFAULT_AS_OF, generate
from engine.tz import Offsets, parse_as_of


def offsets_h(names, at: int) -> np.ndarray:
    """UTC offset in hours of each zone name (None -> UTC) at ``at``."""
    names = ["UTC" if z is None else z for z in names]
    distinct = sorted(set(names))
    idx = {z: i for i, z in enumerate(distinct)}
    off = Offsets(distinct, at, at).at(np.arange(len(distinct)), np.full(len(distinct), at)) / 3600.0
    return off[[idx[z] for z in names]]


def circ(d: np.ndarray) -> np.ndarray:
    """|d| in hours on the 24-hour clock (an offset of +13 h is 11 h from -0)."""
    d = np.abs(d) % 24
    return np.minimum(d, 24 - d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--share", type=float, default=0.3, help="share of users whose timezone is blanked")
    ap.add_argument("--one-zone", action="store_true")
    ap.add_argument("--min-posterior", type=float, nargs="*", default=[0.6])
    ap.add_argument("--within", type=int, nargs="*", default=[2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(args.users, seed=args.seed, out_dir=tmp)
        users = feather.read_table(Path(tmp) / "users.arrow")
        tz = users["timezone"].to_pylist()
        if args.one_zone:
            tz = ["America/New_York" if z is not None else None for z in tz]
        rng = np.random.default_rng(args.seed + 1000)
        blank = (rng.random(users.num_rows) < args.share) & np.array([z is not None for z in tz])
        truth = np.array(tz, object)[blank]
        new_tz = [None if b else z for z, b in zip(tz, blank)]
        users = users.set_column(users.column_names.index("timezone"), "timezone", pa.array(new_tz, pa.string()))
        phone = users["phone"].to_pylist()
        phone = [None if b else p for p, b in zip(phone, blank)]
        users = users.set_column(users.column_names.index("phone"), "phone", pa.array(phone, pa.string()))
        feather.write_feather(users, Path(tmp) / "users_blank.arrow")
        as_of = parse_as_of(DEFAULT_AS_OF)
        true_off = offsets_h(list(truth), as_of)
        base_off = np.zeros(len(truth))  # the campaign default, UTC
        print(f"users {args.users:,} seed {args.seed} blanked {blank.sum():,} ({args.share:.0%})"
              + (" one zone (America/New_York)" if args.one_zone else ""))
        print(f"  baseline (default UTC): exact {np.mean(base_off == true_off):.1%}  "
              f"within 1 h {np.mean(circ(base_off - true_off) <= 1):.1%}  "
              f"mean |error| {np.mean(circ(base_off - true_off)):.2f} h")
        for p, w in [(p, w) for w in args.within for p in args.min_posterior]:
            s = score(Path(tmp) / "users_blank.arrow", Path(tmp) / "events.arrow", as_of=DEFAULT_AS_OF,
                      tz_min_posterior=p, tz_within_hours=w)
            src = np.array(s["timezone_source"].to_pylist(), object)[blank]
            got = np.array(s["timezone"].to_pylist(), object)[blank]
            hit = src == "hours"
            inf_off = np.where(hit, offsets_h(list(got), as_of), base_off)
            err = circ(inf_off - true_off)
            e_hit = err[hit]
            info = summary_of(s)["timezone_inference"]
            print(f"  min_posterior {p} within {w} h: checked {info['checked']:,} inferred {hit.sum():,} "
                  f"(coverage {hit.mean():.1%} of blanked)")
            if hit.any():
                print(f"    inferred users: exact {np.mean(e_hit < 0.01):.1%}  within 1 h {np.mean(e_hit <= 1):.1%}  "
                      f"within 2 h {np.mean(e_hit <= 2):.1%}  "
                      f"mean |error| {e_hit.mean():.2f} h; same users under the default: exact "
                      f"{np.mean(base_off[hit] == true_off[hit]):.1%}, mean |error| "
                      f"{np.mean(circ(base_off[hit] - true_off[hit])):.2f} h")
                print(f"    distinct inferred zones {len(set(got[hit]))}: "
                      + ", ".join(f"{z} {c}" for z, c in zip(*np.unique(got[hit].astype(str), return_counts=True))))
            print(f"    all blanked: exact {np.mean(err < 0.01):.1%}  within 1 h {np.mean(err <= 1):.1%}  "
                  f"mean |error| {err.mean():.2f} h")


if __name__ == "__main__":
    main()
