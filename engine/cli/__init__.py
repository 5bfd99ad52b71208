"""The ``winback`` command line: parse, hand off to one step, print, exit.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``func(args) -> int``.  :class:`engine.errors.WinbackError` is caught here: it
becomes one line on stderr (scrubbed of every registered secret) and the error's exit
code; so does an ``OSError`` of a full or read-only disk (a ``StorageError``, exit 7).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from engine.errors import WinbackError

#: Subcommand modules in the order of the flow (score -> plan -> send -> report).
COMMANDS = (
    "generate",
    "validate",
    "score",
    "backtest",
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
  winback backtest world/users.arrow world/events.arrow --as-of 2026-11-01 -o backtest/   # trust check
  winback plan scores.arrow examples/winback_lapsing.toml -o plan.arrow
  winback provider --port 8025 &      # a local provider speaking every provider's API
  winback send plan.arrow --providers examples/providers.local.toml --ledger ledger.db --now
  winback simulate plan.arrow --truth world/truth.arrow --ledger ledger.db -o outcomes/
  winback report plan.arrow outcomes/ --ledger ledger.db -o report/
  winback sunset report/ --ledger ledger.db --dry-run

run 'winback COMMAND --help' for the options of each step.
"""


class _Version(argparse.Action):
    """``--version``, reading the package metadata only when asked (importlib.metadata costs ~20 ms)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("winback")
        except PackageNotFoundError:  # running from a source tree
            ver = "unknown"
        parser.exit(message=f"winback {ver}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` (what ``main`` uses for a known command,
    so that running one step never imports the modules of the others)."""
    parser = argparse.ArgumentParser(
        prog="winback",
        description="Score, plan, send and measure re-engagement campaigns for inactive users.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="show the installed winback version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        try:
            module = importlib.import_module(f"engine.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"engine.cli.{name}":
                continue  # step not built yet
            raise
        module.register(sub)
    return parser


def _pyarrow_without_pandas() -> None:
    """Tell pyarrow, before its first call, that pandas is absent (saves its 0.2 s import).

    pyarrow imports pandas on its first array or compute call, only to recognise pandas
    objects among the arguments; the command line never hands it any.  A later
    ``to_pandas()`` still imports pandas.  Skipped when pandas is already loaded.
    """
    if "pandas" in sys.modules:
        return

    class _Hidden:
        def find_spec(self, name, path=None, target=None):
            if name == "pandas":
                raise ModuleNotFoundError("pandas is not needed by the command line", name=name)
            return None

    import pyarrow as pa

    hidden = _Hidden()
    sys.meta_path.insert(0, hidden)
    try:
        pa.array([0])  # pyarrow's one pandas probe happens here
    finally:
        sys.meta_path.remove(hidden)


#: True once :func:`main` runs: what only the command may change in the process reads it
#: (``engine.jit`` then loads numba without cffi).
COMMAND_LINE = False

#: True while :func:`console` holds the cyclic garbage collector for the start-up imports
_GC_HELD = False


def _import_step(command: str | None) -> None:
    """Import the library modules the step's ``run`` needs (its module's ``IMPORTS``), then
    let the garbage collector go, with everything imported so far frozen out of its scans.

    :func:`console` holds the collector from the start: numba, pyarrow and the step's
    modules create a few hundred thousand long-lived objects, and each full collection
    during those imports walks all of them (40 ms of a 0.5 s ``winback score`` on 1,000
    users).  Frozen (``gc.freeze``), they are never walked again; the command itself runs
    with the collector on as usual.
    """
    global _GC_HELD
    try:
        module = sys.modules.get(f"engine.cli.{command}") if command else None
        for name in getattr(module, "IMPORTS", ()):
            importlib.import_module(name)
    finally:
        if _GC_HELD:
            _GC_HELD = False
            gc.freeze()
            gc.enable()


def main(argv: list[str] | None = None) -> int:
    global COMMAND_LINE
    COMMAND_LINE = True
    # numba's OpenMP threads sleep instead of spinning between parallel regions, unless the
    # user chose otherwise: on a shared, loaded 2-core machine the whole score ran 15-30 %
    # faster; on a quiet one, 1M users / 50M events, the same wall time (9.9-11.6 s against
    # 10.5-15.2 s) with less CPU (11.8-13.0 s user against 13.1-14.1 s).  Only the command:
    # a program that embeds winback keeps its own OpenMP settings.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "numpy" not in sys.modules:
        # The same for OpenBLAS (numpy's BLAS), which reads it when numpy loads: an idle BLAS thread
        # spins 2**28 cycles (about 0.1 s) before it sleeps, from numpy's import on and after every
        # BLAS call; on 2 cores that spin took a core from the decoding and fitting threads (0.1 s
        # of CPU, a 1,000-user score 20-40 ms slower on a busy machine).  Only how an idle thread
        # waits changes: the same threads do the same work.
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    from engine.cli import compute_on_use

    compute_on_use.install()  # pyarrow.compute makes its function wrappers as they are read
    if command not in (None, "provider") and "--dask" not in argv:  # Dask hands pandas objects to pyarrow
        _pyarrow_without_pandas()
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _import_step(command)
        return int(args.func(args) or 0)
    except WinbackError as exc:
        from engine.sending.scrub import scrub

        name = next(c.__name__ for c in type(exc).__mro__ if not c.__name__.startswith("_"))  # a public class
        sys.stderr.write(f"{name}: {scrub(str(exc))}\n")
        return exc.exit_code
    except BrokenPipeError:  # output piped into head or less that closed early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full or read-only disk outside an atomic write: one line too
        from engine.io.atomic import storage_error

        err = storage_error(exc)
        if err is None:
            raise
        sys.stderr.write(f"{type(err).__name__}: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130


def console() -> None:
    """The ``winback`` command (and ``python -m engine``): :func:`main`, then the exit.

    Once the command is done and no other thread runs, the exit handlers run, the
    standard streams are flushed and the process ends without tearing the interpreter
    down module by module (with numba and pyarrow loaded that teardown took 0.1-0.15 s,
    a fifth of a small ``winback score``).  Called as a function, :func:`main` returns.
    The garbage collector is held through the start-up imports (:func:`_import_step`).
    """
    global _GC_HELD
    if gc.isenabled():
        _GC_HELD = True
        gc.disable()
    code = main()
    import threading

    if threading.active_count() == 1:
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed or a broken pipe: nothing more to say
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
