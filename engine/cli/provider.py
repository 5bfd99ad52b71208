"""`winback provider`: run the local provider (every adapter's shape) on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from engine.errors import ConfigError

EPILOG = """\
examples:
  winback provider --port 8025
  winback provider --port 8025 --rate email=100,sms=10,push=500 --record provider-record.json
  winback provider --port 0 --fail-rate 0.1 --latency-ms 20 --seed 1

routes: POST /hooks/CHANNEL (signed webhook), /v3/mail/send (SendGrid),
/2010-04-01/Accounts/SID/Messages.json (Twilio), /v1/projects/P/messages:send (FCM);
GET /_stats and /_messages (the record).  The Twilio SID and token and the webhook
secret are compared with WINBACK_TWILIO_SID, WINBACK_TWILIO_TOKEN and
WINBACK_WEBHOOK_SECRET when those are set (otherwise only their presence and form are
checked); bearer tokens (SendGrid, FCM) must be present.  Stops on SIGINT/SIGTERM,
writing the record file first.
"""

_ENV = {"account_sid": "WINBACK_TWILIO_SID", "auth_token": "WINBACK_TWILIO_TOKEN",
        "webhook_secret": "WINBACK_WEBHOOK_SECRET"}
_KINDS = {"5xx": "error_rate", "429": "rate_429", "timeout": "timeout_rate", "drop": "drop_rate"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "provider", help="run the local provider (webhook, SendGrid, Twilio, FCM shapes) on 127.0.0.1",
        description="Serve every provider shape on 127.0.0.1 with rate limits, latency and injected "
                    "faults, recording each accepted message once by its idempotency key.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8025, help="TCP port on 127.0.0.1 (0 picks a free one; default 8025)")
    p.add_argument("--rate", default="", metavar="CHANNEL=N,...",
                   help="accepted requests per second per channel (email, sms, push or a webhook channel), "
                        "e.g. email=100,sms=10; over it the answer is 429 with Retry-After")
    p.add_argument("--fail-rate", type=float, default=0.0, metavar="P",
                   help="probability per request of a fault, spread evenly over 5xx, 429, timeout and drop")
    p.add_argument("--faults", default="", metavar="KIND=P,...",
                   help="probability per fault kind on top of --fail-rate, e.g. 5xx=0.05,timeout=0.01,drop=0.01,429=0.02")
    p.add_argument("--latency-ms", type=float, default=0.0, metavar="MS",
                   help="mean of an exponentially distributed added latency per request, in milliseconds")
    p.add_argument("--hang-seconds", type=float, default=30.0,
                   help="how long an injected timeout hangs before answering 504 (default 30)")
    p.add_argument("--retry-after", type=float, default=1.0, metavar="SECONDS",
                   help="Retry-After of an injected 429, in seconds (default 1)")
    p.add_argument("--retry-after-date", action="store_true",
                   help="send the injected 429's Retry-After as an HTTP date instead of seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault and latency RNG (default 0)")
    p.add_argument("--record", metavar="FILE",
                   help="write the record (stats and every accepted message) to FILE as JSON, atomically, "
                        "about every second while it changes and on exit")
    p.set_defaults(func=run)


def _pairs(text: str, option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or not name.strip() or number < 0:
            raise ConfigError(f"{option} takes NAME=NUMBER pairs separated by commas (e.g. email=100,sms=10); "
                              f"'{part}' is not one")
        out[name.strip()] = number
    return out


def _write(path: str, snapshot: dict) -> None:
    from engine.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(snapshot))


def run(args: argparse.Namespace) -> int:
    from adapters.local_provider import Faults, LocalProvider

    faults = _pairs(args.faults, "--faults")
    bad = sorted(set(faults) - set(_KINDS))
    if bad:
        raise ConfigError(f"--faults has kind '{bad[0]}'; kinds are {', '.join(_KINDS)}")
    if not 0 <= args.fail_rate <= 1 or sum(faults.values()) + args.fail_rate > 1:
        raise ConfigError("--fail-rate plus --faults must be probabilities adding up to at most 1")
    if args.latency_ms < 0 or args.hang_seconds <= 0 or args.retry_after < 0:
        raise ConfigError("--latency-ms and --retry-after must be >= 0 and --hang-seconds > 0")
    rates = {k: faults.get(k, 0.0) + args.fail_rate / len(_KINDS) for k in _KINDS}
    provider = LocalProvider(
        port=args.port, rates=_pairs(args.rate, "--rate"), seed=args.seed,
        faults=Faults(latency_ms=args.latency_ms, hang_seconds=args.hang_seconds, retry_after=args.retry_after,
                      retry_after_date=args.retry_after_date, **{_KINDS[k]: v for k, v in rates.items()}),
        **{k: os.environ.get(v) or None for k, v in _ENV.items()})

    async def serve() -> dict:
        try:
            await provider.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); pick another --port") from None
        print(f"local provider listening on {provider.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        saved = -1
        try:
            while not stop.is_set():
                if args.record and provider.version != saved:
                    saved = provider.version
                    _write(args.record, provider.snapshot())
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        finally:
            await provider.stop()
            if args.record:
                _write(args.record, provider.snapshot())
        return provider.stats()

    stats = asyncio.run(serve())
    busiest = max(stats["max_per_second"].values(), default=0)
    print(f"stopped: {stats['accepted']} accepted, {stats['duplicates']} duplicates, "
          f"{sum(stats['rejected'].values())} rejected, busiest second {busiest}"
          + (f"; record in {args.record}" if args.record else ""), flush=True)
    return 0
