"""Opening a ledger file safely: a new one is created whole, a broken one is refused.

A 0-byte file, a file that is not SQLite, an SQLite file of something else and a file
with a damaged page (``PRAGMA quick_check``) are refused with what to do next, never
taken for a new ledger (which would send every message again).  :func:`ledger_error`
turns any SQLite failure on a ledger (disk full, read-only, damaged) into one line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.errors import DispatchError
from engine.io.atomic import atomic_path

__all__ = ["ledger_error", "create", "check_file", "quick_check"]

_MAGIC = b"SQLite format 3\x00"


def ledger_error(path: Path, exc: BaseException) -> DispatchError:
    """The one-line error for an SQLite failure on the ledger ``path``: what to do next."""
    text = " ".join(str(exc).split())  # one line
    low = text.lower()
    if "full" in low or "i/o error" in low:
        return DispatchError(f"ledger {path}: the disk is full or failing ({text}). Free space on that disk "
                             "(or check it) and run the same command again; nothing sent is lost.")
    if "readonly" in low or "read-only" in low or "permission" in low or "unable to open" in low:
        return DispatchError(f"ledger {path} cannot be written ({text}). Give --ledger a path in a directory "
                             "this user can write, or fix its permissions.")
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return DispatchError(
            f"ledger {path} is damaged ({text}). Do not start a new ledger for the same plan (every message "
            f"would be sent again): restore {path.name} from a backup, or salvage it with "
            f"'sqlite3 {path.name} .recover | sqlite3 recovered.db' and pass --ledger recovered.db.")
    return DispatchError(f"cannot use ledger {path}: {text}. Give --ledger a writable path to a winback ledger "
                         "(SQLite) file, or a new path to start one.")


def create(path: Path, schema: str) -> None:
    """A new, empty ledger, created whole: built beside ``path`` and renamed into place, so a
    crash never leaves a 0-byte or half-made file under the ledger's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        con = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")  # kept in the file's header
            con.executescript(schema)
        finally:
            con.close()


def check_file(path: Path) -> None:
    """Refuse a file under the ledger's name that is not an SQLite database (0 bytes, garbage)."""
    if path.is_dir():
        raise DispatchError(f"ledger {path} is a directory; give --ledger a file path such as {path}/ledger.db")
    with open(path, "rb") as fh:
        head = fh.read(len(_MAGIC))
    if not head:
        raise DispatchError(
            f"ledger {path} is an empty file (0 bytes), not a winback ledger. A ledger is never empty: "
            "it may have been truncated. Restore it from a backup; only if no message was ever sent with it, "
            f"delete {path.name} and run again to start a new ledger (sending again from scratch resends "
            "every message).")
    if head != _MAGIC:
        raise DispatchError(
            f"ledger {path} is not an SQLite file (it starts with {head[:8]!r}). Pass the --ledger file of "
            "'winback send'; restore it from a backup if it was overwritten.")


def quick_check(con: sqlite3.Connection, path: Path) -> None:
    problems = [r[0] for r in con.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise ledger_error(path, sqlite3.DatabaseError("database disk image is malformed: " + "; ".join(problems)))
