"""Figures for the report pages, drawn with matplotlib's object API (``Figure``), never
``pyplot``: no global backend is chosen and nothing stays open between reports."""

from __future__ import annotations

from engine.errors import DependencyError

__all__ = ["figure"]


def figure(figsize: tuple[float, float]):
    """``(fig, ax)``: a new figure of ``figsize`` inches with one axes; ``fig.savefig`` writes PNG.

    Raises :class:`DependencyError` naming the extra when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise DependencyError("the report's plots need matplotlib: pip install 'winback[report]'") from None
    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()
