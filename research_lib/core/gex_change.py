"""Why did net GEX change? The change of net GEX between two snapshots of one underlying, split by cause.

:func:`attribute_change` matches the contracts of a ``before`` and an ``after`` snapshot by key
``(root, expiration, strike, right)`` and splits ``net_after − net_before`` — each the net GEX
:func:`research_lib.core.gex.analyze` reports for that snapshot and its config — into causes that add up to
it with no residual (to floating-point rounding: the parts are differences of the same per-contract
values that the two totals sum).

Units
-----
Every figure is GEX in **dollars per 1% move** of the underlying (``sign × gamma × OI × 100 × S² × 0.01``,
see :mod:`research_lib.core.gex`); spots in index points; IV as a decimal; ``T`` in years.

Causes (:data:`CAUSES`, in this order)
--------------------------------------
``spot``
    The contracts of ``before`` (their IV, open interest, time to expiry and rates) re-priced at the new
    spot: S_before → S_after (gamma and the S² of the dollar conversion both move).
``time``
    Time to expiry T_before → T_after (each side's valuation moment, :func:`gex.valuation_moment`).
``rates``
    Risk-free rate and dividend yield (r, q) of ``config_before`` → ``config_after``.
``iv``
    Each contract's own implied volatility, before → after (sticky strike). A contract with no IV on
    one side counts 0 there, as :func:`gex.exposures` counts it.
``open_interest``
    Open interest before → after; a contract absent on one side has open interest 0 there (archives that
    keep only OI > 0 rows drop and add contracts every day) and the other side's IV, so its whole change
    is ``open_interest``.
``rolled_off``
    Contracts counted before that have expired at ``after``'s valuation moment: minus their before-GEX.
``new_listings``
    Contracts of expiry dates not listed at all in ``before``: their after-GEX.
``window``
    Contracts entering or leaving the configs' :class:`~research_lib.core.gex.ExpiryFilter` (a ``max_dte``
    window moves with the date; ``exclude_0dte`` drops tomorrow's expiry once it is today's): plus their
    after-GEX, or minus their before-GEX. Both configs must have the same filter.

The five factor causes (``spot`` … ``open_interest``) apply to every other contract: matched, or present
on one side only within an expiry listed in ``before``. ``method="sequential"`` switches the factors from
their before to their after value one at a time in the order above (the spot effect is then exactly "the
same contracts at the new spot"); ``method="shapley"`` averages each factor's marginal effect over all
5! orderings (2⁵ = 32 states per contract, evaluated in one vectorised pass), so the split does not depend
on an order. Both are exact decompositions.

Buckets
-------
Each contract gets an expiry bucket (calendar days from ``after``'s ``snapshot_date`` to the expiration:
``0–1`` (rolled-off contracts included), ``2–7``, ``8–30``, ``31–90``, ``> 90`` by default) and a moneyness
bucket (``K / S_after − 1``, edges −10%, −5%, −2%, +2%, +5%, +10%: seven buckets, each interval closed on
the left).

``gamma_source="vendor"`` (the ``perfiliev`` preset) cannot be split: the vendor's gamma is one number per
contract and day, with no spot, time, rate or IV to move. :func:`attribute_change` refuses it.

Example
-------
>>> from research_lib.data.sources import read_chain                                 # doctest: +SKIP
>>> from research_lib.data.market import snapshot_config                             # doctest: +SKIP
>>> a = read_chain(PATH, date="2026-08-20"); b = read_chain(PATH, date="2026-08-21") # doctest: +SKIP
>>> ch = attribute_change(a, b, snapshot_config(a), snapshot_config(b))              # doctest: +SKIP
>>> print(ch.describe())                                                             # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.core import pricing
from research_lib.core.chain import KEY_COLUMNS, ChainSnapshot
from research_lib.core.gex import (
    CONTRACT_MULTIPLIER,
    ONE_PERCENT,
    GexConfig,
    valuation_moment,
    weekday_count_start,
)
from research_lib.errors import (
    AttributionParamsError,
    DuplicateContractError,
    GexConfigError,
    SnapshotOrderError,
    UnderlyingMismatchError,
)
from research_lib.formatting import fmt_money, jsonable

#: The factor causes, in the order ``method="sequential"`` applies them.
FACTORS: tuple[str, ...] = ("spot", "time", "rates", "iv", "open_interest")
#: Every cause, in the order of :attr:`GexChange.by_cause` and of the columns of the tables.
CAUSES: tuple[str, ...] = (*FACTORS, "rolled_off", "new_listings", "window")
METHODS: tuple[str, ...] = ("sequential", "shapley")
#: Upper ends (calendar days, inclusive) of the expiry buckets but the last: 0–1, 2–7, 8–30, 31–90, > 90.
DEFAULT_EXPIRY_EDGES: tuple[int, ...] = (1, 7, 30, 90)
#: Edges of the moneyness buckets (``K / S_after − 1``, decimals): seven buckets.
DEFAULT_MONEYNESS_EDGES: tuple[float, ...] = (-0.10, -0.05, -0.02, 0.02, 0.05, 0.10)
#: Config fields that must be equal on both sides (only ``rate`` and ``div_yield`` may move).
SAME_CONFIG_FIELDS: tuple[str, ...] = ("gamma_source", "day_count", "days_per_year", "zero_dte_floor", "valuation",
                                       "dealer_sign", "expiries")
#: Columns of :attr:`GexChange.contracts`, before the cause columns and ``total``.
CONTRACT_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, "settlement", "expiry_bucket", "moneyness_bucket", "status",
                                     "open_interest_before", "open_interest_after", "iv_before", "iv_after",
                                     "gex_before", "gex_after")

_N = len(FACTORS)
_STATES = 1 << _N  # factor subsets: bit i set = factor i at its after value


# --------------------------------------------------------------------------------------------------
# buckets


def _check_edges(name: str, edges: Sequence[float], *, whole: bool, low: float) -> tuple:
    try:
        values = tuple(edges)
    except TypeError:
        raise AttributionParamsError(name, f"expected a sequence of numbers, got {edges!r}") from None
    if not values:
        raise AttributionParamsError(name, "needs at least one edge")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not math.isfinite(v):
            raise AttributionParamsError(name, f"every edge must be a finite number, got {v!r} in {values!r}")
        if whole and int(v) != v:
            raise AttributionParamsError(name, f"edges are whole calendar days, got {v!r} in {values!r}")
        if v <= low if not whole else v < low:
            raise AttributionParamsError(name, f"edges must be {'>=' if whole else '>'} {low:g}, got {v!r}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise AttributionParamsError(name, f"edges must be strictly increasing, got {values!r}")
    return tuple(int(v) for v in values) if whole else tuple(float(v) for v in values)


def expiry_bucket_labels(edges: Sequence[int] = DEFAULT_EXPIRY_EDGES) -> tuple[str, ...]:
    """Labels of the expiry buckets of ``edges`` (whole days, inclusive upper ends): ``("0–1", "2–7", …, "> 90")``."""
    edges = _check_edges("expiry_edges", edges, whole=True, low=0)
    labels, lo = [], 0
    for e in edges:
        labels.append(f"{lo}–{e}" if e > lo else f"{e}")
        lo = e + 1
    return (*labels, f"> {edges[-1]}")


def moneyness_bucket_labels(edges: Sequence[float] = DEFAULT_MONEYNESS_EDGES) -> tuple[str, ...]:
    """Labels of the moneyness buckets of ``edges``: ``("< -10%", "-10% to -5%", …, ">= +10%")``."""
    edges = _check_edges("moneyness_edges", edges, whole=False, low=-1.0)
    pct = [f"{100 * e:+g}%" for e in edges]
    return (f"< {pct[0]}", *(f"{a} to {b}" for a, b in zip(pct, pct[1:], strict=False)), f">= {pct[-1]}")


def expiry_buckets(expiration, as_of: dt.date, edges: Sequence[int] = DEFAULT_EXPIRY_EDGES) -> np.ndarray:
    """The expiry bucket label of each expiration: calendar days from ``as_of`` (≤ first edge, negative
    days of expired contracts included, is the first bucket)."""
    labels = np.array(expiry_bucket_labels(edges), dtype=object)
    days = (pd.DatetimeIndex(expiration).normalize() - pd.Timestamp(as_of)).days.to_numpy()
    return labels[np.searchsorted(np.asarray(edges), days, side="left")]


def moneyness_buckets(strike, spot: float, edges: Sequence[float] = DEFAULT_MONEYNESS_EDGES) -> np.ndarray:
    """The moneyness bucket label of each strike: ``K / spot − 1`` against ``edges`` (intervals closed on the
    left)."""
    labels = np.array(moneyness_bucket_labels(edges), dtype=object)
    m = np.asarray(strike, dtype=float) / float(spot) - 1.0
    return labels[np.searchsorted(np.asarray(edges, dtype=float), m, side="right")]


# --------------------------------------------------------------------------------------------------
# the result


@dataclasses.dataclass(frozen=True, eq=False)
class GexChange:
    """The change of net GEX between two snapshots, split by cause, expiry and moneyness.

    Attributes
    ----------
    underlying : str
    date_before, date_after : datetime.date
        The snapshots' trading dates (``snapshot_date``).
    quote_time_before, quote_time_after : pandas.Timestamp
        Tz-aware (New York).
    spot_before, spot_after : float
        Index points.
    net_before, net_after : float
        Net GEX of each snapshot under its config, $ per 1% move: exactly
        ``gex.analyze(snapshot, config).levels.net_gex``.
    change : float
        ``net_after − net_before``.
    method : {"sequential", "shapley"}
    convention : str
        The configs' convention label.
    rate_before, rate_after, div_yield_before, div_yield_after : float
        Decimals per year.
    by_cause : pandas.Series
        Indexed by :data:`CAUSES` in that order ($ per 1% move); sums to ``change``.
    by_expiry, by_moneyness : pandas.DataFrame
        One row per bucket (every bucket, in order, zeros included), columns :data:`CAUSES` and ``total``;
        each column sums to the matching ``by_cause`` value, ``total`` to ``change``.
    contracts : pandas.DataFrame
        One row per contract counted on either side: :data:`CONTRACT_COLUMNS` (``status`` is ``matched``,
        ``appeared`` or ``vanished``; ``gex_before``/``gex_after`` are 0 on a side where the contract does
        not count), then one column per cause and ``total`` (= ``gex_after − gex_before``).
    expiry_labels, moneyness_labels : tuple of str
        The bucket labels, in order.
    notes : tuple of str
        What happened to the contract set (appeared, vanished, rolled off, new expiries, IV missing ...).
    modelled : bool
        True when either snapshot is a modelled chain (not market data).
    """

    underlying: str
    date_before: dt.date
    date_after: dt.date
    quote_time_before: pd.Timestamp
    quote_time_after: pd.Timestamp
    spot_before: float
    spot_after: float
    net_before: float
    net_after: float
    change: float
    method: str
    convention: str
    rate_before: float
    rate_after: float
    div_yield_before: float
    div_yield_after: float
    by_cause: pd.Series
    by_expiry: pd.DataFrame
    by_moneyness: pd.DataFrame
    contracts: pd.DataFrame
    expiry_labels: tuple[str, ...]
    moneyness_labels: tuple[str, ...]
    notes: tuple[str, ...] = ()
    modelled: bool = False

    @property
    def residual(self) -> float:
        """``change − Σ by_cause``: floating-point rounding only ($ per 1% move)."""
        return float(self.change - self.by_cause.sum())

    def top_contracts(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` contracts whose GEX moved most (largest ``|total|``), key, buckets, causes and total."""
        order = self.contracts["total"].abs().sort_values(ascending=False, kind="stable").index[:n]
        return self.contracts.loc[order, [*KEY_COLUMNS, "expiry_bucket", "moneyness_bucket", *CAUSES, "total"]]

    def to_dict(self, *, top: int = 10) -> dict:
        """Strict-JSON-ready (:func:`~research_lib.formatting.jsonable`): every scalar field, ``by_cause``
        ({cause: $}), ``by_expiry`` / ``by_moneyness`` ({bucket: {cause: $, total: $}}), ``notes``,
        ``n_contracts`` and the ``top`` contracts that moved most (list of records)."""
        tops = self.top_contracts(top)
        return jsonable({
            "underlying": self.underlying, "date_before": self.date_before, "date_after": self.date_after,
            "quote_time_before": self.quote_time_before, "quote_time_after": self.quote_time_after,
            "spot_before": self.spot_before, "spot_after": self.spot_after, "net_before": self.net_before,
            "net_after": self.net_after, "change": self.change, "method": self.method,
            "convention": self.convention, "rate_before": self.rate_before, "rate_after": self.rate_after,
            "div_yield_before": self.div_yield_before, "div_yield_after": self.div_yield_after,
            "units": "$ per 1% move of the underlying",
            "by_cause": {k: float(v) for k, v in self.by_cause.items()},
            "by_expiry": {b: {k: float(v) for k, v in row.items()} for b, row in self.by_expiry.iterrows()},
            "by_moneyness": {b: {k: float(v) for k, v in row.items()} for b, row in self.by_moneyness.iterrows()},
            "n_contracts": len(self.contracts),
            "top_contracts": [{k: (pd.Timestamp(v).date() if k == "expiration" else v) for k, v in rec.items()}
                              for rec in tops.to_dict(orient="records")],
            "notes": self.notes, "modelled": self.modelled,
        })

    def describe(self) -> str:
        """A readable text: the headline, the cause table, then by expiry and by moneyness (money in
        :func:`~research_lib.formatting.fmt_money`, $ per 1% move)."""
        move = (self.spot_after / self.spot_before - 1.0) * 100.0
        lines = [
            f"{self.underlying} {self.date_before} -> {self.date_after}: net GEX {fmt_money(self.net_before)} -> "
            f"{fmt_money(self.net_after)}, change {fmt_money(self.change)} $/1% move ({self.method}, "
            f"{self.convention} convention){'  [MODELLED DATA]' if self.modelled else ''}",
            f"  spot {self.spot_before:,.2f} -> {self.spot_after:,.2f} ({move:+.2f}%); quoted "
            f"{self.quote_time_before:%Y-%m-%d %H:%M} -> {self.quote_time_after:%Y-%m-%d %H:%M %Z}; rate "
            f"{self.rate_before:.3%} -> {self.rate_after:.3%}, dividend yield {self.div_yield_before:.3%} -> "
            f"{self.div_yield_after:.3%}",
            "",
            "  cause              change",
        ]
        for cause, value in self.by_cause.items():
            lines.append(f"  {cause:<16}{fmt_money(float(value)):>10}")
        lines.append(f"  {'total':<16}{fmt_money(self.change):>10}")
        for title, table in (("by expiry (calendar days from " + str(self.date_after) + ")", self.by_expiry),
                             ("by moneyness (strike / spot after - 1)", self.by_moneyness)):
            lines += ["", f"  {title}", self._table_text(table)]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    @staticmethod
    def _table_text(table: pd.DataFrame) -> str:
        heads = {"open_interest": "OI", "rolled_off": "rolled", "new_listings": "new"}
        cols = list(table.columns)
        width = max(len(str(i)) for i in table.index) + 2
        out = ["  " + " " * width + "".join(f"{heads.get(c, c):>10}" for c in cols)]
        for label, row in table.iterrows():
            out.append("  " + f"{label:<{width}}" + "".join(f"{fmt_money(float(row[c])):>10}" for c in cols))
        return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# the computation


