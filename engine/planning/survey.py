"""Survey steps in the planner: the reason links of a message, and what earlier answers change.

A ``kind = "survey"`` step sends one link per reason; ``{{ survey_links }}`` and
``{{ survey_url }}`` are filled here.  The survey page posts the signed ``reason``
event to ``winback receive`` (engine.feedback.receiver) and the report turns the
answers into ``survey_actions.csv`` (``user_id, reason, action``;
engine.reporting.survey).  A campaign whose ``[policy] survey_actions`` names that file
acts on it: ``lower_cap`` users get at most ``survey_cap`` messages in the first
policy window (their fatigue budget is capped), ``sunset`` users are not messaged
(reason ``suppressed``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError

__all__ = ["survey_fields", "survey_masks"]


def survey_masks(path: str, uid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower_cap, sunset) masks over ``uid`` from a report's ``survey_actions.csv``."""
    import pyarrow.csv as pacsv

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"[policy.survey_actions] {p} does not exist; it is the survey_actions.csv of "
                          "'winback report' (the survey's answers)")
    try:
        t = pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(
            column_types={"user_id": pa.int64(), "action": pa.string()}))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(f"[policy.survey_actions] {p} is not a survey_actions.csv with user_id and action "
                          f"columns ({str(exc).splitlines()[0]})") from None
    for col in ("user_id", "action"):
        if col not in t.column_names:
            raise ConfigError(f"[policy.survey_actions] {p} has no column {col!r}; pass the survey_actions.csv "
                              "that 'winback report' wrote")
    ids = pa.array(uid, pa.int64())

    def who(action: str) -> np.ndarray:
        rows = t.filter(pc.equal(t["action"], action))["user_id"].drop_null()
        return pc.is_in(ids, value_set=rows).to_numpy(zero_copy_only=False)
    return who("lower_cap"), who("sunset")


def survey_fields(cmp, step_index: np.ndarray, message_id) -> dict[str, pa.Array]:
    """``{{ survey_url }}`` (the step's ``survey_url`` with ``?message_id=...``) and
    ``{{ survey_links }}`` (one "reason: url&reason=..." per reason, joined by " | ")
    for rows of survey steps; null elsewhere.  The survey page posts the signed
    ``reason`` event to ``winback receive`` (engine.feedback.receiver)."""
    n = len(step_index)
    url = pa.nulls(n, pa.string())
    links = pa.nulls(n, pa.string())
    for k, step in enumerate(cmp.steps):
        if step.kind != "survey":
            continue
        sel = pa.array(step_index == k)
        sep = "&" if "?" in step.survey_url else "?"
        base = pc.binary_join_element_wise(step.survey_url + sep + "message_id=", message_id, "")
        these = pc.binary_join_element_wise(*[x for r in step.reasons for x in
                                              (f"{r.replace('_', ' ')}: ", base, f"&reason={r}", " | ")][:-1], "")
        url = pc.if_else(sel, base, url)
        links = pc.if_else(sel, these, links)
    return {"survey_url": url, "survey_links": links}
