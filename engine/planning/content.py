"""The planner's content step: theme and item picks per (user, step), and item template fields.

Reads what scoring left (``category_affinity``, ``affinity_confidence``,
``consumed_items``, ``last_active_at`` and the ``winback.item_stats`` metadata) and the
catalogue, prepares the candidate lists once (:func:`engine.themes.prepare`), then per
step runs :func:`engine.themes.pick` for the users who are messaged *or held out*: a
holdout user gets the theme they would have got, so the report can compare treated and
held-out users theme by theme.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.io.meta import SCORE, read_meta
from engine.planning import themes
from engine.planning.assign import labels, unit, user_hash
from engine.scoring.affinity import consumed_csr
from engine.errors import ConfigError, InputError
from engine.io.items import Items, decode_table, load_items
from engine.io.partition import splitmix64
from engine.schema import THEMES, NEVER
from engine.tz import to_epoch_seconds

__all__ = ["ContentPlanner", "ITEM_FIELD"]

#: a template field naming a picked item's column: ``items[0].title``
ITEM_FIELD = re.compile(r"items\[(\d+)\]\.([A-Za-z_][A-Za-z0-9_]*)$")


class ContentPlanner:
    """Theme and picks for every step of one plan; see the module docstring."""

    def __init__(self, scores: pa.Table, items, campaign, start: int, end: int):
        needed = ("category_affinity", "affinity_confidence", "consumed_items")
        missing = [c for c in needed if c not in scores.column_names]
        if missing:
            raise InputError(f"the scores have no {', '.join(missing)}: they were computed without a catalogue; "
                             "rerun 'winback score ... --items ITEMS' with the same items file, then plan again")
        self.items: Items = load_items(items)
        self.cmp = campaign
        cfg = campaign.content
        n, m = scores.num_rows, len(self.items)
        meta = read_meta(scores, SCORE)
        score_cats = (meta.get("items") or {}).get("categories")
        raw = scores["category_affinity"].combine_chunks()
        width = raw.type.list_size if pa.types.is_fixed_size_list(raw.type) else None
        if not meta and (scores.schema.metadata or {}).get(SCORE):
            raise InputError(f"the scores' {SCORE.decode()} metadata is not a readable JSON object (edited by hand, "
                             "or written by another tool?); score again with 'winback score ... --items ITEMS'")
        if score_cats is None or width is None or (score_cats and len(score_cats) != width):
            raise InputError("the scores lost their item metadata (category names, item statistics): a CSV "
                             "keeps neither; plan from the .arrow or .parquet scores of 'winback score --items'")
        flat = raw.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, width)
        # the affinity's categories in the catalogue's order (a changed catalogue keeps what matches)
        cats = self.items.categories
        self.shares = np.zeros((n, max(len(cats), 1)), np.float32)
        pos = {c: i for i, c in enumerate(cats)}
        for j, c in enumerate(score_cats):
            if c in pos:
                self.shares[:, pos[c]] = flat[:, j]
        self.conf = scores["affinity_confidence"].fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64)
        self.last_active = to_epoch_seconds(scores["last_active_at"]) if "last_active_at" in scores.column_names \
            else np.full(n, NEVER, np.int64)
        lst = scores["consumed_items"].combine_chunks()
        owners = pc.list_parent_indices(lst).to_numpy().astype(np.int64)
        rows = self.items.lookup(lst.flatten().to_numpy(zero_copy_only=False).astype(np.int64))
        ok = rows >= 0  # items no longer in the catalogue cannot be picked anyway
        self.cons_ptr, self.cons_rows = consumed_csr([owners[ok] * max(m, 1) + rows[ok]], n, m)
        stats_raw = (scores.schema.metadata or {}).get(b"winback.item_stats")
        popularity, trend = np.zeros(m), np.zeros(m)
        if stats_raw:
            st = decode_table(stats_raw)
            at = self.items.lookup(st["item_id"].to_numpy())
            have = at >= 0
            popularity[at[have]] = st["popularity"].to_numpy()[have]
            trend[at[have]] = st["trend"].to_numpy()[have]
        self.catalogue = themes.prepare(self.items, popularity, trend, start, end, cfg)
        self.n = n
        # the theme experiment: a deterministic share of users, by a hash of (campaign, user)

        self._base = user_hash(scores["user_id"].to_numpy(), campaign)
        self.explorer = unit(splitmix64(self._base ^ np.uint64(0x6578706C6F7265))) < cfg.explore
        self.prev_items = np.full((n, 0), -1, np.int64)
        self.prev_themes = np.zeros(n, np.int64)
        self.theme_cols: list[np.ndarray] = []
        self.item_cols: list[np.ndarray] = []

    def step(self, step, send_at: np.ndarray, active: np.ndarray) -> None:
        """Pick for one step (in order); ``send_at`` epoch s per user, ``active`` who gets content."""

        k = len(self.theme_cols)
        draw = np.where(self.explorer, unit(splitmix64(self._base ^ np.uint64(0x64726177 + k))), -1.0)
        theme, rows = themes.pick(self.shares, self.conf, self.last_active, self.cons_ptr, self.cons_rows,
                                  send_at, active, self.catalogue, step, self.cmp.content, self.prev_items,
                                  self.prev_themes, draw)
        got = theme >= 0
        self.prev_themes |= np.where(got, 1 << np.maximum(theme, 0).astype(np.int64), 0)
        self.prev_items = np.concatenate([self.prev_items, rows], axis=1)
        self.theme_cols.append(theme)
        self.item_cols.append(rows)

    def columns(self) -> dict[str, pa.Array]:
        """``theme`` (string) and ``items`` (list<int64> of item ids) for all steps, step-major."""
        theme = np.concatenate(self.theme_cols)

        theme_arr = labels(theme, list(THEMES))
        rows = self._rows
        k = rows.shape[1]
        have = rows >= 0
        offsets = np.zeros(len(rows) + 1, np.int32)
        np.cumsum(have.sum(axis=1), out=offsets[1:])
        ids = self.items.ids[rows[have]] if k else np.zeros(0, np.int64)
        explored = np.tile(self.explorer, len(self.theme_cols))
        return {"theme": theme_arr,
                "items": pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids, pa.int64())),
                "explored": pa.array(explored, pa.bool_(), mask=theme < 0)}

    @functools.cached_property
    def _rows(self) -> np.ndarray:
        """Item rows of every plan row (all steps, step-major), -1 padded to the widest step."""
        k = max(r.shape[1] for r in self.item_cols)
        if not k:
            return np.zeros((sum(len(r) for r in self.item_cols), 0), np.int64)
        return np.concatenate([np.pad(r, ((0, 0), (0, k - r.shape[1])), constant_values=-1) for r in self.item_cols])

    def field_names(self) -> set[str]:
        """Template fields this content offers: ``theme`` and ``items[i].<column>``."""
        k = max([r.shape[1] for r in self.item_cols] + [0])
        return {"theme"} | {f"items[{i}].{c}" for i in range(k) for c in self.items.table.column_names}

    def field(self, name: str, plan_rows: np.ndarray) -> pa.Array:
        """The values of template field ``items[i].col`` for the given plan rows (null when absent)."""
        mt = ITEM_FIELD.match(name)
        if mt is None:
            raise ConfigError(f"unknown content field {name!r}")
        i, col = int(mt.group(1)), mt.group(2)
        rows = self._rows[plan_rows, i] if i < self._rows.shape[1] else np.full(len(plan_rows), -1)
        values = self.items.table[col]
        if pa.types.is_list(values.type):
            values = pc.binary_join(values, ", ")
        return values.take(pa.array(np.maximum(rows, 0), mask=rows < 0))
