"""One sender per ledger: an exclusive lock next to the ledger file, freed by the OS on a crash."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.errors import DispatchError

__all__ = ["LedgerLock"]


class LedgerLock:
    """One sender per ledger: an exclusive ``flock`` on ``LEDGER.lock``, freed by the OS on a crash."""

    def __init__(self, ledger_path: Path):
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self.fd: int | None = None

    def __enter__(self) -> "LedgerLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise DispatchError(
                f"another 'winback send' is using the ledger {self.path.with_suffix('')}; wait for it "
                "to finish (or stop it) before sending from the same ledger again") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
