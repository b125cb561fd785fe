"""Fit the model-priced history (``research_lib.data.modelled_history``) to the real SPX chains, and check it.

Reads, at run time (nothing is copied into the repository), from ``../shared/data``:

* ``chains/spx_ivolatility_2011-01-03_2011-01-07.csv.gz`` -- iVolatility EOD sample, 5 days (2011-01-03 has no
  VIX9D close: Cboe's VIX9D file starts 2011-01-04, so that day serves the 30/93-day pins only);
* ``chains/spx_intraday_2019-04-25_2019-07-22.parquet`` -- 56 intraday Cboe chains; their quotes match
  ``underlying_last`` (the snapshot's spot), not the close, and are paired with that day's VIX family
  *closes* (no intraday VIX here): part of the 2019 error is that timing mismatch;
* ``chains/cboe_quotedata/spx_*.csv`` -- five Cboe SPX snapshots 2022-2024 (2022-07-12 is intraday, 11:55);
* ``chains/spx_eod_2026-06-12_2026-08-21.parquet`` -- the clean EOD days; only those up to 2026-07-22 have a
  VIX family close;
* ``market/`` -- VIX9D, VIX, VIX3M closes and the 13-week T-bill (the rate each chain's mids are discounted at).

Fits, in order, and prints each as a Python block to paste into ``research_lib/data/modelled_history.py``:

1. the ATM map: per chain day the ATM vol at 9, 30 and 93 days measured from mid quotes
   (:func:`~research_lib.data.modelled_history.chain_vol_summary`), then per tenor an OLS line
   ``σ = a + b · X/100`` on its own index (VIX9D, VIX, VIX3M);
2. the shape (long-run level, κ, SSVI ρ/η as functions of the VIX level and the VIX3M/VIX slope, γ): least
   squares on the out-of-the-money IVs (|delta| > 0.05, 1.5 days < T < 2 years; each expiry weighted equally,
   each source's days weighted so every source counts alike) with the ATM map of step 1 -- the model as it runs
   on a day with no chain;
3. the spread model: OLS of log(ask - bid) on log(mid), log T and ln(VIX/20) over the 2019 and 2026 archives'
   two-sided quotes.

Then it prints every error figure (ATM per tenor, 25-delta skew, spread; in sample), the same with the map
fitted on 2026 only and measured on 2011/2019/2022-24 (and fitted on 2011+2019 and measured on 2026), and the
listing check (modelled listed expiries within 60 days against each real chain's). Paste the blocks into
``HISTORY_SURFACE`` and ``CALIBRATION``.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/calibrate_history.py [--shared DIR]`` (about 2 minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import ndtr

from research_lib import calendar as cal
from research_lib.data import modelled as md, modelled_history as mh
from research_lib.data.market import load_vix_family, risk_free_rates
from research_lib.data.sources import read_chains

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("RESEARCH_LIB_SHARED_DATA", ROOT.parent / "shared" / "data"))
SOURCES = {
    "2011": "chains/spx_ivolatility_2011-01-03_2011-01-07.csv.gz",
    "2019": "chains/spx_intraday_2019-04-25_2019-07-22.parquet",
    "2022-24": "chains/cboe_quotedata/spx_*.csv",
    "2026": "chains/spx_eod_2026-06-12_2026-08-21.parquet",
}
TENORS = mh.PIN_DAYS
INDEX_OF_TENOR = {9.0: "vix9d", 30.0: "vix", 93.0: "vix3m"}


def say(*args):
    print(*args, flush=True)


def _r(x, n: int = 4) -> float:
    return round(float(x), n)


def _code(obj) -> str:
    """A frozen dataclass as Python source, one field per line (to paste)."""
    body = "".join(f"    {f.name}={getattr(obj, f.name)!r},\n" for f in dataclasses.fields(obj))
    return f"{type(obj).__name__}(\n{body})"


# --------------------------------------------------------------------------------------------------
# data


def snapshots(shared: Path):
    """(label, snapshot) for every real SPX chain day."""
    for label, pattern in SOURCES.items():
        paths = sorted(shared.glob(pattern))
        for path in paths:
            for snap in read_chains(path):
                yield label, path.name, snap


def measure(shared: Path) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Per day: the VIX family closes, the rate, the measured ATM vols and skew; and every OTM IV point."""
    vix = load_vix_family(market_dir=shared / "market")
    days, points, files = [], [], set()
    for label, name, snap in snapshots(shared):
        day = pd.Timestamp(cal.market_moment(snap.quote_time).date())
        if day not in vix.index or not np.isfinite(vix.loc[day, "vix"]):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rate = float(risk_free_rates([day], market_dir=shared / "market")["rate"].iloc[0])
        pts = mh.chain_smile_points(snap, rate=rate)
        summ = mh.chain_vol_summary(snap, rate=rate, points=pts)
        files.add(name)
        row = {"day": day, "source": label, "spot": snap.spot, "rate": rate,
               **{c: float(vix.loc[day, c]) for c in ("vix9d", "vix", "vix3m")},
               **{f"atm{int(d)}": summ.atm[d] for d in TENORS}, "skew25": summ.skew25}
        days.append(row)
        pts = pts.assign(day=day, source=label, vix9d=row["vix9d"], vix=row["vix"], vix3m=row["vix3m"])
        points.append(pts)
    return pd.DataFrame(days), pd.concat(points, ignore_index=True), sorted(files)


