"""Numbers as people read them in tables, banners and the CLI (one place, so every report agrees)."""

from __future__ import annotations

import math


def fmt_money(x: float | None) -> str:
    """Signed dollars with a unit: ``+60.73B``, ``-1.20M``, ``+950``; ``n/a`` for None, NaN or inf."""
    if x is None or not math.isfinite(x):
        return "n/a"
    a = abs(x)
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if a >= div:
            return f"{x / div:+,.2f}{unit}"
    return f"{x:+,.0f}"


def fmt_level(x: float | None) -> str:
    """A price level with two decimals and thousands separators; ``none`` for None or NaN."""
    return "none" if x is None or not math.isfinite(x) else f"{x:,.2f}"
