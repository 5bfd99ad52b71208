"""The SendGrid adapter: a whole batch in one request, and a bad address failed alone."""

from __future__ import annotations

from adapters.sendgrid import SendGridAdapter
from engine.sending.protocol import FAILED, SENT
from tests.helpers import ADAPTER_SECRET, adapter_message, run_adapter


def msg(i: int, to: str):
    return adapter_message(i, "email", to)


def run_against(batches):
    """Given a local provider, when the SendGrid adapter sends ``batches``: results, stats and messages."""
    return run_adapter(lambda url, t: SendGridAdapter(url, ADAPTER_SECRET, timeout=t, batch_size=50), batches)


def test_sendgrid_carries_a_whole_batch_in_one_request():
    batch = [msg(i, to=f"user{i}@example.com") for i in range(50)]
    [results], stats, messages = run_against([batch])
    assert [r.status for r in results] == [SENT] * 50
    assert [r.message_id for r in results] == [m.message_id for m in batch]
    assert stats["requests"] == 1 and stats["accepted"] == 50
    assert sorted(m["message_id"] for m in messages) == sorted(m.message_id for m in batch)


def test_sendgrid_fails_a_bad_address_alone_and_sends_the_rest_of_its_batch():
    batch = [msg(0, to="a@example.com"), msg(1, to="nobody"), msg(2, to="c@example.com")]
    [results], stats, _ = run_against([batch])
    assert [r.status for r in results] == [SENT, FAILED, SENT]
    assert "nobody" in results[1].error and stats["requests"] == 1 and stats["accepted"] == 2
