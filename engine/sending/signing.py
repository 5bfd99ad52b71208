"""The winback webhook signature, shared by the webhook adapter (signing) and the
receivers (checking): ``sha256=<hex>`` of HMAC-SHA256 over ``f"{timestamp}." + body``.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign", "verify_signature"]


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` of ``f"{timestamp}." + body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str | bytes, timestamp: str, body: bytes, header: str) -> bool:
    """True when ``header`` is the signature of ``body`` at ``timestamp`` (constant-time compare)."""
    return hmac.compare_digest(sign(secret, timestamp, body), header or "")
