"""The harm of messages: unneeded messages and opt-outs per incremental re-engaged user, by hand."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.reporting import harm
from engine.tz import from_epoch_seconds

T0 = 1_793_491_200  # 2026-11-01 UTC


def test_harm_counts_by_hand():
    users = np.arange(1, 11, dtype=np.int64)
    treat = np.array([1] * 8 + [0] * 2, bool)
    f = {"reengaged": np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0], bool),
         "unsubscribed": np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], bool)}
    variant = np.array(["a"] * 10, dtype=object)
    msgs = pa.table({"message_id": [f"m{i}" for i in range(8)], "user_id": pa.array(np.arange(1, 9), pa.int64()),
                     "step": ["s"] * 8, "channel": ["email"] * 8, "variant": ["a"] * 8})
    events = pa.table({"user_id": pa.array([1], pa.int64()), "ts": from_epoch_seconds(np.array([T0])),
                       "event": ["unsubscribe"], "message_id": ["m0"]})
    h = harm.harm(users, f, treat, ~treat, variant, msgs, events)
    c = h["campaign"]
    # holdout re-engages 1/2 on its own: half of the 8 messages were not needed; lift 0.5 - 0.5 = 0
    assert c["unneeded_messages"] == 4.0 and c["incremental_reengaged"] == 0.0
    assert c["opt_outs"] == 1 and c["opt_outs_per_incremental_reengaged"] is None
    assert h["by_step_channel"] == [{"step": "s", "channel": "email", "messages": 8, "unneeded_messages": 4.0,
                                     "opt_outs": 1, "opt_outs_per_1000": 125.0}]
