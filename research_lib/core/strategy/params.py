"""Strategy parameters: :class:`StrategyParams` (leg selection, liquidity rules and pricing assumptions, with
their documented defaults) and their checks. Pure."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from research_lib.checks import FieldChecks, prefixed
from research_lib.core import gex
from research_lib.errors import StrategyParamsError
from research_lib.formatting import jsonable

__all__ = ["StrategyParams"]


def _finite_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_) \
        and math.isfinite(float(x))


_PARAM_CHECKS = FieldChecks(prefixed(StrategyParamsError, "StrategyParams"))


@dataclasses.dataclass(frozen=True)
class StrategyParams:
    """Every assumption of leg selection and pricing (see :mod:`research_lib.core.strategy`).

    Attributes
    ----------
    target_dte : int
        Calendar days to expiry wanted (45).
    dte_tolerance : int
        Expiries further than this many days from ``target_dte`` are not considered (15).
    short_delta : float
        ``|delta|`` of the short leg (0.30); of a debit spread's short (far) leg as well.
    long_delta : float
        ``|delta|`` of a credit spread's long (wing) leg when no width is given (0.15).
    debit_long_delta : float
        ``|delta|`` of a debit spread's long (near) leg (0.50).
    width_points, width_pct : float, optional
        Choose the far leg by width instead of delta: ``width_points`` in underlying points, or
        ``width_pct`` as a decimal fraction of spot (0.01 = 1 %). At most one of the two.
    min_open_interest : float
        Liquidity rule: contracts with less open interest are not used (5; 0: all). See the module
        docstring for why not more on index options.
    max_spread_pct : float or None
        Liquidity rule: largest relative bid/ask spread ``(ask − bid) / mid`` accepted, as a decimal fraction
        of the mid (0.10 = 10 %); None: no limit (then a zero-bid contract may still be bought, never sold).
    min_width_pct : float
        Narrowest structure the risk-budget fit tries, as a decimal fraction of spot (0.002 = 0.2 %: ~10
        points on SPX at 4,700, 1 point on XSP); at least one listed strike apart in any case.
    rate, div_yield : float
        Continuously compounded risk-free rate and dividend yield (decimals) for deltas, greeks, the
        forward and the lognormal drift.
    roots : tuple of str, optional
        Use only these roots, preferred in the order given; None: every root, preferred as below.
    prefer_pm : bool
        With ``roots=None``, at an expiry listed under several roots prefer the PM-settled one (SPXW over
        the AM-settled SPX monthly).
    multiplier : float
        Contract multiplier (100).
    fill_iv_from_mid : bool
        Imply a missing IV from the mid price (with ``rate``, ``div_yield``) instead of skipping the
        contract (False).
    """

    target_dte: int = 45
    dte_tolerance: int = 15
    short_delta: float = 0.30
    long_delta: float = 0.15
    debit_long_delta: float = 0.50
    width_points: float | None = None
    width_pct: float | None = None
    min_open_interest: float = 5.0
    max_spread_pct: float | None = 0.10
    min_width_pct: float = 0.002
    rate: float = 0.0
    div_yield: float = 0.0
    roots: tuple[str, ...] | None = None
    prefer_pm: bool = True
    multiplier: float = 100.0
    fill_iv_from_mid: bool = False

    def __post_init__(self):
        check, s = _PARAM_CHECKS, object.__setattr__
        for field in ("target_dte", "dte_tolerance"):
            s(self, field, check.whole(field, getattr(self, field), lo=0, hi=20_000, unit="calendar days",
                                       integral_floats=True))
        for field in ("short_delta", "long_delta", "debit_long_delta"):
            check.number(field, getattr(self, field), lo=0, hi=1, lo_open=True, hi_open=True, unit="absolute delta")
        check.require(self.long_delta < self.short_delta, "long_delta", self.long_delta,
                      f"must be below short_delta={self.short_delta!r} (the wing is further out)")
        check.require(self.short_delta < self.debit_long_delta, "debit_long_delta", self.debit_long_delta,
                      f"must be above short_delta={self.short_delta!r} (the long leg of a debit spread is "
                      "nearer the money)")
        check.require(self.width_points is None or self.width_pct is None, "width_pct", self.width_pct,
                      "give width_points or width_pct, not both")
        check.number("width_points", self.width_points, lo=0, lo_open=True, optional=True, unit="points")
        check.number("width_pct", self.width_pct, lo=0, hi=1, lo_open=True, hi_open=True, optional=True,
                     unit="decimal fraction of spot: 0.01 = 1%")
        check.number("min_width_pct", self.min_width_pct, lo=0, hi=1, hi_open=True,
                     unit="decimal fraction of spot: 0.002 = 0.2%")
        check.number("min_open_interest", self.min_open_interest, lo=0, unit="contracts")
        check.number("max_spread_pct", self.max_spread_pct, lo=0, lo_open=True, optional=True,
                     unit="decimal fraction of the mid: 0.5 = 50%")
        for field in ("rate", "div_yield"):
            check.number(field, getattr(self, field), lo=-1, hi=1, unit="decimal rate: 0.05 = 5%")
        if self.roots is not None:
            raw = (self.roots,) if isinstance(self.roots, str) else self.roots
            check.require(isinstance(raw, Sequence) and bool(raw)
                          and all(isinstance(r, str) and r.strip() for r in raw), "roots", self.roots,
                          "must be a non-empty tuple of root symbols (strings) or None")
            s(self, "roots", tuple(r.strip().upper() for r in raw))
        for field in ("prefer_pm", "fill_iv_from_mid"):
            check.flag(field, getattr(self, field))
        check.number("multiplier", self.multiplier, lo=0, lo_open=True, unit="shares per contract")

    @property
    def config(self) -> gex.GexConfig:
        """The :class:`~research_lib.gex.GexConfig` whose day count gives ``T``."""
        return gex.GexConfig.model(rate=float(self.rate), div_yield=float(self.div_yield))

    @property
    def by_width(self) -> bool:
        """True when the far leg is chosen by width rather than delta."""
        return self.width_points is not None or self.width_pct is not None

    def width_for(self, spot: float) -> float | None:
        """The far leg's distance in points (None when chosen by delta)."""
        if self.width_points is not None:
            return float(self.width_points)
        if self.width_pct is not None:
            return float(self.width_pct) * spot
        return None

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): every field."""
        return jsonable(dataclasses.asdict(self))


def _check_params(params: Any) -> StrategyParams:
    if params is None:
        return StrategyParams()
    if not isinstance(params, StrategyParams):
        raise StrategyParamsError(f"params must be a StrategyParams, got {type(params).__name__}")
    return params