def _years(expiration: np.ndarray, settlement: np.ndarray, snapshot: ChainSnapshot, config: GexConfig) -> np.ndarray:
    """:func:`gex.time_to_expiry` of arbitrary rows valued at ``snapshot``'s moment (same arithmetic)."""
    if config.day_count == "calendar":
        settle = cal.settlement_times(expiration, settlement)
        start = valuation_moment(snapshot, config)
        return (settle.asi8 - start.value) / 1e9 / (config.days_per_year * 86400.0)
    exp_days = expiration.astype("datetime64[D]")
    start = weekday_count_start(snapshot)
    n = np.busday_count(start, exp_days).astype(float)
    if config.zero_dte_floor:
        n = np.where((n == 0) & (exp_days >= start), 1.0, n)
    return n / config.days_per_year


def _check_unique(snapshot: ChainSnapshot, side: str) -> None:
    dup = snapshot.contracts.duplicated(list(KEY_COLUMNS), keep=False)
    if dup.any():
        ex = snapshot.contracts.loc[dup, list(KEY_COLUMNS)].iloc[0]
        raise DuplicateContractError(
            f"{side} snapshot holds the same contract more than once, so contracts cannot be matched by "
            f"(root, expiration, strike, right)", column="root", n_bad=int(dup.sum()),
            example=f"{ex['root']} {pd.Timestamp(ex['expiration']).date()} {ex['strike']:g} {ex['right']}",
            where=snapshot.source)


