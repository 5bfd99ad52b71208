"""BG/NBD or Pareto/NBD: which ranks better, and which selection rule would have known?

For each data set (CDNOW master as of 1997-10-01 at 30 days and 39 weeks; ``--world`` dirs
of ``winback generate`` or ``benchmarks/bgnbd_world.py``, scored as of their as_of minus
30 days) this prints, in one run:

* **truth**: the AUC of ``lapse_risk`` for "no activity in the next H days" under
  ``lapse_model="closed_form"`` (BG/NBD) and ``"pareto"`` (Pareto/NBD), scored as of T;
* **rules** a user's own data can drive, each computed from the history before T only:
  ``split H``: both models scored as of T - H on the history before it and checked on
  (T - H, T] (no split when nobody was active before T - H); ``split H/2``: the same at
  half the horizon; ``likelihood``: the larger log-likelihood of the two fits as of T
  (both have four parameters, so AIC and BIC pick the same); ``auto``: what
  ``lapse_model="auto"`` used;
* the fit seconds of winback's and lifetimes' Pareto/NBD on the same per-user summary
  (best of ``--rounds``, alternating; ratio = lifetimes / winback).

    python benchmarks/compare_pareto.py --world /tmp/s3 --world /tmp/s7 --world /tmp/bg
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

import cdnow  # noqa: E402

DAY = 86_400


def _aucs(users, events, at: str, H: float, activity: str, back_ids) -> dict:
    """{mode: AUC of lapse_risk} for BG/NBD and Pareto/NBD scored as of ``at`` (events all before it)."""
    import engine

    out = {}
    for mode in ("closed_form", "pareto", "auto"):
        s = engine.score(users, events, as_of=at, activity=activity, horizon_days=H, lapse_model=mode)
        seen = s["last_active_at"].is_valid().to_numpy(zero_copy_only=False)
        gone = ~np.isin(s["user_id"].to_numpy(), back_ids)[seen]
        out[mode] = cdnow.auc(s["lapse_risk"].to_numpy()[seen], gone) if 0 < gone.sum() < len(gone) else None
        meta = engine.summary_of(s)
        out[f"{mode} meta"] = meta
        out[f"{mode} summary"] = tuple(s[c].to_numpy()[seen].astype(float)
                                       for c in ("frequency", "recency_days", "tenure_days"))
    return out


def measure(name, users, events, T: int, H: int, activity: str, ids, ts) -> dict:
    """The truth at T and the rules' picks from the history up to T (module docstring); ``events``
    holds the activity before and after T, ``ids``/``ts`` its user ids and epoch seconds."""
    from engine.tz import from_epoch_seconds

    def iso(t):
        return from_epoch_seconds(np.array([t])).to_pylist()[0].isoformat()

    def split(h):
        cut = T - h * DAY
        keep = ts <= cut
        back = np.unique(ids[(ts > cut) & (ts <= T)])
        ev = events.filter(pa.array(keep))
        if not len(np.unique(ids[keep])) >= 60:
            return None
        try:
            a = _aucs(users, ev, iso(cut), h, activity, back)
        except Exception as exc:  # noqa: BLE001 - a rule that cannot run says so
            print(f"  {name}: split at {h} days: {type(exc).__name__}: {exc}")
            return None
        return "pareto" if a["pareto"] > a["closed_form"] else "closed_form", a

    fut = np.unique(ids[(ts > T) & (ts <= T + H * DAY)])
    now_ev = events.filter(pa.array(ts <= T))
    truth = _aucs(users, now_ev, iso(T), H, activity, fut)
    meta_bg, meta_p = truth["closed_form meta"], truth["pareto meta"]
    ll_bg, ll_p = meta_bg["model"]["log_likelihood"], (meta_p.get("pareto_nbd") or {}).get("log_likelihood")
    rules = {"likelihood": "pareto" if ll_p is not None and ll_p > ll_bg else "closed_form"}
    for label, h in (("split H", H), ("split H/2", H // 2)):
        got = split(h)
        rules[label] = None if got is None else got[0]
        if got is not None:
            rules[label + " AUCs"] = (got[1]["closed_form"], got[1]["pareto"])
    rules["auto"] = truth["auto meta"]["lapse_model"]["used"]
    return {"truth": (truth["closed_form"], truth["pareto"], truth["auto"]), "rules": rules,
            "ll": (ll_bg, ll_p), "summary": truth["pareto summary"], "pareto": meta_p.get("pareto_nbd")}


def fit_times(x, t_x, T, rounds: int):
    """(winback seconds, lifetimes seconds) of a Pareto/NBD fit on the same per-user summary, best of rounds."""
    from lifetimes import ParetoNBDFitter

    from engine.scoring.pareto_nbd import ParetoNBD

    ParetoNBD().fit(x[:200], t_x[:200], T[:200])  # compile outside the timing
    ours, theirs, params = [], [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        m = ParetoNBD().fit(x, t_x, T)
        ours.append(time.perf_counter() - t0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            ref = ParetoNBDFitter(penalizer_coef=0.0).fit(x, t_x, T)
            theirs.append(time.perf_counter() - t0)
        params = (m.params_, {k: float(v) for k, v in ref.params_.items()})
    return ours, theirs, params


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", action="append", default=[], metavar="DIR")
    ap.add_argument("--rounds", type=int, default=3, help="fit-time rounds per data set (default 3)")
    ap.add_argument("--time", default=None, metavar="NAMES",
                    help="comma-separated data sets whose fits are timed (default all), e.g. CDNOW,s7")
    ap.add_argument("--no-cdnow", action="store_true")
    args = ap.parse_args(argv)
    from engine.io.coerce import to_codes, to_epoch_seconds
    from engine.schema import DEFAULT_ACTIVITY, EVENTS
    from engine.tz import parse_as_of

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_cdnow:
            as_of = parse_as_of(cdnow.AS_OF)
            ids, ts, value = cdnow.read_cdnow(cdnow.cdnow_path())
            # every purchase (the future too): measure() scores from those before each cut
            users, events = cdnow.write_world(Path(tmp), ids, ts, value, int(ts.max()) + 1)
            ev = pa.ipc.open_file(pa.memory_map(str(events))).read_all()
            ev_ts = to_epoch_seconds(ev["ts"])[0]
            for H in (30, 273):
                results[f"CDNOW {H} d"] = measure(f"CDNOW {H} d", users, ev, as_of - 1, H, "purchase",
                                                  ev["user_id"].to_numpy(), ev_ts)
        for w in args.world:
            import json

            info = Path(w) / "world.json"
            T_end = parse_as_of(json.loads(info.read_text())["as_of"] if info.exists() else "2026-11-01T00:00:00Z")
            ev = pa.ipc.open_file(pa.memory_map(str(Path(w) / "events.arrow"))).read_all()
            code = to_codes(ev["event"], EVENTS)[0]
            act = np.isin(code, [EVENTS.index(a) for a in DEFAULT_ACTIVITY])
            ev = ev.filter(pa.array(act))
            ts = to_epoch_seconds(ev["ts"])[0]
            results[f"{Path(w).name} 30 d"] = measure(w, Path(w) / "users.arrow", ev, T_end - 30 * DAY, 30,
                                                       "session,purchase,click", ev["user_id"].to_numpy(), ts)
    print("\n| data | AUC BG/NBD | AUC Pareto/NBD | AUC auto | better | split H | split H/2 | likelihood "
          "(BG, Pareto) | auto used |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, r in results.items():
        bg, pn, au = r["truth"]
        better = "pareto" if pn > bg else "closed_form"
        ru = r["rules"]

        def mark(v):
            return "-" if v is None else (f"{v} ok" if v == better else f"{v} WRONG")
        print(f"| {k} | {bg:.4f} | {pn:.4f} | {au:.4f} | {better} | {mark(ru['split H'])} | {mark(ru['split H/2'])} "
              f"| {mark(ru['likelihood'])} ({r['ll'][0]:.1f}, {r['ll'][1]:.1f}) | {ru['auto']} |")
    for k, r in results.items():
        print(f"  {k}: split AUCs (BG, Pareto) H {r['rules'].get('split H AUCs')}, H/2 {r['rules'].get('split H/2 AUCs')}")
    print("\nPareto/NBD fit on the per-user summary as of T, seconds (best of rounds; ratio = lifetimes / winback)")
    done = set()
    for k, r in results.items():
        key = k.split(" ")[0]
        if key in done or (args.time and key not in args.time.split(",")):
            continue
        done.add(key)
        ours, theirs, (p_ours, p_ref) = fit_times(*r["summary"], args.rounds)
        rel = max(abs(p_ours[q] / p_ref[q] - 1) for q in p_ours)
        ratios = [t / o for o, t in zip(ours, theirs)]
        print(f"  {key}: {len(r['summary'][0]):,} users: winback {min(ours):.3f} s, lifetimes {min(theirs):.2f} s, "
              f"ratio {min(theirs) / min(ours):.0f}x (per round {', '.join(f'{v:.0f}x' for v in ratios)}); "
              f"largest parameter difference {rel:.1e} relative; winback {p_ours}, lifetimes {p_ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
