"""Which ledger a plan belongs to: exactly-once across runs, not only inside one.

A ledger is the only record of what was sent.  Sending a plan a second time through
another ledger file (a typo in ``--ledger``, a fresh directory, the wrong copy) would
send every message again: the new ledger cannot know what the first one did.

So every ledger carries a random id (table ``ledger_info``, written when the file is
created, or when a ledger of an earlier version is first opened for writing), and
``winback plan --ledger L`` records L's resolved path and id in the plan's metadata
(``winback.plan`` -> ``ledger``).  ``winback send`` then refuses a ledger that is not the
one the plan was made against, before it creates or touches anything:

* the plan names a ledger id: the send's ledger must exist and carry that id (a ledger
  moved or restored from a backup keeps its id, so it is accepted anywhere);
* the plan names only a path (the ledger did not exist yet when the plan was made, or was
  of an earlier version): the send's ledger must be that path, or a ledger that already
  holds this plan's campaign;
* the plan names no ledger (planned without ``--ledger``): the first ledger that sends it
  is its record, and the send writes that ledger's path and id beside the plan file
  (``plan.arrow.ledger.json``, :func:`binding_path`); a later send of the same file
  through another ledger is then refused as above.  (Without that file, a plan planned
  without ``--ledger`` has nothing to check against: plan with ``--ledger``.)

``allow_other=True`` (``winback send --other-ledger``) skips the check, for a ledger that
was copied on purpose.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

from engine.errors import ConfigError

__all__ = ["INFO_SCHEMA", "ensure_id", "read_id", "describe", "check_plan_ledger", "binding_path", "read_binding",
           "write_binding"]

INFO_SCHEMA = "CREATE TABLE IF NOT EXISTS ledger_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


def ensure_id(con: sqlite3.Connection) -> str:
    """The ledger's id, created (a random 128-bit hex) on a ledger that has none yet."""
    con.execute(INFO_SCHEMA)
    con.execute("INSERT OR IGNORE INTO ledger_info (key, value) VALUES ('id', ?)", (uuid.uuid4().hex,))
    return con.execute("SELECT value FROM ledger_info WHERE key = 'id'").fetchone()[0]


def _first_row(path: Path, sql: str, args: tuple = ()) -> tuple | None:
    """The first row of ``sql`` on ``path`` opened read-only; None when there is none, or the
    file is missing or not a database with those tables."""
    if not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            return con.execute(sql, args).fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return None


def read_id(path: str | os.PathLike) -> str | None:
    """The id of the ledger file ``path`` (read-only), or None when the file does not exist,
    is not a ledger, or is a ledger of an earlier version that has no id yet."""
    row = _first_row(Path(path), "SELECT value FROM ledger_info WHERE key = 'id'")
    return None if row is None else str(row[0])


def describe(path: str | os.PathLike) -> dict:
    """What a plan records about the ledger it was made against: resolved path and id."""
    return {"path": str(Path(path).resolve()), "id": read_id(path)}


def _holds_campaign(path: Path, campaign_id: str | None) -> bool:
    return bool(campaign_id) and _first_row(path, "SELECT 1 FROM messages WHERE campaign_id = ? LIMIT 1",
                                            (campaign_id,)) is not None


def binding_path(plan: str | os.PathLike) -> Path:
    """Where a send records the ledger a plan planned without ``--ledger`` went out through."""
    return Path(str(plan).rstrip("/\\") + ".ledger.json")


def read_binding(plan: str | os.PathLike) -> dict | None:
    """``{"path", "id"}`` of the ledger the plan file was first sent through, or None."""
    import json

    try:
        got = json.loads(binding_path(plan).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) and isinstance(got.get("path"), str) else None


def write_binding(plan: str | os.PathLike, ledger_path: str | os.PathLike) -> bool:
    """Record ``ledger_path`` beside the plan file (atomically); False when the plan's folder
    is not writable (the send goes on; only this record is missing)."""
    import json

    from engine.io.atomic import atomic_path

    try:
        with atomic_path(binding_path(plan)) as tmp:
            Path(tmp).write_text(json.dumps(describe(ledger_path)) + "\n", encoding="utf-8")
    except OSError:
        return False
    return True


def check_plan_ledger(plan_meta: dict, ledger_path: str | os.PathLike, *, source: str = "the plan",
                      allow_other: bool = False, bound: dict | None = None) -> None:
    """Raise :class:`ConfigError` when ``ledger_path`` is not the ledger ``plan_meta`` was
    planned against, or (``bound``, :func:`read_binding`) the one a plan planned without a
    ledger was first sent through (module docstring); nothing is created or written."""
    recorded = plan_meta.get("ledger") or {}
    how = "was planned against"
    if not recorded.get("path") and bound:
        recorded, how = bound, "was first sent through"
    if allow_other or not recorded.get("path"):
        return
    path = Path(ledger_path)
    want_id, want_path = recorded.get("id"), recorded["path"]
    have_id = read_id(path)
    if want_id is not None:
        if have_id == want_id:
            return
        what = ("does not exist yet" if not path.exists() else
                f"is another ledger (id {have_id[:8]})" if have_id else "is another ledger")
    else:
        if str(path.resolve()) == want_path or _holds_campaign(path, plan_meta.get("campaign_id")):
            return
        what = "does not exist yet" if not path.exists() else "is another ledger"
    raise ConfigError(
        f"{source} {how} the ledger {want_path}"
        f"{f' (id {want_id[:8]})' if want_id else ''}, but {path} {what}. A different ledger cannot "
        "know which of this plan's messages were already sent, so sending through it could repeat "
        f"them. Pass --ledger {want_path}; or re-plan with --ledger {path}; or, if this ledger is a copy "
        "of the right one made on purpose, add --other-ledger.")