def _check_configs(cb: GexConfig, ca: GexConfig) -> None:
    for side, c in (("config_before", cb), ("config_after", ca)):
        if not isinstance(c, GexConfig):
            raise GexConfigError(f"{side} must be a GexConfig, got {type(c).__name__}")
        if c.gamma_source == "vendor":
            raise GexConfigError(
                f"{side}: gamma_source='vendor' ({c.convention}) cannot be split by cause: the vendor's gamma is "
                "one number per contract and day, with no spot, time, rate or IV to move; use the model "
                "convention (gamma recomputed from IV)")
    for field in SAME_CONFIG_FIELDS:
        if getattr(cb, field) != getattr(ca, field):
            raise GexConfigError(
                f"config_before.{field}={getattr(cb, field)!r} but config_after.{field}={getattr(ca, field)!r}: "
                "only rate and div_yield may differ between the two configs"
                + (" (a changed expiry filter would be a change of method, not of the market)"
                   if field == "expiries" else ""))


def _shapley_pairs() -> tuple[tuple[tuple[int, int, float], ...], ...]:
    """For each factor i: the (subset without i, subset with i, Shapley weight |S|!(n-|S|-1)!/n!) pairs."""
    fact = math.factorial
    out = []
    for i in range(_N):
        bit = 1 << i
        out.append(tuple((m, m | bit, fact(bin(m).count("1")) * fact(_N - bin(m).count("1") - 1) / fact(_N))
                         for m in range(_STATES) if not m & bit))
    return tuple(out)


