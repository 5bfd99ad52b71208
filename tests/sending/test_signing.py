"""engine.sending.signing: the webhook signature both sides use."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from engine.sending.signing import sign, verify_signature


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    want = "sha256=" + hmac.new(b"s3cret", b"1790000000.{}", hashlib.sha256).hexdigest()
    assert sign("s3cret", 1790000000, b"{}") == want
    assert verify_signature(b"s3cret", "1790000000", b"{}", want)


@given(st.binary(max_size=200), st.integers(0, 2**40), st.text(max_size=20))
def test_any_change_of_body_timestamp_or_secret_fails(body, ts, secret):
    good = sign(secret or "k", ts, body)
    assert verify_signature(secret or "k", str(ts), body, good)
    assert not verify_signature(secret or "k", str(ts + 1), body, good)
    assert not verify_signature((secret or "k") + "x", str(ts), body, good)
    assert not verify_signature(secret or "k", str(ts), body + b"x", good)
    assert not verify_signature(secret or "k", str(ts), body, "")
