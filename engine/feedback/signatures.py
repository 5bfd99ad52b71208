"""The signatures of provider webhooks: Twilio's HMAC-SHA1, SendGrid's ECDSA and its shared-secret mode."""

from __future__ import annotations

import base64
import hashlib
import hmac

from engine.errors import ConfigError, DependencyError

__all__ = ["twilio_signature", "sendgrid_hmac_signature", "ecdsa_verifier"]


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of URL + sorted name/value pairs."""
    data = url + "".join(k + params[k] for k in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def sendgrid_hmac_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Shared-secret mode for /sendgrid: base64 HMAC-SHA256(secret, timestamp + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def ecdsa_verifier(public_key_b64: str):
    """``verify(timestamp, body, signature) -> bool`` for SendGrid's base64 DER public key."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_der_public_key
    except ImportError:
        raise DependencyError("SendGrid ECDSA signatures need the 'cryptography' package: pip install "
                              "cryptography (or use the shared-secret HMAC mode)") from None
    try:
        key = load_der_public_key(base64.b64decode(public_key_b64))
    except ValueError:
        raise ConfigError("the SendGrid verification key is not a base64 DER public key; copy it from "
                          "SendGrid's Mail Settings > Signed Event Webhook") from None

    def verify(timestamp: str, body: bytes, signature: str) -> bool:
        try:
            key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False

    return verify
