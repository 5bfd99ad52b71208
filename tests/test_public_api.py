"""The public API is exactly what engine.__all__ lists, and every name resolves."""

import importlib

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
