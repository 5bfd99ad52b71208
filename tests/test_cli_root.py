"""The CLI root: help lists the steps, unknown commands fail, errors become one line."""

import subprocess
import sys

from engine.cli import main


def test_help_lists_the_flow(capsys):
    # given no command / when winback runs / then it prints help and exits 2
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "winback" in out and "score" in out


def test_console_script_help_runs():
    proc = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "usage: winback" in proc.stdout


def test_console_exit_flushes_every_line_and_keeps_the_exit_code(tmp_path):
    # given a small world scored by the console entry (which ends the process without teardown)
    world = tmp_path / "w"
    gen = subprocess.run([sys.executable, "-m", "engine", "generate", "--users", "300", "--seed", "3", "-o", str(world)],
                         capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr
    proc = subprocess.run([sys.executable, "-m", "engine", "score", str(world / "users.arrow"),
                           str(world / "events.arrow"), "--as-of", "2026-11-01", "-o", str(tmp_path / "s.arrow"),
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    # then every summary line reached the pipe, the output exists and the code is 0
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("scored 300 users") and "lifecycle:" in proc.stdout
    assert (tmp_path / "s.arrow").stat().st_size > 0
    # and an error keeps its one line and exit code
    bad = subprocess.run([sys.executable, "-m", "engine", "score", str(tmp_path / "none.arrow"), "x", "-o",
                          str(tmp_path / "x.arrow")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("InputError:")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _world(tmp_path):
    assert main(["generate", "--users", "60", "--seed", "2", "--no-progress", "-o", str(tmp_path / "w")]) == 0
    return tmp_path / "w" / "users.arrow", tmp_path / "w" / "events.arrow"


def test_an_as_of_years_away_is_one_line_for_every_command(tmp_path, capsys):
    # given a real world and an --as-of in the year 9999 (or in year 1, east of Greenwich)
    users, events = _world(tmp_path)
    capsys.readouterr()
    for argv in (["score", str(users), str(events), "--as-of", "9999-12-31", "-o", str(tmp_path / "s.arrow")],
                 ["backtest", str(users), str(events), "--as-of", "9999-12-31", "-o", str(tmp_path / "bt")],
                 ["validate", str(users), str(events), "--as-of", "0001-01-01T00:00:00+05:00"],
                 ["generate", "--users", "5", "--as-of", "9999-12-31", "-o", str(tmp_path / "w2")]):
        # when run, then one line says the years it takes, exit 2, and nothing is written
        assert main(argv) == 2, argv
        assert "is not between 1900 and 2199" in _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_an_output_suffix_that_is_no_format_is_refused_before_the_work(tmp_path, capsys):
    # given a real world, scored into a .txt file (a typo for .arrow)
    users, events = _world(tmp_path)
    capsys.readouterr()
    code = main(["score", str(users), str(events), "--as-of", "2026-11-01", "--no-progress",
                 "-o", str(tmp_path / "scores.txt")])
    # then one line names the output and the suffixes it takes, exit 2, no file
    assert code == 2
    err = _one_line(capsys)
    assert f"cannot write {tmp_path / 'scores.txt'}: the suffix '.txt' is no table format" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_a_negative_seed_is_one_line_and_no_directory(tmp_path, capsys):
    code = main(["generate", "--users", "5", "--seed", "-1", "-o", str(tmp_path / "w")])
    assert code == 2 and "--seed must be a whole number from 0" in _one_line(capsys)
    assert not (tmp_path / "w").exists()


def test_an_output_onto_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    # given a real world on disk (users, events, truth, items, world.json)
    users, events = _world(tmp_path)
    world = users.parent
    before = {p.name: p.read_bytes() for p in world.iterdir()}
    assert main(["score", str(users), str(events), "--as-of", "2026-11-01", "--no-progress",
                 "-o", str(tmp_path / "s.arrow")]) == 0
    assert main(["plan", str(tmp_path / "s.arrow"), "examples/winback_lapsing.toml", "-o", str(tmp_path / "p.arrow")]) == 0
    capsys.readouterr()
    cases = [  # each replaced an input before: the events with scores, the world with outcomes, a file with a report
        (["score", str(users), str(events), "--as-of", "2026-11-01", "--no-progress", "-o", str(events)],
         f"cannot write {events}: it is the input {events}"),
        (["simulate", str(tmp_path / "p.arrow"), "--truth", str(world / "truth.arrow"), "-o", str(world)],
         f"cannot write {world}: it holds items.arrow, truth.arrow, users.arrow, world.json"),
        (["report", str(tmp_path / "p.arrow"), str(events), "-o", str(users)],
         f"cannot write {users}: it is a file, and this output is a directory"),
    ]
    for argv, says in cases:
        # when run, then one line, exit 2, and every input byte for byte as it was
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and says in err, (argv, err)
        assert {p.name: p.read_bytes() for p in world.iterdir()} == before



_LEAN = """
import sys
from engine.cli import main
code = main(["score", sys.argv[1] + "/users.arrow", sys.argv[1] + "/events.arrow", "--as-of", "2026-11-01",
             "-o", sys.argv[1] + "/s.arrow"])
print(code, [name for name in ("pandas", "tqdm") if name in sys.modules])
"""


def test_a_quick_score_imports_neither_pandas_nor_tqdm(tmp_path):
    """The command keeps pyarrow's first-call probe from importing pandas, and a run shorter
    than the progress delay never imports tqdm (its bar would not have appeared)."""
    gen = subprocess.run([sys.executable, "-m", "engine", "generate", "--users", "300", "--seed", "3", "-o",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr
    proc = subprocess.run([sys.executable, "-c", _LEAN, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1] == "0 []"
