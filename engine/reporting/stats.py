"""Two-proportion intervals for lift reporting.

``wilson`` is the Wilson score interval for one proportion (Wilson 1927).
``newcombe_diff`` is Newcombe's hybrid score interval for p1 - p2 (Newcombe 1998,
method 10), which keeps its coverage near 95 % for small samples and rates near 0,
where the Wald interval fails.  ``relative_lift`` gives (p1/p2 - 1) with the Katz
log-ratio interval (Katz et al. 1978), undefined when p2 = 0.
"""

from __future__ import annotations

import math

__all__ = ["wilson", "newcombe_diff", "relative_lift", "verdict", "Z95"]

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n; (nan, nan) when n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(p1 - p2, lower, upper) with Newcombe's hybrid score interval."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan, math.nan)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (d, lower, upper)


def relative_lift(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(p1/p2 - 1, lower, upper) with the Katz log-ratio interval; nan when undefined."""
    if n1 <= 0 or n2 <= 0 or k2 == 0 or k1 == 0:
        return (math.nan, math.nan, math.nan)
    rr = (k1 / n1) / (k2 / n2)
    se = math.sqrt(1 / k1 - 1 / n1 + 1 / k2 - 1 / n2)
    return (rr - 1, rr * math.exp(-z * se) - 1, rr * math.exp(z * se) - 1)


def verdict(n1: int, n2: int, lo, hi, *, min_n: int, group: str, no_effect: str) -> str:
    """The report's note on a difference: "" when it can be told, else why not: fewer than
    ``min_n`` users in one of the two groups (named ``group``, e.g. "an arm"), or an
    interval [``lo``, ``hi``] that includes 0 (the text ``no_effect``)."""
    if min(n1, n2) < min_n:
        return f"too small to tell: fewer than {min_n} users in {group}"
    if lo is not None and hi is not None and lo <= 0 <= hi:
        return no_effect
    return ""
