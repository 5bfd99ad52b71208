"""``winback plan`` as one library call: a partitioned scores directory (or ``dask``) is
planned partition by partition into a plan directory, anything else as one table written
atomically; a one-table plan that will likely not fit in memory is warned about first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from engine.io.meta import PLAN, read_meta

__all__ = ["plan_to", "memory_warning"]

#: measured peak bytes per scored user of a one-table plan of 3 steps (10M users: 17.6 GiB
#: without content; with content it ran out of 24 GiB)
BYTES_PER_USER = {False: 1_900, True: 2_600}


def memory_warning(scores, with_items: bool) -> str | None:
    """A warning when planning ``scores`` as one table needs more than 80 % of this
    machine's memory (estimated from the row count), else None."""
    try:
        import pyarrow.dataset as ds

        fmt = "parquet" if str(scores).endswith(".parquet") else "ipc"
        rows = ds.dataset(scores, format=fmt).count_rows()
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except Exception:  # a CSV, a directory, a table, an unknown platform: no estimate
        return None
    need = rows * BYTES_PER_USER[with_items]
    if need <= 0.8 * total:
        return None
    return (f"planning {rows:,} users as one table needs about {need / 2**30:.0f} GiB and this machine has "
            f"{total / 2**30:.0f} GiB; if it runs out, plan partition by partition: winback partition USERS "
            "EVENTS -o parts/ --partitions 16; winback score parts/ -o scores/; winback plan scores/ CAMPAIGN -o plan/")


def plan_to(scores, campaign, output: str | os.PathLike, *, as_of=None, ledger=None, items=None,
            dask: str | None = None, workers: int = 2, progress: bool = False,
            warn: Callable[[str], None] | None = None) -> dict:
    """Plan ``campaign`` over ``scores`` into ``output``; returns the plan summary with
    ``partitioned`` (bool), and for partitioned plans ``partitions``, ``workers``, ``seconds``.

    ``warn`` receives warnings before the work starts (the memory estimate).
    """
    from engine.io.atomic import check_ledger_path
    from engine.planning.campaign import Campaign, load_campaign
    from engine.planning.partitioned import is_partitioned_scores, plan_partitioned

    # a bad campaign file fails before any data is read
    campaign = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    check_ledger_path(ledger)  # a --ledger no send could open fails now, not at the send
    if dask is not None or (is_partitioned_scores(scores) and not Path(output).suffix):
        s = plan_partitioned(scores, campaign, out_dir=output, as_of=as_of, dask=dask, n_workers=workers,
                             ledger=ledger, items=items, progress=progress)
        _forget_binding(output)
        return {**s, "partitioned": True}
    message = memory_warning(scores, items is not None)
    if message and warn is not None:
        warn(message)
    from engine.io.atomic import check_output, write_table
    from engine.planning.planner import plan

    check_output(output, (scores, items, ledger))
    table = plan(scores, campaign, as_of=as_of, ledger=ledger, items=items)
    write_table(table, output)
    _forget_binding(output)
    return {**read_meta(table, PLAN)["summary"], "partitioned": False}


def _forget_binding(output) -> None:
    """A new plan written over an old one is bound to no ledger yet (engine.ledger.identity)."""
    from engine.ledger.identity import binding_path

    try:
        binding_path(output).unlink()
    except OSError:
        pass
