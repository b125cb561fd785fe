"""Put-call parity: the forward and the spot a chain's own quotes imply.

End-of-day option quotes are often taken after the 16:00 print (the 2026 Cboe EOD archive was fetched in
the evening): the quotes then price the index where it traded after the close, not where it closed.
Put-call parity reads that level back out of the quotes.

Method
------
For a European call and put of the same strike ``K`` and expiry, ``C − P = e^{−rT} (F − K)``, so each
strike gives a forward ``F_K = K + e^{rT} (C_mid − P_mid)`` from the mid quotes. Per expiry
(:func:`implied_forwards`):

1. Pair the call and the put of each (root, expiry, strike). A pair is usable when both sides are
   two-sided quotes: finite bid and ask, ``bid > 0``, ``ask >= bid``, and a relative spread
   ``(ask − bid) / mid <= max_rel_spread`` on each side.
2. Keep the ``n_strikes`` usable strikes nearest the snapshot's spot (ties: the lower strike first). An
   expiry needs at least :data:`MIN_STRIKES` (3) of them.
3. ``forward`` = the median of the per-strike forwards; ``dispersion`` = their median absolute deviation
   (points, unscaled: ``median |F_K − forward|``), a measure of how well the strikes agree.
4. ``spot`` = ``forward × e^{−(r − q) T}``: the spot the quotes imply under the config's ``rate`` (r) and
   ``div_yield`` (q), both continuous.

``T`` is the config's time to expiry (:func:`research_lib.core.gex.time_to_expiry`: calendar time from
the valuation moment to the settlement moment, in years). Expiries with ``T × days_per_year < min_days``
are left out: within a day of settlement the quotes carry little time value and, after the close, the
same-day expiry has settled. An expiry listed under two roots (an SPX AM monthly and the SPXW PM contract
of the same date) gives one row: the PM root's when it has enough usable strikes, else the AM root's
(its ``T`` runs to the 09:30 open).

:func:`parity_spot` takes the median implied spot of the first ``n_expiries`` expiries with
``min_days <= T × days_per_year <= max_days``.

Measured on the real archives (``research_lib.pipeline.gex_effects``): the 2026 EOD archive's parity
spot differs from the 16:00 print by a standard deviation of about 9 points (+40 on 2026-06-24); the
2019 intraday archive, whose quotes match its ``underlying_last``, by under 1 point.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from research_lib.core.chain import ChainSnapshot
from research_lib.core.gex import GexConfig, time_to_expiry
from research_lib.errors import NoParityExpiryError, QuoteFitArgumentError
from research_lib.formatting import jsonable

__all__ = ["FORWARD_COLUMNS", "MIN_STRIKES", "ParitySpot", "implied_forwards", "parity_spot", "usable_quotes"]

#: Fewest usable strikes an expiry needs for a forward.
MIN_STRIKES = 3
#: Columns of :func:`implied_forwards`' table.
FORWARD_COLUMNS = ("expiration", "root", "settlement", "T", "forward", "spot", "n_strikes", "dispersion")


def usable_quotes(bid: np.ndarray, ask: np.ndarray, max_rel_spread: float) -> np.ndarray:
    """Boolean mask of two-sided quotes: finite, ``bid > 0``, ``ask >= bid`` and
    ``(ask − bid) / mid <= max_rel_spread``."""
    bid = np.asarray(bid, dtype=float)
    ask = np.asarray(ask, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = 0.5 * (bid + ask)
        rel = (ask - bid) / mid
        return np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid) & (rel <= max_rel_spread)


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float | np.integer | np.floating) and np.isfinite(value) and value > 0):
        raise QuoteFitArgumentError(f"{name} must be a positive finite number, got {value!r}", argument=name)


def implied_forwards(snapshot: ChainSnapshot, config: GexConfig, *, n_strikes: int = 6, min_days: float = 1.0,
                     max_rel_spread: float = 0.5) -> pd.DataFrame:
    """Per expiry, the forward and the spot implied by put-call parity (see the module docstring).

    Parameters
    ----------
    snapshot : ChainSnapshot
        The chain; its bid and ask columns are used (vendor IVs and greeks are not).
    config : GexConfig
        ``rate`` and ``div_yield`` (continuous decimals) and the day count (``T`` in years).
    n_strikes : int, default 6
        Strikes nearest the snapshot's spot whose forwards are combined (at least 3 must be usable).
    min_days : float, default 1.0
        Expiries closer than this (``T × config.days_per_year``, days) are left out.
    max_rel_spread : float, default 0.5
        Largest ``(ask − bid) / mid`` of a quote used.

    Returns
    -------
    DataFrame
        One row per live expiry with usable quotes at >= 3 strikes, sorted by expiration; columns
        :data:`FORWARD_COLUMNS`: ``expiration`` (Timestamp), ``root`` and ``settlement`` of the rows
        used, ``T`` (years), ``forward`` (points), ``spot`` (points, ``forward × e^{−(r−q)T}``),
        ``n_strikes`` (strikes used), ``dispersion`` (MAD of the per-strike forwards, points). Empty
        (with those columns) when no expiry qualifies.

    Raises
    ------
    QuoteFitArgumentError
        ``n_strikes`` below 3, or a non-positive ``min_days`` / ``max_rel_spread``.
    """
    if int(n_strikes) != n_strikes or n_strikes < MIN_STRIKES:
        raise QuoteFitArgumentError(f"n_strikes must be a whole number >= {MIN_STRIKES}, got {n_strikes!r}",
                                    argument="n_strikes")
    _check_positive("min_days", min_days)
    _check_positive("max_rel_spread", max_rel_spread)
    c = snapshot.contracts
    T = time_to_expiry(snapshot, config)
    ok = usable_quotes(c["bid"].to_numpy(), c["ask"].to_numpy(), max_rel_spread)
    ok &= T * config.days_per_year >= min_days * (1.0 - 1e-9)
    q = pd.DataFrame({"root": c["root"], "expiration": c["expiration"], "settlement": c["settlement"],
                      "strike": c["strike"], "right": c["right"], "mid": 0.5 * (c["bid"] + c["ask"]), "T": T})[ok]
    key = ["root", "expiration", "strike"]
    calls = q[q["right"] == "C"].set_index(key)
    puts = q[q["right"] == "P"].set_index(key)
    pairs = calls[["settlement", "mid", "T"]].join(puts[["mid"]].add_suffix("_put"), how="inner").reset_index()
    if pairs.empty:
        return pd.DataFrame({col: pd.Series(dtype=float) for col in FORWARD_COLUMNS})
    pairs["f"] = pairs["strike"] + np.exp(config.rate * pairs["T"]) * (pairs["mid"] - pairs["mid_put"])
    pairs["dist"] = (pairs["strike"] - snapshot.spot).abs()
    pairs = pairs.sort_values(["root", "expiration", "dist", "strike"], kind="stable")
    pairs = pairs[pairs.groupby(["root", "expiration"], sort=False).cumcount() < n_strikes]
    g = pairs.groupby(["root", "expiration"], sort=True)
    out = g.agg(settlement=("settlement", "first"), T=("T", "first"), forward=("f", "median"),
                n_strikes=("f", "size"))
    pairs["dev"] = (pairs["f"] - g["f"].transform("median")).abs()
    out["dispersion"] = pairs.groupby(["root", "expiration"], sort=True)["dev"].median()
    out = out[out["n_strikes"] >= MIN_STRIKES].reset_index()
    # one row per expiry: the PM root's when it qualifies, else the AM root's
    out["_am"] = out["settlement"] == "AM"
    out = out.sort_values(["expiration", "_am"], kind="stable").drop_duplicates("expiration", keep="first")
    out["spot"] = out["forward"] * np.exp(-(config.rate - config.div_yield) * out["T"])
    out["n_strikes"] = out["n_strikes"].astype(int)
    return out[list(FORWARD_COLUMNS)].reset_index(drop=True)


@dataclasses.dataclass(frozen=True)
class ParitySpot:
    """The spot a chain's quotes imply (:func:`parity_spot`).

    Attributes
    ----------
    spot : float
        Median implied spot of the expiries used (points).
    print_spot : float
        The snapshot's own spot (the index print).
    difference : float
        ``spot − print_spot`` (points).
    expiries : tuple of datetime.date
        The expiries used, ascending.
    spots : tuple of float
        Each one's implied spot (points), in the same order.
    note : str
        One line saying how the figure was formed.
    """

    spot: float
    print_spot: float
    difference: float
    expiries: tuple[dt.date, ...]
    spots: tuple[float, ...]
    note: str

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`)."""
        return jsonable(dataclasses.asdict(self))


