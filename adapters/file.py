"""The ad-audience export: hashed emails and phones appended to a CSV or JSONL file.

For the ``ads`` channel, a generic hashed list (one address per row; phones hashed in
E.164 with the ``+``).  For files a platform takes as they are (Meta Custom Audiences,
Google Customer Match: one row per user, each platform's normalisation, split at its
upload limit) use the ``ads`` adapter, ``adapters/ads.py``.  Each message becomes one row
``message_id, user_id, step, variant, kind, hash`` where ``kind`` is ``email`` or
``phone`` and ``hash`` is the hex SHA-256 of the normalised address:

- email: trimmed and lower-cased (``" Ann@Example.COM "`` -> ``"ann@example.com"``);
- phone: E.164, ``+`` and digits only (``"+1 (555) 010-2030"`` -> ``"+15550102030"``);
  a number without a leading ``+`` or with fewer than 7 digits is a failed result.

The format follows the suffix of ``path`` (``.csv`` with a header row, or ``.jsonl``).
Durability and reruns: each batch is one ``write`` of whole lines to the file opened
with ``O_APPEND``, then ``fsync``; so a crash leaves at most one partial last line,
which the next run cuts off before appending.  On first use the adapter reads the
message ids already in the file and never writes one twice: a rerun of the same plan
answers ``sent`` for them without a second row.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Sequence

from engine.io.atomic import append_synced, cut_partial_line
from engine.sending.protocol import FAILED, SENT, Message, Result

__all__ = ["FileAdapter", "normalise_email", "normalise_phone", "hash_address", "COLUMNS"]

COLUMNS = ("message_id", "user_id", "step", "variant", "kind", "hash")
_NOT_DIGIT = re.compile(r"[^0-9]")


def normalise_email(address: str) -> str | None:
    """Trimmed, lower-cased email, or ``None`` when it has no ``@`` with text on both sides."""
    a = address.strip().lower()
    local, at, domain = a.partition("@")
    return a if at and local and domain and " " not in a else None


def normalise_phone(address: str) -> str | None:
    """``+`` and digits (E.164), or ``None`` without a leading ``+`` or with 7..15 digits missing."""
    a = address.strip()
    if not a.startswith("+"):
        return None
    digits = _NOT_DIGIT.sub("", a)
    return "+" + digits if 7 <= len(digits) <= 15 and digits[0] != "0" else None


def hash_address(address: str) -> tuple[str, str] | None:
    """``(kind, sha256 hex)`` of the normalised address, or ``None`` when it is neither kind."""
    if "@" in address:
        norm, kind = normalise_email(address), "email"
    else:
        norm, kind = normalise_phone(address), "phone"
    if norm is None:
        return None
    return kind, hashlib.sha256(norm.encode()).hexdigest()


class FileAdapter:
    """Append hashed audience rows to ``path`` (``.csv`` / ``.jsonl``), ``batch_size`` per write."""

    name = "file"

    def __init__(self, path: str | os.PathLike, *, batch_size: int = 1000):
        self.path = Path(path)
        self.format = self.path.suffix.lower().lstrip(".")
        if self.format not in ("csv", "jsonl"):
            raise ValueError(f"{self.path}: the export must end in .csv or .jsonl")
        self.max_batch = int(batch_size)
        self._seen: set[str] | None = None
        self._lock = asyncio.Lock()

    def _load(self) -> set[str]:
        """Ids already exported; cuts a partial last line left by a crash."""
        seen: set[str] = set()
        if not self.path.exists():
            return seen
        text = cut_partial_line(self.path).decode("utf-8")
        if self.format == "csv":
            for row in csv.DictReader(io.StringIO(text)):
                if row.get("message_id"):
                    seen.add(row["message_id"])
        else:
            for line in text.splitlines():
                if line.strip():
                    seen.add(json.loads(line)["message_id"])
        return seen

    def _lines(self, rows: list[tuple]) -> bytes:
        if self.format == "jsonl":
            return "".join(json.dumps(dict(zip(COLUMNS, r)), separators=(",", ":")) + "\n" for r in rows).encode()
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return buf.getvalue().encode()

    def _write(self, batch: Sequence[Message]) -> list[Result]:
        if self._seen is None:
            self._seen = self._load()
        results, rows = [], []
        for m in batch:
            if m.message_id in self._seen:
                results.append(Result(m.message_id, SENT, provider_id=f"{self.path.name}:{m.message_id}"))
                continue
            hashed = hash_address(m.to or "")
            if hashed is None:
                results.append(Result(m.message_id, FAILED, error="invalid address: neither an email "
                                                                  "nor an E.164 phone number"))
                continue
            rows.append((m.message_id, int(m.user_id), m.step, m.variant or "", *hashed))
            results.append(Result(m.message_id, SENT, provider_id=f"{self.path.name}:{m.message_id}"))
        if rows:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            data = self._lines(rows)
            if new and self.format == "csv":
                data = (",".join(COLUMNS) + "\n").encode() + data
            append_synced(self.path, data)
            self._seen.update(r[0] for r in rows)
        return results

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """Append ``batch`` (one write + fsync, in a worker thread); ``sent`` per exported row."""
        async with self._lock:
            return await asyncio.to_thread(self._write, list(batch))

    async def aclose(self) -> None:
        """Nothing to release (every batch is already on disk)."""

    def __repr__(self) -> str:
        return f"FileAdapter(path={str(self.path)!r}, max_batch={self.max_batch})"
