"""The webhook adapter's signature: HMAC over the timestamp and body, broken by any change."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.webhook import sign, verify_signature


@given(st.text(min_size=1, max_size=40), st.integers(0, 2**40), st.binary(max_size=200))
def test_signature_roundtrip_and_any_change_breaks_it(secret, ts, body):
    header = sign(secret, ts, body)
    assert verify_signature(secret, str(ts), body, header)
    assert not verify_signature(secret, str(ts + 1), body, header)
    assert not verify_signature(secret, str(ts), body + b"x", header)
