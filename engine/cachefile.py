"""Files winback keeps between runs only to be faster (caches): written whole or not at all.

A cache that cannot be written (a read-only install, a full disk) costs only speed, so
:func:`write_quietly` never raises for it; readers treat a missing or broken file as
absent.  Outputs a user asked for go through :mod:`engine.io.atomic` instead, which
reports such errors.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_quietly"]


def write_quietly(path: str | os.PathLike, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename (so a
    reader sees the old file or the new one, never half of one); False, with nothing left
    behind, when the directory cannot be created or written."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False
