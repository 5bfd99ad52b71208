"""Progress bars for long work, on stderr, only when asked for.

Library functions take ``progress: bool = False`` and call :func:`bar`; the CLI
turns it on.  Nothing is printed when it is off, so embedding stays silent.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["bar", "NullBar"]


class NullBar:
    """A do-nothing stand-in with tqdm's methods."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "NullBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(enabled: bool, *, total: int | None = None, desc: str = "", unit: str = "it", **kw: Any):
    """Return a tqdm bar on stderr when ``enabled``, else a :class:`NullBar`."""
    if not enabled:
        return NullBar()
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
        dynamic_ncols=True, mininterval=0.5, **kw,
    )
