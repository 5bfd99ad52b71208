"""BG/NBD or Pareto/NBD behind lapse_risk: the option through the score pipeline and the CLI, the
model named in the metadata and the summary, boundary populations, and the fall-back to BG/NBD."""

from __future__ import annotations

import numpy as np
import pyarrow.feather as feather
import pytest

from engine.cli import main
from engine.scoring import lapse_models
from engine.scoring.lapse_learned import PARETO_MARGIN
from engine.scoring.backtest import auc
from engine.scoring.pipeline import score, summary_of
from engine.tz import parse_as_of
from tests import cdnow
from tests.scoring.test_lapse import _boundary_files

DAY = 86_400


@pytest.fixture(scope="module")
def cdnow_pareto():
    as_of = parse_as_of(cdnow.AS_OF)
    users, events = cdnow.tables(before=as_of)
    ids, ts, _ = cdnow.purchases()
    out = {}
    for mode in ("pareto", "closed_form"):
        s = score(users, events, as_of=cdnow.AS_OF, activity="purchase", horizon_days=273, lapse_model=mode)
        gone = ~np.isin(s["user_id"].to_numpy(), ids[(ts >= as_of) & (ts < as_of + 273 * DAY)])
        out[mode] = (s, gone)
    return out


def test_pareto_option_scores_with_pareto_nbd_and_names_it(cdnow_pareto):
    # given the CDNOW sample scored as of 1997-10-01 for 39 weeks with --lapse-model pareto
    s, gone = cdnow_pareto["pareto"]
    meta = summary_of(s)
    # then the metadata names the model behind lapse_risk and holds its fit, in days
    lm, pm = meta["lapse_model"], meta["pareto_nbd"]
    assert lm["used"] == "pareto" and lm["name"] == "Pareto/NBD closed form"
    assert pm["name"] == "Pareto/NBD" and pm["units"] == "days" and pm["converged"] and pm["warnings"] == []
    # (the summary-level weekly estimates are r=0.55, s=0.61; winback counts active days, not purchases)
    assert 0.3 < pm["r"] < 0.9 and 0.3 < pm["s"] < 0.9
    # and every score is finite, a probability where it should be
    seen = s["last_active_at"].is_valid().to_numpy(zero_copy_only=False)
    for col in ("p_alive", "lapse_risk", "expected_active_days_30d"):
        v = s[col].to_numpy()
        assert np.all(np.isfinite(v)), col
    risk = s["lapse_risk"].to_numpy()
    assert np.all((risk >= 0) & (risk <= 1))
    # one-time buyers get Pareto/NBD's own P(alive), below 1
    once = seen & (s["frequency"].to_numpy() == 0)
    assert s["p_alive"].to_numpy()[once].max() < 1.0
    # and at 39 weeks it ranks who did not come back at least about as well as BG/NBD
    bg, _ = cdnow_pareto["closed_form"]
    a_p, a_bg = auc(risk[seen], gone[seen]), auc(bg["lapse_risk"].to_numpy()[seen], gone[seen])
    assert a_p > 0.7 and a_p > a_bg - 0.01
    assert summary_of(bg)["lapse_model"]["name"] == "BG/NBD closed form" and summary_of(bg)["pareto_nbd"] is None


@pytest.mark.parametrize("kind", ["no churn", "shared rate", "no churn, shared rate"])
def test_boundary_populations_score_everyone_under_pareto(tmp_path, capsys, kind):
    # given a population whose maximum-likelihood estimate is on the boundary
    users, events = _boundary_files(tmp_path, kind)
    out = tmp_path / "scores.arrow"
    # when scored with Pareto/NBD from the command line / then exit 0, the model and a warning printed
    assert main(["score", str(users), str(events), "--as-of", "2026-11-01", "-o", str(out), "--no-progress",
                 "--lapse-model", "pareto"]) == 0
    printed = capsys.readouterr().out
    assert "Pareto/NBD (days): r=" in printed and "lapse_risk: Pareto/NBD closed form" in printed
    if "no churn" in kind:  # (with BG/NBD-style dropout in the data, Pareto/NBD's shared rate stays inside: r ~ 90)
        assert "warning: Pareto/NBD" in printed
    s = feather.read_table(out)
    for col in ("p_alive", "lapse_risk", "expected_active_days_30d"):
        v = s[col].to_numpy()
        assert np.all(np.isfinite(v)) and len(v) == 2000, col
    if "no churn" in kind:
        assert "no_churn" in summary_of(s)["pareto_nbd"]["boundary"]
        assert s["p_alive"].to_numpy()[s["frequency"].to_numpy() > 0].min() > 0.99


def test_auto_pareto_records_both_closed_forms_at_the_cut(tmp_path):
    # given a population with a history long enough for the 30-day split (auto_pareto)
    users, events = _boundary_files(tmp_path, "shared rate")
    s = score(users, events, as_of="2026-11-01", lapse_model="auto_pareto")
    lm = summary_of(s)["lapse_model"]
    # then both closed forms were checked on the last 30 days and the higher AUC decided between them
    v = lm["validation"]
    assert {"auc_closed_form", "auc_pareto"} <= set(v)
    if lm["used"] != "learned":
        assert lm["used"] == ("pareto" if v["auc_pareto"] > v["auc_closed_form"] + PARETO_MARGIN else "closed_form")
    assert np.all(np.isfinite(s["lapse_risk"].to_numpy()))


def test_a_failed_pareto_fit_falls_back_to_bgnbd_with_a_warning():
    # given a decision for Pareto/NBD whose fit failed (as fit_pareto reports it)
    bg = {"name": "BG/NBD", "r": 0.2, "alpha": 4.0, "a": 0.8, "b": 2.4}
    failed = lapse_models.fit_pareto(np.zeros(5), np.zeros(5), np.ones(5), np.ones(5))
    assert "failed" in failed and "at least 20 users" in failed["failed"]
    choice = {"used": "pareto", "reason": "asked"}
    # when the closed form is picked / then BG/NBD, a warning, and the decision says so
    model, warning = lapse_models.closed_form_of(choice, bg, failed)
    assert model is bg and "Pareto/NBD could not be fitted" in warning
    assert choice["used"] == "closed_form" and "BG/NBD scored instead" in choice["reason"]
    # and a decision for BG/NBD or the learned model is left alone
    for used in ("closed_form", "learned"):
        assert lapse_models.closed_form_of({"used": used}, bg, failed) == (bg, None)


def test_the_check_fits_pareto_on_a_sample_of_large_cuts(tmp_path, monkeypatch):
    # given a cut with more compressed rows than the check fits on (CHECK_ROWS lowered to 100)
    from engine.scoring import lapse_learned

    users, events = _boundary_files(tmp_path, "shared rate")
    full = summary_of(score(users, events, as_of="2026-11-01", lapse_model="auto_pareto"))["lapse_model"]["validation"]
    monkeypatch.setattr(lapse_learned, "CHECK_ROWS", 100)
    sampled = summary_of(score(users, events, as_of="2026-11-01", lapse_model="auto_pareto"))["lapse_model"]["validation"]
    # then the AUC is still over every user at the cut, from parameters fitted on the sample
    assert sampled["users"] == full["users"] and sampled["auc_closed_form"] == full["auc_closed_form"]
    assert sampled["auc_pareto"] != full["auc_pareto"] and abs(sampled["auc_pareto"] - full["auc_pareto"]) < 0.02
