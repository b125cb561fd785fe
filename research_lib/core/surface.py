"""A smooth implied-volatility surface from a chain's own quotes, one smile per expiry.

Vendor IVs of wide, stale or deep contracts are fragile: a bid of 0, a quote left over from the session,
or a deep in-the-money price whose time value is a rounding error each give an IV that says little, and
GEX (gamma × OI × S²) inherits it. :func:`smoothed_iv` replaces each contract's IV by a smile fitted, per
expiry, to the quotes that do carry information.

Method
------
Per expiry and root (an SPX AM monthly and the SPXW PM contract of the same date settle at different
moments, so they are separate smiles), with ``S`` the ``spot`` argument (default the snapshot's),
``T`` the config's time to expiry (years) and ``F = S e^{(r − q) T}`` the model forward:

1. **Quotes.** Out-of-the-money side only: puts with ``K < F``, calls with ``K >= F``. A quote is used
   when it is two-sided with ``bid > 0``, ``ask >= bid`` and ``(ask − bid) / mid <= max_rel_spread``
   (:func:`research_lib.core.parity.usable_quotes`), and its mid solves to an implied vol
   (:func:`research_lib.core.pricing.implied_vol` at ``S``, ``K``, ``T``, ``r``, ``q``). That IV is
   :attr:`SmoothedIV.quote_iv`.
2. **Weights.** Each quote's IV uncertainty is its half-spread over its vega,
   ``u = (ask − bid) / 2 / vega`` (vega per 1.00 of vol), floored at :data:`MIN_IV_UNCERTAINTY`
   (0.1 vol point); the weight is ``1 / u²`` (so a quote counts by how tightly its spread pins its IV).
3. **Fit.** In log-moneyness ``k = ln(K / F)``: a cubic P-spline (Eilers & Marx 1996), i.e. a cubic
   B-spline basis on equally spaced knots over the quotes' k-range, ``clip(n // 3, 4, 30)`` segments,
   with a second-difference penalty ``λ`` on the coefficients; the weighted least-squares solution
   ``(BᵀWB + λ DᵀD) c = BᵀWy``. ``λ`` is chosen among 13 values (``10^-6 .. 10^6`` times
   ``tr(BᵀWB) / tr(DᵀD)``) by generalised cross-validation, ``GCV(λ) = n · RSS_w / (n − tr H)²``. Then one
   robust pass: each quote's weight is multiplied by the Huber factor ``min(1, 2 / |z|)`` of its
   standardised residual ``z = (iv − fit) / u``, and the fit (with its GCV choice of ``λ``) is repeated.
4. **Evaluation.** Every contract of the expiry (calls and puts, in or out of the money, quoted or not)
   gets the smile at its own ``k``; outside the fitted k-range the smile is flat (the end value). The
   values are clipped to the range of the quote IVs fitted (a spline cannot overshoot to a negative or
   absurd vol between scattered quotes).
5. **Too few quotes.** An expiry with fewer than ``min_quotes`` (default 5) used quotes is not fitted:
   its contracts keep their own IV (the snapshot's ``iv`` column, NaN where absent), and
   :attr:`SmoothedIV.notes` counts them. Expired contracts (``T <= 0``) get NaN.

The fit table (:attr:`SmoothedIV.fits`) gives, per expiry and root, the number of quotes used, the
unweighted RMSE of fit minus quote IV in vol points, and the k-range fitted.

Example
-------
>>> from research_lib.core.surface import smoothed_iv
>>> surf = smoothed_iv(snap, config)                         # doctest: +SKIP
>>> snap.contracts.assign(iv=surf.iv)                        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.interpolate import BSpline

from research_lib.core import pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.core.gex import GexConfig, time_to_expiry
from research_lib.core.parity import usable_quotes
from research_lib.errors import QuoteFitArgumentError
from research_lib.formatting import jsonable

__all__ = ["FIT_COLUMNS", "MIN_IV_UNCERTAINTY", "SmoothedIV", "fit_smile", "smoothed_iv"]

#: Floor of a quote's IV uncertainty (decimal vol: 0.001 = 0.1 vol point), so no quote weighs without bound.
MIN_IV_UNCERTAINTY = 0.001
#: Huber constant of the robust pass, in units of a quote's IV uncertainty.
HUBER_C = 2.0
#: Relative penalties tried by the GCV choice of the smoothing parameter.
LAMBDAS = 10.0 ** np.arange(-6.0, 7.0)
#: Columns of :attr:`SmoothedIV.fits`.
FIT_COLUMNS = ("expiration", "root", "n_quotes", "method", "rmse", "k_min", "k_max", "lam")


def _basis(x: np.ndarray, lo: float, hi: float, n_seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Cubic B-spline design matrix at ``x`` (clipped to [lo, hi]) on ``n_seg`` equal segments, and the knots."""
    h = (hi - lo) / n_seg
    knots = np.concatenate([lo + h * np.arange(-3, 0), np.linspace(lo, hi, n_seg + 1), hi + h * np.arange(1, 4)])
    xc = np.clip(x, lo, hi)
    return BSpline.design_matrix(xc, knots, 3, extrapolate=False).toarray(), knots


