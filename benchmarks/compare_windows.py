"""The limiter's promise on the provider's clock: the busiest one-second window of arrivals.

``winback provider`` (no rate limit of its own, so it counts every arrival) and
``winback send`` run as processes; ``--load N`` adds N busy processes competing for the
CPU.  For each rate the provider's record gives ``max_per_second`` (the most arrivals
in any half-open one-second window of its clock) beside the channel's limit, and the
achieved send rate::

    python benchmarks/compare_windows.py --rates 50,500,5000 --seconds 4 --load 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from engine.schema import TIMESTAMP

ROOT = Path(__file__).resolve().parent.parent
SECRET_ENV = "WINBACK_WEBHOOK_SECRET"


def _busy(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(rate: float, seconds: float, load: int, concurrency: int, workdir: Path) -> dict:
    """One sender at ``rate`` for about ``seconds`` of traffic; the provider's busiest window."""
    n = max(10, int(rate * seconds))
    plan = workdir / f"plan-{rate:g}.arrow"
    now = int(time.time()) * 1_000_000
    feather.write_feather(pa.table({
        "message_id": [f"w{i:07d}" for i in range(n)], "user_id": pa.array(np.arange(n), pa.int64()),
        "channel": ["push"] * n, "step": ["s"] * n, "send_at": pa.array(np.full(n, now), TIMESTAMP),
        "reason": pa.nulls(n, pa.string()), "to": [f"t{i}" for i in range(n)], "subject": ["s"] * n,
        "body": ["b"] * n}), plan)
    port = _port()
    env = {**os.environ, SECRET_ENV: "window-secret"}
    prov = subprocess.Popen([sys.executable, "-m", "engine", "provider", "--port", str(port),
                             "--webhook-secret-env", SECRET_ENV], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        providers = workdir / f"providers-{rate:g}.toml"
        providers.write_text(f'[channels.push]\nadapter = "webhook"\nurl = "http://127.0.0.1:{port}/hooks/push"\n'
                             f'secret_env = "{SECRET_ENV}"\nrate_per_second = {rate}\nconcurrency = {concurrency}\n')
        hogs = [mp.Process(target=_busy, args=(time.time() + seconds * 3 + 10,)) for _ in range(load)]
        for h in hogs:
            h.start()
        t0 = time.time()
        send = subprocess.run([sys.executable, "-m", "engine", "send", str(plan), "--providers", str(providers),
                               "--ledger", str(workdir / f"ledger-{rate:g}.db"), "--now", "--no-progress"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        took = time.time() - t0
        for h in hogs:
            h.terminate()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as r:
            stats = json.loads(r.read())
    finally:
        prov.terminate()
        prov.wait()
    peak = stats.get("max_per_second", {}).get("push", 0)
    return {"rate": rate, "messages": n, "accepted": stats.get("accepted"), "max_per_second": peak,
            "over": peak > rate, "seconds": round(took, 2), "exit": send.returncode}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="50,500,5000", help="channel limits per second, comma separated")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds of traffic per rate (default 4)")
    ap.add_argument("--load", type=int, default=2, help="busy processes competing for the CPU (default 2)")
    ap.add_argument("--concurrency", type=int, default=50, help="sender workers (default 50)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        for rate in (float(r) for r in args.rates.split(",")):
            print(json.dumps(run(rate, args.seconds, args.load, args.concurrency, Path(d))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
