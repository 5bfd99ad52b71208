"""Offers: which incentive each user of a campaign gets, and their unique codes.

A campaign's ``[[offers]]`` are tried in file order; a user's *segment* is the first
offer whose ``where`` rule holds for them (``-1``: none).  What the user gets follows
their variant: a variant with ``offer = "none"`` withholds offers (its users are the
"same segment, no offer" comparison of the report), one naming an offer gives that
offer to the users eligible for it, any other gives the segment's offer.  So every
user gets at most one offer per campaign, the same one at every step.

Both columns are computed for every audience user, held out or not, from the scores
and the (campaign id, user id) hashes only: a held-out user carries the offer they
would have got, so the report compares like with like, offer by offer.  Codes (from
``codes``, one per line) go to the treated users with an offer and at least one planned
message, in user id order, so a rerun of the same plan hands out the same codes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import ConfigError, RuleError

__all__ = ["assign_offers", "read_codes", "hand_out_codes", "offer_columns", "offer_context", "OFFER_FIELDS", "OWN_FIELDS"]

#: the plan's offer columns (with offers): the offer a message carries, the user's segment
#: (the offer they are eligible for, whatever their variant) and their unique code; and
#: (with a survey step) the user's lifecycle stage
OFFER_FIELDS = {name: pa.field(name, pa.string()) for name in ("offer", "offer_segment", "offer_code", "lifecycle")}
#: plan columns templates may use besides the scores' columns
OWN_FIELDS = ("offer", "offer_code")


def assign_offers(scores: pa.Table, cmp, variant: np.ndarray, audience: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offer index, segment index) per user of ``scores`` (-1 = none); ``variant`` is the
    user's variant index, ``audience`` the audience mask (users outside it get -1)."""
    n = scores.num_rows
    offer = np.full(n, -1, np.int64)
    segment = np.full(n, -1, np.int64)
    if not cmp.offers:
        return offer, segment
    eligible = []
    for i, o in enumerate(cmp.offers):
        try:
            ok = o.where(scores) & audience
        except RuleError as exc:
            raise RuleError(f"{cmp.source}: [offers[{i}].where] {exc}") from None
        eligible.append(ok)
        segment = np.where((segment < 0) & ok, i, segment)
    index = {o.name: i for i, o in enumerate(cmp.offers)}
    # per variant: -2 = the segment's offer, -1 = none, else that offer's index
    choice = np.array([-2 if v.offer is None else -1 if v.offer == "none" else index[v.offer]
                       for v in cmp.variants], np.int64)[variant]
    offer = np.where(choice == -2, segment, -1)
    for i in range(len(cmp.offers)):
        offer = np.where((choice == i) & eligible[i], i, offer)
    return offer, segment


def read_codes(path: str, name: str) -> list[str]:
    """The unique codes of ``path``: one per line (a ``.csv`` takes its first column and
    skips a header named ``code``), blank lines skipped; duplicates are an error."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"[offers.{name}] codes file {p} does not exist; write one code per line")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[offers.{name}] codes file {p} cannot be read ({type(exc).__name__}); "
                          "it must be UTF-8 text, one code per line") from None
    codes = [ln.split(",")[0].strip() if p.suffix.lower() == ".csv" else ln.strip() for ln in lines]
    if p.suffix.lower() == ".csv" and codes and codes[0].lower() == "code":
        codes = codes[1:]
    codes = [c for c in codes if c]
    seen: dict[str, int] = {}
    for i, c in enumerate(codes):
        if c in seen:
            raise ConfigError(f"[offers.{name}] codes file {p}: code {c!r} appears twice (entries {seen[c] + 1} "
                              f"and {i + 1}); each user must get a unique code")
        seen[c] = i
    return codes


def hand_out_codes(cmp, uid: np.ndarray, offer: np.ndarray, gets: np.ndarray) -> pa.Array:
    """One code per user (string array, null for users without one): users with ``gets``
    and an offer that has a codes file, in user id order."""
    n = len(uid)
    out = np.full(n, None, dtype=object)
    for i, o in enumerate(cmp.offers):
        if o.codes is None:
            continue
        who = np.nonzero(gets & (offer == i))[0]
        who = who[np.argsort(uid[who], kind="stable")]
        codes = read_codes(o.codes, o.name)
        if len(who) > len(codes):
            raise ConfigError(f"{cmp.source}: [offers.{o.name}] codes file {o.codes} has {len(codes):,} codes but "
                              f"{len(who):,} users get this offer; add codes or narrow its where rule")
        out[who] = codes[:len(who)]
    return pa.array(out, pa.string())


def offer_columns(scores: pa.Table, cmp, uid: np.ndarray, holdout: np.ndarray, variant: np.ndarray,
                  reason: np.ndarray, rows_user: np.ndarray, message_id) -> dict[str, pa.Array]:
    """The plan's ``offer``, ``offer_segment`` and ``offer_code`` columns (a campaign with
    offers) and ``lifecycle`` (a campaign with a survey step: the segment its answers are
    tallied by); rows are (user, step), steps after each other; ``reason`` 0 = planned,
    1 = not in audience.  A campaign with neither gets none of them (no cost at scale)."""
    from engine.planning.assign import labels as _labels

    n = len(uid)
    out: dict[str, pa.Array] = {}
    if any(s.kind == "survey" for s in cmp.steps):
        out["lifecycle"] = pc.cast(scores["lifecycle"], pa.string()).take(pa.array(rows_user)) \
            if "lifecycle" in scores.column_names and n else pa.nulls(len(rows_user), pa.string())
    if not cmp.offers:
        return out
    names = [o.name for o in cmp.offers]
    audience = reason[:n] != 1
    offer, segment = assign_offers(scores, cmp, variant, audience)
    gets = ~holdout & (reason.reshape(-1, n) == 0).any(axis=0) if n else np.zeros(0, bool)
    code = hand_out_codes(cmp, uid, offer, gets)
    return out | {"offer": _labels(offer[rows_user], names), "offer_segment": _labels(segment[rows_user], names),
                  "offer_code": code.take(pa.array(rows_user))}


def offer_context(cmp, table: pa.Table, at: pa.Array) -> dict[str, pa.Array]:
    """Template fields of the rows ``at``: ``{{ offer }}`` is the offer's ``text`` (the
    plan's ``offer`` column holds its name)."""
    if not cmp.offers or "offer" not in table.column_names:
        return {}
    names = pa.array([o.name for o in cmp.offers], pa.string())
    texts = pa.array([o.text for o in cmp.offers], pa.string())
    return {"offer": texts.take(pc.index_in(table["offer"].take(at), value_set=names))}
