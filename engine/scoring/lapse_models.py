"""Which closed form scores ``lapse_risk``: BG/NBD or Pareto/NBD, fitted on the same compressed rows.

:func:`fit_pareto` fits Pareto/NBD (:mod:`engine.scoring.pareto_nbd`) beside BG/NBD and never
stops scoring: a failed fit is a warning and BG/NBD scores.  :func:`closed_form_of` says
which fitted model's closed forms give ``p_alive``, ``expected_active_days_30d`` and
``lapse_risk`` for a ``lapse_model`` decision (:mod:`engine.scoring.lapse_learned`).
"""

from __future__ import annotations

import time

from engine.errors import ModelError

__all__ = ["fit_pareto", "closed_form_of", "checked_auc", "NAMES"]

#: ``lapse_model["used"]`` -> the model behind lapse_risk, as the summary names it
NAMES = {"closed_form": "BG/NBD closed form", "pareto": "Pareto/NBD closed form",
         "learned": "learned (logistic regression over the BG/NBD closed form, recency, frequency, tenure)"}


def fit_pareto(x, t_x, T, w, penalizer: float = 0.0) -> dict:
    """Pareto/NBD fitted on compressed rows (days): {"name": "Pareto/NBD", "units": "days", r, alpha, s,
    beta, diagnostics...}, or {"name": "Pareto/NBD", "failed": reason, "seconds": ...} when it cannot be fitted."""
    t0 = time.perf_counter()
    try:
        from engine.scoring.pareto_nbd import ParetoNBD  # only when it is fitted (start-up)

        m = ParetoNBD(penalizer=penalizer).fit(x, t_x, T, weights=w)
    except (ModelError, FloatingPointError, ValueError, ZeroDivisionError) as exc:
        return {"name": "Pareto/NBD", "failed": str(exc), "seconds": round(time.perf_counter() - t0, 4)}
    return {"name": "Pareto/NBD", "units": "days", **m.params_, **m.diagnostics_}


def closed_form_of(choice: dict, bgnbd: dict, pareto: dict | None) -> tuple[dict, str | None]:
    """(the model dict whose closed forms score, a warning or None) for a ``lapse_model`` decision.

    ``used == "pareto"`` with a failed or missing Pareto/NBD fit falls back to BG/NBD with a warning.
    """
    if choice.get("used") != "pareto":
        return bgnbd, None
    if pareto is None or "failed" in pareto:
        why = "it was not fitted" if pareto is None else pareto["failed"]
        choice["used"] = "closed_form"
        choice["reason"] = f"the Pareto/NBD fit failed ({why}); BG/NBD scored instead"
        return bgnbd, f"Pareto/NBD could not be fitted ({why}); lapse_risk comes from BG/NBD"
    return pareto, None


def checked_auc(choice: dict) -> float | None:
    """The AUC at the time-split check of the model a ``lapse_model`` decision used (None when no
    check ran): the learned model's, Pareto/NBD's or the BG/NBD closed form's."""
    v = choice.get("validation")
    if not v:
        return None
    return {"learned": v.get("auc_learned"), "pareto": v.get("auc_pareto")}.get(choice.get("used")) \
        or v["auc_closed_form"]
