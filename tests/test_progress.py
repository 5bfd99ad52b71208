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
    with bar(True, total=3, desc="sending", unit="msg", delay=0) as b:
        b.update(3)
    out, err = capsys.readouterr()
    assert out == ""
    assert "sending" in err and "100%" in err


class _Clock:
    def __init__(self):
        self.t = 1000.0

    def monotonic(self):
        return self.t


def test_work_shorter_than_the_delay_prints_nothing_and_longer_work_shows_everything_so_far(capsys, monkeypatch):
    import engine.progress as progress

    clock = _Clock()
    monkeypatch.setattr(progress, "time", clock)
    with bar(True, total=10, desc="events", unit="rows") as quick:
        quick.update(10)
        clock.t += progress.DELAY / 2
    assert quick.n == 10 and capsys.readouterr() == ("", "")

    with bar(True, total=10, desc="events", unit="rows") as slow:
        slow.update(4)
        slow.set_postfix(users=7)
        assert capsys.readouterr().err == ""  # not yet
        clock.t += progress.DELAY
        slow.update(2)  # the bar appears here, with the 6 so far and the postfix
        slow.set_description("scoring")
        slow.update(4)
    err = capsys.readouterr().err
    assert slow.n == 10 and "100%" in err and "10.0/10.0" in err and "users=7" in err and "scoring" in err
