"""Secrets out of every text winback stores or logs.

Each credential an adapter holds is registered here once (:func:`register`); then
:func:`scrub` replaces, in any text, the secret itself and the forms it travels in:
base64 (standard and URL-safe, as in an ``Authorization: Basic`` header, where it is
encoded together with a user name, so every byte alignment is covered), and
percent-encoding.  The dispatcher scrubs every provider error before the ledger
stores it, and the command line scrubs every error message before it prints it.

Secrets shorter than :data:`MIN_LENGTH` characters are not registered (they would
blank out ordinary words); no real API key, token or webhook secret is that short.
"""

from __future__ import annotations

import base64
import threading
from urllib.parse import quote

__all__ = ["register", "scrub", "MIN_LENGTH", "MASK"]

MIN_LENGTH = 6
MASK = "***"
_FORMS: set[str] = set()
_ORDER: list[str] = []  # longest first, so a form containing another is replaced whole
_LOCK = threading.Lock()


def _b64_forms(raw: bytes) -> set[str]:
    """Base64 text that appears whenever ``raw`` is encoded, at any offset in a longer input."""
    out = set()
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        whole = enc(raw).decode()
        out.add(whole)
        out.add(whole.rstrip("="))
        for pad in (0, 1, 2):
            text = enc(b"\0" * pad + raw + b"\0\0").decode()
            # the first group mixes the pad bytes in (for pad > 0); the last groups mix in
            # whatever follows: keep only the characters decided by ``raw`` alone
            start = 4 if pad else 0
            end = ((pad + len(raw)) // 3) * 4
            core = text[start:end]
            if len(core) >= 8:
                out.add(core)
    return out


def register(value: str | None) -> None:
    """Remember ``value`` (and its base64 / percent-encoded forms) as a secret."""
    if not value or len(value) < MIN_LENGTH:
        return
    forms = {value, quote(value, safe="")} | _b64_forms(value.encode())
    with _LOCK:
        if forms <= _FORMS:
            return
        _FORMS.update(f for f in forms if len(f) >= MIN_LENGTH)
        _ORDER[:] = sorted(_FORMS, key=len, reverse=True)


def scrub(text: str | None) -> str | None:
    """``text`` with every registered secret form replaced by ``***`` (None stays None)."""
    if not text or not _ORDER:
        return text
    for form in _ORDER:
        if form in text:
            text = text.replace(form, MASK)
    return text
