"""`winback provider`: the local provider as a process on 127.0.0.1."""

from __future__ import annotations

import argparse

EPILOG = """\
routes: POST /hooks/{channel} (signed webhook), /v3/mail/send (SendGrid),
/2010-04-01/Accounts/{sid}/Messages.json (Twilio), /v1/projects/{p}/messages:send (FCM);
GET /_stats and /_messages.

examples:
  winback provider --port 8025
  winback provider --port 8025 --rate email=100,sms=10 --fail-rate 0.1 --latency-ms 5 --seed 1
  WINBACK_WEBHOOK_SECRET=dev-secret winback provider --port 8025 \\
      --webhook-secret-env WINBACK_WEBHOOK_SECRET --record provider-record.json

stops on SIGINT/SIGTERM (exit 0) and writes its record (stats and every accepted
message) to --record FILE atomically, every --record-every seconds and on exit.
"""


def _rates(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--rate wants CHANNEL=PER_SECOND[,...], got {part!r}") from None
        if not eq or not name.strip() or out[name.strip()] <= 0:
            raise argparse.ArgumentTypeError(f"--rate wants CHANNEL=PER_SECOND with a rate > 0, got {part!r}")
    return out


def _rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "provider",
        help="run the local provider (webhook, SendGrid, Twilio, FCM shapes) on 127.0.0.1",
        description=(
            "Serve every adapter's request shape on 127.0.0.1: check auth, signatures and bodies, "
            "enforce per-channel rate limits with 429 + Retry-After, inject faults at the given "
            "rates, and record every accepted message once by its idempotency key."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=8025, help="TCP port on 127.0.0.1 (0 picks a free one; default 8025)")
    p.add_argument("--rate", type=_rates, default={}, metavar="CH=N,...",
                   help="accepted requests per second per channel (email, sms, push, or a webhook "
                        "channel name), e.g. email=100,sms=10; beyond it: 429 with Retry-After")
    p.add_argument("--fail-rate", type=_rate, default=0.0, metavar="P",
                   help="share of requests split evenly over 503, 429 with Retry-After, timeouts and "
                        "dropped connections (default 0)")
    p.add_argument("--error-rate", type=_rate, default=0.0, metavar="P", help="extra share answered 503")
    p.add_argument("--rate-429", type=_rate, default=0.0, metavar="P", help="extra share answered 429")
    p.add_argument("--timeout-rate", type=_rate, default=0.0, metavar="P",
                   help="extra share that hangs for --hang-seconds (longer than a client timeout)")
    p.add_argument("--drop-rate", type=_rate, default=0.0, metavar="P",
                   help="extra share whose connection is closed without an answer")
    p.add_argument("--retry-after", type=float, default=1.0, metavar="S",
                   help="seconds in the Retry-After of injected 429s (default 1)")
    p.add_argument("--retry-after-date", action="store_true",
                   help="send injected Retry-After as an HTTP-date instead of seconds")
    p.add_argument("--hang-seconds", type=float, default=30.0, metavar="S",
                   help="how long an injected timeout hangs (default 30)")
    p.add_argument("--latency-ms", type=float, default=0.0, metavar="MS",
                   help="mean of an exponential delay added to each request, milliseconds (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault RNG (default 0)")
    p.add_argument("--webhook-secret-env", metavar="VAR",
                   help="check webhook signatures with the secret in this environment variable "
                        "(default: only require the signature header)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="bearer token SendGrid/FCM requests must carry, from this variable (default: any)")
    p.add_argument("--twilio-env", nargs=2, metavar=("SID_VAR", "TOKEN_VAR"),
                   help="account SID and auth token Twilio requests must carry (default: any)")
    p.add_argument("--record", metavar="FILE", help="write stats and accepted messages here (JSON, atomic)")
    p.add_argument("--record-every", type=float, default=0.5, metavar="S",
                   help="seconds between record writes while running (default 0.5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from adapters.local_provider import Faults, serve

    share = args.fail_rate / 4.0
    faults = Faults(latency_ms=args.latency_ms, error_rate=args.error_rate + share,
                    rate_429=args.rate_429 + share, timeout_rate=args.timeout_rate + share,
                    drop_rate=args.drop_rate + share, retry_after=args.retry_after,
                    retry_after_date=args.retry_after_date, hang_seconds=args.hang_seconds)
    stats = serve(port=args.port, rates=args.rate, faults=faults, seed=args.seed,
                  webhook_secret_env=args.webhook_secret_env, api_key_env=args.api_key_env,
                  twilio_env=tuple(args.twilio_env) if args.twilio_env else None,
                  record=args.record, record_every=args.record_every,
                  on_ready=lambda port: print(f"local provider on http://127.0.0.1:{port}", flush=True))
    print(f"stopped: {stats['accepted']:,} accepted, {stats['duplicates']:,} duplicates, "
          f"{sum(stats['rejected'].values()):,} rejected")
    return 0
