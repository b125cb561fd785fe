"""Leg selection from a chain: the candidate contracts with model greeks, the liquidity rules and their
:class:`LiquidityReport`, the choice of expiry and root, and the verticals' legs (see "How legs are chosen" in
:mod:`research_lib.core.strategy`). Pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from research_lib.core import gex, pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.core.strategy.params import StrategyParams, _check_params
from research_lib.core.strategy.select import StrategyKind
from research_lib.errors import StrategyError
from research_lib.formatting import jsonable

__all__ = ["CANDIDATE_COLUMNS", "Leg", "LiquidityReport", "leg_candidates"]


@dataclasses.dataclass(frozen=True)
class Leg:
    """One option of a position.

    Attributes
    ----------
    root, expiration, settlement, strike, right
        The contract (``expiration`` a :class:`datetime.date`; ``right`` ``"C"``/``"P"``).
    side : int
        +1 long (bought), −1 short (sold).
    quantity : int
        Contracts per one unit of the position (1 for every structure here).
    bid, ask, mid : float
        Quotes per share; ``mid = (bid + ask) / 2``.
    iv : float
        The contract's implied volatility (decimal): the vendor's, or implied from the mid when
        ``fill_iv_from_mid`` filled it.
    delta, gamma : float
        Model delta (per 1 point, calls > 0, puts < 0) and gamma (per point) at ``iv``, per share, long one.
    vega : float
        Per share per vol point (0.01 of IV), long one option.
    theta : float
        Per share per calendar day, long one option.
    open_interest : float
        Contracts open.
    """

    root: str
    expiration: dt.date
    settlement: str
    strike: float
    right: str
    side: int
    quantity: int
    bid: float
    ask: float
    mid: float
    iv: float
    delta: float
    gamma: float
    vega: float
    theta: float
    open_interest: float

    @property
    def natural(self) -> float:
        """The price this leg fills at naturally: the ask when buying, the bid when selling."""
        return self.ask if self.side > 0 else self.bid

    @property
    def is_call(self) -> bool:
        return self.right == "C"

    @property
    def label(self) -> str:
        """``"-1 SPXW 2024-02-16 4600P"``."""
        return f"{self.side * self.quantity:+d} {self.root} {self.expiration:%Y-%m-%d} {self.strike:g}{self.right}"

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): the expiration as an ISO date."""
        return jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class LiquidityReport:
    """What the liquidity rules removed among the contracts a structure could use.

    Counted over the rights the structure needs (puts, calls or both) at the chosen expiry and root. A
    contract failing several rules is counted once, under the first that applies (see the module
    docstring).

    Attributes
    ----------
    where : str
        ``"SPXW 2022-07-22 puts"``.
    considered : int
        Contracts of those rights at that expiry and root.
    usable : int
        Contracts that pass every rule (any leg); ``usable_to_sell`` of them have a bid > 0.
    usable_to_sell : int
    open_interest : int
        Removed by ``min_open_interest`` (open interest below it).
    spread : int
        Removed by ``max_spread_pct`` (relative spread above it).
    no_bid : int
        Removed for having no bid (zero or missing; with a spread limit a zero bid is also too wide).
    data : int
        Not usable for a data reason: expired, no ask, crossed quotes, no implied volatility.
    min_open_interest, max_spread_pct : float or None
        The rules applied.
    """

    where: str
    considered: int
    usable: int
    usable_to_sell: int
    open_interest: int
    spread: int
    no_bid: int
    data: int
    min_open_interest: float
    max_spread_pct: float | None

    def summary(self) -> str:
        """``"liquidity at SPXW 2022-07-22 puts: 181 contracts, 120 usable (118 with a bid to sell);
        removed 40 with open interest < 10, 3 with a bid/ask spread > 10% of mid, 15 without a bid; 3 with
        bad data"``."""
        removed = [f"{self.open_interest} with open interest < {self.min_open_interest:g}",
                   f"{self.spread} with a bid/ask spread > "
                   + ("(no limit)" if self.max_spread_pct is None else f"{self.max_spread_pct:.0%} of mid"),
                   f"{self.no_bid} without a bid"]
        text = (f"liquidity at {self.where}: {self.considered} contracts, {self.usable} usable "
                f"({self.usable_to_sell} with a bid to sell); removed {', '.join(removed)}")
        if self.data:
            text += f"; {self.data} with bad data (expired, no ask, crossed or no IV)"
        return text

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`)."""
        return jsonable(dataclasses.asdict(self))


def _liquidity_report(rows: pd.DataFrame, params: StrategyParams, where: str) -> LiquidityReport:
    problem = rows["problem"]
    return LiquidityReport(
        where=where, considered=len(rows), usable=int(rows["usable"].sum()),
        usable_to_sell=int((rows["usable"] & (rows["bid"] > 0)).sum()),
        open_interest=int((problem == "low_oi").sum()), spread=int((problem == "wide").sum()),
        no_bid=int((problem == "no_bid").sum()),
        data=int(problem.isin(["expired", "no_ask", "crossed", "no_iv"]).sum()),
        min_open_interest=float(params.min_open_interest),
        max_spread_pct=None if params.max_spread_pct is None else float(params.max_spread_pct))


#: Columns of :func:`leg_candidates`.
CANDIDATE_COLUMNS = ("root", "expiration", "settlement", "strike", "right", "bid", "ask", "mid", "iv",
                     "iv_source", "open_interest", "dte", "T", "delta", "gamma", "vega", "theta", "usable",
                     "problem")

_PROBLEM_WORDS = {
    "expired": "expired",
    "no_ask": "without an ask",
    "no_bid": "without a bid",
    "crossed": "with crossed quotes (bid > ask)",
    "no_iv": "without an implied volatility",
    "wide": "with a bid/ask spread above the max_spread_pct limit",
    "low_oi": "with open interest below min_open_interest",
}


def _valuation(snapshot: ChainSnapshot, params: StrategyParams) -> pd.Timestamp:
    return gex.valuation_moment(snapshot, params.config)


def leg_candidates(snapshot: ChainSnapshot, params: StrategyParams | None = None, *,
                   expiration: Any = None) -> pd.DataFrame:
    """The contracts leg selection looks at, with model greeks and why any is unusable.

    Parameters
    ----------
    snapshot : ChainSnapshot
    params : StrategyParams, optional
    expiration : date-like, optional
        Only this expiry; default: every expiry whose DTE lies within ``dte_tolerance`` of ``target_dte``.

    Returns
    -------
    DataFrame
        Columns :data:`CANDIDATE_COLUMNS`: the contract fields (only the roots of ``params.roots`` when
        given), ``mid`` per share, ``iv`` (vendor, or implied from the mid when ``fill_iv_from_mid``) and
        ``iv_source`` (``"vendor"``, ``"mid"`` or ``""``), ``dte`` (calendar days), ``T`` (years), model
        ``delta`` and ``gamma`` per point, ``vega`` per vol point and ``theta`` per calendar day (per share,
        long one option; NaN without IV), ``usable`` (bool) and ``problem`` (``""`` when usable, else one
        of ``expired, no_ask, no_bid, crossed, no_iv, wide, low_oi``, the first that applies).
    """
    params = _check_params(params)
    _check_snapshot(snapshot)
    moment = _valuation(snapshot, params)
    today = pd.Timestamp(moment.date())
    c = snapshot.contracts
    dte_all = (c["expiration"] - today).dt.days.to_numpy()
    if expiration is not None:
        try:
            wanted = pd.Timestamp(expiration).normalize()
        except (TypeError, ValueError) as exc:
            raise StrategyError(f"expiration {expiration!r} is not a date") from exc
        keep = (c["expiration"] == wanted).to_numpy()
    else:
        keep = np.abs(dte_all - params.target_dte) <= params.dte_tolerance
    if params.roots is not None:
        keep &= c["root"].isin(params.roots).to_numpy()
    sub = c.loc[keep].reset_index(drop=True)
    out = sub[["root", "expiration", "settlement", "strike", "right", "bid", "ask", "iv", "open_interest"]].copy()
    out["dte"] = dte_all[keep].astype(int)
    if len(sub):
        T = gex.time_to_expiry(dataclasses.replace(snapshot, contracts=sub), params.config)
    else:
        T = np.zeros(0)
    out["T"] = np.asarray(T, dtype=float)
    bid = out["bid"].to_numpy()
    ask = out["ask"].to_numpy()
    with np.errstate(all="ignore"):
        mid = (bid + ask) / 2.0
    out["mid"] = mid
    S, r, q = snapshot.spot, float(params.rate), float(params.div_yield)
    K = out["strike"].to_numpy()
    is_call = (out["right"] == "C").to_numpy()
    live = out["T"].to_numpy() > 0
    quoted = np.isfinite(bid) & np.isfinite(ask) & (ask > 0) & (bid >= 0) & (bid <= ask)
    iv = out["iv"].to_numpy().copy()
    source = np.where(np.isfinite(iv) & (iv > 0), "vendor", "")
    if params.fill_iv_from_mid:
        fill = live & quoted & (source == "")
        if fill.any():
            res = pricing.implied_vol(mid[fill], S, K[fill], out["T"].to_numpy()[fill], r, q, is_call[fill])
            got = np.asarray(res.iv, dtype=float)
            idx = np.flatnonzero(fill)
            ok = np.isfinite(got) & (got > 0)
            iv[idx[ok]] = got[ok]
            source[idx[ok]] = "mid"
    out["iv"] = iv
    out["iv_source"] = source
    has_iv = source != ""
    Tm = np.where(live & has_iv, out["T"].to_numpy(), np.nan)
    g = pricing.greeks(S, K, Tm, iv, r, q, is_call) if len(out) else None
    for name, scale in (("delta", 1.0), ("gamma", 1.0), ("vega", 0.01), ("theta", 1.0 / 365.0)):
        out[name] = np.asarray(getattr(g, name), dtype=float) * scale if g is not None else np.zeros(0)

    with np.errstate(all="ignore"):
        spread = (ask - bid) / mid
    too_wide = np.zeros(len(out), dtype=bool) if params.max_spread_pct is None else ~(spread <= params.max_spread_pct)
    no_bid = ~np.isfinite(bid) | ((bid == 0) & too_wide)
    problem = np.full(len(out), "", dtype=object)
    checks = (
        ("expired", ~live),
        ("no_ask", ~np.isfinite(ask) | ~(ask > 0)),
        ("no_bid", no_bid),
        ("crossed", bid > ask),
        ("no_iv", ~has_iv | ~np.isfinite(out["delta"].to_numpy())),
        ("wide", too_wide),
        ("low_oi", out["open_interest"].to_numpy() < params.min_open_interest),
    )
    for name, mask in checks:
        problem[(problem == "") & mask] = name
    out["problem"] = problem
    out["usable"] = problem == ""
    return out[list(CANDIDATE_COLUMNS)]


def _check_snapshot(snapshot: Any) -> None:
    if not isinstance(snapshot, ChainSnapshot):
        raise StrategyError(f"snapshot must be a ChainSnapshot, got {type(snapshot).__name__}")


_RIGHTS_NEEDED = {
    StrategyKind.BULL_PUT_SPREAD: ("P",),
    StrategyKind.BEAR_PUT_SPREAD: ("P",),
    StrategyKind.BEAR_CALL_SPREAD: ("C",),
    StrategyKind.BULL_CALL_SPREAD: ("C",),
    StrategyKind.IRON_CONDOR: ("P", "C"),
}
_RIGHT_WORD = {"P": "puts", "C": "calls"}


class _Fail(Exception):
    """Internal: leg selection failed (becomes a NoValidStrategy)."""

    def __init__(self, code: str, reason: str, **extra: Any):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.expiration: dt.date | None = None
        self.liquidity: LiquidityReport | None = None
        self.extra = extra


def _problem_summary(rows: pd.DataFrame, params: StrategyParams) -> str:
    counts = rows.loc[~rows["usable"], "problem"].value_counts()
    parts = []
    for name, n in counts.items():
        word = _PROBLEM_WORDS[name]
        if name == "wide":
            word = f"with a bid/ask spread above {params.max_spread_pct:.0%} of mid"
        elif name == "low_oi":
            word = f"with open interest below {params.min_open_interest:g}"
        parts.append(f"{n} {word}")
    return "; ".join(parts) if parts else "none unusable"


def _root_order(rows: pd.DataFrame, params: StrategyParams) -> list[str]:
    """Roots present in ``rows`` (one expiry), most preferred first."""
    roots = rows.groupby("root").agg(settlement=("settlement", "first"), n=("usable", "sum"))
    if params.roots is not None:
        return sorted(roots.index, key=lambda r: params.roots.index(r))
    return sorted(roots.index, key=lambda r: ((roots.at[r, "settlement"] != "PM") if params.prefer_pm else False,
                                              -int(roots.at[r, "n"]), r))


def _choose_expiry(cands: pd.DataFrame, snapshot: ChainSnapshot, params: StrategyParams,
                   rights: tuple[str, ...], moment: pd.Timestamp) -> tuple[pd.Timestamp, str, str]:
    """(expiration, root, note) of the expiry nearest the target with usable quotes for ``rights``."""
    window = f"{max(params.target_dte - params.dte_tolerance, 0)}..{params.target_dte + params.dte_tolerance} DTE"
    if cands.empty or not (cands["T"] > 0).any():
        dte = (snapshot.contracts["expiration"] - pd.Timestamp(moment.date())).dt.days
        live = snapshot.contracts.loc[dte >= 0, "expiration"]
        if params.roots is not None:
            live = live[snapshot.contracts.loc[dte >= 0, "root"].isin(params.roots)]
        if live.empty:
            nearest = "the chain has no live expiry" + (f" for roots {list(params.roots)}" if params.roots else "")
        else:
            exps = pd.Series(sorted(live.unique()))
            dtes = (exps - pd.Timestamp(moment.date())).dt.days
            i = int((dtes - params.target_dte).abs().to_numpy().argmin())
            nearest = f"the nearest is {exps[i]:%Y-%m-%d} ({dtes[i]} DTE)"
        raise _Fail("no_expiry", f"no live expiry within {params.dte_tolerance} days of the {params.target_dte}-DTE "
                                 f"target ({window}, counted from {moment:%Y-%m-%d}); {nearest}")
    need = cands[cands["right"].isin(rights)]
    ok_pairs = []
    for (exp, root), rows in need.groupby(["expiration", "root"], sort=True):
        good = True
        for right in rights:
            r_rows = rows[(rows["right"] == right) & rows["usable"]]
            if len(r_rows) < 2 or not (r_rows["bid"] > 0).any():
                good = False
        if good:
            ok_pairs.append((exp, root))
    if not ok_pairs:
        what = " and ".join(_RIGHT_WORD[r] for r in rights)
        n_exp = need["expiration"].nunique()
        raise _Fail("no_quotes", f"no expiry within {window} has usable {what} (two or more usable strikes, one with "
                                 f"a bid, in one root): of {len(need)} {what} at {n_exp} "
                                 f"expir{'y' if n_exp == 1 else 'ies'}, {int(need['usable'].sum())} usable; "
                                 f"{_problem_summary(need, params)}")
    exps = sorted({exp for exp, _ in ok_pairs}, key=lambda e: (abs((e - pd.Timestamp(moment.date())).days
                                                                   - params.target_dte), e))
    exp = exps[0]
    at_exp = cands[cands["expiration"] == exp]
    ok_roots = {root for e, root in ok_pairs if e == exp}
    order = [r for r in _root_order(at_exp, params) if r in ok_roots]
    root = order[0]
    others = sorted(set(at_exp["root"]) - {root})
    note = ""
    if others:
        why = ("roots order given" if params.roots is not None
               else "PM settlement preferred" if params.prefer_pm and at_exp.loc[at_exp["root"] == root,
                                                                                  "settlement"].iloc[0] == "PM"
               else "more usable quotes")
        note = f"; {root} rather than {', '.join(others)} ({why})"
    return exp, root, note


def _nearest(rows: pd.DataFrame, value: np.ndarray, target: float) -> pd.Series:
    """The row whose ``value`` is nearest ``target``; ties go to the row listed first."""
    i = int(np.argmin(np.abs(value - target)))
    return rows.iloc[i]


def _otm_sorted(rows: pd.DataFrame, right: str) -> pd.DataFrame:
    """Rows ordered from the furthest out of the money (puts: ascending strike; calls: descending)."""
    return rows.sort_values("strike", ascending=(right == "P"), kind="stable")


def _beyond(rows: pd.DataFrame, right: str, strike: float) -> pd.DataFrame:
    """Rows strictly further out of the money than ``strike``."""
    return rows[rows["strike"] < strike] if right == "P" else rows[rows["strike"] > strike]


def _pick_vertical(rows: pd.DataFrame, right: str, params: StrategyParams, spot: float, *,
                   debit: bool, where: str) -> tuple[pd.Series, pd.Series, str, pd.DataFrame]:
    """(near leg row, far leg row, description, far-leg pool) of one vertical of ``right`` from usable
    ``rows``; the pool holds every contract that could be the far leg (beyond the near leg)."""
    rows = _otm_sorted(rows[(rows["right"] == right) & rows["usable"]], right)
    word = _RIGHT_WORD[right]
    width = params.width_for(spot)
    if debit:
        near_target, near_role = params.debit_long_delta, "long"
        near_pool = rows
    else:
        near_target, near_role = params.short_delta, "short"
        near_pool = rows[rows["bid"] > 0]
    if near_pool.empty:
        code = "no_long_leg" if debit else "no_short_leg"
        raise _Fail(code, f"no usable {word} {'with a bid ' if not debit else ''}for the {near_role} leg at {where}")
    near = _nearest(near_pool, near_pool["delta"].abs().to_numpy(), near_target)
    far_role = "short" if debit else "long"
    far_pool = _beyond(rows, right, near["strike"])
    if debit:
        far_pool = far_pool[far_pool["bid"] > 0]
    if far_pool.empty:
        raise _Fail("no_short_leg" if debit else "no_long_leg",
                    f"no usable {word}{' with a bid' if debit else ''} beyond the {near_role} {near['strike']:g}"
                    f"{right} for the {far_role} leg at {where}")
    if width is not None:
        target_k = near["strike"] - width if right == "P" else near["strike"] + width
        # ties go to the narrower spread: order the pool from the near leg outward
        pool = far_pool.sort_values("strike", ascending=(right == "C"), kind="stable")
        far = _nearest(pool, pool["strike"].to_numpy(), target_k)
        far_how = f"nearest {width:g} points beyond the {near_role} leg"
    else:
        far_target = params.short_delta if debit else params.long_delta
        far = _nearest(far_pool, far_pool["delta"].abs().to_numpy(), far_target)
        far_how = f"|Δ| target {far_target:.2f}"
    desc = (f"{near_role} {near['strike']:g}{right} Δ{near['delta']:+.3f} (|Δ| target {near_target:.2f}), "
            f"{far_role} {far['strike']:g}{right} Δ{far['delta']:+.3f} ({far_how})")
    return near, far, desc, far_pool


def _leg(row: pd.Series, side: int) -> Leg:
    return Leg(root=str(row["root"]), expiration=pd.Timestamp(row["expiration"]).date(),
               settlement=str(row["settlement"]), strike=float(row["strike"]), right=str(row["right"]), side=side,
               quantity=1, bid=float(row["bid"]), ask=float(row["ask"]), mid=float(row["mid"]),
               iv=float(row["iv"]), delta=float(row["delta"]), gamma=float(row["gamma"]),
               vega=float(row["vega"]), theta=float(row["theta"]), open_interest=float(row["open_interest"]))
