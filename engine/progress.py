"""Progress bars for long work, on stderr, only when asked for.

Library functions take ``progress: bool = False`` and call :func:`bar`; the CLI
turns it on.  Nothing is printed when it is off, so embedding stays silent.  When on,
the bar appears once the work has lasted :data:`DELAY` seconds (work that ends sooner
prints none, and never imports tqdm), counting from when the work began.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["bar", "NullBar", "DELAY"]

#: seconds of work before a bar appears
DELAY = 0.5


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


class _DelayedBar(NullBar):
    """Counts like :class:`NullBar` until ``delay`` seconds have passed since it was made,
    then is a tqdm bar (made at the next call, with the count, description and postfix so
    far, and its clock started when the work began)."""

    def __init__(self, delay: float, options: dict[str, Any]) -> None:
        self._t0 = time.monotonic()
        self._delay = delay
        self._options = options
        self._bar: Any = None
        self._postfix: tuple | None = None

    def _shown(self) -> Any:
        if self._bar is None and time.monotonic() - self._t0 >= self._delay:
            from tqdm import tqdm

            b = tqdm(**self._options)
            b.start_t = b.last_print_t = self._t0 - time.monotonic() + b._time()
            if self._postfix is not None:
                b.set_postfix(*self._postfix[0], refresh=False, **self._postfix[1])
            if self.n:
                b.update(self.n)
            self._bar = b
        return self._bar

    def update(self, n: int = 1) -> None:
        self.n += n
        b = self._bar if self._bar is not None else self._shown()
        if b is not None and b.n != self.n:
            b.update(self.n - b.n)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        refresh = kwargs.pop("refresh", True)
        self._postfix = (args, kwargs)
        b = self._shown()
        if b is not None:
            b.set_postfix(*args, refresh=refresh, **kwargs)

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        if args:
            self._options["desc"] = args[0]
        b = self._shown()
        if b is not None:
            b.set_description(*args, **kwargs)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "_DelayedBar":
        return self


def bar(enabled: bool, *, total: int | None = None, desc: str = "", unit: str = "it",
        delay: float | None = None, **kw: Any):
    """Return a bar on stderr when ``enabled`` (tqdm, shown after ``delay`` seconds of work,
    default :data:`DELAY`), else a :class:`NullBar`."""
    if not enabled:
        return NullBar()
    options = dict(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                   dynamic_ncols=True, mininterval=0.5, **kw)
    return _DelayedBar(DELAY if delay is None else delay, options)
