"""An export older than as_of (the default now, or a mistyped --as-of) is said, not scored silently."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cli import main
from engine.scoring.columns import stale_warning
from engine.scoring.pipeline import score, summary_of
from engine.synth.generator import generate

DAY = 86_400


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    generate(800, seed=3, out_dir=d)  # as_of 2026-11-01
    return d


def _stale(scores):
    return [w for w in summary_of(scores).get("warnings", []) if "newest activity" in w]


def test_scoring_a_month_after_the_export_warns_and_names_the_export_end(world):
    late = score(world / "users.arrow", world / "events.arrow", as_of="2027-11-01")  # the year mistyped
    (w,) = _stale(late)
    assert "days before as_of 2027-11-01T00:00:00Z" in w and "--as-of 2026-11-01" in w
    on_time = score(world / "users.arrow", world / "events.arrow", as_of="2026-11-01")
    assert _stale(on_time) == []


def test_the_cli_prints_it(world, tmp_path, capsys):
    assert main(["score", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2026-12-15",
                 "-o", str(tmp_path / "s.arrow")]) == 0
    out = capsys.readouterr()
    assert "warning: the newest activity in the events is" in out.out + out.err


def test_hand_cases():
    as_of = 1_800_000_000
    assert stale_warning(np.iinfo(np.int64).min, as_of) is None  # nobody active at all: said elsewhere
    assert stale_warning(as_of - 6 * DAY, as_of) is None
    assert "7.0 days" in stale_warning(as_of - 7 * DAY, as_of)



def test_an_as_of_past_the_model_window_says_where_the_export_ends(world, capsys):
    """A century typo leaves nobody active in the 730-day window: the refusal says why and
    which --as-of to pass, not only that too few users were active."""
    code = main(["score", str(world / "users.arrow"), str(world / "events.arrow"), "--as-of", "2126-11-01",
                 "-o", str(world / "late.arrow"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "got 0" in err and "--as-of 2026-11-01" in err, err
    assert not (world / "late.arrow").exists()
