"""The receiver's part files: ``part-XXXXXX.arrow`` in the events directory.

Each batch of accepted events is one Arrow IPC file, written to a temporary file beside it,
fsync'd and renamed into place (then the directory is fsync'd).  A temporary file a killed
receiver left behind (``.part-XXXXXX.arrow.*.tmp``) never held an acknowledged event and is
removed when a receiver starts on the directory.

``hard`` (nullable) is true for a hard bounce (the address is gone) and false for a soft
one (SendGrid ``blocked``, a generic ``hard: false``, a Twilio failure that is not one of
the permanent error codes); it is null for every other event.  Part files written before
the column existed have no ``hard``: their bounces are read as hard, as they were.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa

from engine.io.atomic import atomic_path
from engine.schema import TIMESTAMP

__all__ = ["EVENT_SCHEMA", "clean_temporary", "next_part", "write_part", "DirectoryLock", "recent_parts"]

#: schema of every part file: the contract's events plus the provider message id, a survey
#: answer's reason, whether a bounce is hard, and for replay protection across restarts the
#: provider's event id and the signed request's key (:meth:`engine.feedback.replay.Replays.seed`)
EVENT_SCHEMA = pa.schema([("user_id", pa.int64()), ("ts", TIMESTAMP), ("event", pa.string()),
                          ("channel", pa.string()), ("value", pa.float64()), ("message_id", pa.string()),
                          ("reason", pa.string()), ("hard", pa.bool_()), ("event_id", pa.string()),
                          ("request", pa.string())])

_PART = re.compile(r"^part-(\d{6,})\.arrow$")
_TMP = re.compile(r"^\.part-\d{6,}\.arrow\..*\.tmp$")


def next_part(out_dir: Path) -> int:
    """The number after the highest ``part-XXXXXX.arrow`` of ``out_dir`` (0 when there is none)."""
    parts = [int(m.group(1)) for p in out_dir.iterdir() if (m := _PART.match(p.name))]
    return max(parts, default=-1) + 1


def recent_parts(out_dir: Path, within_s: float, now: float) -> list[tuple[Path, float]]:
    """``(part, mtime)`` of the part files written within ``within_s`` seconds of ``now``
    (epoch s), newest first."""
    out = []
    for p in out_dir.iterdir():
        if _PART.match(p.name):
            try:
                m = p.stat().st_mtime
            except FileNotFoundError:
                continue
            if now - m <= within_s:
                out.append((p, m))
    return sorted(out, key=lambda x: (-x[1], x[0].name))


def clean_temporary(out_dir: Path) -> int:
    """Remove the temporary part files a killed receiver left in ``out_dir``; how many."""
    removed = 0
    for p in out_dir.iterdir():
        if _TMP.match(p.name) and p.is_file():
            try:
                p.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def write_part(out_dir: Path, buf: list[dict], number: int) -> Path:
    """Write the events ``buf`` as ``out_dir/part-<number>.arrow`` (fsync'd, renamed into place)."""
    table = pa.table({
        "user_id": pa.array([e["user_id"] for e in buf], pa.int64()),
        "ts": pa.array([e["ts"] for e in buf], pa.int64()).cast(TIMESTAMP),
        "event": pa.array([e["event"] for e in buf], pa.string()),
        "channel": pa.array([e["channel"] for e in buf], pa.string()),
        "value": pa.nulls(len(buf), pa.float64()),
        "message_id": pa.array([e["message_id"] for e in buf], pa.string()),
        "reason": pa.array([e.get("reason") for e in buf], pa.string()),
        "hard": pa.array([e.get("hard") for e in buf], pa.bool_()),
        "event_id": pa.array([e.get("event_id") for e in buf], pa.string()),
        "request": pa.array([e.get("request") for e in buf], pa.string()),
    }, schema=EVENT_SCHEMA)
    final = out_dir / f"part-{number:06d}.arrow"
    with atomic_path(final) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, EVENT_SCHEMA) as writer:
            writer.write_table(table)
        fsync(tmp)
    fsync(out_dir)  # the rename itself
    return final


def fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectoryLock:
    """One receiver per events directory: an exclusive ``flock`` on the directory itself (its
    inode, whatever path names it; no file is left in it), freed by the OS on a crash.  Two
    receivers numbering parts from the same directory would overwrite each other's
    acknowledged files."""

    def __init__(self, out_dir):
        self.dir = Path(out_dir).resolve()
        self.fd: int | None = None

    def __enter__(self) -> "DirectoryLock":
        import fcntl

        from engine.errors import ConfigError, InputError

        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir, os.O_RDONLY)
        except OSError as exc:
            raise InputError(f"events directory {self.dir} is not writable ({exc.strerror}); pass -o a "
                             "directory this user can write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"another 'winback receive' is writing to {self.dir}; give each receiver "
                              "its own -o directory ('winback send --events' and 'winback report --feedback' "
                              "read each of them)") from None
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
