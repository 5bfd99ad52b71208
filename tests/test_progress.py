"""Progress bars: silent when off, a tqdm bar on stderr when on."""

from __future__ import annotations

from engine.progress import NullBar, bar


def test_disabled_bar_is_silent_and_still_counts(capsys):
    with bar(False, total=10, desc="scoring") as b:
        assert isinstance(b, NullBar)
        b.update()
        b.update(4)
        b.set_postfix(users=5)
        b.set_description("planning")
    assert b.n == 5
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_enabled_bar_writes_to_stderr_only(capsys):
    with bar(True, total=3, desc="sending", unit="msg") as b:
        b.update(3)
    out, err = capsys.readouterr()
    assert out == ""
    assert "sending" in err and "100%" in err
