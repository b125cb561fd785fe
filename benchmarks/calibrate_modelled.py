"""Fit the parameters of ``research_lib.modelled`` to the real SPX chains in ../shared/data, and check the fit.

Reads, at run time (nothing is copied into the repository):

* ``chains/spx_eod_2026-06-12_2026-08-21.parquet`` — its clean days (Cboe EOD, contracts with OI > 0);
* ``chains/cboe_quotedata/spx_*.csv`` — the five Cboe SPX snapshots 2022-2024 (full listings, volumes);
* ``market/cboe_VIX_History.csv`` — VIX closes (through 2026-07-22).

Fits, in order, and prints each as a Python block to paste into ``research_lib/modelled.py``:

1. ``SURFACE``: per expiry, the forward from put-call parity on mid quotes near the money (a least-squares
   line ``C - P = DF·(F - K)``), out-of-the-money IVs recomputed from mid quotes at that forward and discount,
   the 30-day ATM vol σ30 of each day (ATM total variance interpolated linearly in T). Then
   ``σ30 = c0 + c1·VIX/100`` (OLS over the days with a VIX close) and the SSVI surface (least squares on IV,
   each expiry weighted equally, |delta| > 0.05, T > 1.5 days, η within ``eta_max``) given each day's own σ30.
2. ``OPEN_INTEREST`` on the 2026 archive: per-expiry totals (piecewise-linear in days to expiry per kind, plus
   quarter-end and December offsets; a quasi-Poisson GLM with a log link, so summed totals match per kind
   and flag), call share per kind, per kind and right a four-component mixture over log-moneyness with a
   memory τ per component (maximum likelihood, analytic gradient, on an OI-weighted sample of contracts),
   round-strike multipliers per kind (OI at a strike over the mean OI of the plain 5/10-point strikes within
   ±60 points, within 6% of spot), the lognormal noise (robust SD of log OI / that local mean for plain
   strikes), and the volume turnover per kind (csv days with a full session's volume).
3. ``QUOTES``: log bid/ask width on log price and log T (2026 archive, two-sided quotes).

Then validates: for every real day, a modelled chain with the same spot, date and VIX (the day's close, or
σ30 / c1 when the VIX file stops) is compared with the real chain — expiries, contracts, total OI, ATM IV and
25-delta skew at 30 days (:func:`research_lib.modelled.smile_summary` on both), call/put/net GEX and zero gamma
(``gex.analyze``, model convention) — using the freshly fitted parameters.

Run: ``.venv/bin/python benchmarks/calibrate_modelled.py [--shared DIR] [--sample N] [--no-validate]``
(about 3 minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize
from scipy.special import logsumexp, ndtr

from research_lib.calendar import market_moment
from research_lib.core import gex, pricing
from research_lib.data import modelled as md
from research_lib.data.sources import read_chain, read_chains

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("RESEARCH_LIB_SHARED_DATA", ROOT.parent / "shared" / "data"))
EOD = "chains/spx_eod_2026-06-12_2026-08-21.parquet"
CSVS = ("spx_2022-02-05.csv", "spx_2022-06-11.csv", "spx_2022-07-12.csv", "spx_2023-09-14.csv",
        "spx_2024-01-07.csv")
#: csv snapshots holding a full session's volume (the 2022-07-12 one was taken at 11:55).
FULL_DAY_VOLUME = ("spx_2022-02-05.csv", "spx_2022-06-11.csv", "spx_2023-09-14.csv", "spx_2024-01-07.csv")
KINDS = md.EXPIRY_KINDS
TOTAL_NODES = {"daily": (1, 3, 7, 14, 21, 30, 45), "weekly": (1, 7, 14, 30, 60),
               "end_of_month": (1, 14, 30, 60, 120, 250, 400), "monthly_pm": (1, 14, 30, 60, 120, 180),
               "monthly_am": (1, 14, 30, 60, 120, 250, 400, 800, 1400, 2200)}
MIXTURE_COMPONENTS = 4


def say(*args):
    print(*args, flush=True)


def _code(value, indent: int = 0, width: int = 110) -> str:
    """Python source for a parameter value, laid out like the constants in research_lib/modelled.py."""
    flat = repr(value).replace("'", '"')
    if dataclasses.is_dataclass(value):
        body = "".join(f"{' ' * (indent + 4)}{f.name}={_code(getattr(value, f.name), indent + 4, width)},\n"
                       for f in dataclasses.fields(value))
        return f"{type(value).__name__}(\n{body}{' ' * indent})"
    if isinstance(value, dict) and indent + len(flat) > width - 10:
        body = "".join(f"{' ' * (indent + 4)}{k!r}: {_code(v, indent + 4, width)},\n".replace("'", '"')
                       for k, v in value.items())
        return "{\n" + body + " " * indent + "}"
    if isinstance(value, tuple) and value and isinstance(value[0], tuple) and indent + len(flat) > width - 10:
        body = "".join(f"{' ' * (indent + 4)}{_code(v, indent + 4, width)},\n" for v in value)
        return "(\n" + body + " " * indent + ")"
    return flat


def _r(x, n: int = 4, down: bool = False) -> float:
    """A plain float rounded to ``n`` decimals (down: never above ``x``, to keep a bound)."""
    f = 10.0 ** n
    return float(np.floor(float(x) * f) / f) if down else round(float(x), n)


# --------------------------------------------------------------------------------------------------
# data


def load_days(shared: Path) -> tuple[list, pd.DataFrame]:
    """Every snapshot, and one long table of its live contracts with T, forward, kind and dte."""
    snaps = [(s, "eod") for s in read_chains(shared / EOD)]
    snaps += [(read_chain(shared / "chains" / "cboe_quotedata" / f), f) for f in CSVS]
    rows = []
    for snap, origin in snaps:
        c = snap.contracts.copy()
        c["T"] = gex.time_to_expiry(snap, gex.GexConfig())
        c = c[c["T"] > 0].copy()
        market_day = pd.Timestamp(market_moment(snap.quote_time).date())
        c["day"] = market_day
        c["origin"] = origin
        c["S"] = snap.spot
        c["kind"] = md.classify_expiries(c["expiration"], c["root"])
        c["dte"] = (c["expiration"] - market_day).dt.days
        rows.append(c)
    table = pd.concat(rows, ignore_index=True)
    return snaps, add_forwards(table)


def add_forwards(c: pd.DataFrame) -> pd.DataFrame:
    """Forward F and discount factor DF per (day, expiration, root) from put-call parity near the money."""
    c = c.copy()
    c["mid"] = 0.5 * (c["bid"] + c["ask"])
    out = []
    for (day, exp, root), g in c.groupby(["day", "expiration", "root"], sort=False):
        S = g["S"].iloc[0]
        calls = g[(g["right"] == "C") & (g["bid"] > 0) & (g["ask"] > g["bid"])].set_index("strike")["mid"]
        puts = g[(g["right"] == "P") & (g["bid"] > 0) & (g["ask"] > g["bid"])].set_index("strike")["mid"]
        k = calls.index.intersection(puts.index)
        k = np.array(sorted(k, key=lambda x: abs(x - S))[:12])
        F, DF = np.nan, np.nan
        if len(k) >= 3 and np.ptp(k) > 0:
            slope, icpt = np.polyfit(k, calls.loc[k].to_numpy() - puts.loc[k].to_numpy(), 1)
            if -1.01 < slope < -0.5:
                DF, F = -slope, -icpt / slope
        out.append((day, exp, root, F, DF))
    fw = pd.DataFrame(out, columns=["day", "expiration", "root", "F", "DF"])
    c = c.merge(fw, on=["day", "expiration", "root"], how="left")
    return c


def otm_ivs(c: pd.DataFrame) -> pd.DataFrame:
    """Out-of-the-money IVs recomputed from mid quotes at each expiry's parity forward and discount."""
    d = c[np.isfinite(c["F"]) & (c["bid"] > 0) & (c["ask"] > c["bid"])].copy()
    d["k"] = np.log(d["strike"] / d["F"])
    d = d[((d["right"] == "P") & (d["k"] < 0)) | ((d["right"] == "C") & (d["k"] >= 0))]
    T = d["T"].to_numpy()
    r = np.where(T < 0.02, 0.0, np.clip(-np.log(d["DF"].to_numpy()) / T, -0.1, 0.2))
    q = r - np.log(d["F"].to_numpy() / d["S"].to_numpy()) / T
    res = pricing.implied_vol(d["mid"].to_numpy(), d["S"].to_numpy(), d["strike"].to_numpy(), T, r, q,
                              (d["right"] == "C").to_numpy())
    d["ivm"] = res.iv
    return d[np.isfinite(d["ivm"])]


