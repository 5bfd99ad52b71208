"""The public API is exactly what engine.__all__ lists, every name resolves to its home,
and stays callable whatever was imported before it (a fresh interpreter checks the order)."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

import engine


def test_every_public_name_resolves():
    # given the public list / when each name is looked up / then it exists
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name


def test_all_has_no_duplicates():
    assert len(engine.__all__) == len(set(engine.__all__))


def test_unknown_name_raises_attribute_error():
    try:
        engine.not_a_thing  # noqa: B018
    except AttributeError as exc:
        assert "not_a_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_errors_share_one_root():
    errors = importlib.import_module("engine.errors")
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.WinbackError)


def test_public_api_is_exactly_the_lazy_names_plus_errors():
    errors = importlib.import_module("engine.errors")
    error_names = {n for n in dir(errors) if isinstance(getattr(errors, n), type)
                   and issubclass(getattr(errors, n), Exception) and getattr(errors, n).__module__ == "engine.errors"}
    assert set(engine.__all__) == set(engine._LAZY) | error_names
    assert len(engine.__all__) == len(set(engine.__all__))


def test_public_api_stays_callable_after_importing_every_submodule():
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in engine.__all__:
        value = getattr(engine, name)
        assert callable(value), f"engine.{name} is {type(value).__name__} after importing every submodule"
        assert getattr(value, "__name__", name) == name


@pytest.mark.parametrize("name", sorted(engine._LAZY))
def test_each_public_name_resolves_to_its_home(name):
    value = getattr(engine, name)
    assert value.__module__ == engine._LAZY[name] or importlib.import_module(engine._LAZY[name]).__dict__[name] is value


def test_submodules_imported_first_never_shadow_a_public_name():
    # given a fresh interpreter that imports every engine module before touching the API
    code = (
        "import importlib, pkgutil, engine\n"
        "mods = [m.name for m in pkgutil.walk_packages(engine.__path__, 'engine.') if not m.name.endswith('__main__')]\n"
        "for m in mods: importlib.import_module(m)\n"
        "bad = [n for n in engine.__all__ if not callable(getattr(engine, n))]\n"
        "print(len(mods), bad)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    # then every public name is still a callable (the function or class), not a module
    assert proc.returncode == 0, proc.stderr
    n_mods, bad = proc.stdout.split(" ", 1)
    assert int(n_mods) > 50 and bad.strip() == "[]"
