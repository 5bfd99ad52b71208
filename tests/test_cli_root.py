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
