"""Survey steps in the planner: the reason links, and what earlier answers change."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine.errors import ConfigError
from engine.planning.campaign import load_campaign
from engine.planning.survey import survey_fields, survey_masks
from tests.helpers import EXAMPLES


def test_survey_masks_read_lower_cap_and_sunset_from_the_reports_csv(tmp_path):
    path = tmp_path / "survey_actions.csv"
    path.write_text("user_id,reason,action\n1,too_many_messages,lower_cap\n3,not_relevant,sunset\n"
                    "4,other,none\n,other,sunset\n")
    lower, sunset = survey_masks(str(path), np.array([1, 2, 3, 4, 5], np.int64))
    assert lower.tolist() == [True, False, False, False, False]
    assert sunset.tolist() == [False, False, True, False, False]


def test_survey_masks_refuse_a_missing_file_or_column_saying_what_to_pass(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist; it is the survey_actions\.csv of 'winback report'"):
        survey_masks(str(tmp_path / "absent.csv"), np.array([1]))
    path = tmp_path / "other.csv"
    path.write_text("user_id,reason\n1,other\n")
    with pytest.raises(ConfigError, match=r"has no column 'action'"):
        survey_masks(str(path), np.array([1]))


def test_survey_fields_fill_only_survey_step_rows_with_one_link_per_reason():
    cmp = load_campaign(EXAMPLES / "winback_offers.toml")
    k = next(i for i, s in enumerate(cmp.steps) if s.kind == "survey")
    step_index = np.array([0, k, k], np.int16)
    got = survey_fields(cmp, step_index, pa.array(["m0", "m1", "m2"]))
    assert got["survey_url"].to_pylist() == [None, "https://example.com/why?message_id=m1",
                                             "https://example.com/why?message_id=m2"]
    links = got["survey_links"].to_pylist()
    assert links[0] is None
    parts = links[1].split(" | ")
    assert len(parts) == len(cmp.steps[k].reasons)
    assert parts[0] == "too many messages: https://example.com/why?message_id=m1&reason=too_many_messages"
