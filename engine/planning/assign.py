"""Per-user draws of a campaign: holdout and variant assignment, and the shared user hash.

Holdout and variant use SplitMix64 of (user id XOR a 64-bit hash of the campaign id)
with two salts, so a rerun picks the same users and a new campaign id reshuffles.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from engine.io.partition import splitmix64
from engine.planning.campaign import Campaign

__all__ = ["user_hash", "unit", "assignments", "labels"]


def _campaign_hash(cid: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(cid.encode()).digest()[:8], "little"))


def unit(h: np.ndarray) -> np.ndarray:
    """Uniform draws in [0, 1) from 64-bit hashes (their top 53 bits)."""
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def user_hash(user_ids: np.ndarray, campaign: Campaign) -> np.ndarray:
    """SplitMix64 of (user id XOR the campaign id's hash): each per-user draw of the
    campaign (holdout, variant, theme experiment) salts this differently."""
    return splitmix64(np.asarray(user_ids, np.int64).view(np.uint64) ^ _campaign_hash(campaign.id))


def assignments(user_ids: np.ndarray, campaign: Campaign) -> tuple[np.ndarray, np.ndarray]:
    """(holdout bool, variant index) per user, deterministic in (campaign id, user id)."""
    base = user_hash(user_ids, campaign)
    u_hold = unit(splitmix64(base ^ np.uint64(0x686F6C646F7574)))
    u_var = unit(splitmix64(base ^ np.uint64(0x76617269616E74)))
    w = np.array([v.weight for v in campaign.variants], np.float64)
    variant = np.minimum(np.searchsorted(np.cumsum(w) / w.sum(), u_var, side="right"), len(w) - 1)
    return u_hold < campaign.holdout, variant


def labels(index: np.ndarray, names: list) -> pa.Array:
    """String array ``names[index]`` (null where index < 0), built as an Arrow dictionary
    and decoded in C++: no Python string per row."""
    index = np.asarray(index)
    ind = pa.array(index.astype(np.int32), mask=index < 0)
    return pa.DictionaryArray.from_arrays(ind, pa.array(names, pa.string())).cast(pa.string())
