"""Report figures: a matplotlib Figure with one axes that writes a PNG, without pyplot."""

from __future__ import annotations

import sys

import pytest

from engine.reporting.plots import figure


def test_figure_has_the_size_and_one_axes_and_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    fig, ax = figure((4.0, 2.5))
    assert tuple(fig.get_size_inches()) == (4.0, 2.5) and fig.axes == [ax]
    ax.plot([0, 1, 2], [0, 1, 4])
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drawing_a_figure_never_imports_pyplot():
    pytest.importorskip("matplotlib")
    code = ("import sys\nfrom engine.reporting.plots import figure\nfig, ax = figure((1, 1))\n"
            "ax.plot([0, 1])\nfig.savefig(sys.argv[1])\nprint('matplotlib.pyplot' in sys.modules)")
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", code, f"{d}/p.png"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