_SHAPLEY = _shapley_pairs()
_SEQUENTIAL_STATES = tuple((1 << k) - 1 for k in range(_N + 1))  # 0, spot, spot+time, ..., all


def _gex(sign, oi, gamma, S):
    """Exposure of :func:`gex.exposures`, the same operations in the same order (bit-identical)."""
    return sign * oi * CONTRACT_MULTIPLIER * np.nan_to_num(gamma) * S * S * ONE_PERCENT


def factor_states(S, K, T, iv, oi, sign, r, q) -> np.ndarray:
    """GEX of every subset of the factors switched to their after value: array (32, n).

    Parameters
    ----------
    S, T, iv, oi, r, q : pair (before, after)
        Spots (points) and rates (decimals) are scalars; ``T`` (years), ``iv`` (decimals, NaN = no IV)
        and ``oi`` (contracts) arrays of length n.
    K, sign : ndarray
        Strikes and dealer signs (±1).

    Returns
    -------
    ndarray
        Row ``m``: bit ``i`` of ``m`` set means factor ``FACTORS[i]`` at its after value. Row 0 is each
        contract's before-GEX with the before inputs, row 31 its after-GEX.
    """
    n = len(K)
    idx = np.arange(16)
    pick = lambda pair, bit: np.where((idx & bit) != 0, pair[1], pair[0])  # noqa: E731
    S_m = pick(S, 1)[:, None]
    T_m = np.where(((idx & 2) != 0)[:, None], np.asarray(T[1])[None, :], np.asarray(T[0])[None, :])
    r_m = pick(r, 4)[:, None]
    q_m = pick(q, 4)[:, None]
    iv_m = np.where(((idx & 8) != 0)[:, None], np.asarray(iv[1])[None, :], np.asarray(iv[0])[None, :])
    gamma = pricing.gamma(S_m, K[None, :], T_m, iv_m, r_m, q_m)
    V = np.empty((_STATES, n))
    for m in range(_STATES):
        V[m] = _gex(sign, oi[1] if m & 16 else oi[0], gamma[m & 15], S_m[m & 15])
    return V


