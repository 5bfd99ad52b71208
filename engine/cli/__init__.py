"""The ``winback`` command line: parse, hand off to one step, print, exit.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``func(args) -> int``.  Only :class:`engine.errors.WinbackError` is caught here:
it becomes one line on stderr and the error's exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine.errors import WinbackError

#: Subcommand modules in the order of the flow (score -> plan -> send -> report).
COMMANDS = (
    "generate",
    "validate",
    "score",
    "plan",
    "explain",
    "send",
    "provider",
    "receive",
    "simulate",
    "report",
    "sunset",
    "partition",
)

EPILOG = """\
the main job, end to end:
  winback generate --users 100000 --seed 7 -o world/
  winback validate world/users.arrow world/events.arrow --as-of 2026-11-01
  winback score world/users.arrow world/events.arrow --as-of 2026-11-01 -o scores.arrow
  winback plan scores.arrow examples/winback_lapsing.toml -o plan.arrow
  winback provider --port 8025 &      # a local provider speaking every provider's API
  winback send plan.arrow --providers examples/providers.local.toml --ledger ledger.db --now
  winback simulate plan.arrow --truth world/truth.arrow --ledger ledger.db -o outcomes/
  winback report plan.arrow outcomes/ --ledger ledger.db -o report/
  winback sunset report/ --ledger ledger.db --dry-run

run 'winback COMMAND --help' for the options of each step.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="winback",
        description="Score, plan, send and measure re-engagement campaigns for inactive users.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("winback")
    except PackageNotFoundError:  # running from a source tree
        ver = "unknown"
    parser.add_argument("--version", action="version", version=f"winback {ver}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"engine.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"engine.cli.{name}":
                continue  # step not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except WinbackError as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except BrokenPipeError:  # output piped into head or less that closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
