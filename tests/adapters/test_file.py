"""The file adapter: hashed, normalised audience rows in CSV or JSON lines, never duplicated on a rerun."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.file import FileAdapter, hash_address
from engine.sending.protocol import FAILED, SENT, Message


def ads(i: int, to: str) -> Message:
    return Message(f"ad-{i}", i, "ads", "we-miss-you", None, to, None, "", 1_790_000_000.0)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_file_export_hashes_normalised_addresses_and_never_duplicates_on_rerun(tmp_path, suffix):
    path = tmp_path / f"audience.{suffix}"
    batch = [ads(1, " Ann@Example.COM "), ads(2, "+1 (555) 010-2030"), ads(3, "555-0100")]

    def rows():
        text = path.read_text()
        if suffix == "csv":
            return list(csv.DictReader(text.splitlines()))
        return [json.loads(line) for line in text.splitlines()]

    first = asyncio.run(FileAdapter(path).send(batch))
    assert [r.status for r in first] == [SENT, SENT, FAILED]
    got = rows()
    assert [r["hash"] for r in got] == [hashlib.sha256(b"ann@example.com").hexdigest(),
                                        hashlib.sha256(b"+15550102030").hexdigest()]
    assert [r["kind"] for r in got] == ["email", "phone"]
    again = asyncio.run(FileAdapter(path).send(batch + [ads(4, "bob@example.com")]))  # a rerun, new process
    assert [r.status for r in again] == [SENT, SENT, FAILED, SENT]
    assert [r["message_id"] for r in rows()] == ["ad-1", "ad-2", "ad-4"]


def test_file_export_cuts_a_partial_last_line_left_by_a_crash(tmp_path):
    path = tmp_path / "audience.jsonl"
    asyncio.run(FileAdapter(path).send([ads(1, "a@example.com")]))
    with open(path, "ab") as fh:
        fh.write(b'{"message_id":"ad-2","us')  # killed mid-write
    asyncio.run(FileAdapter(path).send([ads(2, "b@example.com")]))
    assert [json.loads(x)["message_id"] for x in path.read_text().splitlines()] == ["ad-1", "ad-2"]


@given(st.emails())
def test_email_hash_ignores_case_and_surrounding_space(address):
    assert hash_address(f"  {address.upper()} ") == hash_address(address.lower())
