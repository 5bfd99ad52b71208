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
