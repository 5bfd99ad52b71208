"""One sender per ledger file, whatever path names it: exclusive locks freed by the OS on a crash."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.errors import DispatchError

__all__ = ["LedgerLock"]


class LedgerLock:
    """One sender per ledger file, whatever path names it.

    Two exclusive ``flock`` locks, freed by the OS on a crash: one on ``LEDGER.lock``
    beside the *resolved* path (symlinks and ``..`` followed), and one on the ledger file
    itself when it exists (its inode: a hard link or a second mount of the same file is
    the same ledger).  ``flock`` locks are separate from the POSIX locks SQLite takes.
    """

    def __init__(self, ledger_path: Path):
        self.ledger = Path(ledger_path).resolve()
        self.path = self.ledger.with_name(self.ledger.name + ".lock")
        self.fds: list[int] = []

    def _take(self, path: Path, flags: int) -> None:
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self.__exit__()
            raise DispatchError(
                f"another 'winback send' is using the ledger {self.ledger}; wait for it "
                "to finish (or stop it) before sending from the same ledger again") from None
        self.fds.append(fd)

    def __enter__(self) -> "LedgerLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where the ledger's directory should be: one line naming the ledger
            from engine.io.atomic import storage_error

            raise (storage_error(exc, self.ledger) or exc) from None
        self._take(self.path, os.O_RDWR | os.O_CREAT)
        if self.ledger.is_file():
            self._take(self.ledger, os.O_RDONLY)
        return self

    def __exit__(self, *exc: object) -> None:
        # closed after the ledger's own connection (the ``with`` order in dispatch)
        while self.fds:
            fd = self.fds.pop()
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
