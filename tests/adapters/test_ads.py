"""The ads adapter: platform-ready audience parts, no duplicates on a rerun, a crash's partial line cut,
and its providers table."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json

import pytest

from adapters.ads import AdsAdapter, part_paths
from engine.sending.protocol import Message


def _messages(n, start=0):
    return [Message(f"m{i}", i, "ads", "ads-step", "A", json.dumps({"email": f"u{i}@example.com"}), None, "",
                    0.0) for i in range(start, start + n)]


def test_the_adapter_writes_platform_parts_and_a_rerun_adds_nothing(tmp_path):
    # given a Meta adapter and 10,003 messages (one without an identifier)
    msgs = _messages(10_002) + [Message("bad", 99, "ads", "s", "A", json.dumps({"phone": "12"}), None, "", 0.0)]

    async def run(batch):
        a = AdsAdapter(tmp_path / "audience.csv", platform="meta")
        out = []
        for i in range(0, len(batch), 1000):
            out += await a.send(batch[i:i + 1000])
        await a.aclose()
        return out

    # when it sends them, then again (a rerun)
    first = asyncio.run(run(msgs))
    second = asyncio.run(run(msgs))
    # then two parts within Meta's limit, one row per user, hashes of the normalised email
    parts = part_paths(tmp_path / "audience.csv", "meta")
    rows = [r for p in parts for r in list(csv.reader(p.open()))[1:]]
    assert [p.name for p in parts] == ["audience-meta-00001.csv", "audience-meta-00002.csv"]
    assert len(rows) == 10_002 and len({r[0] for r in rows}) == 10_002
    assert rows[0][0] == hashlib.sha256(b"u0@example.com").hexdigest() and rows[0][1] == ""
    assert [r.status for r in first].count("failed") == 1 and first[-1].error.startswith("no usable identifier")
    assert [r.status for r in second].count("sent") == 10_002          # known ids: sent, no second row
    assert len(list(csv.reader((tmp_path / "audience-meta-index.csv").open()))) == 10_003


def test_a_partial_last_line_left_by_a_crash_is_cut_before_appending(tmp_path):
    async def run(batch):
        a = AdsAdapter(tmp_path / "audience.csv", platform="google")
        return await a.send(batch)

    asyncio.run(run(_messages(3)))
    part = part_paths(tmp_path / "audience.csv", "google")[0]
    with part.open("a") as fh:
        fh.write("deadbeef,")                       # a crash mid-write
    asyncio.run(run(_messages(2, start=3)))
    lines = part.read_text().splitlines()
    assert lines[0] == "Email,Phone,First Name,Last Name,Country,Zip"
    assert len(lines) == 6 and all(len(line.split(",")) == 6 for line in lines)


def test_the_providers_file_takes_the_ads_adapter_and_names_a_bad_platform():
    from engine.errors import ConfigError
    from engine.sending.providers import build_adapter, load_providers

    cfg = load_providers({"channels": {"ads": {"adapter": "ads", "platform": "google", "path": "out/a.csv"}}})
    adapter = build_adapter(cfg["ads"])
    assert isinstance(adapter, AdsAdapter) and adapter.platform == "google"
    for table, words in (({"adapter": "ads", "platform": "tiktok", "path": "a.csv"}, "platform"),
                         ({"adapter": "ads", "path": "a.csv"}, "platform' is missing")):
        with pytest.raises(ConfigError, match=words):
            load_providers({"channels": {"ads": table}})