def atm_by_expiry(d: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (day, exp, root), g in d.groupby(["day", "expiration", "root"], sort=False):
        g = g.sort_values("k")
        if (g["k"] < 0).sum() >= 2 and (g["k"] > 0).sum() >= 2:
            rows.append((day, exp, root, g["T"].iloc[0], float(np.interp(0.0, g["k"], g["ivm"]))))
    return pd.DataFrame(rows, columns=["day", "expiration", "root", "T", "atm"])


def sigma30_by_day(atm: pd.DataFrame) -> pd.Series:
    """ATM vol at 30 days per day: ATM total variance interpolated linearly in T."""
    out = {}
    target = 30.0 / 365.0
    for day, g in atm.groupby("day"):
        g = g.sort_values("T")
        w = np.interp(target, g["T"], g["atm"] ** 2 * g["T"])
        out[day] = float(np.sqrt(w / target))
    return pd.Series(out).sort_index()


# --------------------------------------------------------------------------------------------------
# 1. surface


def fit_vix(s30: pd.Series, shared: Path) -> tuple[float, float, pd.DataFrame]:
    from research_lib.data.market import load_vol_index

    vix = load_vol_index("VIX", market_dir=shared / "market")["close"]
    both = pd.DataFrame({"s30": s30, "vix": vix.reindex(s30.index)}).dropna()
    A = np.c_[np.ones(len(both)), both["vix"] / 100.0]
    (c0, c1), *_ = np.linalg.lstsq(A, both["s30"].to_numpy(), rcond=None)
    both["fit"] = c0 + c1 * both["vix"] / 100.0
    return float(c0), float(c1), both


def _ssvi(p, T, k, s30, v0_floor=0.5):
    """The model's IV with η = u · eta_max(ρ, γ) (u in (0, 1]), as research_lib.modelled computes it."""
    a, b, kap, rho, u, gam = p
    surf = md.SurfaceParams(vix_c0=0.0, vix_c1=1.0, long_a=a, long_b=b, kappa=kap, rho=rho,
                            eta=u * 0.999 * md.eta_max(rho, gam), gamma=gam, v0_floor=v0_floor)
    # σ30 differs per day: evaluate per distinct σ30 (vix = 100 σ30 with c0 = 0, c1 = 1).
    out = np.empty_like(k)
    for s in np.unique(s30):
        sel = s30 == s
        out[sel] = md.implied_vol_surface(k[sel], T[sel], 100.0 * s, surf)
    return out, surf


def fit_surface(d: pd.DataFrame, s30: pd.Series, min_delta: float = 0.05):
    d = d.copy()
    d["s30"] = d["day"].map(s30)
    # |delta| of each OTM option at its own vol about the forward (r = q = 0): calls N(d1), puts N(-d1).
    sst = d["ivm"] * np.sqrt(d["T"])
    d1 = -d["k"] / sst + 0.5 * sst
    absdelta = np.where(d["right"] == "C", ndtr(d1), ndtr(-d1))
    d = d[(absdelta > min_delta) & (d["T"] > 1.5 / 365.0)]
    w = np.sqrt(1.0 / d.groupby(["day", "expiration", "root"])["k"].transform("size").to_numpy())
    T, k, iv, s = d["T"].to_numpy(), d["k"].to_numpy(), d["ivm"].to_numpy(), d["s30"].to_numpy()
    res = least_squares(lambda p: (_ssvi(p, T, k, s)[0] - iv) * w, x0=[0.1, 0.5, 3.0, -0.7, 0.9, 0.4],
                        bounds=([0.0, 0.0, 0.05, -0.99, 0.05, 0.05], [0.5, 2.0, 60.0, 0.5, 1.0, 0.5]))
    fitted, surf = _ssvi(res.x, T, k, s)
    d = d.assign(fit=fitted)
    d["err"] = d["fit"] - d["ivm"]
    return surf, d


# --------------------------------------------------------------------------------------------------
# 2. open interest


def _hat_basis(dte: np.ndarray, nodes) -> np.ndarray:
    """Columns: weights of each node in the linear interpolation at ``dte`` (flat beyond the ends)."""
    nodes = np.asarray(nodes, dtype=float)
    B = np.zeros((len(dte), len(nodes)))
    for j in range(len(nodes)):
        e = np.zeros(len(nodes))
        e[j] = 1.0
        B[:, j] = np.interp(dte, nodes, e)
    return B


def _poisson_glm(X: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[np.ndarray, float]:
    """Quasi-Poisson regression with a log link (IRLS): E[y] = exp(X β). Its score equations make the
    fitted totals equal the observed ones over every indicator column (kind, quarter end, December)."""
    scale = y.mean()
    yy = y / scale
    beta = np.linalg.lstsq(X, np.log(np.maximum(yy, 1e-6)), rcond=None)[0]
    for _ in range(iterations):
        eta = X @ beta
        mu = np.exp(eta)
        z = eta + (yy - mu) / mu
        sw = np.sqrt(mu)
        new = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        if np.max(np.abs(new - beta)) < 1e-10:
            beta = new
            break
        beta = new
    return beta, float(np.log(scale))


def fit_totals(c: pd.DataFrame):
    """Per-expiry total OI: quasi-Poisson GLM of the (day, expiry) totals on a piecewise-linear function of
    days to expiry per kind (hat basis on :data:`TOTAL_NODES`) plus quarter-end and December offsets."""
    t = (c.groupby(["day", "expiration", "root"], sort=False)
         .agg(oi=("open_interest", "sum"), dte=("dte", "first"), kind=("kind", "first")).reset_index())
    t = t[t["oi"] > 0]
    month = t["expiration"].dt.month.to_numpy()
    cols, names = [], []
    for kind in KINDS:
        is_k = (t["kind"] == kind).to_numpy()
        cols.append(_hat_basis(t["dte"].to_numpy(float), TOTAL_NODES[kind]) * is_k[:, None])
        names += [(kind, n) for n in TOTAL_NODES[kind]]
    for kind in ("end_of_month", "monthly_pm", "monthly_am"):
        cols.append((((t["kind"] == kind).to_numpy()) & (month % 3 == 0))[:, None].astype(float))
        names.append((kind, "quarter_end"))
    cols.append(((t["kind"] == "monthly_am").to_numpy() & (month == 12))[:, None].astype(float))
    names.append(("monthly_am", "december"))
    X = np.hstack(cols)
    beta, log_scale = _poisson_glm(X, t["oi"].to_numpy(float))
    t["fit"] = np.exp(X @ beta + log_scale)
    coef = dict(zip(names, beta, strict=True))
    nodes = {k: (TOTAL_NODES[k], tuple(_r(coef[(k, n)] + log_scale, 3) for n in TOTAL_NODES[k])) for k in KINDS}
    quarter = {"daily": 0.0, "weekly": 0.0}
    quarter.update({k: _r(coef[(k, "quarter_end")], 3) for k in ("end_of_month", "monthly_pm", "monthly_am")})
    december = _r(coef[("monthly_am", "december")], 3)
    resid_sd = float(np.std(np.log(t["oi"] / t["fit"])))
    return nodes, quarter, december, resid_sd, t


def _mixture_nll(p: np.ndarray, m: np.ndarray, T: np.ndarray, s: np.ndarray, nc: int):
    """Mean negative log-likelihood of log-moneyness ``m`` under the model's OI mixture, and its gradient.

    Parameters ``p``: logits of components 2..nc (component 1's is 0), means μ_j, log SDs, log τ_j (years).
    Component j is Normal(μ_j a_j, s_j a_j) in m with a_j = σ30 √(T + τ_j).
    """
    logit = np.r_[0.0, p[: nc - 1]]
    mu = p[nc - 1: 2 * nc - 1]
    log_sd = p[2 * nc - 1: 3 * nc - 1]
    tau = np.exp(p[3 * nc - 1:])
    sd = np.exp(log_sd)
    log_w = logit - logsumexp(logit)
    a = s[:, None] * np.sqrt(T[:, None] + tau[None, :])
    z = m[:, None] / a
    u = (z - mu[None, :]) / sd[None, :]
    comp = log_w[None, :] - 0.5 * u * u - log_sd[None, :] - np.log(a) - 0.5 * np.log(2.0 * np.pi)
    ll = logsumexp(comp, axis=1)
    g = np.exp(comp - ll[:, None])  # responsibilities
    n = len(m)
    d_logit = (g.sum(axis=0) - n * np.exp(log_w))[1:]
    d_mu = (g * u / sd[None, :]).sum(axis=0)
    d_log_sd = (g * (u * u - 1.0)).sum(axis=0)
    d_log_tau = (g * (u * z / sd[None, :] - 1.0) * tau[None, :] / (2.0 * (T[:, None] + tau[None, :]))).sum(axis=0)
    return -float(ll.mean()), -np.r_[d_logit, d_mu, d_log_sd, d_log_tau] / n


def fit_shape(c: pd.DataFrame, s30: pd.Series, n_sample: int, seed: int = 0):
    """Per kind and right, the OI mixture over log-moneyness with a memory τ per component, by maximum
    likelihood (analytic gradient, L-BFGS-B) on contracts drawn with probability proportional to OI."""
    d = c[c["open_interest"] > 0].copy()
    d["F"] = d["F"].fillna(d["S"])
    rng = np.random.default_rng(seed)
    nc = MIXTURE_COMPONENTS
    mixture, nll = {}, {}
    for kind in KINDS:
        mixture[kind] = {}
        for right in "CP":
            g = d[(d["kind"] == kind) & (d["right"] == right)]
            idx = rng.choice(len(g), size=n_sample, p=(g["open_interest"] / g["open_interest"].sum()).to_numpy())
            g = g.iloc[idx]
            m = np.log(g["strike"] / g["F"]).to_numpy()
            T = g["T"].to_numpy()
            s = g["day"].map(s30).to_numpy()
            mu0 = [0.3, 0.0, -0.5, -3.0] if right == "C" else [-0.5, 0.0, -2.0, -8.0]
            p0 = np.r_[[-1.0, -1.0, -2.0], mu0, np.log([0.6, 0.3, 1.5, 5.0]),
                       np.log([10.0 / 365, 3.0 / 365, 100.0 / 365, 1.0])]
            bounds = ([(-12.0, 12.0)] * (nc - 1) + [(-40.0, 40.0)] * nc + [(-4.0, 3.0)] * nc
                      + [(np.log(0.5 / 365), np.log(5.0))] * nc)
            res = minimize(_mixture_nll, p0, args=(m, T, s, nc), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 5000})
            logit = np.r_[0.0, res.x[: nc - 1]]
            w = np.exp(logit - logsumexp(logit))
            order = np.argsort(-w)
            mu, sd = res.x[nc - 1: 2 * nc - 1], np.exp(res.x[2 * nc - 1: 3 * nc - 1])
            tau_days = np.exp(res.x[3 * nc - 1:]) * 365.0
            mixture[kind][right] = (tuple(_r(v) for v in w[order]), tuple(_r(v) for v in mu[order]),
                                    tuple(_r(v) for v in sd[order]), tuple(_r(v, 1) for v in tau_days[order]))
            nll[(kind, right)] = res.fun
    return mixture, nll


def fit_round_and_noise(c: pd.DataFrame, window: float = 60.0, near: float = 0.06, min_count: int = 40):
    """Round-strike multipliers per kind and the lognormal noise SD, from strikes within ``near`` of spot.

    A class's multiplier is its summed OI over the summed mean OI of the plain (5/10-point) strikes within
    ±``window`` points (ratio of sums); classes seen fewer than ``min_count`` times in a kind take the pooled
    value.
    """
    classes = (1000, 500, 100, 50, 25, 10, 5)
    num = {(k, cl): 0.0 for k in (*KINDS, "all") for cl in classes}
    den = dict.fromkeys(num, 0.0)
    count = dict.fromkeys(num, 0)
    log_ratio = []
    d = c[np.abs(np.log(c["strike"] / c["S"])) < near]
    for (kind, *_), g in d.groupby(["kind", "day", "expiration", "root", "right"], sort=False):
        g = g.sort_values("strike")
        K = g["strike"].to_numpy()
        oi = g["open_interest"].to_numpy()
        cls = md.round_class(K)
        plain = (cls == 5) | (cls == 10)
        if plain.sum() < 10:
            continue
        Kp, op = K[plain], oi[plain]
        cs = np.r_[0.0, np.cumsum(op)]
        lo = np.searchsorted(Kp, K - window)
        hi = np.searchsorted(Kp, K + window, side="right")
        n = hi - lo
        base = (cs[hi] - cs[lo]) / np.maximum(n, 1)
        ok = n >= 8
        for cl in classes:
            sel = ok & (cls == cl)
            for key in ((kind, cl), ("all", cl)):
                num[key] += oi[sel].sum()
                den[key] += base[sel].sum()
                count[key] += int(sel.sum())
        # noise: plain strikes against the mean of the other plain strikes around them
        others = (cs[hi] - cs[lo] - oi) / np.maximum(n - 1, 1)
        sel = ok & plain & (oi > 0) & (others > 0)
        log_ratio.append(np.log(oi[sel] / others[sel]))
    pooled = {cl: num[("all", cl)] / den[("all", cl)] for cl in classes}
    mult = {k: {cl: _r(num[(k, cl)] / den[(k, cl)] if count[(k, cl)] >= min_count else pooled[cl], 2)
                for cl in classes} for k in KINDS}
    lr = np.concatenate(log_ratio)
    mad_sd = float(1.4826 * np.median(np.abs(lr - np.median(lr))))
    counts = {k: {cl: count[(k, cl)] for cl in classes} for k in (*KINDS, "all")}
    return mult, counts, mad_sd, float(np.std(lr))


def fit_turnover(c: pd.DataFrame):
    """log(volume / OI) of an expiry = a_kind + b·log(1 + dte): OLS over the csv days with a full session's
    volume, plus half the residual variance (the model's volume is an expectation of a lognormal)."""
    d = c[c["origin"].isin(FULL_DAY_VOLUME)]
    t = (d.groupby(["day", "expiration", "root"]).agg(v=("volume", "sum"), oi=("open_interest", "sum"),
                                                       dte=("dte", "first"), kind=("kind", "first")).reset_index())
    t = t[(t["v"] > 0) & (t["oi"] > 0)]
    A = np.c_[np.stack([(t["kind"] == k).to_numpy(float) for k in KINDS], axis=1), np.log1p(t["dte"].to_numpy(float))]
    y = np.log(t["v"] / t["oi"]).to_numpy()
    beta, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ beta
    half_var = 0.5 * float(np.var(resid))
    intercepts = {k: _r(beta[i] + half_var, 3) for i, k in enumerate(KINDS)}
    return intercepts, _r(beta[-1], 3), float(np.std(resid)), len(t)


# --------------------------------------------------------------------------------------------------
# 3. quotes


def fit_spreads(c: pd.DataFrame):
    d = c[(c["origin"] == "eod") & (c["bid"] > 0) & (c["ask"] > c["bid"])]
    x = np.log(d["mid"].to_numpy())
    t = np.log(d["T"].to_numpy())
    A = np.c_[np.ones(len(d)), x, x * x, t, x * t]
    y = np.log((d["ask"] - d["bid"]).to_numpy())
    beta, *_ = np.linalg.lstsq(A, y, rcond=None)
    return tuple(_r(b) for b in beta), float(np.std(y - A @ beta)), len(d)


# --------------------------------------------------------------------------------------------------
# validation


def validate(snaps, vix_of_day: dict, model: md.ModelParams) -> pd.DataFrame:
    rows = []
    for snap, origin in snaps:
        day = market_moment(snap.quote_time).date()
        vix = vix_of_day[pd.Timestamp(day)]
        t0 = time.perf_counter()
        mod = md.modelled_chain(spot=snap.spot, quote_time=snap.quote_time, vix=vix, model=model)
        gen = time.perf_counter() - t0
        for name, x in (("real", snap), ("model", mod)):
            lv = gex.analyze(x).levels
            sm = md.smile_summary(x)
            c = x.contracts
            rows.append({"day": day, "origin": origin, "src": name, "vix": vix, "contracts": len(c),
                         "expiries": c["expiration"].nunique(), "oi_M": c["open_interest"].sum() / 1e6,
                         "atm30": sm.atm_iv, "skew25": sm.skew25, "call_gex_bn": lv.call_gex / 1e9,
                         "put_gex_bn": lv.put_gex / 1e9, "net_gex_bn": lv.net_gex / 1e9,
                         "zero_gamma_rel": (lv.zero_gamma / x.spot) if lv.zero_gamma else np.nan,
                         "call_wall": lv.call_wall, "put_wall": lv.put_wall,
                         "gen_s": gen if name == "model" else np.nan})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data directory")
    parser.add_argument("--sample", type=int, default=40000,
                        help="contracts drawn per kind and right for the OI-shape fit")
    parser.add_argument("--no-validate", action="store_true", help="skip the real-vs-modelled comparison")
    args = parser.parse_args(argv)
    shared = args.shared
    if not (shared / EOD).exists():
        say(f"real data not found under {shared} (set RESEARCH_LIB_SHARED_DATA or pass --shared)")
        return 2
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    t_start = time.perf_counter()

    snaps, c = load_days(shared)
    n_eod = sum(o == "eod" for _, o in snaps)
    say(f"loaded {len(snaps)} snapshots ({n_eod} clean days of {EOD}, {len(snaps) - n_eod} csv), "
        f"{len(c):,} live contracts  [{time.perf_counter() - t_start:.0f} s]")

    # ---------------------------------------------------------------- 1. surface
    d = otm_ivs(c)
    atm = atm_by_expiry(d)
    s30 = sigma30_by_day(atm)
    c0, c1, vx = fit_vix(s30, shared)
    vix_rmse = float(np.sqrt(np.mean((vx["fit"] - vx["s30"]) ** 2)))
    say(f"\nVIX -> sigma30 over {len(vx)} days with a VIX close: sigma30 = {c0:.4f} + {c1:.4f} * VIX/100, "
        f"RMSE {100 * vix_rmse:.2f} vol points; sigma30/(VIX/100) ranges "
        f"{(vx['s30'] / vx['vix'] * 100).min():.3f}..{(vx['s30'] / vx['vix'] * 100).max():.3f}")
    surf, fit = fit_surface(d, s30)
    rmse = float(np.sqrt(np.mean(fit["err"] ** 2)))
    say(f"SSVI surface: {len(fit):,} OTM IVs from {fit.groupby(['day', 'expiration', 'root']).ngroups} "
        f"expiries; RMSE {100 * rmse:.2f} vol points, mean error {100 * fit['err'].mean():+.2f}")
    fit["tenor"] = pd.cut(fit["T"] * 365, [0, 3, 7, 14, 35, 70, 140, 400, 2500])
    fit["x"] = pd.cut(fit["k"] / (fit["day"].map(s30) * np.sqrt(fit["T"])), [-30, -4, -2, -1, 0, 1, 2, 30])
    say("RMSE (vol points) by tenor (days) x moneyness (k / (sigma30 sqrt T)):")
    say((100 * fit.pivot_table(index="tenor", columns="x", values="err", observed=True,
                               aggfunc=lambda e: np.sqrt(np.mean(e ** 2)))).round(2).to_string())
    say("mean error (model - real, vol points):")
    say((100 * fit.pivot_table(index="tenor", columns="x", values="err", observed=True,
                               aggfunc="mean")).round(2).to_string())
    by_tenor = fit.groupby("tenor", observed=True)["err"].apply(lambda e: 100 * np.sqrt(np.mean(e ** 2)))
    say("RMSE by tenor: " + ", ".join(f"{k} {v:.2f}" for k, v in by_tenor.items()))
    by_origin = fit.groupby("origin")["err"].apply(lambda e: 100 * np.sqrt(np.mean(e ** 2)))
    say("RMSE by file: " + ", ".join(f"{k} {v:.2f}" for k, v in by_origin.items()))
    surface = md.SurfaceParams(vix_c0=_r(c0), vix_c1=_r(c1), long_a=_r(surf.long_a), long_b=_r(surf.long_b),
                               kappa=_r(surf.kappa), rho=_r(surf.rho), eta=_r(surf.eta, 4, down=True),
                               gamma=_r(surf.gamma))

    # ---------------------------------------------------------------- 2. open interest
    eod = c[c["origin"] == "eod"]
    nodes, quarter, december, tot_sd, tot = fit_totals(eod)
    say(f"\nOI totals per expiry (quasi-Poisson GLM): {len(tot)} (day, expiry) totals, log residual SD "
        f"{tot_sd:.2f}; "
        f"summed per day: real {tot.groupby('day')['oi'].sum().mean() / 1e6:.2f}M, "
        f"fitted {tot.groupby('day')['fit'].sum().mean() / 1e6:.2f}M (mean over days)")
    share = eod.groupby("kind").apply(lambda g: g.loc[g["right"] == "C", "open_interest"].sum()
                                      / g["open_interest"].sum(), include_groups=False)
    call_share = {k: _r(share[k], 3) for k in KINDS}
    t0 = time.perf_counter()
    mixture, nll = fit_shape(eod, s30, args.sample)
    say(f"OI moneyness mixtures: {args.sample:,} OI-weighted draws per kind and right, mean -log-likelihood "
        + ", ".join(f"{k} {r} {v:.3f}" for (k, r), v in nll.items()) + f"  [{time.perf_counter() - t0:.0f} s]")
    mult, counts, noise_mad, noise_sd = fit_round_and_noise(eod)
    say("round-strike multipliers by kind (strikes counted):")
    for kind in KINDS:
        say(f"  {kind:13s} " + ", ".join(f"{cl}: {mult[kind][cl]} ({counts[kind][cl]})" for cl in mult[kind]))
    say(f"OI noise: log(OI / local mean) of plain strikes: SD {noise_sd:.2f}, robust SD {noise_mad:.2f}")
    turnover, turnover_slope, turn_sd, n_turn = fit_turnover(c)
    say(f"volume turnover: log(volume/OI) = a_kind + {turnover_slope} log(1 + dte), a = {turnover}, residual "
        f"SD {turn_sd:.2f} over {n_turn} expiries")
    open_interest = md.OpenInterestParams(
        total_nodes=nodes, quarter_end=quarter, december_am=december, call_share=call_share,
        mixture=mixture, round_multiplier=mult, noise_sd=_r(noise_mad, 3),
        turnover=turnover, turnover_slope=turnover_slope)

    # ---------------------------------------------------------------- 3. quotes
    spread, spread_sd, n_spread = fit_spreads(c)
    say(f"\nbid/ask width: log residual SD {spread_sd:.2f} over {n_spread:,} two-sided quotes")
    quotes = md.QuoteParams(spread_coef=spread)

    say("\n# ----- paste into research_lib/modelled.py -----")
    for name, value in (("SURFACE", surface), ("OPEN_INTEREST", open_interest), ("QUOTES", quotes)):
        say(f"{name} = {_code(value)}")
    say("# -----------------------------------------------")

    if not args.no_validate:
        model = dataclasses.replace(md.DEFAULT_MODEL, surface=surface, open_interest=open_interest,
                                    quotes=quotes)
        vix_of_day = {}
        for day in s30.index:
            vix_of_day[day] = float(vx.loc[day, "vix"]) if day in vx.index else float(
                100 * (s30[day] - c0) / c1)
        v = validate(snaps, vix_of_day, model)
        real = v[v["src"] == "real"].set_index("day")
        mod = v[v["src"] == "model"].set_index("day")
        cols = ["contracts", "expiries", "oi_M", "atm30", "skew25", "call_gex_bn", "put_gex_bn", "net_gex_bn",
                "zero_gamma_rel", "call_wall", "put_wall"]
        both = real[["origin", "vix", *cols]].merge(mod[[*cols, "gen_s"]], left_index=True, right_index=True,
                                                    suffixes=("", "_model"))
        say("\nreal vs modelled (same spot, quote time and VIX; model GEX convention):")
        say(both.round(3).to_string())
        e = real["origin"] == "eod"
        say("\nsummary over the 2026 archive days (model / real, or model - real):")
        ratio = lambda col: mod.loc[e, col] / real.loc[e, col]  # noqa: E731
        for col in ("contracts", "expiries", "oi_M", "call_gex_bn", "put_gex_bn"):
            r = ratio(col)
            say(f"  {col:12s} ratio median {r.median():.2f}  range {r.min():.2f}..{r.max():.2f}")
        for col in ("atm30", "skew25"):
            diff = 100 * (mod.loc[e, col] - real.loc[e, col])
            say(f"  {col:12s} diff (vol pts) mean {diff.mean():+.2f}  abs max {diff.abs().max():.2f}")
        for col in ("net_gex_bn", "zero_gamma_rel"):
            say(f"  {col:12s} real {real.loc[e, col].min():.3f}..{real.loc[e, col].max():.3f} "
                f"(median {real.loc[e, col].median():.3f}); model {mod.loc[e, col].min():.3f}.."
                f"{mod.loc[e, col].max():.3f} (median {mod.loc[e, col].median():.3f})")
        say(f"  generation time per chain: median {mod['gen_s'].median():.2f} s, max {mod['gen_s'].max():.2f} s")
    say(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
