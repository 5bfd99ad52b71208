"""Provider webhook signatures: Twilio's HMAC-SHA1, SendGrid's shared-secret HMAC and ECDSA."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from engine.errors import ConfigError
from engine.feedback.signatures import ecdsa_verifier, sendgrid_hmac_signature, twilio_signature


def test_twilio_signature_matches_twilios_documented_example():
    # the example of Twilio's "Webhooks security" page
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signature("12345", url, dict(reversed(params.items()))) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signature("54321", url, params) != "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_sendgrid_hmac_signs_timestamp_then_body():
    sig = sendgrid_hmac_signature("s3cret", "1700000000", b'[{"event":"open"}]')
    expected = hmac.new(b"s3cret", b'1700000000[{"event":"open"}]', hashlib.sha256).digest()
    assert base64.b64decode(sig) == expected
    assert sendgrid_hmac_signature("s3cret", "1700000001", b'[{"event":"open"}]') != sig


def test_ecdsa_verifier_accepts_the_keys_signature_and_nothing_else():
    ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
    from cryptography.hazmat.primitives import hashes, serialization
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    verify = ecdsa_verifier(base64.b64encode(der).decode())
    body = b'[{"event":"delivered"}]'
    sig = base64.b64encode(key.sign(b"1700000000" + body, ec.ECDSA(hashes.SHA256()))).decode()
    assert verify("1700000000", body, sig)
    assert not verify("1700000001", body, sig)
    assert not verify("1700000000", body + b" ", sig)
    assert not verify("1700000000", body, "not base64 at all!")


def test_ecdsa_verifier_refuses_a_key_that_is_not_der():
    with pytest.raises(ConfigError, match="not a base64 DER public key"):
        ecdsa_verifier(base64.b64encode(b"hello").decode())
