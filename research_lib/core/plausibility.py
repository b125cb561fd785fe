"""Plausibility checks of a validated chain: values that parse but cannot be (or very likely are not) true.

:func:`~research_lib.chain.validate_contracts` checks each value on its own (a number, a date, within
absurd bounds). A chain can pass it and still be wrong as a whole: a spot ×1e5, a spot with a digit
flipped, an IV of 99 on every row, the IV and gamma columns swapped, one contract holding nearly all
the open interest. Those change every level silently, so :meth:`ChainSnapshot.create
<research_lib.chain.ChainSnapshot.create>` runs :func:`check_chain` on every snapshot, whatever its
source (files, live providers, the modelled chain).

Each check gives one of two answers:

* an **impossibility** raises :class:`~research_lib.chain.ImplausibleChainError` (a
  :class:`~research_lib.chain.ChainError`: exit code 3, "bad input"), naming the check, the figure and
  the limit;
* a **suspicious but possible** finding returns a warning string; the snapshot keeps it in
  ``snapshot.warnings`` and every output shows it (``KeyLevels.warnings``, its JSON, the CLI's
  ``WARNING:`` lines).

The checks judge the chain as a whole, so they need a chain: tables of fewer than ``min_contracts``
(20) contracts — hand-built examples, a sandbox's sample — get only the per-value validation.

The checks (limits in :class:`PlausibilityLimits`, defaults in :data:`LIMITS`)
----------------------------------------------------------------------------------
forward
    The put-call-parity forward of the nearest expiries, ``F = K + C − P`` at the strike where the
    call and put mids are closest (two-sided quotes only; expiries up to ``forward_max_days`` out, so
    discounting and dividends move ``F`` by well under 1%). Its median over the expiries is compared
    with the spot: a gap above ``forward_warn`` warns, above ``forward_error`` raises. Skipped when
    the chain has no two-sided call/put pair near the money (live sandboxes, hand-built chains).
spot inside the strikes
    A spot outside ``[min strike / spot_strike_factor, max strike × spot_strike_factor]`` raises (a
    spot ×1e5 or ÷100 without quotes to build a forward from).
implied volatility
    The median IV (decimal) above ``iv_median_max`` raises (percent written as decimal, an IV of 99
    everywhere); below ``iv_median_min`` raises (no index or stock trades at a median IV under 1%: the
    column holds something else, typically gammas). More than ``iv_high_share`` of the rows above
    ``iv_high`` warns. Deep rows with extreme IVs alone are fine (Cboe prints up to ~24 on deep ITM).
IV and gamma swapped
    Median gamma above ``gamma_median_max`` while the median IV is below ``iv_median_min`` names the
    swap in the error.
open interest
    One contract above ``oi_contract_max`` raises; one contract holding more than ``oi_share_error``
    of the chain's total open interest raises and more than ``oi_share_warn`` warns (both only on
    chains with at least ``oi_share_min_contracts`` contracts with open interest: a one-expiry
    sandbox chain is legitimately concentrated).
volume and open interest swapped
    More than ``volume_over_oi_warn`` of the contracts with both volume and open interest trading
    more than their open interest warns (at least ``oi_share_min_contracts`` such contracts). On the
    68 real snapshots with a volume column 2-23% of the contracts do (0DTE, new strikes); swapped
    columns turn that into the large majority. A warning, not an error: a frantic session on a thin
    chain can come close.

All open interest zero is not a chain error: :func:`research_lib.gex.analyze` raises
:class:`~research_lib.gex.NoExposureError` ("nothing to compute").

Measured on every real chain of ``../shared/data`` (121 snapshots: the 9 Cboe quote tables, every
clean day of the archives — 46 EOD, 56 intraday, 5 iVolatility — and the 5 recorded Cboe JSON
responses): no error and no warning. The honest figures, against the limits:

=============================== ====================== ==========================
figure                          real range             limit (warn / error)
=============================== ====================== ==========================
spot vs parity forward          -0.53% .. +0.30%       2% / 10%
median IV                       0.16 .. 0.29           error below 0.01, above 5
share of IVs above 300%         0 .. 2.2%              warn above 25%
median vendor gamma             0.0001 .. 0.0041       (names the swap above 0.05)
largest OI of one contract      4,614 .. 356,633       error above 2e7
largest OI share                0.4% .. 4.3% (NDX)     25% / 60%
volume > OI share               2% .. 23%              warn above 50%
=============================== ====================== ==========================

The intraday archive (spot = ``underlying_last``, not the close) is as close to its forward as the
end-of-day files (at most 0.14%). Cost: ~2.6 ms on the largest day (23,671 contracts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from research_lib.errors import ImplausibleChainError


@dataclasses.dataclass(frozen=True)
class PlausibilityLimits:
    """Thresholds of :func:`check_chain` (one place; see the module docstring for what each guards).

    Attributes
    ----------
    min_contracts : int
        Chains with fewer contracts are not judged (20).
    forward_warn, forward_error : float
        Relative gap ``|spot / F − 1|`` between the spot and the parity forward that warns (0.02) /
        raises (0.10).
    forward_max_days : int
        Only expiries up to this many calendar days after the snapshot date build the forward (60).
    forward_expiries : int
        The nearest this many such expiries are used (4); the median of their forwards is compared.
    forward_max_pair_gap : float
        An expiry's closest call/put pair must have ``|C − P| <= forward_max_pair_gap × K`` (0.05),
        else the expiry has no pair near the money and is not used.
    forward_slope : (float, float)
        An expiry is used only when ``C − P`` between its lowest and highest paired strikes falls
        by a slope within this range per point of strike ((-1.5, -0.5); parity says ``-exp(-rT)``).
    spot_strike_factor : float
        The spot may lie at most this factor outside the strike range (5).
    iv_median_max, iv_median_min : float
        Median IV (decimal) above which (5.0 = 500%) / below which (0.01 = 1%) the IV column is
        impossible.
    iv_high, iv_high_share : float
        More than ``iv_high_share`` (0.25) of the IVs above ``iv_high`` (3.0 = 300%) warns.
    gamma_median_max : float
        A median vendor gamma above this (0.05 per point) with an impossible low median IV names the
        IV/gamma swap.
    oi_contract_max : float
        Largest believable open interest of one contract (2e7: the largest listed open interests are
        a few million).
    oi_share_warn, oi_share_error : float
        One contract's share of the total open interest that warns (0.25) / raises (0.6).
    oi_share_min_contracts : int
        The share checks need at least this many contracts with open interest (100).
    volume_over_oi_warn : float
        Share of the contracts (with volume and open interest) trading more than their open interest
        above which the columns look swapped (0.5).
    """

    min_contracts: int = 20
    forward_warn: float = 0.02
    forward_error: float = 0.10
    forward_max_days: int = 60
    forward_expiries: int = 4
    forward_max_pair_gap: float = 0.05
    forward_slope: tuple[float, float] = (-1.5, -0.5)
    spot_strike_factor: float = 5.0
    iv_median_max: float = 5.0
    iv_median_min: float = 0.01
    iv_high: float = 3.0
    iv_high_share: float = 0.25
    gamma_median_max: float = 0.05
    oi_contract_max: float = 2e7
    oi_share_warn: float = 0.25
    oi_share_error: float = 0.6
    oi_share_min_contracts: int = 100
    volume_over_oi_warn: float = 0.5


#: The default limits :meth:`ChainSnapshot.create <research_lib.chain.ChainSnapshot.create>` uses.
LIMITS = PlausibilityLimits()


@dataclasses.dataclass(frozen=True)
class ChainDiagnostics:
    """The figures the checks look at (for measurement and messages).

    Attributes
    ----------
    forward : float or None
        Median parity forward of the nearest expiries (points); None when no pair qualified.
    forward_gap : float or None
        ``spot / forward − 1``; None without a forward.
    n_forward_expiries : int
        Expiries the forward was built from.
    iv_median : float or None
        Median of the finite IVs (decimal); None when the chain has none.
    iv_high_share : float
        Share of the finite IVs above ``limits.iv_high``.
    gamma_median : float or None
        Median of the finite vendor gammas.
    oi_total, oi_max : float
        Total and largest open interest of one contract.
    oi_max_share : float
        ``oi_max / oi_total`` (0 when the total is 0).
    n_with_oi : int
        Contracts with open interest above 0.
    volume_over_oi_share : float or None
        Share of the contracts with volume and open interest > 0 whose volume exceeds their open
        interest.
    n_volume_and_oi : int
        Contracts with volume and open interest both above 0.
    """

    forward: float | None
    forward_gap: float | None
    n_forward_expiries: int
    iv_median: float | None
    iv_high_share: float
    gamma_median: float | None
    oi_total: float
    oi_max: float
    oi_max_share: float
    n_with_oi: int
    volume_over_oi_share: float | None
    n_volume_and_oi: int


def parity_forward(contracts: pd.DataFrame, snapshot_date: dt.date,
                   limits: PlausibilityLimits = LIMITS) -> tuple[float | None, int]:
    """The put-call-parity forward ``F = K + C − P`` of the nearest expiries, and how many were used.

    Parameters
    ----------
    contracts : DataFrame
        A validated contract table (:data:`~research_lib.chain.CONTRACT_COLUMNS`).
    snapshot_date : datetime.date
        Expiries before it are ignored; those up to ``limits.forward_max_days`` after it are used.
    limits : PlausibilityLimits

    Returns
    -------
    (float or None, int)
        The median over the nearest ``limits.forward_expiries`` expiries (per root and expiry, the
        strike where the call and put mids are closest), in points; None when no expiry has a
        two-sided call and put at one strike within ``forward_max_pair_gap`` of the money.
    """
    c = contracts
    bid, ask = c["bid"].to_numpy(), c["ask"].to_numpy()
    exp = c["expiration"].to_numpy()
    day0 = np.datetime64(pd.Timestamp(snapshot_date).to_datetime64(), "ns")
    keep = (bid > 0) & (ask >= bid) & (exp >= day0) & (exp <= day0 + np.timedelta64(limits.forward_max_days, "D"))
    if keep.sum() < 2:
        return None, 0
    root = c["root"].to_numpy()[keep]
    exp, strike = exp[keep], c["strike"].to_numpy()[keep]
    is_call = c["right"].to_numpy()[keep] == "C"
    mid = (bid[keep] + ask[keep]) / 2.0
    # The table is sorted by root, expiration, strike, right: a call and its put are neighbours.
    pair = (is_call[:-1] & ~is_call[1:] & (strike[:-1] == strike[1:]) & (exp[:-1] == exp[1:])
            & (root[:-1] == root[1:]))
    i = np.flatnonzero(pair)
    if len(i) == 0:
        return None, 0
    k, e, diff = strike[i], exp[i], mid[i] - mid[i + 1]
    # one group per (root, expiry); pairs come in strike order within a group
    new_group = np.r_[True, (e[1:] != e[:-1]) | (root[i][1:] != root[i][:-1])]
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(i)] - 1
    group = np.cumsum(new_group) - 1
    absdiff = np.abs(diff)
    order = np.lexsort((absdiff, group))  # by group, then |C - P|
    best = order[np.r_[True, group[order][1:] != group[order][:-1]]]
    # Parity: C - P falls by about one point per point of strike. An expiry whose quotes do not (a
    # hand-built chain with the same quote on every row) says nothing about the forward.
    span = k[ends] - k[starts]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(span > 0, (diff[ends] - diff[starts]) / span, np.nan)
    lo, hi = limits.forward_slope
    ok = (slope >= lo) & (slope <= hi) & (absdiff[best] <= limits.forward_max_pair_gap * k[best])
    if not ok.any():
        return None, 0
    best_exp, fwd = e[best][ok], (k + diff)[best][ok]
    nearest = np.unique(best_exp)[:limits.forward_expiries]
    used = np.isin(best_exp, nearest)
    return float(np.median(fwd[used])), int(len(nearest))


def diagnose(contracts: pd.DataFrame, *, spot: float, snapshot_date: dt.date,
             limits: PlausibilityLimits = LIMITS) -> ChainDiagnostics:
    """The figures of :class:`ChainDiagnostics` for one validated contract table (no judgement)."""
    fwd, n_fwd = parity_forward(contracts, snapshot_date, limits)
    iv = contracts["iv"].to_numpy()
    iv = iv[np.isfinite(iv)]
    gamma = contracts["gamma"].to_numpy()
    gamma = gamma[np.isfinite(gamma)]
    oi = contracts["open_interest"].to_numpy()
    oi_total = float(oi.sum())
    oi_max = float(oi.max()) if len(oi) else 0.0
    vol = contracts["volume"].to_numpy()
    both = np.isfinite(vol) & (vol > 0) & (oi > 0)
    return ChainDiagnostics(
        forward=fwd,
        forward_gap=None if fwd is None or fwd <= 0 else spot / fwd - 1.0,
        n_forward_expiries=n_fwd,
        iv_median=float(np.median(iv)) if len(iv) else None,
        iv_high_share=float((iv > limits.iv_high).mean()) if len(iv) else 0.0,
        gamma_median=float(np.median(gamma)) if len(gamma) else None,
        oi_total=oi_total,
        oi_max=oi_max,
        oi_max_share=oi_max / oi_total if oi_total > 0 else 0.0,
        n_with_oi=int((oi > 0).sum()),
        volume_over_oi_share=float((vol[both] > oi[both]).mean()) if both.any() else None,
        n_volume_and_oi=int(both.sum()),
    )


def check_chain(contracts: pd.DataFrame, *, spot: float, snapshot_date: dt.date, where: str | None = None,
                limits: PlausibilityLimits = LIMITS) -> tuple[str, ...]:
    """Run every check of the module docstring on one validated contract table.

    Parameters
    ----------
    contracts : DataFrame
        Output of :func:`~research_lib.chain.validate_contracts` (IV/gamma zeros already NaN).
    spot : float
        The snapshot's spot (points), positive and finite.
    snapshot_date : datetime.date
        The trading date the prices belong to.
    where : str, optional
        Label for messages (the snapshot's source).
    limits : PlausibilityLimits
        Thresholds (default :data:`LIMITS`).

    Returns
    -------
    tuple of str
        Warnings, each one self-contained line; empty when nothing is suspicious, and for tables of
        fewer than ``limits.min_contracts`` contracts (not judged).

    Raises
    ------
    ImplausibleChainError
        An impossibility; its ``check`` attribute names the check (``"forward"``, ``"spot"``,
        ``"iv"``, ``"iv_gamma_swapped"``, ``"open_interest"``).
    """
    if len(contracts) < limits.min_contracts:
        return ()
    d = diagnose(contracts, spot=spot, snapshot_date=snapshot_date, limits=limits)
    warnings: list[str] = []

    def fail(check: str, message: str) -> None:
        raise ImplausibleChainError(message, check=check, where=where)

    strikes = contracts["strike"].to_numpy()
    lo, hi = float(strikes.min()), float(strikes.max())
    if not lo / limits.spot_strike_factor <= spot <= hi * limits.spot_strike_factor:
        fail("spot", f"spot {spot:g} is far outside the strikes {lo:g}..{hi:g} (more than "
                     f"{limits.spot_strike_factor:g}x): a spot in the wrong unit or a corrupt field")
    if d.forward_gap is not None:
        gap = abs(d.forward_gap)
        text = (f"spot {spot:,.2f} is {d.forward_gap:+.1%} from the put-call-parity forward {d.forward:,.2f} of "
                f"the {d.n_forward_expiries} nearest expir{'y' if d.n_forward_expiries == 1 else 'ies'}")
        if gap > limits.forward_error:
            fail("forward", f"{text} (limit {limits.forward_error:.0%}): the spot does not belong to these quotes")
        if gap > limits.forward_warn:
            warnings.append(f"{text} (more than {limits.forward_warn:.0%}): stale or wrong spot? "
                            f"levels depend on it")
    if d.iv_median is not None:
        if d.iv_median < limits.iv_median_min:
            if d.gamma_median is not None and d.gamma_median > limits.gamma_median_max:
                fail("iv_gamma_swapped", f"median IV {d.iv_median:.4g} looks like a gamma and median gamma "
                                         f"{d.gamma_median:.4g} like an IV: the IV and gamma columns are swapped")
            fail("iv", f"median IV {d.iv_median:.4g} (decimal) is below {limits.iv_median_min:g}: not "
                       f"implied volatilities")
        if d.iv_median > limits.iv_median_max:
            fail("iv", f"median IV {d.iv_median:.4g} (decimal, {d.iv_median:.0%}) is above "
                       f"{limits.iv_median_max:g}: percent written as decimal, or a corrupt column")
        if d.iv_high_share > limits.iv_high_share:
            warnings.append(f"{d.iv_high_share:.0%} of the IVs are above {limits.iv_high:.0%} (limit "
                            f"{limits.iv_high_share:.0%} of the rows): check the IV column")
    if d.oi_max > limits.oi_contract_max:
        fail("open_interest", f"one contract has open interest {d.oi_max:.3g}, above the believable "
                              f"{limits.oi_contract_max:.3g}")
    if d.n_with_oi >= limits.oi_share_min_contracts:
        top = contracts.iloc[int(np.argmax(contracts["open_interest"].to_numpy()))]
        label = f"{top['root']} {top['expiration']:%Y-%m-%d} {top['strike']:g} {top['right']}"
        text = (f"one contract ({label}) holds {d.oi_max_share:.0%} of the chain's open interest "
                f"({d.oi_max:,.0f} of {d.oi_total:,.0f})")
        if d.oi_max_share > limits.oi_share_error:
            fail("open_interest", f"{text}, above {limits.oi_share_error:.0%}: a corrupt open interest")
        if d.oi_max_share > limits.oi_share_warn:
            warnings.append(f"{text}, above {limits.oi_share_warn:.0%}: the walls and net GEX hang on it")
    n_both = d.n_volume_and_oi
    if d.volume_over_oi_share is not None and n_both >= limits.oi_share_min_contracts \
            and d.volume_over_oi_share > limits.volume_over_oi_warn:
        warnings.append(f"{d.volume_over_oi_share:.0%} of the {n_both} contracts with volume and open interest "
                        f"traded more than their open interest (limit {limits.volume_over_oi_warn:.0%}): are the "
                        f"volume and open interest columns swapped?")
    return tuple(warnings)