def split_factors(V: np.ndarray, method: str) -> np.ndarray:
    """(5, n) contributions of :data:`FACTORS` from :func:`factor_states`' (32, n) values; each column sums
    to ``V[31] − V[0]``."""
    if method == "sequential":
        st = V[list(_SEQUENTIAL_STATES)]
        return np.diff(st, axis=0)
    # weighted marginal differences (not a weight matrix times V): a factor that did not move gets exactly 0
    out = np.zeros((_N, V.shape[1]))
    for i, pairs in enumerate(_SHAPLEY):
        for without, with_, w in pairs:
            out[i] += w * (V[with_] - V[without])
    return out


def attribute_change(before: ChainSnapshot, after: ChainSnapshot, config_before: GexConfig | None = None,
                     config_after: GexConfig | None = None, *, method: str = "sequential",
                     expiry_edges: Sequence[int] = DEFAULT_EXPIRY_EDGES,
                     moneyness_edges: Sequence[float] = DEFAULT_MONEYNESS_EDGES) -> GexChange:
    """Split the change of net GEX from ``before`` to ``after`` by cause (see the module docstring).

    Parameters
    ----------
    before, after : ChainSnapshot
        Same underlying; ``after`` quoted strictly later.
    config_before, config_after : GexConfig, optional
        Each snapshot's config (:func:`research_lib.data.market.snapshot_config` gives the rates of its
        date). Default :meth:`GexConfig.model`; ``config_after`` defaults to ``config_before``. Only
        ``rate`` and ``div_yield`` may differ (:data:`SAME_CONFIG_FIELDS`).
    method : {"sequential", "shapley"}
        How the five factor causes share a contract's change (see the module docstring).
    expiry_edges : sequence of int
        Inclusive upper ends of the expiry buckets, calendar days from ``after``'s date, strictly
        increasing, ≥ 0; one more bucket holds the rest. Default (1, 7, 30, 90).
    moneyness_edges : sequence of float
        Edges of ``K / S_after − 1`` (decimals > −1), strictly increasing. Default ±2%, ±5%, ±10%.

    Returns
    -------
    GexChange
        ``by_cause.sum() == change`` to floating-point rounding (:attr:`GexChange.residual`), and
        ``net_before`` / ``net_after`` are exactly the net GEX of :func:`gex.analyze`.

    Raises
    ------
    UnderlyingMismatchError
        The snapshots are of different underlyings.
    SnapshotOrderError
        ``after`` is not quoted later than ``before``.
    DuplicateContractError
        A snapshot holds a contract key twice.
    GexConfigError
        A vendor-gamma config, or configs that differ in more than the rates.
    AttributionParamsError
        An unknown ``method`` or bad bucket edges.
    """
    if method not in METHODS:
        raise AttributionParamsError("method", f"{method!r} is not one of {list(METHODS)}")
    exp_labels = expiry_bucket_labels(expiry_edges)
    mny_labels = moneyness_bucket_labels(moneyness_edges)
    for side, snap in (("before", before), ("after", after)):
        if not isinstance(snap, ChainSnapshot):
            raise AttributionParamsError(side, f"expected a ChainSnapshot, got {type(snap).__name__}")
    if before.underlying != after.underlying:
        raise UnderlyingMismatchError(f"before is a {before.underlying} chain ({before.source}) and after a "
                                      f"{after.underlying} chain ({after.source}): a change needs one underlying")
    if not after.quote_time > before.quote_time:
        raise SnapshotOrderError(f"after must be quoted later than before: before {before.quote_time} "
                                 f"({before.source}), after {after.quote_time} ({after.source})")
    cb = GexConfig.model() if config_before is None else config_before
    ca = cb if config_after is None else config_after
    _check_configs(cb, ca)
    _check_unique(before, "before")
    _check_unique(after, "after")

    cols = [*KEY_COLUMNS, "settlement", "open_interest", "iv"]
    b = before.contracts[cols].assign(_row_before=np.arange(len(before.contracts)))
    a = after.contracts[cols].assign(_row_after=np.arange(len(after.contracts)))
    m = b.merge(a, on=list(KEY_COLUMNS), how="outer", suffixes=("_before", "_after"), indicator=True, sort=False)
    in_b = (m["_merge"] != "right_only").to_numpy()
    in_a = (m["_merge"] != "left_only").to_numpy()
    exp = m["expiration"].to_numpy().astype("datetime64[ns]")
    settle_b = m["settlement_before"].where(in_b, m["settlement_after"]).to_numpy()
    settle_a = m["settlement_after"].where(in_a, m["settlement_before"]).to_numpy()
    K = m["strike"].to_numpy(dtype=float)
    is_call = (m["right"] == "C").to_numpy()
    sign = np.where(is_call, cb.dealer_sign[0], cb.dealer_sign[1])
    oi0 = np.where(in_b, m["open_interest_before"].to_numpy(dtype=float, na_value=0.0), 0.0)
    oi1 = np.where(in_a, m["open_interest_after"].to_numpy(dtype=float, na_value=0.0), 0.0)
    iv_b = m["iv_before"].to_numpy(dtype=float, na_value=np.nan)
    iv_a = m["iv_after"].to_numpy(dtype=float, na_value=np.nan)
    # a contract absent on one side takes the other side's IV there: with open interest 0 it adds nothing, and
    # its whole change is then open interest (from or to 0), not a vanished IV
    iv0 = np.where(in_b, iv_b, iv_a)
    iv1 = np.where(in_a, iv_a, iv_b)
    S0, S1 = float(before.spot), float(after.spot)
    T0 = _years(exp, settle_b, before, cb)
    T1 = _years(exp, settle_a, after, ca)
    exp_series = pd.Series(exp)
    live0 = (T0 > 0) & cb.expiries.mask(exp_series, before.snapshot_date)
    live1 = (T1 > 0) & ca.expiries.mask(exp_series, after.snapshot_date)
    listed_before = np.isin(exp.astype("datetime64[D]"),
                            np.unique(before.contracts["expiration"].to_numpy().astype("datetime64[D]")))

    with np.errstate(all="ignore"):
        g0 = pricing.gamma(S0, K, np.where(live0, T0, np.nan), iv0, cb.rate, cb.div_yield)
        g1 = pricing.gamma(S1, K, np.where(live1, T1, np.nan), iv1, ca.rate, ca.div_yield)
    gex0 = np.where(live0, _gex(sign, oi0, g0, S0), 0.0)
    gex1 = np.where(live1, _gex(sign, oi1, g1, S1), 0.0)

    factor = live0 & live1 & listed_before
    rolled = live0 & (T1 <= 0)
    new = ~listed_before & live1
    left_window = live0 & (T1 > 0) & ~live1
    entered_window = ~live0 & live1 & listed_before
    n = len(m)
    parts = np.zeros((len(CAUSES), n))
    if factor.any():
        f = np.flatnonzero(factor)
        with np.errstate(all="ignore"):
            V = factor_states((S0, S1), K[f], (T0[f], T1[f]), (iv0[f], iv1[f]), (oi0[f], oi1[f]), sign[f],
                              (cb.rate, ca.rate), (cb.div_yield, ca.div_yield))
        parts[:_N, f] = split_factors(V, method)
    parts[_N, rolled] = -gex0[rolled]
    parts[_N + 1, new] = gex1[new]
    parts[_N + 2, left_window] = -gex0[left_window]
    parts[_N + 2, entered_window] = gex1[entered_window]

    keep = live0 | live1
    status = np.where(in_b & in_a, "matched", np.where(in_b, "vanished", "appeared"))
    table = pd.DataFrame({
        "root": m["root"].to_numpy(), "expiration": exp, "settlement": np.where(in_a, settle_a, settle_b),
        "strike": K, "right": m["right"].to_numpy(),
        "expiry_bucket": expiry_buckets(exp, after.snapshot_date, expiry_edges),
        "moneyness_bucket": moneyness_buckets(K, S1, moneyness_edges), "status": status,
        "open_interest_before": oi0, "open_interest_after": oi1, "iv_before": iv_b, "iv_after": iv_a,
        "gex_before": gex0, "gex_after": gex1,
        **{c: parts[i] for i, c in enumerate(CAUSES)},
    })[keep]
    table["total"] = table[list(CAUSES)].sum(axis=1)
    table = table.sort_values(["expiration", "strike", "right", "root"], kind="stable").reset_index(drop=True)

    net_before = _net(gex0, live0 & in_b & np.isfinite(g0), m["_row_before"], in_b, len(before.contracts))
    net_after = _net(gex1, live1 & in_a & np.isfinite(g1), m["_row_after"], in_a, len(after.contracts))
    by_cause = pd.Series({c: float(table[c].sum()) for c in CAUSES}, name="change").rename_axis("cause")

    def grouped(col: str, labels: tuple[str, ...]) -> pd.DataFrame:
        g = table.groupby(col, sort=False)[[*CAUSES, "total"]].sum().reindex(list(labels), fill_value=0.0)
        return g.rename_axis(col.removesuffix("_bucket"))

    notes = _notes(m, in_b, in_a, live0, live1, listed_before, rolled, new, left_window, entered_window, iv0, iv1,
                   oi0, oi1, exp)
    return GexChange(
        underlying=after.underlying, date_before=before.snapshot_date, date_after=after.snapshot_date,
        quote_time_before=before.quote_time, quote_time_after=after.quote_time, spot_before=S0, spot_after=S1,
        net_before=net_before, net_after=net_after, change=net_after - net_before, method=method,
        convention=ca.convention, rate_before=cb.rate, rate_after=ca.rate, div_yield_before=cb.div_yield,
        div_yield_after=ca.div_yield, by_cause=by_cause, by_expiry=grouped("expiry_bucket", exp_labels),
        by_moneyness=grouped("moneyness_bucket", mny_labels), contracts=table, expiry_labels=exp_labels,
        moneyness_labels=mny_labels, notes=notes, modelled=bool(before.modelled or after.modelled))


