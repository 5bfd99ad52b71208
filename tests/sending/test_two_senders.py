"""Two `winback send` processes against one ledger, at the same time, through a real provider process.

Two plans for the same users (three messages each, cap 3 per 7 days) are sent concurrently.
One sender holds the ledger (engine.ledger.lock); the other stops at once with a one-line
message and a non-zero exit, and sent again afterwards, the release checks skip what the
cap no longer allows.  Judged by the provider's own record: no user got more than the cap.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from engine.ledger.store import read_messages
from engine.schema import TIMESTAMP
from tests.sending.test_send_kill import get_json, provider, winback_send

USERS = 300


def three_each(path: Path, campaign: str) -> Path:
    """Three push messages per user, all due now, of ``campaign``: a hand-made plan (the default cap, 3 per 7 days)."""
    n = 3 * USERS
    uid = np.repeat(np.arange(USERS), 3)
    step = np.tile(np.arange(3), USERS)
    now = int(time.time()) * 1_000_000
    feather.write_feather(pa.table({
        "message_id": [f"{campaign}-{u}-{k}" for u, k in zip(uid, step)],
        "campaign_id": [campaign] * n, "user_id": pa.array(uid, pa.int64()),
        "step": [f"s{k}" for k in step], "step_index": pa.array(step.astype(np.int16)),
        "variant": ["plain"] * n, "channel": ["push"] * n, "send_at": pa.array(np.full(n, now), TIMESTAMP),
        "reason": pa.nulls(n, pa.string()), "to": [f"token-{u}" for u in uid],
        "subject": ["Hello"] * n, "body": ["Come back"] * n}), path)
    return path


def test_two_senders_at_once_never_give_a_user_more_than_the_cap(tmp_path):
    # given two plans that together would give every user 6 messages, and one ledger
    a, b = three_each(tmp_path / "a.arrow", "camp-a"), three_each(tmp_path / "b.arrow", "camp-b")
    ledger = tmp_path / "ledger.db"
    with provider(tmp_path) as base:
        # when both are sent at the same time (the second starts while the first is sending)
        first = winback_send(tmp_path, a, ledger, base, rate=150)
        deadline = time.time() + 60
        while get_json(f"{base}/_stats")["accepted"] == 0:
            assert first.poll() is None and time.time() < deadline, "the first sender sent nothing"
            time.sleep(0.01)
        second = winback_send(tmp_path, b, ledger, base, rate=150)
        _, err2 = second.communicate(timeout=120)
        busy = first.poll() is None
        _, err1 = first.communicate(timeout=120)
        # then the second one stopped at once with one clear line while the first was still sending
        assert busy and second.returncode != 0
        lines = err2.decode().strip().splitlines()
        assert len(lines) == 1 and "another 'winback send' is using the ledger" in lines[0], lines
        assert first.returncode == 0, err1.decode()
        # and sent again once the ledger is free, it sends nothing over the cap: each skip has its reason
        again = winback_send(tmp_path, b, ledger, base, rate=150)
        _, err3 = again.communicate(timeout=120)
        assert again.returncode == 0, err3.decode()
        record = get_json(f"{base}/_messages")
    per_user = np.bincount([int(r["key"].split("-")[2]) for r in record], minlength=USERS)
    assert per_user.max() == 3 and len(record) == 3 * USERS
    m = read_messages(ledger).to_pylist()
    skipped = [r for r in m if r["state"] == "skipped"]
    assert len(skipped) == 3 * USERS and {r["last_error"] for r in skipped} == {"cap_other_campaigns"}
    assert {r["campaign_id"] for r in skipped} == {"camp-b"}
