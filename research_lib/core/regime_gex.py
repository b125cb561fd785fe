"""The GEX series the regime uses (``regime_gex``): net GEX over a window of expiries and strikes, averaged
over the next session's expected move of the underlying.

The headline net GEX (:attr:`research_lib.core.gex.KeyLevels.net_gex`) sums every live contract at today's
spot. As a regime input it is noisy: on the 2026 Cboe EOD archive its day-to-day changes have a standard
deviation larger than its mean, because the gamma of the short-dated contracts near spot swings with every
small spot move (the attribution of :mod:`research_lib.core.gex_change` shows it) and deep contracts carry
fragile IVs. ``regime_gex`` keeps the same units and sign convention ($ per 1% move, dealers long calls and
short puts) and changes only what is summed and where it is evaluated:

``RegimeGexSpec`` (the default, chosen on evidence — README "Net GEX as a regime signal")
    * expiries at least ``min_dte`` = 7 calendar days after the snapshot date (the week's expiries, whose
      gamma is mostly rolled or hedged before a regime trade is over, left out);
    * strikes within ``moneyness`` = ±10% of spot (the wings, whose IVs are the least reliable and whose gamma
      is negligible near spot, left out);
    * the gamma of each contract averaged over the next session's move of the underlying,
      ``E[GEX(S·exp(h·Z))]`` with ``Z ~ N(0, 1)`` and ``h = σ_atm / √252`` (``σ_atm``: the at-the-money IV of
      the expiry nearest 30 calendar days), by ``move_points``-point Gauss–Hermite quadrature — the exposure
      dealers carry over the range the next session is expected to cover, not at the single closing price;
    * each quote's own IV and the printed spot (``iv="surface"`` and ``spot="parity"`` are documented
      variants: the smoothed surface of :mod:`research_lib.core.surface` and the put-call-parity spot of
      :mod:`research_lib.core.parity`).

:data:`VARIANTS` names the variants measured for the choice (the same definitions on every archive); the
regime's thresholds are relative to the series' own trailing distribution (:mod:`research_lib.core.regime`).

Example
-------
>>> from research_lib.core import gex, regime_gex
>>> analysis = gex.analyze(snapshot)                                  # doctest: +SKIP
>>> regime_gex.of(analysis).value                                     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import pandas as pd

from research_lib.checks import FieldChecks, prefixed
from research_lib.core import gex as gex_mod, pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.core.parity import parity_spot
from research_lib.core.surface import smoothed_iv
from research_lib.errors import GexConfigError
from research_lib.formatting import jsonable

#: Trading sessions per year of the one-session move.
SESSIONS_PER_YEAR = 252.0
#: The ATM IV of the move is read from the expiry nearest this many calendar days.
ATM_TARGET_DAYS = 30.0

_CHECKS = FieldChecks(prefixed(GexConfigError, "RegimeGexSpec"))


@dataclasses.dataclass(frozen=True)
class RegimeGexSpec:
    """What ``regime_gex`` sums and where it evaluates it (see the module docstring).

    Attributes
    ----------
    name : str
        A label for tables and reports.
    min_dte, max_dte : int, int or None
        Expiries from ``min_dte`` to ``max_dte`` calendar days after the snapshot date (None: no upper bound).
    moneyness : float or None
        Strikes with ``|K / S - 1| <= moneyness`` (decimal; None: every strike).
    move_average : bool
        Average each contract's GEX over the next session's expected move (True) or take it at spot (False).
    move_points : int
        Gauss–Hermite points of that average (odd, 3-21).
    spot : {"print", "parity"}
        The spot the window is centred on and the gamma evaluated at: the snapshot's printed spot, or the spot
        implied by put-call parity of the front expiries (:func:`research_lib.core.parity.parity_spot`).
    iv : {"quote", "surface"}
        Each quote's own IV, or the smoothed per-expiry surface (:func:`research_lib.core.surface.smoothed_iv`).
    smoothing_span : int or None
        Span of an exponential moving average applied to the daily series (:func:`smooth`; None: none). A
        property of the series, not of one snapshot: :func:`of` ignores it.
    """

    name: str = "regime"
    min_dte: int = 7
    max_dte: int | None = None
    moneyness: float | None = 0.10
    move_average: bool = True
    move_points: int = 7
    spot: Literal["print", "parity"] = "print"
    iv: Literal["quote", "surface"] = "quote"
    smoothing_span: int | None = None

    def __post_init__(self):
        c = _CHECKS
        c.whole("min_dte", self.min_dte, lo=0, hi=10_000)
        if self.max_dte is not None:
            c.whole("max_dte", self.max_dte, lo=self.min_dte, hi=100_000)
        if self.moneyness is not None:
            c.number("moneyness", self.moneyness, lo=0, hi=10, lo_open=True, unit="decimal: 0.10 = ±10%")
        c.whole("move_points", self.move_points, lo=3, hi=21)
        c.require(self.move_points % 2 == 1, "move_points", self.move_points, "must be odd (a node at spot)")
        c.choice("spot", self.spot, ("print", "parity"))
        c.choice("iv", self.iv, ("quote", "surface"))
        if self.smoothing_span is not None:
            c.whole("smoothing_span", self.smoothing_span, lo=2, hi=250)

    def describe(self) -> str:
        """One line: ``expiries >= 7 d, strikes ±10%, averaged over the next session's move, quote IV, print spot``."""
        exp = f"expiries {self.min_dte}–{self.max_dte} d" if self.max_dte is not None else (
            f"expiries ≥ {self.min_dte} d" if self.min_dte else "every expiry")
        strikes = f"strikes ±{self.moneyness:.0%}" if self.moneyness is not None else "every strike"
        move = "averaged over the next session's move" if self.move_average else "at spot"
        parts = [exp, strikes, move, f"{self.iv} IV", f"{self.spot} spot"]
        if self.smoothing_span:
            parts.append(f"EMA span {self.smoothing_span}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


#: The default: the definition the regime, the daily report and the backtests use.
DEFAULT = RegimeGexSpec()

#: The documented variants measured for the choice (README, notebooks/gex_validation.ipynb). Each changes one or
#: two assumptions of the headline net GEX; none has a parameter fitted to any series.
VARIANTS: dict[str, RegimeGexSpec] = {
    "headline": RegimeGexSpec("headline", min_dte=0, moneyness=None, move_average=False),
    "ex_0_1d": RegimeGexSpec("ex_0_1d", min_dte=2, moneyness=None, move_average=False),
    "ex_week": RegimeGexSpec("ex_week", min_dte=7, moneyness=None, move_average=False),
    "strikes_10pct": RegimeGexSpec("strikes_10pct", min_dte=0, moneyness=0.10, move_average=False),
    "ex_week_10pct": RegimeGexSpec("ex_week_10pct", min_dte=7, moneyness=0.10, move_average=False),
    "ex_week_10pct_parity": RegimeGexSpec("ex_week_10pct_parity", min_dte=7, moneyness=0.10, move_average=False,
                                          spot="parity"),
    "ex_week_10pct_surface": RegimeGexSpec("ex_week_10pct_surface", min_dte=7, moneyness=0.10, move_average=False,
                                           iv="surface"),
    "headline_move": RegimeGexSpec("headline_move", min_dte=0, moneyness=None, move_average=True),
    "regime": DEFAULT,
    "headline_ema3": RegimeGexSpec("headline_ema3", min_dte=0, moneyness=None, move_average=False, smoothing_span=3),
    "ex_week_10pct_ema3": RegimeGexSpec("ex_week_10pct_ema3", min_dte=7, moneyness=0.10, move_average=False,
                                        smoothing_span=3),
    "regime_ema3": RegimeGexSpec("regime_ema3", smoothing_span=3),
}


@dataclasses.dataclass(frozen=True)
class RegimeGex:
    """``regime_gex`` of one snapshot.

    Attributes
    ----------
    value, call_gex, put_gex : float
        Net, call and put GEX of the window, $ per 1% move (calls +, puts − under the default dealer sign).
    spec : RegimeGexSpec
    spot : float
        The spot the window is centred on (the print, or the parity spot).
    move : float
        ``h``, the one-session standard deviation of log spot used for the average (0 when not averaged).
    atm_iv : float or None
        The ATM IV ``h`` comes from (decimal), None when not averaged.
    n_contracts : int
        Contracts in the window with a price (IV) and a live expiry.
    share_of_gross : float
        The window's gross GEX at spot (sum of each contract's ``|GEX|``) over every live contract's (0-1): how
        much of the chain's gamma the window holds.
    notes : tuple of str
    """

    value: float
    call_gex: float
    put_gex: float
    spec: RegimeGexSpec
    spot: float
    move: float
    atm_iv: float | None
    n_contracts: int
    share_of_gross: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["spec"] = self.spec.to_dict()
        out["definition"] = self.spec.describe()
        return jsonable(out)


def atm_iv(contracts: pd.DataFrame, T: np.ndarray, dte: np.ndarray, spot: float, forward_factor: np.ndarray,
           target_days: float = ATM_TARGET_DAYS) -> float | None:
    """At-the-money IV of the live expiry nearest ``target_days``: the mean of the call and put IVs at the strike
    nearest the forward (decimal). None when no live expiry has an IV near the money."""
    iv = contracts["iv"].to_numpy()
    K = contracts["strike"].to_numpy()
    ok = (T > 0) & np.isfinite(iv) & (iv > 0)
    if not ok.any():
        return None
    days = np.unique(dte[ok])
    for d in days[np.argsort(np.abs(days - target_days), kind="stable")]:
        m = ok & (dte == d)
        F = spot * forward_factor[m][0]
        k = K[m]
        nearest = np.abs(k - F) == np.abs(k - F).min()
        if abs(k[nearest][0] / F - 1) <= 0.05:
            return float(np.mean(iv[m][nearest]))
    return None


def of(analysis_or_snapshot, config: gex_mod.GexConfig | None = None, spec: RegimeGexSpec = DEFAULT) -> RegimeGex:
    """``regime_gex`` of one snapshot.

    Parameters
    ----------
    analysis_or_snapshot : GexAnalysis or ChainSnapshot
        With a :class:`~research_lib.core.gex.GexAnalysis`, its snapshot and config are used.
    config : GexConfig, optional
        Rates, dealer sign and day count (default: the analysis' config, else :meth:`GexConfig.model`). The
        gamma is always the model's, from each contract's IV (a vendor-gamma config such as ``perfiliev`` is
        evaluated with the model at its own rates: the regime's convention is ``model``); the config's expiry
        filter is not applied (the spec's window is).
    spec : RegimeGexSpec
        The definition (default :data:`DEFAULT`).

    Raises
    ------
    NoExposureError
        No live, priced contract in the window.
    NoParityExpiryError
        ``spec.spot="parity"`` and no expiry of the chain has the quotes put-call parity needs.
    """
    if isinstance(analysis_or_snapshot, ChainSnapshot):
        snapshot = analysis_or_snapshot
        config = config or gex_mod.GexConfig.model()
    else:
        snapshot = analysis_or_snapshot.snapshot
        config = config or analysis_or_snapshot.config
    if not isinstance(spec, RegimeGexSpec):
        raise GexConfigError(f"spec must be a RegimeGexSpec, got {type(spec).__name__}")
    if config.gamma_source != "model" or config.day_count != "calendar" or config.expiries != gex_mod.ExpiryFilter():
        config = gex_mod.GexConfig.model(rate=config.rate, div_yield=config.div_yield,
                                         dealer_sign=config.dealer_sign)
    notes: list[str] = []
    c = snapshot.contracts
    T = gex_mod.time_to_expiry(snapshot, config)
    S = snapshot.spot
    if spec.spot == "parity":
        ps = parity_spot(snapshot, config)
        S = ps.spot
        notes.append(f"parity spot {S:,.2f} ({S - snapshot.spot:+,.2f} against the print)")
    iv = c["iv"].to_numpy()
    if spec.iv == "surface":
        fitted = smoothed_iv(snapshot, config, spot=S)
        iv = np.where(np.isfinite(fitted.iv), fitted.iv, iv)
        notes.extend(fitted.notes)
    K = c["strike"].to_numpy()
    oi = c["open_interest"].to_numpy()
    is_call = (c["right"] == "C").to_numpy()
    exp = pd.DatetimeIndex(c["expiration"])
    dte = (exp - pd.Timestamp(snapshot.snapshot_date)).days.to_numpy()
    live = (T > 0) & np.isfinite(iv) & (iv > 0)
    window = dte >= spec.min_dte
    if spec.max_dte is not None:
        window &= dte <= spec.max_dte
    if spec.moneyness is not None:
        window &= np.abs(K / S - 1.0) <= spec.moneyness
    keep = live & window
    if not keep.any():
        raise gex_mod.NoExposureError(f"{snapshot.source}: no live priced contract in the regime window "
                                      f"({spec.describe()})")
    r, q = config.rate, config.div_yield
    sign = np.where(is_call, config.dealer_sign[0], config.dealer_sign[1])
    weight = sign * oi * gex_mod.CONTRACT_MULTIPLIER
    # every live contract at spot: the gross GEX the window's share is measured against
    at_spot = np.nan_to_num(weight[live] * pricing.gamma(S, K[live], T[live], iv[live], r, q) * S * S
                            * gex_mod.ONE_PERCENT)
    in_window = keep[live]
    Tk, Kk, ivk, wk, callk = T[keep], K[keep], iv[keep], weight[keep], is_call[keep]

    def exposure_at(s: float) -> np.ndarray:
        return np.nan_to_num(wk * pricing.gamma(s, Kk, Tk, ivk, r, q) * s * s * gex_mod.ONE_PERCENT)

    move = 0.0
    sigma = None
    if spec.move_average:
        sigma = atm_iv(c, T, dte, S, np.exp((r - q) * np.where(T > 0, T, 0.0)))
        if sigma is None:
            notes.append("no at-the-money IV near 30 days: GEX taken at spot, not averaged over the move")
        else:
            move = sigma / math.sqrt(SESSIONS_PER_YEAR)
    if move > 0:
        nodes, weights = np.polynomial.hermite_e.hermegauss(spec.move_points)
        weights = weights / weights.sum()
        per_contract = sum(w * exposure_at(S * math.exp(move * x)) for x, w in zip(nodes, weights, strict=True))
    else:
        per_contract = at_spot[in_window]
    call = float(per_contract[callk].sum())
    put = float(per_contract[~callk].sum())
    gross = float(np.abs(at_spot).sum())
    share = float(np.abs(at_spot[in_window]).sum()) / gross if gross > 0 else math.nan
    return RegimeGex(value=call + put, call_gex=call, put_gex=put, spec=spec, spot=float(S), move=float(move),
                     atm_iv=sigma, n_contracts=int(keep.sum()), share_of_gross=float(share), notes=tuple(notes))


def smooth(series: pd.Series, spec: RegimeGexSpec = DEFAULT) -> pd.Series:
    """The daily series as the spec defines it: an EMA of span ``spec.smoothing_span`` (``adjust=True``: the
    first day is its own value; each day sees only days before it), or the series unchanged.

    A gap in the dates is not filled: the EMA runs over the observations in order.
    """
    if not spec.smoothing_span:
        return series
    return series.ewm(span=spec.smoothing_span, adjust=True).mean()


__all__ = ["ATM_TARGET_DAYS", "DEFAULT", "RegimeGex", "RegimeGexSpec", "SESSIONS_PER_YEAR", "VARIANTS", "atm_iv",
           "of", "smooth"]
