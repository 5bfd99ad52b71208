"""CDNOW, real customers: does ``lapse_risk`` rank who will not come back better than the baselines?

CDNOW's full log (23,570 customers who first bought in Q1 1997, 69,659 purchases up to
1998-06-30) ships with lifetimes as ``datasets/CDNOW_master.txt``.  This script turns it
into winback users/events files (one ``purchase`` event per log line at 12:00 UTC of its
day, ``value`` = dollars), scores them with ``winback score`` semantics as of
1997-10-01 on purchases, and for "no purchase in the next H days" (H = 30 days and
39 weeks = 273 days) prints the AUC of, all in this one run and on the same users:

* winback ``lapse_risk`` scored with ``horizon_days=H`` as shipped (``lapse_model="auto"``:
  BG/NBD or Pareto/NBD by a check on the history before as_of, the learned model when a
  check says it wins; the line under each horizon says which), and each closed form alone
  (``lapse_model="closed_form"``: BG/NBD; ``"pareto"``: Pareto/NBD), and the learned model
  asked for (``lapse_model="learned"``: no check; at 39 weeks trained at the longest rung),
* winback ``1 - p_alive`` and ``expected_active_days_30d`` (negated: fewer expected
  active days = riskier),
* lifetimes BG/NBD, MBG/NBD and Pareto/NBD E[purchases in H days], fitted on winback's
  own (frequency, recency_days, tenure_days) summary, in days,
* recency only (``days_inactive``) and frequency only (``-frequency``),
* with ``--backtest``: :func:`engine.backtest` as of 1997-10-01 (it scores as of
  1997-10-01 minus H on the history before that).

``--world DIR`` (repeatable) adds generated worlds as columns (H = 30 days, scored as of
their as_of minus 30 days).  The run ends with one table: every ranking x every column.
AUC = P(a random non-returner is ranked riskier than a random returner), ties half.

    python benchmarks/cdnow.py                 # needs pip install 'winback[bench]'
    python benchmarks/cdnow.py --horizons 30 --backtest
    winback generate --users 100000 --seed 7 -o /tmp/s7
    python benchmarks/bgnbd_world.py --users 100000 -o /tmp/bg
    python benchmarks/cdnow.py --world /tmp/s7 --world /tmp/bg     # CDNOW and the worlds, one table
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.feather as feather  # noqa: E402

AS_OF = "1997-10-01T00:00:00Z"
DAY = 86_400


def cdnow_path() -> Path:
    try:
        import lifetimes
    except ImportError:
        sys.exit("lifetimes is not installed: pip install 'winback[bench]'")
    return Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"


def read_cdnow(path: Path):
    """(customer ids int64, purchase epoch seconds int64 at 12:00 UTC, dollars float64)."""
    raw = np.loadtxt(path, skiprows=1, dtype=np.float64)
    ids = raw[:, 0].astype(np.int64)
    ymd = raw[:, 1].astype(np.int64)
    days = np.array([f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}" for d in ymd], "datetime64[D]")
    ts = days.astype("datetime64[s]").astype(np.int64) + 12 * 3600
    return ids, ts, raw[:, 3]


def write_world(out: Path, ids, ts, value, as_of: int) -> tuple[Path, Path]:
    """users.arrow (every customer, timezone UTC) and events.arrow (purchases before as_of)."""
    users = pa.table({"user_id": pa.array(np.unique(ids)), "timezone": pa.array(["UTC"] * len(np.unique(ids)))})
    keep = ts < as_of
    events = pa.table({"user_id": pa.array(ids[keep]),
                       "ts": pa.array(ts[keep], pa.timestamp("s", tz="UTC")),
                       "event": pa.array(["purchase"] * int(keep.sum())),
                       "value": pa.array(value[keep])})
    feather.write_feather(users, out / "users.arrow")
    feather.write_feather(events, out / "events.arrow")
    return out / "users.arrow", out / "events.arrow"


def auc(score, positive) -> float:
    """Mann-Whitney AUC of ``score`` for ``positive`` (ties count half)."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, bool)
    r = rankdata(score)
    n1, n0 = positive.sum(), (~positive).sum()
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


