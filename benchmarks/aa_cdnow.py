"""A/A test on real customers: does the lift report find an effect where there is none?

CDNOW's customers (the full log that ships with lifetimes, 23,570 customers) are scored
as of 1997-10-01 on purchases and a one-step email win-back is planned for those quiet
for 14 days or more who bought more than once, with a holdout.  Nobody was ever messaged: the purchases after
1997-10-01 are what the customers really did, so the true lift is zero.  The campaign
is planned under ``--campaigns`` different ids (each id reshuffles the holdout) and each
plan is reported with ``winback report`` against the real purchases of the next
``--days`` days.  A 95 % interval should exclude zero for about 5 % of the ids (two-sided),
the mean difference should be near zero, and "a significant lift" should be reported
about as often as "a significant harm".

    python benchmarks/aa_cdnow.py                     # 40 ids, holdout 0.2, 30 days
    python benchmarks/aa_cdnow.py --campaigns 100 --holdout 0.1 --days 14
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.feather as feather  # noqa: E402

from cdnow import AS_OF, DAY, cdnow_path, read_cdnow  # noqa: E402

CAMPAIGN = """[campaign]
id = "{id}"
holdout = {holdout}
as_of = "1997-10-01T00:00:00Z"

[audience]
where = "days_inactive >= 14 and frequency >= 1 and reachable_email"

[policy]
quiet_hours = []

[[steps]]
name = "we-miss-you"
channels = ["email"]

[templates.we-miss-you]
subject = "We miss you"
body = "Come back"
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--campaigns", type=int, default=40, help="campaign ids, i.e. holdout draws (default 40)")
    ap.add_argument("--holdout", type=float, default=0.2, help="holdout share (default 0.2)")
    ap.add_argument("--days", type=int, default=30, help="days after the start the report counts (default 30)")
    args = ap.parse_args(argv)
    import engine
    from engine.cli import main as cli

    ids, ts, value = read_cdnow(cdnow_path())
    as_of = int(np.datetime64(AS_OF.rstrip("Z"), "s").astype(np.int64))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        uid = np.unique(ids)
        feather.write_feather(pa.table({"user_id": uid, "timezone": ["UTC"] * len(uid),
                                        "email": [f"c{u}@example.com" for u in uid],
                                        "consent_email": np.ones(len(uid), bool)}), tmp / "users.arrow")
        ev = pa.table({"user_id": ids, "ts": pa.array(ts, pa.timestamp("s", tz="UTC")),
                       "event": ["purchase"] * len(ids), "value": value})
        before = ts < as_of
        feather.write_feather(ev.filter(pa.array(before)), tmp / "history.arrow")
        feather.write_feather(ev.filter(pa.array(~before & (ts < as_of + args.days * DAY))), tmp / "after.arrow")
        scores = engine.score(tmp / "users.arrow", tmp / "history.arrow", as_of=AS_OF, activity="purchase")
        feather.write_feather(scores, tmp / "scores.arrow")
        rows, t0 = [], time.perf_counter()
        for k in range(args.campaigns):
            (tmp / "c.toml").write_text(CAMPAIGN.format(id=f"aa-{k}", holdout=args.holdout))
            plan, rep = tmp / f"plan{k}.arrow", tmp / f"rep{k}"
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                assert cli(["plan", str(tmp / "scores.arrow"), str(tmp / "c.toml"), "-o", str(plan)]) == 0
                assert cli(["report", str(plan), str(tmp / "after.arrow"), "--days", str(args.days), "-o", str(rep)]) == 0
            s = json.loads((rep / "summary.json").read_text())
            rows.append(s)
        print(f"{args.campaigns} plans and reports in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return report(rows, args)


def _reengagement(s: dict) -> tuple[float, float, float, int, int]:
    r = s["metrics"]["reengaged"]
    return r["lift"], r["lift_ci"][0], r["lift_ci"][1], r["treated"]["users"], r["holdout"]["users"]


def report(rows, args) -> int:
    d = np.array([_reengagement(s) for s in rows], dtype=np.float64)
    lo_pos, hi_neg = int((d[:, 1] > 0).sum()), int((d[:, 2] < 0).sum())
    print(f"A/A on CDNOW (real purchases, no message ever sent): {len(rows)} holdout draws, holdout {args.holdout}, "
          f"{args.days} days; audience {int(d[0, 3] + d[0, 4]):,} customers")
    print(f"  re-engagement difference (treated - holdout): mean {100 * d[:, 0].mean():+.3f} pp, "
          f"sd {100 * d[:, 0].std(ddof=1):.3f} pp over the draws")
    print(f"  95% interval excludes 0: {lo_pos + hi_neg} of {len(rows)} ({100 * (lo_pos + hi_neg) / len(rows):.1f}%; "
          f"expected 5%): {lo_pos} 'lift', {hi_neg} 'harm'")
    print(f"  mean interval width {100 * (d[:, 2] - d[:, 1]).mean():.3f} pp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
