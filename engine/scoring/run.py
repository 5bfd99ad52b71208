"""``winback score`` as one library call: route a partitioned input to partitioned
scoring (in process or on Dask) and anything else to :func:`~engine.scoring.pipeline.score`,
and write the output atomically.  The CLI parses, calls :func:`score_to`, prints."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ConfigError, InputError

__all__ = ["partitioned_input", "score_to"]


def partitioned_input(users, events) -> str | None:
    """The partition directory when ``users`` (and ``events``) name a 'winback partition' output."""
    users = Path(users)
    if not users.exists():
        raise InputError(f"{users}: no such file or directory; pass the users file, or the directory written "
                         "by 'winback partition'")
    if not users.is_dir():  # a partition output is a directory (users/part=K): no need to look further
        return None
    from engine.scoring.distributed import is_partitioned

    if events is None and is_partitioned(users):
        return str(users)
    if events is not None and users.name == "users" and Path(events).name == "events" \
            and users.parent.resolve() == Path(events).parent.resolve() and is_partitioned(users.parent):
        return str(users.parent)
    return None


def score_to(users, events, output: str | os.PathLike, *, as_of=None, on_bad_rows: str = "error",
             dask: str | None = None, workers: int = 2, items=None, progress: bool = False,
             **options) -> dict:
    """Score ``users``/``events`` into ``output``; returns the summary (``winback.score``)
    with ``partitioned`` (bool) and ``quarantine`` (the directory of set-aside rows, or None).

    A partitioned input (the directory of ``winback partition``, or its ``users``/``events``)
    is scored partition by partition into the Parquet dataset ``output``, on Dask when
    ``dask`` is given; anything else into one file whose suffix picks the format.
    ``options``: :class:`engine.scoring.settings.Settings`.  ``last_backtest``: the headline of
    the newest ``winback backtest -o`` of the same users and events files found beside
    ``output`` (:func:`engine.scoring.backtest.last_backtest`), or None.
    """
    quarantine = str(Path(output).with_suffix("")) + ".rejected" if on_bad_rows == "quarantine" else None
    parts = partitioned_input(users, events)
    if parts is not None:
        from engine.scoring.distributed import score_partitioned

        s = score_partitioned(parts, out_dir=output, as_of=as_of, dask=dask, n_workers=workers,
                              on_bad_rows=on_bad_rows, quarantine=quarantine, items=items, **options)
        return {**s, "partitioned": True, "quarantine": quarantine}
    if dask is not None:
        raise ConfigError(f"--dask needs a partitioned input; run 'winback partition {users} "
                          f"{events or 'EVENTS'} -o parts/ --partitions N' first, then "
                          "'winback score parts/ --dask ...'")
    if events is None:
        raise ConfigError(f"{users}: give EVENTS too, or pass the directory written by 'winback partition'")
    from engine.io.atomic import check_output, write_table
    from engine.scoring.pipeline import score, summary_of

    check_output(output, (users, events, items))
    table = score(users, events, as_of=as_of, on_bad_rows=on_bad_rows, quarantine=quarantine,
                  progress=progress, items=items, **options)
    write_table(table, output)
    here = Path(output).resolve().parent
    last = None
    if (here / "backtest.json").is_file() or next(here.glob("*/backtest.json"), None) is not None:
        from engine.scoring.backtest import last_backtest  # only when there is a backtest to read

        last = last_backtest(users, events, output)
    return {**summary_of(table), "partitioned": False, "quarantine": quarantine, "last_backtest": last}
