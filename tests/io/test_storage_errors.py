"""A full disk, a read-only directory, a file-size limit: one line naming the file, exit 7 (5 for
the ledger), no traceback, no partial output.  The commands run as real processes."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from tests.helpers import ROOT
from engine.schema import TIMESTAMP

AS_OF = "2026-11-01"


def winback(*args, fsize: int | None = None, cwd=ROOT, timeout=120, env: dict | None = None):
    def limit():
        if fsize is not None:  # writes past ``fsize`` bytes fail with EFBIG instead of SIGXFSZ
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})


def one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    proc = winback("generate", "--users", 3000, "--seed", 3, "-o", d / "w")
    assert proc.returncode == 0, proc.stderr
    # one run without limits first: the compiled kernels' cache files are written now, not
    # under the file-size limit of a test
    proc = winback("score", d / "w" / "users.arrow", d / "w" / "events.arrow", "--as-of", AS_OF,
                   "--no-progress", "-o", d / "warm.arrow")
    assert proc.returncode == 0, proc.stderr
    proc = winback("plan", d / "warm.arrow", ROOT / "examples" / "winback_lapsing.toml", "--no-progress",
                   "-o", d / "warm-plan.arrow")  # the planner's kernels too (a fresh clone has no cache)
    assert proc.returncode == 0, proc.stderr
    return d / "w"


def test_a_file_size_limit_during_score_is_one_line_and_leaves_nothing(world, tmp_path):
    out = tmp_path / "scores.arrow"
    proc = winback("score", world / "users.arrow", world / "events.arrow", "--as-of", AS_OF, "--no-progress", "-o", out,
                   fsize=64 * 1024)
    line = one_line(proc)
    assert proc.returncode == 7, proc.stderr
    assert line.startswith("StorageError: cannot write ") and str(out) in line
    assert not list(tmp_path.iterdir())  # no partial output, no temporary left over


def test_a_file_size_limit_during_plan_is_one_line_and_leaves_nothing(world, tmp_path):
    scores = world.parent / "warm.arrow"
    out = tmp_path / "plan.arrow"
    proc = winback("plan", scores, ROOT / "examples" / "winback_lapsing.toml", "--no-progress", "-o", out,
                   fsize=32 * 1024)
    line = one_line(proc)
    assert proc.returncode == 7 and str(out) in line, line
    assert not list(tmp_path.iterdir())


def _mount(path: Path, options: str) -> bool:
    path.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                        capture_output=True).returncode == 0
    return ok


def test_a_full_disk_during_score_is_one_line(world, tmp_path):
    disk = tmp_path / "disk"
    if not _mount(disk, "size=64k"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        out = disk / "scores.arrow"
        proc = winback("score", world / "users.arrow", world / "events.arrow", "--as-of", AS_OF, "--no-progress", "-o", out)
        line = one_line(proc)
        assert proc.returncode == 7 and "the disk is full" in line and str(out) in line, line
        assert not list(disk.iterdir())
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_read_only_directory_is_one_line(world, tmp_path):
    ro = tmp_path / "ro"
    mounted = os.geteuid() == 0 and _mount(ro, "ro,size=64k")
    if not mounted:
        ro.mkdir(exist_ok=True)
        ro.chmod(0o555)
    try:
        out = ro / "scores.arrow"
        proc = winback("score", world / "users.arrow", world / "events.arrow", "--as-of", AS_OF, "--no-progress", "-o", out)
        line = one_line(proc)
        assert proc.returncode == 7 and "read-only" in line and str(out) in line, line
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)])
        else:
            ro.chmod(0o755)


def test_a_full_disk_under_the_ledger_is_one_line_and_nothing_is_sent(tmp_path):
    n = 20_000
    plan = tmp_path / "plan.arrow"
    now = int(time.time()) * 1_000_000
    feather.write_feather(pa.table({
        "message_id": [f"k{i:06d}" for i in range(n)], "campaign_id": ["c"] * n,
        "user_id": pa.array(np.arange(n), pa.int64()), "step": ["s"] * n, "channel": ["push"] * n,
        "send_at": pa.array(np.full(n, now), TIMESTAMP), "reason": pa.nulls(n, pa.string()),
        "to": [f"token-{i}" for i in range(n)], "subject": ["hi"] * n, "body": ["b"] * n}), plan)
    providers = tmp_path / "providers.toml"
    providers.write_text('[channels.push]\nadapter = "webhook"\nurl = "http://127.0.0.1:9/hooks/push"\n'
                         'secret_env = "WB_TEST_SECRET"\n')
    ledger = tmp_path / "ledger.db"
    proc = winback("send", plan, "--providers", providers, "--ledger", ledger, "--now", "--no-progress",
                   fsize=256 * 1024, env={"WB_TEST_SECRET": "s3cret-value"})
    line = one_line(proc)
    assert proc.returncode == 5 and str(ledger) in line and ("full" in line or "larger" in line), line


@pytest.mark.parametrize("command", ["score", "backtest", "plan", "send"])
def test_an_output_under_a_file_is_one_line_naming_that_file(world, tmp_path, command):
    # given an output path whose directory is really a file (a typo: plan.arrow/ledger.db)
    blocker = tmp_path / "plan.arrow"
    blocker.write_bytes(b"not a directory")
    users, events = world / "users.arrow", world / "events.arrow"
    out = blocker / "out.arrow"
    plan = world.parent / "warm-plan.arrow"
    argv = {"score": ("score", users, events, "--as-of", AS_OF, "--no-progress", "-o", out),
            "backtest": ("backtest", users, events, "--as-of", AS_OF, "-o", out),
            "plan": ("plan", world.parent / "warm.arrow", ROOT / "examples" / "winback_lapsing.toml",
                     "--no-progress", "-o", out),
            "send": ("send", plan, "--providers", ROOT / "examples" / "providers.local.toml", "--now",
                     "--no-progress", "--ledger", out)}[command]
    # when run, then one line names the output and the file in its way, exit 7, the file untouched
    proc = winback(*argv, env={"SENDGRID_API_KEY": "k", "TWILIO_ACCOUNT_SID": "AC0", "TWILIO_AUTH_TOKEN": "t",
                               "WINBACK_WEBHOOK_SECRET": "s"})
    line = one_line(proc)
    assert proc.returncode == 7, line
    assert line.startswith(f"StorageError: cannot write {out}: {blocker} is a file, not a directory"), line
    assert blocker.read_bytes() == b"not a directory"


def test_an_output_file_that_is_a_directory_is_one_line(world, tmp_path):
    # given -o naming an existing directory
    out = tmp_path / "scores"
    (out / "keep").mkdir(parents=True)
    proc = winback("score", world / "users.arrow", world / "events.arrow", "--as-of", AS_OF, "--no-progress", "-o", out)
    line = one_line(proc)
    # then it is refused (exit 7) and the directory keeps what it held; no temp file is left beside it
    assert proc.returncode == 7 and f"{out} is a directory; pass a file path inside it" in line, line
    assert (out / "keep").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["scores"]


def test_a_plan_whose_ledger_path_lies_under_a_file_is_refused_before_planning(world, tmp_path):
    # given --ledger plan.arrow/ledger.db where plan.arrow is a file: no send could ever open it
    blocker = tmp_path / "plan.arrow"
    blocker.write_bytes(b"not a directory")
    out = tmp_path / "p.arrow"
    proc = winback("plan", world.parent / "warm.arrow", ROOT / "examples" / "winback_lapsing.toml", "--no-progress",
                   "--ledger", blocker / "ledger.db", "-o", out)
    # then one line names the ledger and the file in its way, exit 7, and no plan is written
    line = one_line(proc)
    assert proc.returncode == 7 and f"{blocker} is a file, not a directory, so no ledger" in line, line
    assert not out.exists() and blocker.read_bytes() == b"not a directory"
