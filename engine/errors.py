"""Errors raised by winback, written for the person running it.

Every error a user can cause derives from :class:`WinbackError`; the CLI catches
only that root, prints ``Name: message`` on one line of stderr and exits with the
error's ``exit_code``.  Anything else escaping is a bug in winback.

::

    WinbackError                  root; never raised directly
    ├── InputError                a users/events/items/plan file breaks the data contract
    ├── ConfigError               a campaign or providers TOML file is invalid
    ├── RuleError                 an audience rule does not parse or type-check (ConfigError)
    ├── ModelError                a model fit did not converge or has too little data
    ├── PolicyError               a campaign is refused by a guard (e.g. broadcast guard)
    ├── DispatchError             sending could not start or finish (ledger, provider setup)
    │   └── Interrupted           a send was stopped by a signal; rerun to resume
    ├── DependencyError           an optional extra (report, dask, bench) is not installed
    └── StorageError              the disk is full or a path is read-only (exit 7)
"""

from __future__ import annotations

__all__ = [
    "WinbackError",
    "InputError",
    "ConfigError",
    "RuleError",
    "ModelError",
    "PolicyError",
    "DispatchError",
    "Interrupted",
    "DependencyError",
    "StorageError",
]


class WinbackError(Exception):
    """Root of every error winback raises on purpose."""

    exit_code = 1


class InputError(WinbackError):
    """Raised when an input file or table breaks the data contract (exit code 2)."""

    exit_code = 2


class ConfigError(WinbackError):
    """Raised when a campaign or providers file is missing keys or has bad values (exit 2)."""

    exit_code = 2


class RuleError(ConfigError):
    """Raised when an audience rule has a syntax error, unknown column or type mismatch."""


class ModelError(WinbackError):
    """Raised when a model cannot be fitted (no convergence, degenerate data); carries diagnostics."""

    exit_code = 3

    def __init__(self, message: str, diagnostics: dict | None = None):
        super().__init__(message)
        self.diagnostics = dict(diagnostics or {})


class PolicyError(WinbackError):
    """Raised when a campaign is refused by a safety guard such as the broadcast guard (exit 4)."""

    exit_code = 4


class DispatchError(WinbackError):
    """Raised when a send cannot start or continue: bad ledger, unreachable provider setup (exit 5)."""

    exit_code = 5


class Interrupted(DispatchError):
    """Raised when a send was stopped by SIGINT/SIGTERM after draining; rerun on the same ledger to resume (exit 130)."""

    exit_code = 130


class DependencyError(WinbackError):
    """Raised when an optional extra is needed but not installed; says which ``pip install`` fixes it."""

    exit_code = 6


class StorageError(WinbackError):
    """Raised when an output cannot be written: the disk is full, the file is too large for
    the filesystem or a limit, or the directory is read-only (exit 7); names the file."""

    exit_code = 7