LIFETIMES = ("BG/NBD", "MBG/NBD", "Pareto/NBD")


def lifetimes_expected(x, t_x, T, H):
    """E[purchases in H days] from lifetimes' BG/NBD, MBG/NBD and Pareto/NBD fitted on (x, t_x, T) in days."""
    from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

    out, secs = {}, {}
    for name, cls in zip(LIFETIMES, (BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            try:
                m = cls(penalizer_coef=0.0).fit(x, t_x, T)
                out[name] = np.asarray(m.conditional_expected_number_of_purchases_up_to_time(H, x, t_x, T), float)
            except Exception as exc:  # lifetimes refuses some summaries; the table says so
                print(f"  lifetimes {name} failed: {type(exc).__name__}: {exc}")
                out[name] = None
            secs[name] = time.perf_counter() - t0
    return out, secs


def evaluate(users, events, as_of: str, H: int, activity: str, back_ids: np.ndarray, with_backtest=False) -> dict:
    """AUCs for "no activity in the H days after as_of" of every ranking, scored from ``events`` (all before as_of)."""
    import engine

    t0 = time.perf_counter()
    s = engine.score(users, events, as_of=as_of, activity=activity, horizon_days=H)
    took = time.perf_counter() - t0
    closed = engine.score(users, events, as_of=as_of, activity=activity, horizon_days=H, lapse_model="closed_form")
    pareto = engine.score(users, events, as_of=as_of, activity=activity, horizon_days=H, lapse_model="pareto")
    learned = engine.score(users, events, as_of=as_of, activity=activity, horizon_days=H, lapse_model="learned")
    gone = ~np.isin(s["user_id"].to_numpy(), back_ids)
    seen = s["last_active_at"].is_valid().to_numpy(zero_copy_only=False)  # the never-active are not ranked
    s, closed, pareto, learned = (t.filter(pa.array(seen)) for t in (s, closed, pareto, learned))
    gone = gone[seen]
    x, t_x, T = (s[c].to_numpy().astype(float) for c in ("frequency", "recency_days", "tenure_days"))
    life, life_s = lifetimes_expected(x, t_x, T, float(H))
    res = {"winback lapse_risk": auc(s["lapse_risk"].to_numpy(), gone),
           "winback lapse_risk, BG/NBD closed form": auc(closed["lapse_risk"].to_numpy(), gone),
           "winback lapse_risk, Pareto/NBD closed form": auc(pareto["lapse_risk"].to_numpy(), gone),
           "winback lapse_risk, learned model asked for": auc(learned["lapse_risk"].to_numpy(), gone),
           "winback 1 - p_alive": auc(1 - s["p_alive"].to_numpy(), gone),
           "winback -expected_active_days_30d": auc(-s["expected_active_days_30d"].to_numpy(), gone)}
    for k, e in life.items():
        res[f"lifetimes {k} -E[H]"] = None if e is None else auc(-e, gone)
    res["recency only (days_inactive)"] = auc(s["days_inactive"].to_numpy(), gone)
    res["frequency only (-frequency)"] = auc(-x, gone)
    if with_backtest:
        try:
            b = engine.backtest(users, events, as_of=as_of, horizon_days=H, activity=activity)
            res["(backtest: as of minus H) lapse_risk"] = b["auc"]["lapse_risk"]
        except engine.WinbackError as exc:
            print(f"  backtest not possible: {exc}")
    meta = engine.summary_of(s)
    m, lm, pm = meta["model"], meta["lapse_model"], engine.summary_of(pareto)["pareto_nbd"]
    print(f"\nhorizon {H} days: {len(gone):,} users, {gone.mean():.1%} with no activity; winback score {took:.2f} s "
          f"(BG/NBD fit {m['seconds']:.3f} s, Pareto/NBD fit {pm.get('seconds', 0):.3f} s, lapse model "
          f"{lm['seconds']:.2f} s; lifetimes "
          + ", ".join(f"{k} {v:.2f} s" for k, v in life_s.items()) + " on the same summary)")
    print(f"  lapse_risk: {lm.get('name', lm['used'])} ({lm['reason']})")
    for k, a in res.items():
        print(f"  {k:<40} AUC {'failed' if a is None else f'{a:.4f}'}")
    return res


def world_events(world: Path, H: int):
    """A generated world's users path, its events up to as_of - H (a table) and who was active after."""
    import json

    from engine.io.coerce import to_codes, to_epoch_seconds
    from engine.schema import DEFAULT_ACTIVITY, EVENTS
    from engine.tz import parse_as_of

    info = world / "world.json"  # benchmarks/bgnbd_world.py writes none: its as_of is fixed
    as_of = parse_as_of(json.loads(info.read_text())["as_of"] if info.exists() else "2026-11-01T00:00:00Z")
    cut = as_of - H * DAY
    ev = feather.read_table(world / "events.arrow", memory_map=True)
    ts = to_epoch_seconds(ev["ts"])[0]
    code = to_codes(ev["event"], EVENTS)[0]
    act = np.isin(code, [EVENTS.index(a) for a in DEFAULT_ACTIVITY])
    back = np.unique(ev["user_id"].to_numpy()[(ts > cut) & act])
    return world / "users.arrow", ev.filter(pa.array(ts <= cut)), cut, back


def table(columns: dict[str, dict]) -> str:
    """Rankings x data sets as a Markdown table, the best of each column in bold."""
    names = list(dict.fromkeys(k for c in columns.values() for k in c if not k.startswith("(")))
    lines = ["| ranking | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for k in names:
        cells = []
        for c in columns.values():
            a = c.get(k)
            best = a is not None and a >= max(v for n, v in c.items() if v is not None and not n.startswith("("))
            cells.append("-" if a is None else (f"**{a:.4f}**" if best else f"{a:.4f}"))
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--horizons", default="30,273", help="comma-separated CDNOW horizons in days (default 30,273)")
    ap.add_argument("--backtest", action="store_true", help="also run engine.backtest at each horizon")
    ap.add_argument("--world", action="append", default=[], metavar="DIR",
                    help="also a 'winback generate' (or benchmarks/bgnbd_world.py) world, repeatable: scored as of "
                         "its as_of minus 30 days from the events before, against activity (session, purchase, "
                         "click) in the last 30 days")
    ap.add_argument("--no-cdnow", action="store_true", help="only the --world columns")
    args = ap.parse_args(argv)
    from engine.tz import from_epoch_seconds, parse_as_of

    columns: dict[str, dict] = {}
    for w in args.world:
        H = 30
        users, events, cut, back = world_events(Path(w), H)
        at = from_epoch_seconds(np.array([cut])).to_pylist()[0].isoformat()
        print(f"{w}: scored as of {at} (as_of minus {H} days), {events.num_rows:,} events before")
        columns[f"{Path(w).name} {H} d"] = evaluate(users, events, at, H, "session,purchase,click", back,
                                                   args.backtest)
    if not args.no_cdnow:
        as_of = parse_as_of(AS_OF)
        ids, ts, value = read_cdnow(cdnow_path())
        print(f"CDNOW: {len(np.unique(ids)):,} customers, {len(ids):,} purchases; scored as of {AS_OF} on purchases "
              f"({int((ts < as_of).sum()):,} purchases before)")
        with tempfile.TemporaryDirectory() as tmp:
            users, events = write_world(Path(tmp), ids, ts, value, as_of)
            for H in (int(h) for h in args.horizons.split(",")):
                back = np.unique(ids[(ts >= as_of) & (ts < as_of + H * DAY)])
                columns[f"CDNOW {H} d"] = evaluate(users, events, AS_OF, H, "purchase", back, args.backtest)
        columns = {k: columns[k] for k in sorted(columns, key=lambda k: not k.startswith("CDNOW"))}
    print("\nAUC for 'no activity in the next H days' (higher is better; the best of each column in bold)\n")
    print(table(columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