# --------------------------------------------------------------------------------------------------
# fits


def fit_atm(days: pd.DataFrame) -> tuple[tuple, tuple]:
    a, b = [], []
    for d in TENORS:
        x = days[INDEX_OF_TENOR[d]] / 100.0
        y = days[f"atm{int(d)}"]
        ok = np.isfinite(x) & np.isfinite(y)
        A = np.c_[np.ones(ok.sum()), x[ok]]
        (ai, bi), *_ = np.linalg.lstsq(A, y[ok].to_numpy(), rcond=None)
        a.append(_r(ai))
        b.append(_r(bi))
    return tuple(a), tuple(b)


_SHAPE = ("long_a", "long_b", "kappa", "rho0", "rho_level", "rho_slope", "eta0", "eta_level", "gamma")


def _with_shape(base: mh.HistorySurfaceParams, p) -> mh.HistorySurfaceParams:
    return dataclasses.replace(base, **{n: float(v) for n, v in zip(_SHAPE, p, strict=True)})


def model_iv(params: mh.HistorySurfaceParams, pts: pd.DataFrame) -> np.ndarray:
    out = np.empty(len(pts))
    for key, idx in pts.groupby(["vix9d", "vix", "vix3m"], sort=False).indices.items():
        surf = mh.day_surface(*key, params)
        out[idx] = surf.iv(pts["k"].to_numpy()[idx], pts["T"].to_numpy()[idx])
    return out


def shape_sample(pts: pd.DataFrame, n_per_source: int = 60000, seed: int = 0) -> pd.DataFrame:
    sd = pts["iv"] * np.sqrt(pts["T"])
    d1 = -pts["k"] / sd + 0.5 * sd
    absdelta = np.where(pts["right"] == "C", ndtr(d1), ndtr(-d1))
    d = pts[(absdelta > 0.05) & (pts["T"] > 1.5 / 365) & (pts["T"] < 2.0) & np.isfinite(pts["vix9d"])].copy()
    rng = np.random.default_rng(seed)
    parts = []
    for _, g in d.groupby("source"):
        if len(g) > n_per_source:
            g = g.iloc[np.sort(rng.choice(len(g), n_per_source, replace=False))]
        n_exp = g.groupby(["day", "expiration"])["k"].transform("size").to_numpy()
        parts.append(g.assign(w=np.sqrt(1.0 / n_exp / g["day"].nunique())))
    out = pd.concat(parts, ignore_index=True)
    out["w"] /= out["w"].mean()
    return out