def _net(values: np.ndarray, counted: np.ndarray, rows: pd.Series, present: np.ndarray, n: int) -> float:
    """The snapshot's net GEX exactly as :func:`gex.exposures` + ``Series.sum`` give it: the same per-contract
    values, of the same contracts (live, priced), summed in the snapshot's own row order."""
    idx = rows.to_numpy(dtype=float, na_value=-1.0)[present].astype(np.int64)
    val = np.zeros(n)
    keep = np.zeros(n, dtype=bool)
    val[idx] = values[present]
    keep[idx] = counted[present]
    return float(pd.Series(val[keep]).sum())


def _notes(m, in_b, in_a, live0, live1, listed_before, rolled, new, left_window, entered_window, iv0, iv1, oi0, oi1,
           exp) -> tuple[str, ...]:
    def dates(mask) -> str:
        d = sorted({str(x) for x in exp[mask].astype("datetime64[D]")})
        return ", ".join(d[:4]) + (f" and {len(d) - 4} more" if len(d) > 4 else "")

    notes = []
    both = live0 & live1 & listed_before
    appeared = both & ~in_b & (oi1 > 0)
    vanished = both & ~in_a & (oi0 > 0)
    if appeared.any() or vanished.any():
        notes.append(f"{int(appeared.sum())} contracts appeared (open interest from 0, "
                     f"{oi1[appeared].sum():,.0f} contracts) and {int(vanished.sum())} vanished (open interest "
                     f"to 0, {oi0[vanished].sum():,.0f}) within expiries listed on both days: counted in "
                     "open_interest")
    rolled = rolled & in_b
    if rolled.any():
        notes.append(f"{int(rolled.sum())} contracts rolled off ({oi0[rolled].sum():,.0f} open interest; expiry "
                     f"{dates(rolled)})")
    if new.any():
        notes.append(f"{int(new.sum())} contracts of new expiries ({dates(new)})")
    if left_window.any() or entered_window.any():
        notes.append(f"{int(entered_window.sum())} contracts entered and {int(left_window.sum())} left the expiry "
                     "filter's window")
    listed_after = np.isin(exp.astype("datetime64[D]"),
                           np.unique(exp[in_a].astype("datetime64[D]")))
    gone = both & ~listed_after
    if gone.any():
        notes.append(f"expiries {dates(gone)} are live but no longer listed after: their {int(gone.sum())} "
                     "contracts count as open interest to 0")
    no_iv0 = both & in_b & (oi0 > 0) & ~np.isfinite(iv0)
    no_iv1 = both & in_a & (oi1 > 0) & ~np.isfinite(iv1)
    if no_iv0.any() or no_iv1.any():
        notes.append(f"{int(no_iv0.sum())} contracts with open interest have no IV before and {int(no_iv1.sum())} "
                     "after: they count 0 on that side (their change is in iv)")
    return tuple(notes)