def _penalised_fit(B: np.ndarray, y: np.ndarray, w: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted P-spline coefficients with the GCV choice of the penalty; returns (coef, lam).

    All :data:`LAMBDAS` are solved in one batched call: ``(A + λP) [c, H] = [BᵀWy, A]`` gives the
    coefficients ``c`` and, through ``tr H``, the effective degrees of freedom. ``A + λP`` is positive
    definite for ``λ > 0`` once the quotes span 2 distinct strikes (the penalty's null space, the straight
    lines, is then seen by ``A``).
    """
    n = len(y)
    BtW = B.T * w
    A = BtW @ B
    b = BtW @ y
    scale = np.trace(A) / max(np.trace(P), 1e-300)
    lams = LAMBDAS * scale
    M = A[None, :, :] + lams[:, None, None] * P[None, :, :]
    rhs = np.concatenate([b[:, None], A], axis=1)
    X = np.linalg.solve(M, np.broadcast_to(rhs, (len(lams), *rhs.shape)))
    coefs = X[:, :, 0]
    edf = np.trace(X[:, :, 1:], axis1=1, axis2=2)
    rss = ((y[:, None] - B @ coefs.T) ** 2 * w[:, None]).sum(axis=0)
    denom = (n - edf) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        gcv = np.where(denom > 1e-12, n * rss / denom, np.inf)
    best = int(np.argmin(gcv)) if np.isfinite(gcv).any() else len(lams) - 1
    return coefs[best], float(lams[best])


def fit_smile(k: np.ndarray, iv: np.ndarray, uncertainty: np.ndarray) -> tuple[BSpline, float, float, float]:
    """The smoothed smile of one expiry (steps 2-3 of the module docstring).

    Parameters
    ----------
    k : ndarray
        Log-moneyness ``ln(K/F)`` of the quotes (any order; at least 2 distinct values).
    iv : ndarray
        Their implied vols (decimal).
    uncertainty : ndarray
        Their IV uncertainties (decimal vol; floored at :data:`MIN_IV_UNCERTAINTY`).

    Returns
    -------
    spline, k_min, k_max, lam
        ``spline(k)`` is the smile inside ``[k_min, k_max]``; evaluate through :func:`_evaluate_smile`
        (clipping ``k``) for the flat extrapolation. ``lam`` is the penalty chosen.
    """
    k = np.asarray(k, dtype=float)
    iv = np.asarray(iv, dtype=float)
    u = np.maximum(np.asarray(uncertainty, dtype=float), MIN_IV_UNCERTAINTY)
    lo, hi = float(k.min()), float(k.max())
    if not hi > lo:
        raise QuoteFitArgumentError("a smile needs quotes at 2 or more distinct strikes", argument="k")
    n_seg = int(np.clip(len(k) // 3, 4, 30))
    B, knots = _basis(k, lo, hi, n_seg)
    nb = B.shape[1]
    D = np.diff(np.eye(nb), 2, axis=0)
    P = D.T @ D
    w = 1.0 / (u * u)
    w = w / w.mean()
    coef, lam = _penalised_fit(B, iv, w, P)
    z = (iv - B @ coef) / u
    huber = np.minimum(1.0, HUBER_C / np.maximum(np.abs(z), 1e-12))
    coef, lam = _penalised_fit(B, iv, w * huber, P)
    return BSpline(knots, coef, 3, extrapolate=False), lo, hi, float(lam)


def _evaluate_smile(spline: BSpline, lo: float, hi: float, k: np.ndarray) -> np.ndarray:
    return spline(np.clip(k, lo, hi))


@dataclasses.dataclass(frozen=True, eq=False)
class SmoothedIV:
    """The smoothed IV of every contract of a chain (:func:`smoothed_iv`).

    Attributes
    ----------
    iv : ndarray
        Smoothed IV (decimal), aligned with ``snapshot.contracts`` rows; each unfitted expiry's own IV;
        NaN for expired contracts and where an unfitted expiry's contract has no IV.
    quote_iv : ndarray
        IV re-solved from each contract's own mid at :attr:`spot`, where its quote was used in a fit
        (out-of-the-money side, usable quote, IV solved); NaN elsewhere.
    fitted : ndarray of bool
        True where :attr:`iv` comes from a fitted smile.
    fits : DataFrame
        One row per (expiration, root) with a live contract; columns :data:`FIT_COLUMNS`: ``n_quotes``
        (quotes used), ``method`` (``"p-spline"`` or ``"own_iv"``), ``rmse`` (vol points, unweighted,
        fit minus quote IV; NaN when not fitted), ``k_min``/``k_max`` (fitted log-moneyness range),
        ``lam`` (the penalty chosen).
    spot : float
        The spot the IVs were solved at.
    notes : tuple of str
        What was not fitted and why.
    """

    iv: np.ndarray
    quote_iv: np.ndarray
    fitted: np.ndarray
    fits: pd.DataFrame
    spot: float
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): the arrays as lists (NaN as null), the fit
        table as records."""
        return jsonable({"iv": self.iv, "quote_iv": self.quote_iv, "fitted": self.fitted,
                         "fits": self.fits.to_dict("records"), "spot": self.spot, "notes": self.notes})


def smoothed_iv(snapshot: ChainSnapshot, config: GexConfig, *, spot: float | None = None,
                max_rel_spread: float = 0.5, min_quotes: int = 5) -> SmoothedIV:
    """IV of every contract from a smooth per-expiry smile fitted to the chain's quotes (module docstring).

    Parameters
    ----------
    snapshot : ChainSnapshot
        The chain (its bid and ask; its ``iv`` column only for unfitted expiries).
    config : GexConfig
        ``rate``, ``div_yield`` (continuous decimals) and the day count giving ``T``.
    spot : float, optional
        The spot the quotes are solved at (default ``snapshot.spot``; pass a parity spot,
        :func:`research_lib.core.parity.parity_spot`, for after-close quotes).
    max_rel_spread : float, default 0.5
        Largest ``(ask − bid) / mid`` of a quote used.
    min_quotes : int, default 5
        Fewest used quotes an expiry needs to be fitted.

    Returns
    -------
    SmoothedIV

    Raises
    ------
    QuoteFitArgumentError
        A non-positive or non-finite ``spot`` or ``max_rel_spread``; ``min_quotes`` below 3.
    """
    S = float(snapshot.spot if spot is None else spot)
    if not (np.isfinite(S) and S > 0):
        raise QuoteFitArgumentError(f"spot must be a positive finite price, got {spot!r}", argument="spot")
    if not (np.isfinite(max_rel_spread) and max_rel_spread > 0):
        raise QuoteFitArgumentError(f"max_rel_spread must be positive, got {max_rel_spread!r}",
                                    argument="max_rel_spread")
    if int(min_quotes) != min_quotes or min_quotes < 3:
        raise QuoteFitArgumentError(f"min_quotes must be a whole number >= 3, got {min_quotes!r}",
                                    argument="min_quotes")
    c = snapshot.contracts
    n = len(c)
    r, q = config.rate, config.div_yield
    T = time_to_expiry(snapshot, config)
    live = T > 0
    K = c["strike"].to_numpy(dtype=float)
    is_call = (c["right"] == "C").to_numpy()
    bid, ask = c["bid"].to_numpy(dtype=float), c["ask"].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        k = np.log(K / S) - (r - q) * T
    otm = np.where(is_call, k >= 0, k < 0)
    cand = live & otm & usable_quotes(bid, ask, max_rel_spread)
    quote_iv = np.full(n, np.nan)
    unc = np.full(n, np.nan)
    idx = np.flatnonzero(cand)
    if idx.size:
        mid = 0.5 * (bid[idx] + ask[idx])
        res = pricing.implied_vol(mid, S, K[idx], T[idx], r, q, is_call[idx])
        good = np.asarray(res.ok)
        quote_iv[idx[good]] = res.iv[good]
        vg = pricing.vega(S, K[idx[good]], T[idx[good]], res.iv[good], r, q)
        with np.errstate(all="ignore"):
            unc[idx[good]] = 0.5 * (ask[idx[good]] - bid[idx[good]]) / vg
    used = np.isfinite(quote_iv) & np.isfinite(unc)
    quote_iv[~used] = np.nan

    own = c["iv"].to_numpy(dtype=float)
    out = np.full(n, np.nan)
    fitted = np.zeros(n, dtype=bool)
    rows, few, few_contracts = [], 0, 0
    live_idx = np.flatnonzero(live)
    roots, exps = c["root"].to_numpy()[live_idx], c["expiration"].to_numpy()[live_idx]
    r_code = pd.factorize(roots, sort=True)[0]
    e_code = exps.astype("datetime64[ns]").view("int64")
    order = np.lexsort((e_code, r_code))  # by root, then expiration
    r_code, e_code = r_code[order], e_code[order]
    starts = np.flatnonzero(np.r_[len(order) > 0, (np.diff(r_code) != 0) | (np.diff(e_code) != 0)])
    firsts = order[starts]
    pieces = np.split(live_idx[order], starts[1:]) if len(order) else []
    for members, root, exp in zip(pieces, roots[firsts], exps[firsts], strict=True):
        u = members[used[members]]
        n_q = int(u.size)
        if n_q >= min_quotes and np.ptp(k[u]) > 0:
            spline, lo, hi, lam = fit_smile(k[u], quote_iv[u], unc[u])
            out[members] = np.clip(_evaluate_smile(spline, lo, hi, k[members]), quote_iv[u].min(), quote_iv[u].max())
            fitted[members] = True
            rmse = float(np.sqrt(np.mean((_evaluate_smile(spline, lo, hi, k[u]) - quote_iv[u]) ** 2)) * 100.0)
            rows.append((exp, root, n_q, "p-spline", rmse, lo, hi, lam))
        else:
            out[members] = own[members]
            few += 1
            few_contracts += len(members)
            rows.append((exp, root, n_q, "own_iv", np.nan, np.nan, np.nan, np.nan))
    fits = pd.DataFrame(rows, columns=list(FIT_COLUMNS))
    if len(fits):
        fits["expiration"] = pd.to_datetime(fits["expiration"])
    notes = []
    if few:
        notes.append(f"{few} of {len(fits)} expiries (by root) have fewer than {min_quotes} usable out-of-the-money "
                     f"quotes: their {few_contracts} contracts keep their own IV")
    n_nan = int(np.isnan(out[live]).sum())
    if n_nan:
        notes.append(f"{n_nan} live contracts have no IV (unfitted expiry, no own IV)")
    if (~live).any():
        notes.append(f"{int((~live).sum())} expired contracts get NaN")
    return SmoothedIV(iv=out, quote_iv=quote_iv, fitted=fitted, fits=fits, spot=S, notes=tuple(notes))
