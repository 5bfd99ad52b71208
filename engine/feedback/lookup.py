"""The receiver's ledger look-up: who a message went to, and on which channel.

An event that names its message (``message_id``) or the provider's id but not its user is
placed by the ledger ``winback send`` wrote; so is the channel of an event posted as
``webhook`` (the webhook adapter carries whichever channel the providers file gives it,
push in the shipped examples): the ledger's channel of its message is the one used.

The look-up runs in a worker thread (never on the event loop) with a short busy timeout.
A ledger that cannot be read (locked past the timeout, an I/O error, a damaged file) raises
:class:`LedgerUnavailable` - the receiver answers 503 and the provider retries - rather than
calling the event unmatched; only a ledger with no messages table yet has nothing to find.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["LedgerUnavailable", "LOOKUP_TIMEOUT", "needs_lookup", "resolve"]

#: seconds a look-up waits for a ledger another process is writing
LOOKUP_TIMEOUT = 2.0
_CHUNK = 500


class LedgerUnavailable(Exception):
    """The ledger could not be read now (answered 503: the provider retries)."""


def needs_lookup(e: dict) -> bool:
    """True when the ledger can fill something ``e`` lacks (its user, message or channel)."""
    return e["user_id"] is None or e["message_id"] is None or (e["channel"] == "webhook" and bool(e["message_id"]))


def resolve(ledger: Path, events: list[dict], timeout: float = LOOKUP_TIMEOUT) -> None:
    """Fill ``user_id``, ``message_id`` and a ``webhook`` channel of ``events`` in place from the
    ledger's messages (by message id or provider id); what is not found stays as it was."""
    need = [e for e in events if needs_lookup(e)]
    if not need:
        return
    keys = {e["message_id"] for e in need if e["message_id"]}
    pids = {e["provider_id"] for e in need if e["provider_id"]}
    pids |= {p.split(".")[0] for p in pids}  # SendGrid: X-Message-Id is the prefix of sg_message_id
    by_mid, by_pid = {}, {}
    try:
        con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.Error as exc:
        raise LedgerUnavailable(f"cannot open the ledger {ledger}: {exc}") from None
    try:
        for col, vals, into in (("message_id", keys, by_mid), ("provider_id", pids, by_pid)):
            vals = list(vals)
            for i in range(0, len(vals), _CHUNK):
                chunk = vals[i:i + _CHUNK]
                q = (f"SELECT {col}, message_id, user_id, channel FROM messages WHERE {col} IN "
                     f"({','.join('?' * len(chunk))})")
                into.update({k: (m, u, c) for k, m, u, c in con.execute(q, chunk)})
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):  # no messages table yet: nothing to look up
            raise LedgerUnavailable(f"cannot read the ledger {ledger}: {exc}") from None
    except sqlite3.Error as exc:
        raise LedgerUnavailable(f"cannot read the ledger {ledger}: {exc}") from None
    finally:
        con.close()
    for e in need:
        pid = e["provider_id"]
        hit = by_mid.get(e["message_id"]) or by_pid.get(pid) or (by_pid.get(pid.split(".")[0]) if pid else None)
        if hit:
            e["message_id"] = e["message_id"] or hit[0]
            e["user_id"] = e["user_id"] if e["user_id"] is not None else hit[1]
            if e["channel"] == "webhook" and hit[2]:
                e["channel"] = hit[2]
