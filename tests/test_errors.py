"""Every error winback raises on purpose derives from WinbackError and carries its documented exit code."""

from __future__ import annotations

import pytest

import engine.errors as errors
from engine.errors import (ConfigError, DependencyError, DispatchError, InputError, Interrupted, ModelError,
                           PolicyError, RuleError, StorageError, WinbackError)

#: the exit codes the module docstring and docs/ promise
EXIT_CODES = {WinbackError: 1, InputError: 2, ConfigError: 2, RuleError: 2, ModelError: 3, PolicyError: 4,
              DispatchError: 5, Interrupted: 130, DependencyError: 6, StorageError: 7}


def test_all_lists_every_error_class_and_nothing_else():
    classes = {name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, Exception)}
    assert set(errors.__all__) == classes
    assert {cls.__name__ for cls in EXIT_CODES} == classes


@pytest.mark.parametrize("cls, code", EXIT_CODES.items(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_each_class_derives_winback_error_with_its_exit_code(cls, code):
    assert issubclass(cls, WinbackError)
    assert cls.exit_code == code
    err = cls("users.csv, column user_id: not an integer")
    assert str(err) == "users.csv, column user_id: not an integer"
    assert err.exit_code == code


def test_subclass_relations_follow_the_documented_tree():
    assert issubclass(RuleError, ConfigError)
    assert issubclass(Interrupted, DispatchError)
    for cls in (InputError, ConfigError, ModelError, PolicyError, DispatchError, DependencyError, StorageError):
        assert cls.__bases__ == (WinbackError,)
    assert WinbackError.__bases__ == (Exception,)


def test_model_error_keeps_a_copy_of_its_diagnostics():
    diag = {"iterations": 200, "gradient_norm": 0.3}
    err = ModelError("BG/NBD fit did not converge", diag)
    diag["iterations"] = 0
    assert err.diagnostics == {"iterations": 200, "gradient_norm": 0.3}
    assert ModelError("too few users").diagnostics == {}
    with pytest.raises(WinbackError, match="too few users"):
        raise ModelError("too few users")