def fit_shape(base: mh.HistorySurfaceParams, sample: pd.DataFrame) -> tuple[mh.HistorySurfaceParams, float]:
    iv, w = sample["iv"].to_numpy(), sample["w"].to_numpy()

    def resid(p):
        try:
            return (model_iv(_with_shape(base, p), sample) - iv) * w
        except mh.ModelledHistoryError:  # an impossible trial point: a large residual steers away
            return np.full(len(iv), 1.0)

    x0 = [getattr(base, n) for n in _SHAPE]
    lo = [0.0, 0.0, 0.1, -0.95, -5.0, -3.0, 0.1, -10.0, 0.05]
    hi = [0.5, 2.0, 30.0, -0.05, 5.0, 3.0, 4.0, 10.0, 0.5]
    x0 = np.clip(x0, np.array(lo) + 1e-6, np.array(hi) - 1e-6)
    res = least_squares(resid, x0=x0, bounds=(lo, hi), x_scale="jac", max_nfev=200)
    fitted = _with_shape(base, [_r(v) for v in res.x])
    err = model_iv(fitted, sample) - iv
    return fitted, float(np.sqrt(np.mean(err ** 2)))


def fit_all(base: mh.HistorySurfaceParams, days: pd.DataFrame, pts: pd.DataFrame):
    """ATM map, the skew inputs' clipping ranges and the shape, fitted on these days."""
    a, b = fit_atm(days)
    ok = days["vix9d"].notna()
    slope = np.log(days["vix3m"] / days["vix"])
    params = dataclasses.replace(base, atm_a=a, atm_b=b,
                                 level_range=(_r(days["vix"].min() / 100), _r(days["vix"].max() / 100)),
                                 slope_range=(_r(slope[ok].min()), _r(slope[ok].max())))
    sample = shape_sample(pts)
    params, rmse = fit_shape(params, sample)
    return params, rmse, sample


def fit_spread(pts: pd.DataFrame) -> tuple[tuple, float, pd.DataFrame]:
    d = pts[pts["source"].isin(["2019", "2026"])]
    x = np.log(np.maximum(d["mid"].to_numpy(), 0.01))
    t = np.log(d["T"].to_numpy())
    v = np.log(d["vix"].to_numpy() / 20.0)
    A = np.c_[np.ones(len(d)), x, x * x, t, x * t, v]
    y = np.log((d["ask"] - d["bid"]).to_numpy())
    beta, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ beta
    return tuple(_r(b) for b in beta), float(np.std(resid)), d.assign(resid=resid)


# --------------------------------------------------------------------------------------------------
# errors


