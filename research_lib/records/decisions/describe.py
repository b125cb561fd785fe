"""The sentences of a decision: :func:`describe_what`, :func:`describe_why`, :func:`describe_how` and the
signed GEX figure :func:`format_gex`. Pure."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

from research_lib.core.regime import describe_zero_gamma_distance
from research_lib.errors import DecisionError
from research_lib.formatting import fmt_money
from research_lib.records.decisions.records import MarketContext, _number, _text, _underlying

__all__ = ["describe_how", "describe_what", "describe_why", "format_gex"]


def format_gex(value: float | None) -> str:
    """Signed dollars with a scale: ``+2.45B``, ``-850.00M``, ``+12.30K``, ``n/a`` for None/NaN."""
    return fmt_money(None if value is None else float(value), small_decimals=2)


def _strike(k: Any) -> str:
    x = _number("strike", k, optional=False, positive=True)
    return f"{x:.0f}" if x == round(x) else f"{x:.2f}".rstrip("0")


def describe_what(action: str, contracts: int | None, underlying: str, strategy_name: str | None = None,
                  strikes: Sequence[float] = (), dte: int | None = None) -> str:
    """``"SELL 5x SPY Bull Put Spread 580/575 45DTE"``.

    ``contracts`` None or 0 leaves out the ``Nx`` (``"SKIP SPY Iron Condor"``); ``strikes`` are joined
    with ``/`` (582.5 stays 582.5, 580.0 becomes 580); ``dte`` None leaves out the days to expiry.
    """
    parts = [_text("action", action).upper()]  # type: ignore[union-attr]
    if contracts is not None:
        if isinstance(contracts, bool) or not isinstance(contracts, numbers.Integral) or contracts < 0:
            raise DecisionError(f"contracts must be a whole number >= 0, got {contracts!r}")
        if contracts:
            parts.append(f"{int(contracts)}x")
    parts.append(_underlying(underlying))
    if strategy_name is not None:
        parts.append(_text("strategy_name", strategy_name))  # type: ignore[arg-type]
    if isinstance(strikes, str | numbers.Real):
        strikes = [strikes]  # type: ignore[list-item]
    if len(strikes):
        parts.append("/".join(_strike(k) for k in strikes))
    if dte is not None:
        if isinstance(dte, bool) or not isinstance(dte, numbers.Integral) or dte < 0:
            raise DecisionError(f"dte must be a whole number of days >= 0, got {dte!r}")
        parts.append(f"{int(dte)}DTE")
    return " ".join(parts)


def describe_why(context: MarketContext, *, iv_rank: float | None = None, reasons: Iterable[str] = ()) -> str:
    """``"Positive GEX +2.45B with 45% IV rank; spot 584.20 is 1.57% above zero gamma 575.00; regime
    positive gamma; VIX 14.1."`` -- built from the context (parts it lacks are left out), then
    ``reasons`` (sentences of your own) appended. ``iv_rank`` is a percent in [0, 100]. The distance to
    zero gamma is :func:`research_lib.regime.describe_zero_gamma_distance` (% of spot, two decimals), the
    same figure the regime's reasons and the alerts print.
    """
    if not isinstance(context, MarketContext):
        raise DecisionError(f"context must be a MarketContext, got {type(context).__name__}")
    rank = _number("iv_rank", iv_rank)
    if rank is not None and not 0 <= rank <= 100:
        raise DecisionError(f"iv_rank must be a percent in [0, 100], got {iv_rank!r}")
    if context.net_gex is None:
        head = "GEX unknown"
    else:
        head = f"{'Positive' if context.net_gex >= 0 else 'Negative'} GEX {format_gex(context.net_gex)}"
    if rank is not None:
        head += f" with {rank:.0f}% IV rank"
    parts = [head]
    if context.zero_gamma is not None:
        dist = describe_zero_gamma_distance(context.spot, context.zero_gamma)
        parts.append(f"spot {context.spot:,.2f} is {dist} zero gamma {context.zero_gamma:,.2f}")
    else:
        parts.append(f"spot {context.spot:,.2f}")
    if context.regime is not None:
        parts.append(f"regime {context.regime}")
    if context.vix is not None:
        parts.append(f"VIX {context.vix:.1f}")
    if context.modelled:
        parts.append("modelled chain")
    if isinstance(reasons, str):
        reasons = [reasons]
    parts.extend(_text("reason", r).rstrip(".") for r in reasons)  # type: ignore[union-attr]
    return "; ".join(parts) + "."


def describe_how(sizing: Any = None, *extra: str) -> str:
    """``sizing.how`` (a :class:`~research_lib.sizing.SizingResult`'s sentence) followed by ``extra``
    sentences (an exit plan ...), joined with ``"; "``; ``"No position."`` when there is nothing."""
    parts = []
    if sizing is not None:
        how = getattr(sizing, "how", None)
        if not isinstance(how, str):
            raise DecisionError(f"sizing has no 'how' sentence: {type(sizing).__name__}")
        parts.append(how)
    parts.extend(_text("extra", e) for e in extra)  # type: ignore[misc]
    return "; ".join(parts) if parts else "No position."
