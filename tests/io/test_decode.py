"""The one-pass events decoder equals its naive twin and the column-by-column reader, row for row."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from engine.io.badrows import BadRows
from engine.io.decode import decode_batch
from engine.io.readers import _CHANNEL_EVENT_LUT, _PURCHASE, EARLIEST_TS, MAX_VALUE, NO_ITEM, _events_batch_columns
from engine.io.userindex import UserIndex
from engine.schema import CHANNEL_EVENTS, CHANNELS, EVENTS
from tests import naive

AS_OF = 1_793_491_200  # 2026-11-01T00:00:00Z
_DIV = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@st.composite
def event_batches(draw):
    """(batch, user ids, ts unit): a RecordBatch of the decoder's types with every kind of bad row,
    sliced at a random offset so that bitmaps and values start mid-byte."""
    ids = draw(st.one_of(st.lists(st.integers(0, 40), min_size=1, max_size=12, unique=True),  # table
                         st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=12, unique=True)))  # hash
    unit = draw(st.sampled_from(sorted(_DIV)))
    n = draw(st.integers(0, 40))
    row = st.fixed_dictionaries({
        "user_id": st.one_of(st.sampled_from(ids), st.integers(-(2**63), 2**63 - 1), st.none()),
        "event": st.one_of(st.sampled_from(EVENTS), st.just("bogus"), st.none()),
        # around as_of (future rows), before 1970 (the floor of a negative time) and around the
        # earliest good instant (early rows)
        "ts": st.one_of(st.integers(-3 * _DIV[unit], 3 * _DIV[unit]),
                        st.integers((EARLIEST_TS - 3) * _DIV[unit], (EARLIEST_TS + 3) * _DIV[unit]),
                        st.integers((AS_OF - 800 * 86400) * _DIV[unit], (AS_OF + 2) * _DIV[unit]), st.none()),
        "channel": st.one_of(st.sampled_from(CHANNELS), st.just("fax"), st.none()),
        "value": st.one_of(st.floats(-10, 1e3), st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e13]),
                           st.none()),
        "item_id": st.one_of(st.integers(-(2**63), 2**63 - 1), st.none()),
    })
    rows = draw(st.lists(row, min_size=n, max_size=n))
    index_type = draw(st.sampled_from([pa.int8(), pa.int16(), pa.int32()]))

    def dict_col(values):
        d = pa.array(values, pa.string()).dictionary_encode()
        return pa.DictionaryArray.from_arrays(d.indices.cast(index_type), d.dictionary)

    cols = {
        "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
        "ts": pa.array([r["ts"] for r in rows], pa.timestamp(unit, tz=draw(st.sampled_from([None, "UTC"])))),
        "event": dict_col([r["event"] for r in rows]),
    }
    if draw(st.booleans()):
        cols["channel"] = dict_col([r["channel"] for r in rows])
    if draw(st.booleans()):
        cols["value"] = pa.array([r["value"] for r in rows], pa.float64())
    if draw(st.booleans()):
        cols["item_id"] = pa.array([r["item_id"] for r in rows], pa.int64())
    batch = pa.RecordBatch.from_pydict(cols)
    start = draw(st.integers(0, n))
    return batch.slice(start, draw(st.integers(0, n - start))), ids, unit


def _decode(batch, index, bad):
    return decode_batch(batch, index, AS_OF, bad.code, events=EVENTS, channels=CHANNELS,
                        needs_channel=_CHANNEL_EVENT_LUT, max_value=MAX_VALUE, purchase=_PURCHASE, no_item=NO_ITEM,
                        min_ts=EARLIEST_TS)


@given(event_batches())
def test_decoder_agrees_with_naive(case):
    """Property: every row's reason is the first rule it breaks; good rows keep their order and values."""
    batch, ids, unit = case
    bad = BadRows("events.arrow", "events")
    out = _decode(batch, UserIndex(np.array(ids, np.int64)), bad)
    if batch.num_rows == 0:
        assert out is None  # nothing to decode: the general path handles the empty batch
        return
    *cols, reason = out
    rows = batch.to_pydict()
    rows["ts"] = batch.column("ts").cast(pa.int64()).to_pylist()
    rows = [dict(zip(rows, vals)) for vals in zip(*rows.values())]
    want_reasons, want_good = naive.decode_events(rows, ids, AS_OF, _DIV[unit], EVENTS, CHANNELS, CHANNEL_EVENTS,
                                                  MAX_VALUE, EARLIEST_TS)
    assert [bad.names[r - 1] if r else None for r in reason.tolist()] == want_reasons
    uidx, ts, ev, ch, val, item = cols
    assert uidx.tolist() == [g[0] for g in want_good]
    assert ts.tolist() == [g[1] for g in want_good]
    assert ev.tolist() == [g[2] for g in want_good]
    assert ch.tolist() == [g[3] for g in want_good]
    npt.assert_array_equal(val, np.array([g[4] for g in want_good], np.float64))
    if "item_id" in batch.schema.names:
        assert item.tolist() == [NO_ITEM if g[5] is None else g[5] for g in want_good]
    else:
        assert item is None


@given(event_batches())
def test_decoder_equals_the_column_by_column_reader(case):
    """Property: the fast path and the general path give the same arrays, byte for byte, and reasons."""
    batch, ids, _ = case
    index = UserIndex(np.array(ids, np.int64))
    bad = BadRows("events.arrow", "events")
    out = _decode(batch, index, bad)
    if out is None:
        return
    eb, reason = _events_batch_columns(batch, index, AS_OF, bad, "events.arrow")
    npt.assert_array_equal(out[6], reason)
    for got, want in zip(out[:5], (eb.uidx, eb.ts, eb.event, eb.channel, eb.value)):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    assert (out[5] is None) == (eb.item is None)
    if eb.item is not None:
        assert out[5].tobytes() == eb.item.tobytes()


def test_other_types_take_the_general_path():
    # given columns the decoder does not read: string events, int32 ids, a dictionary with a null name
    good = {"user_id": pa.array([1], pa.int64()), "ts": pa.array([AS_OF], pa.timestamp("s")),
            "event": pa.array(["send"]).dictionary_encode()}
    index = UserIndex(np.array([1], np.int64))
    bad = BadRows("events.arrow", "events")
    assert _decode(pa.RecordBatch.from_pydict(good), index, bad) is not None
    for name, col in (("event", pa.array(["send"])), ("user_id", pa.array([1], pa.int32())),
                      ("event", pa.DictionaryArray.from_arrays(pa.array([0], pa.int8()), pa.array([None], pa.string()))),
                      ("ts", pa.array([0], pa.date32()))):
        # when one of them replaces the good column / then the decoder declines
        assert _decode(pa.RecordBatch.from_pydict({**good, name: col}), index, bad) is None, name