def atm_errors(params: mh.HistorySurfaceParams, days: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in days.itertuples(index=False):
        if not np.isfinite(r.vix9d):
            row = {"day": r.day, "source": r.source}
            row.update({f"err{int(d)}": np.nan for d in TENORS})
            row["err_skew"] = np.nan
            rows.append(row)
            continue
        surf = mh.day_surface(r.vix9d, r.vix, r.vix3m, params)
        row = {"day": r.day, "source": r.source}
        for d in TENORS:
            row[f"err{int(d)}"] = 100 * (float(surf.atm_vol(d / 365.0)) - getattr(r, f"atm{int(d)}"))
        row["err_skew"] = 100 * (mh.model_skew25(surf) - r.skew25)
        rows.append(row)
    return pd.DataFrame(rows)


def med_p90(x) -> tuple[float, float]:
    a = np.abs(np.asarray(x, dtype=float))
    a = a[np.isfinite(a)]
    return (_r(np.median(a), 2), _r(np.quantile(a, 0.9), 2)) if len(a) else (math.nan, math.nan)


def error_table(err: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for src, g in [("all", err), *err.groupby("source")]:
        row = {"source": src, "days": len(g)}
        for col in [f"err{int(d)}" for d in TENORS] + ["err_skew"]:
            m, p = med_p90(g[col])
            row[f"{col} med"], row[f"{col} p90"], row[f"{col} bias"] = m, p, _r(np.nanmean(g[col]), 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("source")


# --------------------------------------------------------------------------------------------------
# listing check


def listing_check(shared: Path, horizon: int = 60) -> tuple[int, int, list]:
    """Days whose modelled listed expiries within ``horizon`` days equal the real chain's
    (:func:`research_lib.data.modelled_history.chain_expiries`), and every differing (day, expiry)."""
    exact, total, pairs, diffs = 0, 0, 0, []
    for _label, _name, snap in snapshots(shared):
        real, model = real_and_modelled_expiries(snap, horizon)
        total += 1
        exact += real == model
        pairs += len(real | model)
        diffs += [(snap.quote_time.date(), "missing", e) for e in sorted(real - model)]
        diffs += [(snap.quote_time.date(), "extra", e) for e in sorted(model - real)]
    return exact, total, pairs, diffs


def real_and_modelled_expiries(snap, horizon: int) -> tuple[set, set]:
    real = mh.chain_expiries(snap, max_dte=horizon)
    m = md.listed_expiries(snap.quote_time)
    m = m[m["dte"] <= horizon]
    return (set(zip(real["expiration"].dt.date, real["root"], strict=True)),
            set(zip(m["expiration"].dt.date, m["root"], strict=True)))


# --------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data directory")
    parser.add_argument("--no-listing", action="store_true", help="skip the listing check")
    parser.add_argument("--cache", type=Path, help="a pickle of the measured days and IVs: read when it exists, "
                                                   "else written (to refit without re-reading the chains)")
    args = parser.parse_args(argv)
    shared = args.shared
    if not (shared / SOURCES["2026"]).exists():
        say(f"real data not found under {shared} (set RESEARCH_LIB_SHARED_DATA or pass --shared)")
        return 2
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 40)
    t0 = time.perf_counter()
    if args.cache is not None and args.cache.exists():
        days, pts, files = pd.read_pickle(args.cache)
    else:
        days, pts, files = measure(shared)
        if args.cache is not None:
            pd.to_pickle((days, pts, files), args.cache)
    say(f"measured {len(days)} chain days with a VIX close ({days.groupby('source').size().to_dict()}), "
        f"{len(pts):,} OTM IVs  [{time.perf_counter() - t0:.0f} s]")
    say(f"days without a VIX9D close: {[str(d.date()) for d in days.loc[days['vix9d'].isna(), 'day']]}")

    # ---------------------------------------------------------------- in sample: ATM map, ranges, shape
    t1 = time.perf_counter()
    params, rmse, sample = fit_all(mh.HISTORY_SURFACE, days, pts)
    say(f"\nATM map (all days): sigma_j = a_j + b_j X_j/100: a = {params.atm_a}, b = {params.atm_b}")
    say(f"skew inputs clipped to the calibration's ranges: VIX/100 {params.level_range}, "
        f"ln(VIX3M/VIX) {params.slope_range}")
    say(f"shape fit on {len(sample):,} OTM IVs ({sample.groupby('source').size().to_dict()}): RMSE "
        f"{100 * rmse:.2f} vol points (weighted sample)  [{time.perf_counter() - t1:.0f} s]")
    say("  " + ", ".join(f"{n}={getattr(params, n)}" for n in _SHAPE))
    iv_err = model_iv(params, sample) - sample["iv"].to_numpy()
    sample = sample.assign(err=100 * iv_err, tenor=pd.cut(sample["T"] * 365, [0, 3, 7, 14, 35, 70, 140, 400, 800]))
    say("  IV RMSE (vol points) by source x tenor (days):")
    say((sample.pivot_table(index="tenor", columns="source", values="err", observed=True,
                            aggfunc=lambda e: np.sqrt(np.mean(e ** 2)))).round(2).to_string())

    # ---------------------------------------------------------------- out of sample: refit on some years
    oos = {}
    for label, train, test in (("fit 2026 -> 2011/2019/2022-24", ["2026"], ["2011", "2019", "2022-24"]),
                               ("fit 2011+2019 -> 2022-24/2026", ["2011", "2019"], ["2022-24", "2026"])):
        p_o, _, _ = fit_all(mh.HISTORY_SURFACE, days[days["source"].isin(train)], pts[pts["source"].isin(train)])
        e = atm_errors(p_o, days[days["source"].isin(test)])
        oos[label] = {**{d: med_p90(e[f"err{int(d)}"]) for d in TENORS}, "skew25": med_p90(e["err_skew"])}
        say(f"\nout of sample, {label} (map, ranges and shape refitted on the training years): a = {p_o.atm_a}, "
            f"b = {p_o.atm_b}")
        say(error_table(e).to_string())

    # ---------------------------------------------------------------- spreads
    coef, log_sd, sp = fit_spread(pts)
    params = dataclasses.replace(params, spread_coef=coef)
    width = (sp["ask"] - sp["bid"]).to_numpy()
    model_w = mh.model_spread(sp["mid"].to_numpy(), sp["T"].to_numpy(), sp["vix"].to_numpy(), params)
    dollars = np.abs(model_w - width)
    say(f"\nspread model on {len(sp):,} two-sided quotes (2019 + 2026): coef {coef}, residual log-SD {log_sd:.3f}; "
        f"|model - real| width median {np.median(dollars):.3f} $, p90 {np.quantile(dollars, 0.9):.3f} $")
    for src, g in sp.groupby("source"):
        say(f"  {src}: residual log-SD {g['resid'].std():.3f}, mean {g['resid'].mean():+.3f}")
    other = pts[~pts["source"].isin(["2019", "2026"])]
    spread_oos = {}
    if len(other):
        ow = mh.model_spread(other["mid"].to_numpy(), other["T"].to_numpy(), other["vix"].to_numpy(), params)
        lr = np.log(ow) - np.log((other["ask"] - other["bid"]).to_numpy())
        for src in other["source"].unique():
            sel = (other["source"] == src).to_numpy()
            say(f"  out of sample {src}: log(model/real) width mean {lr[sel].mean():+.3f}, SD {lr[sel].std():.3f}")
            spread_oos[src] = float(lr[sel].mean())

    # ---------------------------------------------------------------- in-sample errors with the final params
    err = atm_errors(params, days)
    table = error_table(err)
    say("\nATM / skew errors with the fitted parameters (vol points; model - real; med/p90 of |error|):")
    say(table.to_string())
    worst = err.assign(abs30=err["err30"].abs()).sort_values("abs30").tail(5)
    say("  largest 30-day errors: " + ", ".join(f"{r.day.date()} ({r.source}) {r.err30:+.2f}"
                                                 for r in worst.itertuples()))

    calib = mh.HistoryCalibration(
        fit_date=dt.date.today().isoformat(),
        sources=tuple(files),
        days={k: int(v) for k, v in days.groupby("source").size().items()},
        atm_error={d: med_p90(err[f"err{int(d)}"]) for d in TENORS},
        skew25_error=med_p90(err["err_skew"]),
        spread_log_sd=_r(log_sd, 3),
        spread_error=(_r(np.median(dollars), 3), _r(np.quantile(dollars, 0.9), 3)),
        out_of_sample=oos,
        notes=("2019 chains are intraday (quotes at underlying_last) paired with the day's VIX-family closes",
               "2011-01-03 has no VIX9D close (Cboe's file starts 2011-01-04): 30/93-day pins only that day"
               if days["vix9d"].isna().any() else "every day has the three VIX-family closes",
               "errors are model (from the VIX family alone) minus the chain's measured ATM vol / skew",
               "spreads out of sample: " + ", ".join(f"{k} log(model/real) width mean {v:+.2f} (x{math.exp(-v):.1f})"
                                                      for k, v in spread_oos.items())),
    )
    say("\n# ----- paste into research_lib/data/modelled_history.py -----")
    say(f"HISTORY_SURFACE = {_code(params)}")
    say(f"CALIBRATION = {_code(calib)}")
    say("# -----------------------------------------------------------")

    if not args.no_listing:
        exact, total, pairs, diffs = listing_check(shared)
        say(f"\nlisting check (expiries within 60 days): {exact}/{total} days exact; {len(diffs)} of {pairs} "
            f"(day, expiry) pairs differ ({1 - len(diffs) / pairs:.1%} match):")
        for d in diffs:
            say(f"  {d[0]} {d[1]:8s} {d[2][0]} {d[2][1]}")
    say(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
