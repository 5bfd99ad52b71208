"""`winback receive`: take provider event webhooks and append them to an events directory."""

from __future__ import annotations

import argparse
import os

ENV = {
    "secret": "WINBACK_WEBHOOK_SECRET",
    "sendgrid_public_key": "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "sendgrid_secret": "SENDGRID_WEBHOOK_SECRET",
    "twilio_token": "TWILIO_AUTH_TOKEN",
}
#: longest --flush-seconds: under the webhook timeout of the providers (SendGrid waits ~10 s)
MAX_FLUSH_SECONDS = 10.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "receive",
        help="receive delivery/engagement webhooks (SendGrid, Twilio, push/webhook) into an events directory",
        description=(
            "Serve POST /sendgrid (SendGrid Event Webhook), POST /twilio (status callbacks) and POST /events "
            "(generic signed JSON for push and the webhook adapter); GET /_stats shows counters. Events are "
            "mapped to open/click/bounce/complaint/unsubscribe (and a survey's signed reason answers on /events; unknown "
            "event types are counted and skipped, malformed events rejected one by one) and written in batches as "
            "DIR/part-XXXXXX.arrow; "
            "a request is acknowledged only once its batch is on disk. Unsigned, forged, malformed or oversized "
            "requests get 4xx, and a replayed signed request is acknowledged without being written again; GET /_stats "
            "answers loopback clients, others need 'Authorization: Bearer <one of the secrets>'. "
            "Verification secrets come from the environment only: "
            f"{ENV['secret']} (/events, HMAC-SHA256 as the webhook adapter signs), "
            f"{ENV['sendgrid_public_key']} (SendGrid ECDSA key, base64 DER; needs the 'cryptography' package) "
            f"or {ENV['sendgrid_secret']} (shared-secret HMAC mode for /sendgrid), "
            f"{ENV['twilio_token']} (/twilio). A route without its secret refuses every request (403). "
            "Runs until Ctrl-C or SIGTERM, then writes what is buffered."
        ),
        epilog=(
            "examples:\n"
            "  WINBACK_WEBHOOK_SECRET=s3cret winback receive --port 8025 -o feedback/\n"
            "  winback receive --port 8025 -o feedback/ --ledger ledger.db --public-url https://hooks.example.com\n"
            "  curl -s http://127.0.0.1:8025/_stats          # counters: written, ignored, unknown, replays, rejected"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8025, metavar="P", help="port to listen on (default 8025)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="events directory (part files are added)")
    p.add_argument("--ledger", default=None, metavar="DB",
                   help="ledger of 'winback send': finds user ids by message id and records suppressions "
                        "(hard bounces, unsubscribes, complaints)")
    p.add_argument("--max-body-kb", type=int, default=1024, metavar="KB",
                   help="largest request body accepted, in KiB (default 1024); larger gets 413")
    p.add_argument("--flush-events", type=int, default=1000, metavar="N",
                   help="write a batch file every N events (default 1000)")
    p.add_argument("--flush-seconds", type=float, default=1.0, metavar="T",
                   help="... or after T seconds, whichever comes first (default 1.0, at most 10)")
    p.add_argument("--public-url", default=None, metavar="URL",
                   help="base URL providers call (Twilio signs the full URL); default: the request's own URL")
    p.add_argument("--read-timeout", type=float, default=10.0, metavar="S",
                   help="seconds a client has to send its request headers, and then its body (default 10); "
                        "slower connections are closed (headers) or answered 408 (body)")
    p.add_argument("--max-connections", type=int, default=256, metavar="N",
                   help="open connections at most (default 256); more are answered 503 and closed, e.g. "
                        "--max-connections 64 on a small machine")
    p.add_argument("--max-seconds", type=float, default=None, metavar="N",
                   help="stop after N seconds (for scripted runs); default: run until interrupted")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from engine.errors import ConfigError
    from engine.feedback.receiver import Receiver, serve

    if args.max_body_kb < 1 or args.flush_events < 1:
        raise ConfigError("--max-body-kb and --flush-events must be at least 1, e.g. --flush-events 1000")
    if not 0 < args.flush_seconds <= MAX_FLUSH_SECONDS:
        raise ConfigError(f"--flush-seconds must be above 0 and at most {MAX_FLUSH_SECONDS:g} (got "
                          f"{args.flush_seconds:g}): a request waits that long for its batch, and a provider "
                          "whose webhook timeout is shorter retries it as failed; e.g. --flush-seconds 1")
    if not args.read_timeout > 0 or args.max_connections < 1:
        raise ConfigError("--read-timeout must be above 0 seconds and --max-connections at least 1, "
                          "e.g. --read-timeout 10 --max-connections 256")
    secrets = {k: os.environ.get(v) or None for k, v in ENV.items()}
    if not any(secrets.values()):
        raise ConfigError("no verification secret is set, so every webhook would be refused; export at least "
                          f"one of {', '.join(ENV.values())}")
    from engine.feedback.parts import DirectoryLock

    lock = DirectoryLock(args.output).__enter__()  # one receiver per directory (held until the process ends)
    rec = Receiver(args.output, ledger=args.ledger, public_url=args.public_url, max_body=args.max_body_kb * 1024,
                   flush_events=args.flush_events, flush_seconds=args.flush_seconds,
                   read_timeout=args.read_timeout, max_connections=args.max_connections, **secrets)

    async def main() -> None:
        try:
            runner = await serve(rec, args.host, args.port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; pick another --port") \
                from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        port = runner.addresses[0][1] if runner.addresses else args.port
        print(f"receiving on http://{args.host}:{port} -> {args.output}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), args.max_seconds)
        except asyncio.TimeoutError:
            pass
        await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        lock.__exit__()
    s = rec.stats
    rejected = sum(s["rejected"].values())
    print(f"received {s['requests']:,} requests: {s['written']:,} events in {s['batches']:,} batches, "
          f"{s['suppressions']:,} suppressions, {s['ignored']:,} ignored, {s['unmatched']:,} unmatched, "
          f"{rejected:,} rejected -> {args.output}")
    return 0