def parity_spot(snapshot: ChainSnapshot, config: GexConfig, *, max_days: float = 30.0, n_expiries: int = 3,
                min_days: float = 1.0, n_strikes: int = 6, max_rel_spread: float = 0.5) -> ParitySpot:
    """The spot implied by put-call parity on the front expiries (see the module docstring).

    Parameters
    ----------
    snapshot : ChainSnapshot
        The chain.
    config : GexConfig
        Rate, dividend yield and day count.
    max_days : float, default 30.0
        Latest expiry considered, ``T × days_per_year`` in days.
    n_expiries : int, default 3
        How many of the nearest qualifying expiries are combined (their median implied spot).
    min_days, n_strikes, max_rel_spread
        As in :func:`implied_forwards`.

    Returns
    -------
    ParitySpot

    Raises
    ------
    NoParityExpiryError
        No expiry with ``min_days <= T × days_per_year <= max_days`` has usable quotes at 3 strikes.
    QuoteFitArgumentError
        ``n_expiries`` below 1, ``max_days`` below ``min_days``, or the arguments of
        :func:`implied_forwards`.
    """
    if int(n_expiries) != n_expiries or n_expiries < 1:
        raise QuoteFitArgumentError(f"n_expiries must be a whole number >= 1, got {n_expiries!r}",
                                    argument="n_expiries")
    _check_positive("max_days", max_days)
    if max_days < min_days:
        raise QuoteFitArgumentError(f"max_days ({max_days!r}) must not be below min_days ({min_days!r})",
                                    argument="max_days")
    fw = implied_forwards(snapshot, config, n_strikes=n_strikes, min_days=min_days, max_rel_spread=max_rel_spread)
    days = fw["T"].to_numpy(dtype=float) * config.days_per_year
    front = fw[days <= max_days * (1.0 + 1e-9)].head(int(n_expiries))
    if front.empty:
        raise NoParityExpiryError(
            f"{snapshot.source} ({snapshot.snapshot_date}): no expiry within {min_days:g}..{max_days:g} days has "
            f"two-sided call and put quotes (relative spread <= {max_rel_spread:g}) at {MIN_STRIKES} strikes "
            f"({len(fw)} expiries qualify at any tenor)")
    spot = float(np.median(front["spot"]))
    exps = tuple(pd.Timestamp(e).date() for e in front["expiration"])
    note = (f"median implied spot of {len(front)} expir{'y' if len(front) == 1 else 'ies'} "
            f"({', '.join(e.isoformat() for e in exps)}), {int(front['n_strikes'].sum())} strikes in all, "
            f"r={config.rate:.4f} q={config.div_yield:.4f}")
    return ParitySpot(spot=spot, print_spot=float(snapshot.spot), difference=spot - float(snapshot.spot),
                      expiries=exps, spots=tuple(float(s) for s in front["spot"]), note=note)
