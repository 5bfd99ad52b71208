"""Step 4, report: the campaign's lift against its holdout, with honest intervals.

The headline is intent-to-treat (ITT): every audience user outside the holdout is
"treated", whether or not a message reached them, against the audience's holdout.
ITT is unbiased because the holdout is a random hash of the user id; comparing only
users who received messages would credit the campaign with its own targeting.

Metrics per user over ``days`` days after the campaign start: re-engaged (a session
or a purchase: a click is a message metric, since only a messaged user can click the
campaign's message), opened, clicked, converted (purchase), unsubscribed or complained.
Before any lift, :mod:`engine.reporting.integrity` checks that the outcomes can measure
one (a messaged holdout, outcomes without activity or without the holdout's, repeated
rows, a short window): ``warnings``, and "not measurable" instead of a number.  Differences use Newcombe's hybrid score interval and
relative lift the Katz log-ratio interval, the delta method on log(p1/p2)
(:mod:`engine.stats`).  ``per_protocol`` compares only users who received at
least one message with the holdout (biased by reachability; shown for context).  Per step and
channel, rates among recipients are shown too; those are observational (who got
which channel was chosen by the plan), so they carry no holdout comparison.

Outputs: ``summary.json``, ``index.html`` with PNG plots (lift per variant,
re-engagement by send hour relative to the user's best hour, cumulative
re-engagement by day), and a sunset list (``sunset.arrow``, ``sunset.csv``): users
who received every message planned for them and did not come back.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.reporting.plots import figure
from engine.reporting import stats
from engine.reporting.sunset import skipped_at_send, sunset_list
from engine.io.plans import campaign_start, plan_meta, read_plan
from engine.io.readers import read_table
from engine.reporting.outcome_events import normalise as normalise_outcomes
from engine.ledger.read import planned_as_sent
from engine.io.atomic import atomic_dir
from engine.errors import ConfigError, InputError
from engine.planning.timing import local_instants
from engine.reporting.integrity import (REENGAGE_EVENTS, dedupe_messages, event_names, outcome_checks, significant,
                                        unmeasurable)
from engine.schema import SECONDS_PER_DAY
from engine.tz import to_epoch_seconds

__all__ = ["report", "suggested_weights", "MIN_N"]

#: below this many users per arm a difference is reported as "too small to tell"
MIN_N = 200
#: metrics only a message can cause (opens and clicks of this campaign's messages): no lift
#: against a holdout that gets none; the variants compare them instead
MESSAGE_METRICS = ("opened", "clicked")


def _outcome_tables(outcomes, ledger, plan: pa.Table) -> tuple[pa.Table, pa.Table]:
    path = None if isinstance(outcomes, pa.Table) else Path(outcomes)
    if path is None:
        events, msgs = outcomes, None
    elif path.is_dir() and (path / "events.arrow").exists():
        events = read_table(path / "events.arrow", "outcome events")
        msgs = read_table(path / "messages.arrow", "outcome messages") if (path / "messages.arrow").exists() else None
    else:
        events, msgs = read_table(path, "outcome events"), None
    for col in ("user_id", "ts", "event"):
        if col not in events.column_names:
            raise InputError(f"outcome events {path or 'table'} have no column {col!r}; pass the directory 'winback "
                             "simulate' wrote or an events file in the data contract")
    events = normalise_outcomes(events, str(path) if path is not None else "outcome events table")
    if msgs is None:
        msgs = _sends(events, plan)
    if msgs is None:
        msgs = planned_as_sent(plan, ledger)
    return events, msgs


def _sends(events: pa.Table, plan: pa.Table) -> pa.Table | None:
    """Deliveries recorded as ``send`` events (as 'winback simulate' writes them), with their
    plan step and variant; None when there are none."""
    ev = events["event"].cast(pa.string()) if pa.types.is_dictionary(events["event"].type) else events["event"]
    sends = events.filter(pc.equal(ev, "send"))
    if sends.num_rows == 0 or "message_id" not in sends.column_names:
        return None
    # only this plan's messages are this campaign's deliveries (a newsletter's send rows are not)
    sends = sends.filter(pc.fill_null(pc.is_in(sends["message_id"].cast(pa.string()),
                                               value_set=plan["message_id"].cast(pa.string())), False))
    if sends.num_rows == 0:
        return None
    ch = sends["channel"].cast(pa.string()) if "channel" in sends.column_names else pa.nulls(sends.num_rows, pa.string())
    sends = pa.table({"message_id": sends["message_id"], "user_id": sends["user_id"], "channel": ch})
    info = plan.select([c for c in ("message_id", "step", "variant", "channel") if c in plan.column_names])
    if "channel" in info.column_names:
        info = info.rename_columns([("planned_channel" if c == "channel" else c) for c in info.column_names])
    out = sends.join(info, "message_id", join_type="left outer")
    if "planned_channel" in out.column_names:  # a send row without its channel: the plan's channel
        out = out.set_column(out.schema.get_field_index("channel"), "channel",
                             pc.coalesce(out["channel"], out["planned_channel"])).drop_columns(["planned_channel"])
    out = out.set_column(out.schema.get_field_index("channel"), "channel", out["channel"].fill_null("unknown"))
    for col, fill in (("step", "blast"), ("variant", "blast")):
        out = out.set_column(out.schema.get_field_index(col), col, out[col].fill_null(fill)) \
            if col in out.column_names else out.append_column(col, pa.array([fill] * out.num_rows))
    return out


def _user_flags(events: pa.Table, users: np.ndarray, start: int, end: int,
                names: np.ndarray | None = None) -> dict[str, np.ndarray]:
    ts = to_epoch_seconds(events["ts"])
    uid = events["user_id"].to_numpy()
    ev = event_names(events) if names is None else names
    keep = (ts >= start) & (ts < end)
    pos = np.searchsorted(users, uid)
    pos = np.minimum(pos, len(users) - 1) if len(users) else pos
    keep &= (users[pos] == uid) if len(users) else np.zeros(len(uid), bool)
    out = {}
    first_act = np.full(len(users), np.iinfo(np.int64).max)
    for name, kinds in (("reengaged", REENGAGE_EVENTS), ("opened", ("open",)), ("clicked", ("click",)),
                        ("converted", ("purchase",)), ("unsubscribed", ("unsubscribe", "complaint"))):
        m = keep & np.isin(ev, kinds)
        flag = np.zeros(len(users), bool)
        flag[pos[m]] = True
        out[name] = flag
        if name == "reengaged":
            np.minimum.at(first_act, pos[m], ts[m])
    out["first_activity"] = first_act
    return out


def _compare(flag: np.ndarray, treat: np.ndarray, ctrl: np.ndarray) -> dict:
    k1, n1, k2, n2 = int(flag[treat].sum()), int(treat.sum()), int(flag[ctrl].sum()), int(ctrl.sum())
    d, lo, hi = stats.newcombe_diff(k1, n1, k2, n2)
    r, rlo, rhi = stats.relative_lift(k1, n1, k2, n2)
    note = stats.verdict(n1, n2, lo, hi, min_n=MIN_N, group="an arm",
                         no_effect="too small to tell: the interval includes no effect") if n2 else \
        "no holdout: the comparison has no control users (a campaign with holdout = 0 keeps none), so no lift"
    return {"treated": {"users": n1, "count": k1, "rate": k1 / n1 if n1 else None},
            "holdout": {"users": n2, "count": k2, "rate": k2 / n2 if n2 else None},
            "lift": _nan_none(d), "lift_ci": [_nan_none(lo), _nan_none(hi)],
            "relative_lift": _nan_none(r), "relative_lift_ci": [_nan_none(rlo), _nan_none(rhi)], "note": note}


def _nan_none(x):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def report(plan, outcomes, *, ledger=None, days: int = 14, out_dir=None, blast=None, feedback=None) -> dict:
    """Measure the campaign; returns the summary dict and, with ``out_dir``, writes the report.

    ``outcomes``: a ``winback simulate`` directory (events.arrow with ``send`` rows), an
    events file or directory (e.g. from ``winback receive`` plus the product's own
    activity), or an events table.  What counts as delivered comes from the simulate
    directory, else the ledger's ``sent`` messages, else every planned message.
    ``days``: the window after the campaign start (UTC) that counts.  ``feedback``: a
    ``winback receive`` directory (or events file) whose events (opens, clicks, survey
    ``reason`` answers...) are added to the outcomes.
    """
    if not 1 <= days <= 3650:
        raise ConfigError(f"--days must be from 1 to 3650, got {days}")
    if ledger is not None and not os.path.exists(ledger):  # a typo would report without what the send skipped
        raise InputError(f"ledger {ledger} does not exist; pass the ledger 'winback send' wrote, or leave "
                         "--ledger out")
    plan_t, plan_name = read_plan(plan)
    if plan_t.num_rows == 0:
        raise InputError(f"plan {plan_name} has no rows; there is no campaign to measure")
    _check_plan(plan_t, plan_name)
    events, msgs = _outcome_tables(outcomes, ledger, plan_t)
    if feedback is not None:
        from engine.reporting.extras import with_feedback

        events = with_feedback(events, feedback)
    start = int(campaign_start(plan_t))
    end = start + days * SECONDS_PER_DAY
    step0 = plan_t.filter(pc.equal(plan_t["step_index"], 0))
    users = step0["user_id"].to_numpy()
    order = np.argsort(users)
    users = users[order]
    reason = np.asarray(step0["reason"].fill_null("").to_numpy(zero_copy_only=False), dtype=object)[order]
    holdout = step0["holdout"].to_numpy(zero_copy_only=False)[order]
    variant = np.asarray(step0["variant"].fill_null("none").to_numpy(zero_copy_only=False), dtype=object)[order]
    audience = reason != "not_in_audience"
    treat, ctrl = audience & ~holdout, audience & holdout
    names = event_names(events)  # (once: the flags and the checks both read them)
    f = _user_flags(events, users, start, end, names)
    if msgs.num_rows:  # a delivery to a user the plan does not list is no part of this campaign
        msgs = msgs.filter(pc.is_in(msgs["user_id"], value_set=pa.array(users, msgs["user_id"].type)))
    msgs, repeated = dedupe_messages(msgs)
    checks = outcome_checks(events, msgs, users, treat, ctrl, start, end, repeated, names)
    ctrl = ctrl & ~checks["holdout_messaged"]  # (engine.reporting.integrity)
    m_uid = msgs["user_id"].to_numpy()
    sent_per_user = np.bincount(np.searchsorted(users, m_uid), minlength=len(users)) if len(m_uid) else np.zeros(len(users), np.int64)
    meta = plan_meta(plan_t)
    summary = {
        "campaign": {"id": meta.get("campaign_id"), "name": meta.get("name"), "start": meta.get("as_of"),
                     "days": days, "plan": plan_name},
        "headline": "intent-to-treat: audience outside the holdout vs the audience's holdout",
        "metrics": {name: _compare(f[name], treat, ctrl)
                    for name in ("reengaged", "opened", "clicked", "converted", "unsubscribed")},
        "messages_sent": int(len(m_uid)),
        "warnings": checks["warnings"],
    }
    if not checks["measurable"]:
        for name in ("reengaged", "converted"):
            summary["metrics"][name] = unmeasurable(summary["metrics"][name], checks["why"])
    for name in MESSAGE_METRICS:  # the holdout gets no message of this campaign: 0 % by construction
        summary["metrics"][name].update(lift=None, lift_ci=[None, None], relative_lift=None, relative_lift_ci=[None, None],
                                        note="message metric: the holdout gets no messages, so no lift; "
                                             "compare the variants")
    # per protocol: audience users who got at least one message vs the holdout; biased by
    # who could be reached, so shown beside the ITT headline, never instead of it
    summary["per_protocol"] = _compare(f["reengaged"], treat & (sent_per_user > 0), ctrl)
    re = summary["metrics"]["reengaged"]
    re_users = int(f["reengaged"][treat].sum())
    incr = (re["lift"] or 0.0) * re["treated"]["users"]
    summary["messages_per_reengaged_user"] = len(m_uid) / re_users if re_users else None
    # a cost per incremental user only where there is one: the lift's interval above 0
    summary["messages_per_incremental_reengaged_user"] = len(m_uid) / incr if incr > 0 and significant(re) else None
    summary["by_variant"] = {v: _compare(f["reengaged"], treat & (variant == v), ctrl)
                             for v in sorted(set(variant[treat]))}
    summary["by_theme"] = _by_theme(plan_t, users, f, treat, ctrl, msgs)
    summary["theme_experiment"] = _by_theme(plan_t, users, f, treat, ctrl, msgs, explored=True)
    summary["suggested_theme_weights"] = suggested_weights(summary["theme_experiment"])
    summary["by_step_channel"] = _by_step_channel(msgs, events, users, f, start, end)
    summary["by_hour_offset"] = _by_hour_offset(plan_t, users, f)
    summary["cumulative"] = _cumulative(f["first_activity"], treat, ctrl, start, days)
    sunset = sunset_list(plan_t, msgs, users, f["reengaged"], treat)
    summary["sunset_users"] = int(sunset.num_rows)
    summary["skipped_at_send"] = skipped_at_send(plan_t, ledger)
    if blast is not None:
        summary["blast"] = _blast(blast, plan_t, users, holdout, start, end, summary)
    files = _sections(summary, plan_t, meta, users, f, treat, ctrl, variant, events, msgs, start, end, ledger)
    if "survey_sunset" in files:
        # the survey's answer first: it is the better reason to give
        # (a user only the survey names has no channels: 'winback sunset' then suppresses every channel)
        sunset = pa.concat_tables([files.pop("survey_sunset"), sunset]).group_by("user_id", use_threads=False) \
            .aggregate([("messages_received", "max"), ("channels", "first"), ("reason", "first")]) \
            .rename_columns(["user_id", "messages_received", "channels", "reason"])
        summary["sunset_users"] = int(sunset.num_rows)
    if out_dir is not None:
        _write(summary, sunset, Path(out_dir), files)
    return summary


def _sections(summary, plan_t, meta, users, f, treat, ctrl, variant, events, msgs, start, end, ledger) -> dict:
    """The variant, offer, step, harm, survey and ads sections (engine.reporting.variants,
    .offers, .steps, .harm, .survey, .extras); returns the extra files to write."""
    from engine.reporting import extras, harm, offers, steps, survey, variants

    names = [v["name"] for v in meta.get("variants") or []] or sorted(set(variant[treat]))
    summary["variants"] = variants.compare_variants(f, treat, variant, names, min_n=MIN_N)
    summary["offers"] = offers.offer_economics(plan_t, meta, users, f, treat, ctrl, events, msgs, start, end,
                                               min_n=MIN_N)
    summary["harm"] = harm.harm(users, f, treat, ctrl, variant, msgs, events, summary.get("blast"))
    summary["by_step"] = steps.step_lift(plan_t, users, f["reengaged"], _compare, meta)
    files: dict = {}
    summary["survey"], actions = survey.survey_answers(events, plan_t, start, end)
    if actions.num_rows:
        files["survey_actions.csv"] = actions
        gone = actions.filter(pc.equal(actions["action"], "sunset"))
        files["survey_sunset"] = pa.table({
            "user_id": gone["user_id"], "messages_received": pa.array(np.zeros(gone.num_rows, np.int64)),
            "channels": pa.nulls(gone.num_rows, pa.string()),
            "reason": pc.binary_join_element_wise("survey: ", gone["reason"], "")})
    summary["ads_removal"], removal = extras.ads_removal(plan_t, msgs, users, f, ledger)
    files.update(removal)
    return files


def _by_theme(plan_t: pa.Table, users: np.ndarray, f, treat, ctrl, msgs, explored: bool = False) -> list[dict]:
    """Intent-to-treat lift per step and theme: treated users the plan assigned the theme at
    that step against held-out users it assigned the same theme there.

    The planner gives every audience user a theme from the scores, held out or not, so
    within a (step, theme) cell the arms are comparable (later steps' send times differ a
    little between arms, which can move an item across an expiry; that is all).  Themes
    follow from the users' histories, so comparing one theme's lift with another's
    compares different users: read each row against its own holdout.

    ``explored``: only the users of the theme experiment (``[content] explore``), whose
    theme was drawn at random (among the themes that found items for them): there the
    control of every theme is all held-out explorers of the step, and themes can be
    compared with each other on like users."""
    if "theme" not in plan_t.column_names or plan_t["theme"].null_count == plan_t.num_rows:
        return []
    t = plan_t.filter(pc.is_valid(plan_t["theme"]))
    if explored:
        if "explored" not in t.column_names:
            return []
        t = t.filter(pc.fill_null(t["explored"], False))
    steps = np.asarray(t["step_index"].to_numpy(), np.int64)
    step_names = np.asarray(t["step"].to_numpy(zero_copy_only=False), dtype=object)
    names = np.asarray(t["theme"].to_numpy(zero_copy_only=False), dtype=object)
    pos = np.searchsorted(users, t["user_id"].to_numpy())
    was_sent = pc.is_in(t["message_id"], value_set=msgs["message_id"]).to_numpy(zero_copy_only=False) \
        if msgs.num_rows and "message_id" in msgs.column_names else np.zeros(t.num_rows, bool)
    out = []
    for k in sorted(set(steps.tolist())):
        anyone = np.zeros(len(users), bool)
        anyone[pos[steps == k]] = True
        for name in sorted(set(names[steps == k])):
            sel = (steps == k) & (names == name)
            has = np.zeros(len(users), bool)
            has[pos[sel]] = True
            row = {"step": str(step_names[sel][0]), "theme": str(name), "messages_sent": int(was_sent[sel].sum())}
            # in the experiment a held-out user's drawn theme changes nothing: all held-out
            # explorers of the step are the control of every theme
            row.update(_compare(f["reengaged"], treat & has, ctrl & (anyone if explored else has)))
            if explored:  # randomised: the theme against the step's other drawn themes, treated users only
                other = _compare(f["reengaged"], treat & has, treat & anyone & ~has)
                row["vs_other_themes"] = {"lift": other["lift"], "lift_ci": other["lift_ci"], "note": other["note"]}
            out.append(row)
    return out


def suggested_weights(experiment: list[dict]) -> dict[str, dict[str, float]]:
    """Theme weights per step from the theme experiment, for ``themes = { ... }``: 2 for a
    theme that re-engages more than the step's other drawn themes (95 % interval above
    0), 0.5 for one that re-engages less (interval below 0); steps where nothing is
    clear are left out."""
    out: dict[str, dict[str, float]] = {}
    for r in experiment:
        v = r.get("vs_other_themes") or {}
        lo, hi = (v.get("lift_ci") or [None, None])
        if v.get("note", "").startswith("too small") and "fewer" in v.get("note", ""):
            continue
        if lo is not None and lo > 0:
            out.setdefault(r["step"], {})[r["theme"]] = 2.0
        elif hi is not None and hi < 0:
            out.setdefault(r["step"], {})[r["theme"]] = 0.5
    return out


def _by_step_channel(msgs, events, users, f, start, end) -> list[dict]:
    out = []
    if msgs.num_rows == 0:
        return out
    mid_ev = events.filter(pc.is_valid(events["message_id"])) if "message_id" in events.column_names else None
    for key in sorted({(s, c) for s, c in zip(msgs["step"].to_pylist(), msgs["channel"].to_pylist())}):
        sel = msgs.filter(pc.and_(pc.equal(msgs["step"], key[0]), pc.equal(msgs["channel"], key[1])))
        n = sel.num_rows
        row = {"step": key[0], "channel": key[1], "sent": n}
        if mid_ev is not None:
            e = mid_ev.filter(pc.is_in(mid_ev["message_id"], value_set=sel["message_id"]))
            ev = e["event"].cast(pa.string()) if pa.types.is_dictionary(e["event"].type) else e["event"]
            for name in ("open", "click", "unsubscribe"):
                k = len(set(e.filter(pc.equal(ev, name))["message_id"].to_pylist()))
                row[f"{name}_rate"] = k / n if n else None
        pos = np.searchsorted(users, sel["user_id"].to_numpy())
        row["reengaged_rate"] = float(f["reengaged"][pos].mean()) if n else None
        out.append(row)
    return out


def _by_hour_offset(plan_t, users, f) -> list[dict]:
    p = plan_t.filter(pc.and_(pc.is_null(plan_t["reason"]), pc.equal(plan_t["step_index"], 0)))
    if p.num_rows == 0 or "best_hour_local" not in p.column_names:
        return []
    p = p.filter(pc.and_(pc.is_valid(p["send_at"]), pc.is_valid(p["best_hour_local"])))  # a hand-made plan's gaps
    if p.num_rows == 0:
        return []
    local = local_instants(p, to_epoch_seconds(p["send_at"]))
    hour = (local % 86400) // 3600
    diff = (hour - p["best_hour_local"].to_numpy().astype(np.int64) + 12) % 24 - 12
    pos = np.searchsorted(users, p["user_id"].to_numpy())
    re = f["reengaged"][pos]
    out = []
    for d in range(-12, 12):
        m = diff == d
        if m.sum():
            out.append({"offset_hours": d, "users": int(m.sum()), "reengaged_rate": float(re[m].mean())})
    return out


def _cumulative(first, treat, ctrl, start, days) -> dict:
    out = {"day": list(range(1, days + 1)), "treated": [], "holdout": []}
    for d in out["day"]:
        hit = first < start + d * SECONDS_PER_DAY
        out["treated"].append(float(hit[treat].mean()) if treat.any() else None)
        out["holdout"].append(float(hit[ctrl].mean()) if ctrl.any() else None)
    return out


def _blast(blast, plan_t, users, holdout, start, end, summary) -> dict:
    events, msgs = _outcome_tables(blast, None, plan_t)
    f = _user_flags(events, users, start, end)
    got = np.zeros(len(users), bool)
    got[np.searchsorted(users, msgs["user_id"].to_numpy())] = True
    cmp = _compare(f["reengaged"], got, holdout)
    re_users = int(f["reengaged"][got].sum())
    incr = (cmp["lift"] or 0.0) * cmp["treated"]["users"]
    wb = summary["metrics"]
    return {"messages_sent": int(msgs.num_rows), "reengaged": cmp,
            "unsubscribed": int(f["unsubscribed"][got].sum()),
            "messages_per_reengaged_user": msgs.num_rows / re_users if re_users else None,
            "messages_per_incremental_reengaged_user": msgs.num_rows / incr if incr > 0 and significant(cmp) else None,
            "winback_unsubscribed": wb["unsubscribed"]["treated"]["count"]}


def _write(summary: dict, sunset: pa.Table, out_dir: Path, files: dict | None = None) -> None:
    figure((1, 1))  # matplotlib is there, before any file is written
    import pyarrow.csv as pacsv
    import pyarrow.feather as feather

    from engine.reporting.html import render_html

    with atomic_dir(out_dir) as tmp:
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        feather.write_feather(sunset, tmp / "sunset.arrow", compression="uncompressed")
        pacsv.write_csv(sunset, tmp / "sunset.csv")
        for name, data in (files or {}).items():
            if isinstance(data, pa.Table):
                pacsv.write_csv(data, tmp / name)
            else:
                (tmp / name).write_bytes(data)
        _plots(summary, tmp)
        (tmp / "index.html").write_text(render_html(summary), encoding="utf-8")


def _plots(summary: dict, out: Path) -> None:
    fig, ax = figure((6.4, 3.6))
    names, lifts, los, his = [], [], [], []
    for name, c in [("all", summary["metrics"]["reengaged"])] + list(summary["by_variant"].items()):
        if c["lift"] is None:
            continue
        names.append(name)
        lifts.append(100 * c["lift"])
        los.append(100 * (c["lift"] - c["lift_ci"][0]))
        his.append(100 * (c["lift_ci"][1] - c["lift"]))
    ax.errorbar(lifts, range(len(names)), xerr=[los, his], fmt="o", color="#2563eb", capsize=4)
    ax.axvline(0, color="#888", lw=1)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("re-engagement lift vs holdout (percentage points, 95% CI)")
    ax.set_title("Lift by variant")
    fig.tight_layout()
    fig.savefig(out / "lift.png", dpi=110)
    if summary.get("by_theme"):
        fig, ax = figure((7.2, 0.9 + 0.32 * len(summary["by_theme"])))
        items = [(f"{c['step']}: {c['theme']}", c) for c in summary["by_theme"] if c["lift"] is not None]
        ax.errorbar([100 * c["lift"] for _, c in items], range(len(items)),
                    xerr=[[100 * (c["lift"] - c["lift_ci"][0]) for _, c in items],
                          [100 * (c["lift_ci"][1] - c["lift"]) for _, c in items]],
                    fmt="o", color="#9333ea", capsize=4)
        ax.axvline(0, color="#888", lw=1)
        ax.set_yticks(range(len(items)), [k for k, _ in items])
        ax.invert_yaxis()  # the first step on top
        ax.set_xlabel("re-engagement lift vs holdout of the same theme (pp, 95% CI)")
        ax.set_title("Lift by theme")
        fig.tight_layout()
        fig.savefig(out / "themes.png", dpi=110)
    rows = summary["by_hour_offset"]
    fig, ax = figure((6.4, 3.6))
    if rows:
        ax.bar([r["offset_hours"] for r in rows], [100 * r["reengaged_rate"] for r in rows], color="#16a34a")
    ax.set_xlabel("send hour minus the user's best hour (local, hours)")
    ax.set_ylabel("re-engaged (%)")
    ax.set_title("Re-engagement by send hour relative to best hour")
    fig.tight_layout()
    fig.savefig(out / "hours.png", dpi=110)
    cum = summary["cumulative"]
    fig, ax = figure((6.4, 3.6))
    for key, color in (("treated", "#2563eb"), ("holdout", "#9ca3af")):
        vals = [100 * v if v is not None else np.nan for v in cum[key]]
        ax.plot(cum["day"], vals, marker="o", ms=3, label=key, color=color)
    ax.set_xlabel("days after campaign start")
    ax.set_ylabel("re-engaged so far (%)")
    ax.set_title("Cumulative re-engagement")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "cumulative.png", dpi=110)


del html


def _check_plan(plan_t: pa.Table, name: str) -> None:
    """An :class:`InputError` when the plan lacks what the report reads, or has no user,
    step or holdout flag on some rows (a hand-made or cut-down plan)."""
    from engine.io.plans import require_plan_columns

    require_plan_columns(plan_t, name, ("message_id", "user_id", "step", "step_index", "variant", "send_at",
                                        "reason", "holdout"))
    for col in ("user_id", "step_index", "holdout"):
        if plan_t[col].null_count:
            rows = np.flatnonzero(plan_t[col].is_null().to_numpy(zero_copy_only=False))[:3].tolist()
            raise InputError(f"{name}: column {col!r} is null in {plan_t[col].null_count:,} rows (e.g. rows {rows}); "
                             "every plan row needs a user, a step and a holdout flag: pass the plan 'winback plan' "
                             "wrote")
