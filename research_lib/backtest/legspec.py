"""Fixed strategies as data, and their vectorised leg selection from one day's chain.

Each strategy is a tuple of :class:`LegSpec` (right, side, role); :func:`select_legs` picks the contracts of one
day's chain with the rules of :mod:`research_lib.core.strategy` ("How legs are chosen": the DTE window and the
nearest expiry with usable quotes, the root preference, the usable-contract and liquidity rules, model deltas from
each contract's IV, ties further out of the money) on numpy arrays, so a backtest can select every day without
building pandas frames per strike. For the verticals and the iron condor it gives the same legs as
:func:`research_lib.core.strategy.build_strategy` without a risk budget (a test checks it on the real archive);
``short_put`` (one short put at ``short_delta``) and ``strangle`` (a short put and a short call at ``short_delta``)
are added here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from research_lib import calendar as cal
from research_lib.core import pricing

#: Roles: ``short`` |Δ| nearest short_delta (a bid needed); ``wing`` beyond the short leg, |Δ| nearest long_delta
#: (or the width); ``debit_long`` |Δ| nearest debit_long_delta; ``debit_short`` beyond it with a bid, |Δ| nearest
#: short_delta (or the width).


@dataclasses.dataclass(frozen=True)
class LegSpec:
    right: str      # "P" / "C"
    side: int       # +1 long, -1 short
    role: str       # "short", "wing", "debit_long", "debit_short"


STRATEGY_LEGS: dict[str, tuple[LegSpec, ...]] = {
    "short_put": (LegSpec("P", -1, "short"),),
    "bull_put": (LegSpec("P", -1, "short"), LegSpec("P", 1, "wing")),
    "bear_call": (LegSpec("C", -1, "short"), LegSpec("C", 1, "wing")),
    "iron_condor": (LegSpec("P", -1, "short"), LegSpec("P", 1, "wing"), LegSpec("C", -1, "short"),
                    LegSpec("C", 1, "wing")),
    "bull_call": (LegSpec("C", 1, "debit_long"), LegSpec("C", -1, "debit_short")),
    "bear_put": (LegSpec("P", 1, "debit_long"), LegSpec("P", -1, "debit_short")),
    "strangle": (LegSpec("P", -1, "short"), LegSpec("C", -1, "short")),
}
CREDIT = {"short_put", "bull_put", "bear_call", "iron_condor", "strangle"}


@dataclasses.dataclass(frozen=True)
class Selection:
    """The chosen rows (indices into the day's contract arrays), their sides, and per-contract figures."""

    rows: np.ndarray
    sides: np.ndarray
    credit_mid: float          # per unit, + received
    width: float               # points (0 for short_put/strangle)
    max_loss: float            # dollars per contract at the mid credit
    why: str


def _nearest(values: np.ndarray, target: float) -> int:
    return int(np.argmin(np.abs(values - target)))


def _settle_ns(exp: np.ndarray, is_am: np.ndarray) -> np.ndarray:
    uexp, inv = np.unique(exp, return_inverse=True)
    pm = cal.settlement_times(uexp, np.full(len(uexp), "PM")).asi8
    am = cal.settlement_times(uexp, np.full(len(uexp), "AM")).asi8
    return np.where(is_am, am[inv], pm[inv])


def select_legs(strategy: str, arrays: dict, spot: float, valuation_ns: int, params, rate: float,
                multiplier: float = 100.0, *, settle_times=None) -> Selection | str:
    """The legs of ``strategy`` from one day's chain arrays, or the reason none could be chosen (a str).

    ``arrays`` holds the day's contract columns as numpy arrays (``root_of(rows)`` giving root codes, with
    ``root_names``), ``exp``
    (datetime64[D]), ``is_am`` (AM-settled), ``strike``, ``is_call``, ``bid``, ``ask``, ``iv``, ``oi``) and ``today``
    (datetime64[D]); ``params`` is a :class:`~research_lib.core.strategy.StrategyParams`; ``settle_times(exp,
    is_am)`` gives settlement moments in ns (a memo; default :func:`research_lib.calendar.settlement_times`).
    """
    spec = STRATEGY_LEGS[strategy]
    dte = (arrays["exp"] - arrays["today"]).astype(int)
    window = np.flatnonzero(np.abs(dte - params.target_dte) <= params.dte_tolerance)
    root = arrays["root_of"](window)
    names = arrays["root_names"]
    if params.roots is not None:
        allowed = [names.index(r) for r in params.roots if r in names]
        keep = np.isin(root, allowed)
        window, root = window[keep], root[keep]
    if not len(window):
        return (f"no expiry within {params.dte_tolerance} days of the {params.target_dte}-DTE target"
                + (f" for roots {list(params.roots)}" if params.roots else ""))
    exp = arrays["exp"][window]
    is_am = arrays["is_am"][window]
    uexp, inv = np.unique(exp, return_inverse=True)
    # settlement moments per distinct (expiry, style), broadcast back
    pairs, pinv = np.unique(inv * 2 + is_am, return_inverse=True)
    pns = (settle_times or _settle_ns)(uexp[pairs // 2], (pairs % 2).astype(bool))
    settle_ns = pns[np.ravel(pinv)]
    T = (settle_ns - valuation_ns) / 1e9 / (params.config.days_per_year * 86400.0)
    K = arrays["strike"][window]
    is_call = arrays["is_call"][window]
    bid = arrays["bid"][window]
    ask = arrays["ask"][window]
    iv = arrays["iv"][window]
    oi = arrays["oi"][window]
    with np.errstate(all="ignore"):
        mid = (bid + ask) / 2.0
        spread = (ask - bid) / mid
    live = T > 0
    quoted = np.isfinite(bid) & np.isfinite(ask) & (ask > 0) & (bid >= 0) & (bid <= ask)
    has_iv = np.isfinite(iv) & (iv > 0)
    usable = live & quoted & has_iv
    if params.max_spread_pct is not None:
        usable &= spread <= params.max_spread_pct
    usable &= oi >= params.min_open_interest
    delta = np.full(len(window), np.nan)
    if usable.any():
        u = np.flatnonzero(usable)
        delta[u] = pricing.greeks(spot, K[u], T[u], iv[u], rate, float(params.div_yield), is_call[u]).delta
        usable &= np.isfinite(delta)
    absd = np.abs(delta)
    rights = sorted({s.right for s in spec})
    # the nearest expiry (then the preferred root) with >= 2 usable strikes per right, one with a bid
    best = None
    for e_i in np.argsort(np.abs((uexp - arrays["today"]).astype(int) - params.target_dte) * 100000
                          + (uexp - arrays["today"]).astype(int), kind="stable"):
        at = inv == e_i
        roots = np.unique(root[at])
        ok = []
        for r in roots:
            m = at & (root == r)
            good = all(((m & usable & (is_call == (rt == "C"))).sum() >= 2)
                       and (m & usable & (is_call == (rt == "C")) & (bid > 0)).any() for rt in rights)
            if good:
                ok.append(r)
        if ok:
            def order(r, at=at):
                if params.roots is not None:
                    return (params.roots.index(names[r]),)
                m = at & (root == r)
                pm = not is_am[m][0]
                return ((not pm) if params.prefer_pm else False, -int((m & usable).sum()),
                        arrays["root_names"][r])
            best = (e_i, sorted(ok, key=order)[0])
            break
    if best is None:
        return (f"no expiry within {params.target_dte}±{params.dte_tolerance} DTE has usable "
                f"{' and '.join('calls' if r == 'C' else 'puts' for r in rights)}")
    e_i, r = best
    pick = inv == e_i
    pick &= root == r
    width_pts = params.width_for(spot)
    chosen: list[int] = []
    sides: list[int] = []
    widths: list[float] = []
    near_k: dict[str, float] = {}
    for leg in spec:
        right_m = pick & usable & (is_call == (leg.right == "C"))
        idx = np.flatnonzero(right_m)
        # furthest out of the money first, so argmin's first hit breaks ties outward
        idx = idx[np.argsort(K[idx] if leg.right == "P" else -K[idx], kind="stable")]
        if leg.role in ("short", "debit_long"):
            pool = idx[bid[idx] > 0] if leg.role == "short" else idx
            if not len(pool):
                return f"no usable {'put' if leg.right == 'P' else 'call'} for the {leg.role} leg"
            target = params.short_delta if leg.role == "short" else params.debit_long_delta
            j = pool[_nearest(absd[pool], target)]
            near_k[leg.right] = K[j]
        else:
            k0 = near_k[leg.right]
            pool = idx[K[idx] < k0] if leg.right == "P" else idx[K[idx] > k0]
            if leg.role == "debit_short":
                pool = pool[bid[pool] > 0]
            if not len(pool):
                return f"no usable {'put' if leg.right == 'P' else 'call'} beyond {k0:g} for the {leg.role} leg"
            if width_pts is not None:
                tk = k0 - width_pts if leg.right == "P" else k0 + width_pts
                pool = pool[np.argsort(-K[pool] if leg.right == "P" else K[pool], kind="stable")]
                j = pool[_nearest(K[pool], tk)]
            else:
                target = params.long_delta if leg.role == "wing" else params.short_delta
                j = pool[_nearest(absd[pool], target)]
            widths.append(abs(K[j] - k0))
        chosen.append(int(j))
        sides.append(leg.side)
    rows = np.asarray(chosen)
    sides_a = np.asarray(sides)
    credit = float(np.sum(-sides_a * mid[rows]))
    width = max(widths) if widths else 0.0
    if strategy == "strangle" or strategy == "iron_condor":
        kp = K[rows][(~is_call[rows]) & (sides_a < 0)][0]
        kc = K[rows][is_call[rows] & (sides_a < 0)][0]
        if not kp < kc:
            return f"the short put {kp:g} is not below the short call {kc:g}"
    if strategy in CREDIT:
        if not credit > 0 or (width and not credit < width):
            return f"the mid credit {credit:.4g} is not between 0 and the width {width:g}: inconsistent quotes"
        if width:
            max_loss = (width - credit) * multiplier
        else:       # short put / strangle: the put side to zero (the call side of a strangle is unbounded)
            kput = K[rows][~is_call[rows]].max()
            max_loss = (kput - credit) * multiplier
    else:
        if not 0 < -credit < width:
            return f"the mid debit {-credit:.4g} is not between 0 and the width {width:g}: inconsistent quotes"
        max_loss = -credit * multiplier
    exp_txt = str(uexp[e_i])
    legs_txt = ", ".join(f"{s:+d} {K[j]:g}{'C' if is_call[j] else 'P'} Δ{delta[j]:+.3f}" for j, s in zip(rows, sides_a,
                                                                                                         strict=True))
    why = (f"{strategy} by rule: {names[r]} {exp_txt} ({int(dte[window][rows[0]])} DTE, target {params.target_dte}); "
           f"{legs_txt}")
    return Selection(rows=window[rows], sides=sides_a, credit_mid=credit, width=float(width),
                     max_loss=float(max_loss), why=why)


__all__ = ["CREDIT", "LegSpec", "STRATEGY_LEGS", "Selection", "select_legs"]
