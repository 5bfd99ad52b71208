"""Ad-platform audience files for the ``ads`` channel: Meta Custom Audiences or Google
Customer Match, ready to upload.

Each message of an ads step (one per user; its ``to`` is the JSON of the user's
identifiers, :mod:`engine.planning.ads`) becomes one row of hashed identifiers in the
platform's format (:mod:`engine.sending.audience`: normalisation, hashing, columns).
Rows go to numbered CSV parts beside ``path``: ``audience.csv`` gives
``audience-meta-00001.csv``, ``audience-meta-00002.csv``, ... each within the
platform's upload limit (Meta 10,000 rows, Google 100,000 identifiers), and an index
``audience-meta-index.csv`` (``message_id, user_id, part``) that the platform never
sees: it tells a rerun which messages are already exported.

Durability and reruns: each batch appends whole lines to the part (``O_APPEND``,
``fsync``) and then to the index; a crash leaves at most one partial last line in
either, which the next run cuts off.  A message in the index is answered ``sent``
without a second row.  A crash between the two writes leaves a row the index does not
know, so the rerun writes it again: both platforms ignore duplicate rows of a list.
A message with no usable identifier is a ``failed`` result naming why.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path
from typing import Sequence

from engine.io.atomic import append_synced, cut_partial_line
from engine.sending.audience import COLUMNS, PLATFORMS, audience_row, row_identifiers, split_rows
from engine.sending.protocol import FAILED, SENT, Message, Result

__all__ = ["AdsAdapter", "part_paths"]


def _csv(rows) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def part_paths(path: str | os.PathLike, platform: str) -> list[Path]:
    """The numbered parts already written for ``path`` and ``platform``, in order."""
    p = Path(path)
    return sorted(p.parent.glob(f"{p.stem}-{platform}-[0-9][0-9][0-9][0-9][0-9].csv"))


class AdsAdapter:
    """Append audience rows for ``platform`` (``meta`` or ``google``) to parts beside ``path``."""

    name = "ads"

    def __init__(self, path: str | os.PathLike, *, platform: str = "meta", batch_size: int = 1000):
        if platform not in PLATFORMS:
            raise ValueError(f"unknown ad platform {platform!r}; use one of {', '.join(PLATFORMS)}")
        self.path = Path(path)
        self.platform = platform
        self.max_batch = int(batch_size)
        self.index = self.path.parent / f"{self.path.stem}-{platform}-index.csv"
        self._seen: set[str] | None = None
        self._part = 0            # number of the last part
        self._rows = 0            # rows and identifiers already in it
        self._ids = 0
        self._lock = asyncio.Lock()

    def _part_path(self, k: int) -> Path:
        return self.path.parent / f"{self.path.stem}-{self.platform}-{k:05d}.csv"

    def _load(self) -> None:
        seen: set[str] = set()
        text = cut_partial_line(self.index).decode("utf-8")
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("message_id"):
                seen.add(row["message_id"])
        self._seen = seen
        parts = part_paths(self.path, self.platform)
        if parts:
            self._part = int(parts[-1].stem.rsplit("-", 1)[1])
            rows = list(csv.reader(io.StringIO(cut_partial_line(parts[-1]).decode("utf-8"))))[1:]
            self._rows = len(rows)
            self._ids = sum(row_identifiers(tuple(r), self.platform) for r in rows)

    def _write(self, batch: Sequence[Message]) -> list[Result]:
        if self._seen is None:
            self._load()
        results, rows, index = [], [], []
        for m in batch:
            pid = f"{self.platform}:{m.message_id}"
            if m.message_id in self._seen:
                results.append(Result(m.message_id, SENT, provider_id=pid))
                continue
            try:
                row = audience_row(m.to or "{}", self.platform)
            except ValueError:
                row = None
            if row is None:
                results.append(Result(m.message_id, FAILED, error="no usable identifier: the audience row needs an "
                                                                   "email or an international phone number"))
                continue
            rows.append(row)
            index.append((m.message_id, int(m.user_id)))
            results.append(Result(m.message_id, SENT, provider_id=pid))
        if rows:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            at = 0
            for i, chunk in enumerate(split_rows(rows, self.platform, self._rows, self._ids)):
                if not chunk:
                    continue
                if i > 0 or self._part == 0:
                    self._part += 1
                    self._rows = self._ids = 0
                target = self._part_path(self._part)
                head = [COLUMNS[self.platform]] if not target.exists() or target.stat().st_size == 0 else []
                append_synced(target, _csv(head + chunk))
                self._rows += len(chunk)
                self._ids += sum(row_identifiers(r, self.platform) for r in chunk)
                new_index = not self.index.exists() or self.index.stat().st_size == 0
                append_synced(self.index, _csv(([("message_id", "user_id", "part")] if new_index else [])
                                         + [(mid, uid, target.name) for mid, uid in index[at:at + len(chunk)]]))
                at += len(chunk)
            self._seen.update(mid for mid, _ in index)
        return results

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """Append ``batch`` (in a worker thread); ``sent`` per exported row."""
        async with self._lock:
            return await asyncio.to_thread(self._write, list(batch))

    async def aclose(self) -> None:
        """Nothing to release (every batch is already on disk)."""

    def __repr__(self) -> str:
        return f"AdsAdapter(path={str(self.path)!r}, platform={self.platform!r}, part={self._part})"
