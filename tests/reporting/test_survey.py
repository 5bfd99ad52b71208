"""Survey answers: each user's latest reason, by segment, and the action it calls for."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.reporting import survey
from engine.tz import from_epoch_seconds

T0 = 1_793_491_200  # 2026-11-01 UTC


def test_survey_counts_each_users_latest_answer_by_segment():
    plan = pa.table({"user_id": pa.array([1, 2, 3], pa.int64()), "step_index": pa.array([0, 0, 0], pa.int16()),
                     "lifecycle": ["lapsed", "lapsed", "dormant"]})
    events = pa.table({"user_id": pa.array([1, 1, 2, 3, 3], pa.int64()),
                       "ts": from_epoch_seconds(np.array([T0 + 1, T0 + 5, T0 + 2, T0 + 3, T0 - 10])),
                       "event": ["reason"] * 5,
                       "reason": ["not_relevant", "too_many_messages", "too_many_messages", "other", "other"]})
    s, actions = survey.survey_answers(events, plan, T0, T0 + 86400)
    assert s["answers"] == 3 and s["by_reason"] == {"other": 1, "too_many_messages": 2}
    assert s["by_segment"] == {"dormant": {"other": 1}, "lapsed": {"too_many_messages": 2}}
    assert dict(zip(actions["user_id"].to_pylist(), actions["action"].to_pylist())) == \
        {1: "lower_cap", 2: "lower_cap", 3: "none"}
