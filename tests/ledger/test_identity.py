"""Exactly-once across runs: a plan goes out only through the ledger it was planned against.

Real SQLite ledgers in tmp_path, the real dispatcher with a recording adapter, and the CLI
for the message and exit code a user sees after a typo in --ledger."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys

import pytest

from engine.errors import ConfigError
from engine.io.meta import PLAN, with_meta
from engine.ledger.identity import check_plan_ledger, describe, read_id
from engine.ledger.store import Ledger
from engine.sending.dispatcher import Channel, send
from tests.helpers import ROOT, make_plan
from engine.sending.protocol import Result


class Recorder:
    """A real adapter object behind the protocol that sends everything and records the ids."""

    name = "recorder"
    max_batch = 1

    def __init__(self):
        self.ids: list[str] = []

    async def send(self, batch):
        self.ids += [m.message_id for m in batch]
        return [Result(m.message_id, "sent", provider_id="p-" + m.message_id) for m in batch]

    async def aclose(self):
        pass

    def sent_ids(self) -> list[str]:
        return self.ids


def _planned_against(ledger, n=20):
    return with_meta(make_plan(n), PLAN, {"campaign_id": "c1", "ledger": describe(ledger)}, keep=False)


def test_a_ledger_gets_one_id_for_life(tmp_path):
    path = tmp_path / "l.db"
    assert read_id(path) is None
    with Ledger(path) as led:
        first = led.id
    with Ledger(path) as led:
        assert led.id == first
    assert read_id(path) == first and len(first) == 32
    moved = tmp_path / "elsewhere.db"
    shutil.copy(path, moved)
    assert read_id(moved) == first  # a moved or restored ledger is the same ledger


def test_a_ledger_of_an_earlier_version_gets_an_id_when_opened(tmp_path):
    path = tmp_path / "old.db"
    with Ledger(path):
        pass
    con = sqlite3.connect(path)
    con.execute("DROP TABLE ledger_info")
    con.commit()
    con.close()
    assert read_id(path) is None
    with Ledger(path) as led:
        assert read_id(path) == led.id


def test_a_typo_in_the_ledger_path_sends_nothing_and_creates_nothing(tmp_path):
    right, typo = tmp_path / "ledger.db", tmp_path / "ledgr.db"
    with Ledger(right):
        pass
    plan, adapter = _planned_against(right), Recorder()
    assert send(plan, {"push": Channel(adapter)}, right, now=True).sent == 20
    with pytest.raises(ConfigError, match="planned against the ledger .*ledger.db.*ledgr.db does not exist yet"):
        send(plan, {"push": Channel(adapter)}, typo, now=True)
    assert not typo.exists() and not list(tmp_path.glob("ledgr*"))
    assert len(adapter.sent_ids()) == 20  # nothing went out twice


def test_another_existing_ledger_is_refused_and_a_copy_is_accepted(tmp_path):
    right, other, copy = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "copy.db"
    for p in (right, other):
        with Ledger(p):
            pass
    plan, adapter = _planned_against(right), Recorder()
    send(plan, {"push": Channel(adapter)}, right, now=True)
    with pytest.raises(ConfigError, match="is another ledger"):
        send(plan, {"push": Channel(adapter)}, other, now=True)
    shutil.copy(right, copy)
    assert send(plan, {"push": Channel(adapter)}, copy, now=True).sent == 0  # the copy knows what went out
    assert send(plan, {"push": Channel(adapter)}, other, now=True, other_ledger=True).sent == 20  # asked for
    assert len(adapter.sent_ids()) == 40


def test_a_plan_made_before_its_ledger_existed_goes_through_that_path_only(tmp_path):
    path = tmp_path / "new.db"
    meta = {"campaign_id": "c1", "ledger": describe(path)}
    assert meta["ledger"]["id"] is None
    check_plan_ledger(meta, path)  # the first send creates it
    with pytest.raises(ConfigError, match="new.db"):
        check_plan_ledger(meta, tmp_path / "other.db")
    with Ledger(tmp_path / "moved.db") as led:  # a ledger that already holds the campaign is its record
        led.load_plan(make_plan(3))
    check_plan_ledger(meta, tmp_path / "moved.db")
    check_plan_ledger({"campaign_id": "c1", "ledger": None}, tmp_path / "any.db")  # planned without --ledger


def test_the_cli_says_what_to_do_with_exit_2_and_no_traceback(tmp_path):
    right = tmp_path / "ledger.db"
    with Ledger(right):
        pass
    plan_path = tmp_path / "plan.arrow"
    import pyarrow.feather as feather

    feather.write_feather(_planned_against(right), plan_path)
    providers = tmp_path / "providers.toml"
    providers.write_text('[channels.push]\nadapter = "webhook"\nurl = "http://127.0.0.1:9/push"\n')
    out = subprocess.run([sys.executable, "-m", "engine", "send", str(plan_path), "--providers", str(providers),
                          "--ledger", str(tmp_path / "ledgr.db"), "--now", "--no-progress"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "--ledger" in out.stderr and "--other-ledger" in out.stderr
    assert not (tmp_path / "ledgr.db").exists()


def test_a_plan_file_made_without_a_ledger_is_bound_to_the_first_ledger_that_sends_it(tmp_path):
    """Given a plan file planned without --ledger and sent once through ledger.db, when the same
    file is sent through ledgr.db (a typo), then nothing is sent or created; the right ledger,
    a copy of it and --other-ledger still work, and a new plan written over the file is bound
    to no ledger yet."""
    import pyarrow.feather as feather

    from engine.ledger.identity import binding_path, read_binding
    from engine.planning.run import _forget_binding

    plan = tmp_path / "plan.arrow"
    feather.write_feather(make_plan(20), plan)
    right, typo = tmp_path / "ledger.db", tmp_path / "ledgr.db"
    adapter = Recorder()
    assert send(plan, {"push": Channel(adapter)}, right, now=True).sent == 20
    assert read_binding(plan) == describe(right)
    with pytest.raises(ConfigError, match="first sent through the ledger .*ledger.db.*ledgr.db does not exist yet"):
        send(plan, {"push": Channel(adapter)}, typo, now=True)
    assert not typo.exists() and len(adapter.sent_ids()) == 20
    assert send(plan, {"push": Channel(adapter)}, right, now=True).sent == 0  # a rerun resumes, sends nothing
    shutil.copy(right, tmp_path / "copy.db")
    assert send(plan, {"push": Channel(adapter)}, tmp_path / "copy.db", now=True).sent == 0
    assert send(plan, {"push": Channel(adapter)}, typo, now=True, other_ledger=True).sent == 20  # asked for
    _forget_binding(plan)  # what 'winback plan -o plan.arrow' does after writing a new plan there
    assert not binding_path(plan).exists()
    assert send(plan, {"push": Channel(adapter)}, tmp_path / "fresh.db", now=True).sent == 20
