"""How much the data's own flaws move net GEX: measurements over an archive of snapshots.

Net GEX (``Σ sign × gamma × OI × 100 × S² × 0.01``, the ``model`` convention of
:mod:`research_lib.core.gex`, rates from :func:`research_lib.market.snapshot_config`) is a small difference
of two large gross totals, so small flaws in its inputs can move it. :func:`measure_effects` measures five
of them over a sequence of snapshots (an archive read with :func:`research_lib.sources.read_chains`), each
as a pair of daily net GEX series, the *base* (what the model computes from the snapshot as given) and the
*alternative* (the input changed):

``a_parity_spot`` — after-close quotes vs the 16:00 print
    Alternative: net GEX at the put-call parity spot (:func:`research_lib.core.parity.parity_spot`) instead
    of the snapshot's spot, each contract keeping its own IV. The spot differences themselves are
    reported too (mean, sd, max |diff| and the worst day), and which spot the vendor's IVs belong to:
    the median |IV re-solved from the mid − vendor IV| of near-money quotes (|K/S − 1| < 3%, 3-60 days,
    usable quotes) at the print and at the parity spot.
``b_wide_quotes`` — IV of wide or stale quotes
    The contracts with ``bid = 0`` (or no bid) or a relative spread ``(ask − bid)/mid > 50%``: their share
    of gross GEX (``Σ|GEX_i|``) and of net GEX; alternative: their IV replaced by the smoothed surface's
    (:func:`research_lib.core.surface.smoothed_iv` at the snapshot's spot).
``c_deep_iv`` — deep contracts whose IV solve is fragile
    ``|K/S − 1| > 10%``, and within them ``|delta| < 0.02`` (model delta at the own IV): shares of gross and
    net GEX; alternative: every IV from the smoothed surface instead of each contract's own.
``d_next_oi`` — open interest is the previous night's
    Alternative: today's prices with the NEXT snapshot's open interest (matched by root, expiry, strike,
    right; a contract missing from the next snapshot has OI 0 there unless it expired before that date,
    when it keeps today's). **A diagnostic with look-ahead — never a regime input**: the next snapshot's
    OI is not known on the day. The last snapshot has no alternative. Also reported: the share of the next
    snapshot's OI on contracts today's snapshot does not list (not priced by the alternative).
``e_monthly`` — SPX and SPXW on the nearest AM-settled (monthly) expiry
    Per day, for the nearest live expiry with SPX (AM-settled) rows: the GEX of its SPX rows and of its
    SPXW rows; how many (strike, right) keys both roots list, and how many of those carry the same bid,
    ask and OI under both (a row counted twice would); alternative: the SPX rows' ``T`` to 16:00 of the
    expiry date instead of the 09:30 open (the AM settlement time's effect). Also over the days within 7
    calendar days of that expiry.
``ab_parity_surface`` — both corrections together (what an after-close regime input would use)
    Alternative: net GEX at the parity spot with every IV from the surface fitted at the parity spot.

Measures (the ``measure`` column of the tidy table; ``diff = alternative − base`` per day):

* ``n_days`` with both series; ``mean_diff``, ``sd_diff`` ($ per 1% move) and ``mean_diff_pct``,
  ``sd_diff_pct`` (% of the base's mean |net GEX| over the days); ``mean_abs_diff_pct``,
  ``max_abs_diff_pct``; ``sign_flips`` (days the alternative has the other sign);
* ``noise_base``, ``noise_alt``: sd of the day-to-day changes of each series / the base's mean |net GEX|
  (%), over consecutive snapshots (an archive's missing days make some changes span two sessions);
  ``noise_diff``: the same of the difference (the noise the effect itself carries); ``corr_changes``: the
  correlation of the two series' day-to-day changes;
* effect-specific shares and counts, documented in the ``what`` column.

Speed: 0.2-0.3 s per snapshot (two surface fits, the parity forwards, a dozen GEX sums): both real archives
(47 + 56 snapshots) measure in about 25 s, reading them takes about 14 s more (``benchmarks/gex_effects.py``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.core import pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.core.gex import CONTRACT_MULTIPLIER, ONE_PERCENT, GexConfig, time_to_expiry
from research_lib.core.parity import parity_spot, usable_quotes
from research_lib.core.surface import smoothed_iv
from research_lib.data.market import snapshot_config
from research_lib.errors import NoParityExpiryError, QuoteFitArgumentError
from research_lib.formatting import fmt_money, jsonable

__all__ = ["DAILY_COLUMNS", "EFFECT_COLUMNS", "DataEffects", "daily_effects", "data_effects", "effects_markdown",
           "measure_effects", "net_gex"]

#: Columns of the tidy table.
EFFECT_COLUMNS = ("archive", "effect", "measure", "value", "unit", "what")
#: Relative spread above which a quote counts as wide.
WIDE_SPREAD = 0.5
#: Moneyness beyond which a contract counts as deep, and the |delta| below which it is also far OTM.
DEEP_MONEYNESS = 0.10
DEEP_DELTA = 0.02
#: Days before a monthly expiry that count as "near" it.
NEAR_MONTHLY_DAYS = 7

#: Columns of :attr:`DataEffects.daily` (one row per snapshot; $ per 1% move unless said).
DAILY_COLUMNS = (
    "date", "spot", "parity_spot", "parity_diff", "net", "gross", "net_parity", "net_wide_surface",
    "wide_gross", "wide_net", "net_all_surface", "deep_gross", "deep_net", "deep_lowdelta_gross",
    "deep_lowdelta_net", "net_next_oi", "next_oi_unlisted_share", "net_parity_surface", "monthly_expiration",
    "monthly_days", "monthly_spx", "monthly_spxw", "monthly_spx_gross", "monthly_spxw_gross",
    "monthly_shared_keys", "monthly_identical_keys", "monthly_spx_pm", "n_wide", "n_contracts",
    "vendor_iv_gap_print", "vendor_iv_gap_parity",
)


def net_gex(spot: float, strike: np.ndarray, T: np.ndarray, iv: np.ndarray, open_interest: np.ndarray,
            is_call: np.ndarray, config: GexConfig, counted: np.ndarray) -> np.ndarray:
    """Per-contract GEX ($ per 1% move), ``sign × gamma × OI × 100 × S² × 0.01``, 0 where not counted.

    ``gamma`` is the BSM gamma at ``spot``, ``T`` (years), ``iv`` with the config's rate and dividend yield;
    a contract that is not ``counted`` (expired, filtered) or has no finite gamma (no IV) gives 0, as
    :func:`research_lib.core.gex.exposures` leaves it out. Summing gives the model net GEX.
    """
    sign = np.where(is_call, config.dealer_sign[0], config.dealer_sign[1])
    with np.errstate(all="ignore"):
        g = pricing.gamma(spot, strike, np.where(counted, T, np.nan), iv, config.rate, config.div_yield)
    out = sign * g * open_interest * CONTRACT_MULTIPLIER * spot * spot * ONE_PERCENT
    return np.where(counted & np.isfinite(out), out, 0.0)


def _keys(c: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([c["root"], c["expiration"], c["strike"], c["right"]])


def _next_oi(today: ChainSnapshot, nxt: ChainSnapshot) -> tuple[np.ndarray, float]:
    """Today's contracts' open interest in ``nxt`` (see ``d_next_oi``), and the share of ``nxt``'s OI on
    contracts today does not list."""
    c, n = today.contracts, nxt.contracts
    k_today, k_next = _keys(c), _keys(n)
    pos = k_next.get_indexer(k_today)
    oi_next = np.where(pos >= 0, n["open_interest"].to_numpy()[np.maximum(pos, 0)], 0.0)
    gone = c["expiration"].to_numpy() < np.datetime64(nxt.snapshot_date)
    oi_next = np.where((pos < 0) & gone, c["open_interest"].to_numpy(), oi_next)
    live_next = n["expiration"].to_numpy() >= np.datetime64(nxt.snapshot_date)
    unlisted = ~k_next.isin(k_today) & live_next
    total = float(n["open_interest"].to_numpy()[live_next].sum())
    share = float(n["open_interest"].to_numpy()[unlisted].sum()) / total if total > 0 else np.nan
    return oi_next, share


def _day(snap: ChainSnapshot, config: GexConfig, nxt: ChainSnapshot | None) -> dict:
    c = snap.contracts
    S = float(snap.spot)
    T = time_to_expiry(snap, config)
    counted = (T > 0) & config.expiries.mask(c["expiration"], snap.snapshot_date)
    K = c["strike"].to_numpy(dtype=float)
    is_call = (c["right"] == "C").to_numpy()
    oi = c["open_interest"].to_numpy(dtype=float)
    own = c["iv"].to_numpy(dtype=float)
    bid, ask = c["bid"].to_numpy(dtype=float), c["ask"].to_numpy(dtype=float)

    def total(spot=S, iv=own, open_interest=oi, tt=T, mask=None):
        g = net_gex(spot, K, tt, iv, open_interest, is_call, config, counted)
        return g if mask is None else float(g[mask].sum())

    base = total()
    row: dict = {"date": snap.snapshot_date, "spot": S, "net": float(base.sum()), "gross": float(np.abs(base).sum()),
                 "n_contracts": int(counted.sum())}
    # a: parity spot
    try:
        ps = parity_spot(snap, config)
        row.update(parity_spot=ps.spot, parity_diff=ps.difference,
                   net_parity=float(total(spot=ps.spot).sum()))
    except NoParityExpiryError:
        ps = None
        row.update(parity_spot=np.nan, parity_diff=np.nan, net_parity=np.nan)
    # which spot the vendor's IVs belong to: near-money quotes re-solved at the print and at the parity spot
    days = T * config.days_per_year
    near = (counted & (days >= 3) & (days <= 60) & (np.abs(K / S - 1) < 0.03) & np.isfinite(own)
            & usable_quotes(bid, ask, WIDE_SPREAD))
    for name, spot in (("vendor_iv_gap_print", S), ("vendor_iv_gap_parity", ps.spot if ps else np.nan)):
        row[name] = np.nan
        if near.any() and np.isfinite(spot):
            iv = pricing.implied_vol(0.5 * (bid[near] + ask[near]), spot, K[near], T[near], config.rate,
                                     config.div_yield, is_call[near]).iv
            if np.isfinite(iv).any():
                row[name] = 100.0 * float(np.nanmedian(np.abs(iv - own[near])))
    # b: wide or stale quotes
    surf = smoothed_iv(snap, config).iv
    with np.errstate(all="ignore"):
        rel = (ask - bid) / (0.5 * (ask + bid))
    wide = counted & (~(bid > 0) | ~(rel <= WIDE_SPREAD))
    swap = np.isfinite(surf)
    iv_b = np.where(wide & swap, surf, own)
    row.update(net_wide_surface=float(total(iv=iv_b).sum()), wide_gross=float(np.abs(base[wide]).sum()),
               wide_net=float(base[wide].sum()), n_wide=int(wide.sum()))
    # c: deep contracts; every IV from the surface
    deep = counted & (np.abs(K / S - 1.0) > DEEP_MONEYNESS)
    with np.errstate(all="ignore"):
        dlt = pricing.delta(S, K, np.where(counted, T, np.nan), own, config.rate, config.div_yield, is_call)
    low = deep & (np.abs(np.nan_to_num(dlt, nan=0.0)) < DEEP_DELTA)
    row.update(net_all_surface=float(total(iv=np.where(swap, surf, own)).sum()),
               deep_gross=float(np.abs(base[deep]).sum()), deep_net=float(base[deep].sum()),
               deep_lowdelta_gross=float(np.abs(base[low]).sum()), deep_lowdelta_net=float(base[low].sum()))
    # d: next snapshot's open interest (look-ahead diagnostic)
    if nxt is not None:
        oi_next, share = _next_oi(snap, nxt)
        row.update(net_next_oi=float(total(open_interest=oi_next).sum()), next_oi_unlisted_share=share)
    else:
        row.update(net_next_oi=np.nan, next_oi_unlisted_share=np.nan)
    # a+b: parity spot and the surface fitted there
    if ps is not None:
        surf_p = smoothed_iv(snap, config, spot=ps.spot).iv
        row["net_parity_surface"] = float(total(spot=ps.spot, iv=np.where(np.isfinite(surf_p), surf_p, own)).sum())
    else:
        row["net_parity_surface"] = np.nan
    row.update(_monthly(snap, config, T, counted, base, total))
    return row


def _monthly(snap, config, T, counted, base, total) -> dict:
    c = snap.contracts
    am = counted & (c["settlement"] == "AM").to_numpy()
    empty = {"monthly_expiration": pd.NaT, "monthly_days": np.nan, "monthly_spx": np.nan, "monthly_spxw": np.nan,
             "monthly_spx_gross": np.nan, "monthly_spxw_gross": np.nan, "monthly_shared_keys": np.nan,
             "monthly_identical_keys": np.nan, "monthly_spx_pm": np.nan}
    if not am.any():
        return empty
    exp = c["expiration"].to_numpy()
    first = exp[am].min()
    on = counted & (exp == first)
    spx = on & (c["root"] == "SPX").to_numpy()
    spxw = on & (c["root"] == "SPXW").to_numpy()
    cols = ["bid", "ask", "open_interest"]
    a = c[spx].set_index(["strike", "right"])[cols].add_suffix("_spx")
    b = c[spxw].set_index(["strike", "right"])[cols].add_suffix("_spxw")
    shared = a.join(b, how="inner")
    same = shared["open_interest_spx"].to_numpy() > 0
    for col in ("bid", "ask", "open_interest"):
        x, y = shared[f"{col}_spx"].to_numpy(), shared[f"{col}_spxw"].to_numpy()
        same &= (x == y) | (np.isnan(x) & np.isnan(y))
    # T of the SPX rows to 16:00 of the expiry date instead of the 09:30 open
    T_pm = T.copy()
    if config.day_count == "calendar" and spx.any():
        e = exp[spx]
        shift = (cal.settlement_times(e, np.full(len(e), "PM")).asi8
                 - cal.settlement_times(e, np.full(len(e), "AM")).asi8) / 1e9
        T_pm[spx] = T[spx] + shift / (config.days_per_year * 86400.0)
    pm = total(tt=T_pm, mask=spx)
    first_date = pd.Timestamp(first).date()
    return {"monthly_expiration": pd.Timestamp(first), "monthly_days": (first_date - snap.snapshot_date).days,
            "monthly_spx": float(base[spx].sum()), "monthly_spxw": float(base[spxw].sum()),
            "monthly_spx_gross": float(np.abs(base[spx]).sum()), "monthly_spxw_gross": float(np.abs(base[spxw]).sum()),
            "monthly_shared_keys": int(len(shared)), "monthly_identical_keys": int(same.sum()),
            "monthly_spx_pm": pm}


def daily_effects(snapshots: Iterable[ChainSnapshot], *, market_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per snapshot with the series every effect is measured from (:data:`DAILY_COLUMNS`).

    Parameters
    ----------
    snapshots : iterable of ChainSnapshot
        In date order (an archive); consecutive snapshots are "day" and "next day".
    market_dir : path, optional
        Where the market history (rates, dividend yield) is found (see :mod:`research_lib.market`).

    Returns
    -------
    DataFrame
        Columns :data:`DAILY_COLUMNS` ($ per 1% move for the GEX columns; ``parity_spot``/``parity_diff``
        in points, NaN on a day without a parity expiry; ``next_oi_unlisted_share`` a fraction; the
        ``monthly_*`` columns of the nearest AM-settled expiry, ``monthly_days`` calendar days to it).
        ``attrs["archive"]`` is the first snapshot's source.

    Raises
    ------
    QuoteFitArgumentError
        No snapshot, or snapshots not in strictly increasing date order.
    """
    snaps = list(snapshots)
    if not snaps:
        raise QuoteFitArgumentError("no snapshots to measure", argument="snapshots")
    dates = [s.snapshot_date for s in snaps]
    if any(b <= a for a, b in zip(dates, dates[1:], strict=False)):
        raise QuoteFitArgumentError("snapshots must be in strictly increasing date order", argument="snapshots")
    rows = []
    for i, snap in enumerate(snaps):
        config = snapshot_config(snap, "model", market_dir=market_dir)
        rows.append(_day(snap, config, snaps[i + 1] if i + 1 < len(snaps) else None))
    out = pd.DataFrame(rows)[list(DAILY_COLUMNS)]
    out.attrs["archive"] = snaps[0].source
    return out


def _level(net: pd.Series) -> float:
    """Mean |net GEX|, the denominator of every percentage (NaN when 0: no percentage of nothing)."""
    level = float(net.abs().mean())
    return level if level > 0 else np.nan


def _series_measures(effect: str, base: pd.Series, alt: pd.Series, what: str) -> list[tuple]:
    level = _level(base)
    ok = base.notna() & alt.notna()
    d = (alt - base)[ok]
    rows = [
        (effect, "n_days", int(ok.sum()), "days", f"days with both series; {what}"),
        (effect, "mean_diff", float(d.mean()), "$", "mean of (alternative - base) net GEX"),
        (effect, "sd_diff", float(d.std(ddof=1)) if len(d) > 1 else np.nan, "$", "sd of (alternative - base)"),
        (effect, "mean_diff_pct", 100 * float(d.mean()) / level, "%", "mean diff / mean |base net GEX|"),
        (effect, "sd_diff_pct", 100 * float(d.std(ddof=1)) / level if len(d) > 1 else np.nan, "%",
         "sd diff / mean |base net GEX|"),
        (effect, "mean_abs_diff_pct", 100 * float(d.abs().mean()) / level, "%", "mean |diff| / mean |base net GEX|"),
        (effect, "max_abs_diff_pct", 100 * float(d.abs().max()) / level, "%", "largest |diff| / mean |base net GEX|"),
        (effect, "sign_flips", int((np.sign(base[ok]) != np.sign(alt[ok])).sum()), "days",
         "days the alternative has the other sign"),
        (effect, "noise_base", 100 * float(base[ok].diff().std(ddof=1)) / level, "%",
         "sd of day-to-day changes of the base / mean |base net GEX|"),
        (effect, "noise_alt", 100 * float(alt[ok].diff().std(ddof=1)) / level, "%",
         "sd of day-to-day changes of the alternative / mean |base net GEX|"),
        (effect, "noise_diff", 100 * float(d.diff().std(ddof=1)) / level, "%",
         "sd of day-to-day changes of the difference / mean |base net GEX|: the noise the effect carries"),
        (effect, "corr_changes", float(base[ok].diff().corr(alt[ok].diff())), "",
         "correlation of the two series' day-to-day changes"),
    ]
    return rows


def effects_table(daily: pd.DataFrame, archive: str | None = None) -> pd.DataFrame:
    """The tidy table (:data:`EFFECT_COLUMNS`) from :func:`daily_effects`' frame (see the module docstring)."""
    archive = archive or daily.attrs.get("archive", "")
    net = daily["net"]
    level = _level(net)
    gross = daily["gross"]
    rows: list[tuple] = [
        ("base", "n_days", len(daily), "days", "snapshots measured"),
        ("base", "mean_abs_net", level, "$", "mean |net GEX| (model convention, print spot, own IVs)"),
        ("base", "mean_gross", float(gross.mean()), "$", "mean gross GEX, sum of |GEX| per contract"),
        ("base", "noise", 100 * float(net.diff().std(ddof=1)) / level, "%",
         "sd of day-to-day changes / mean |net GEX|"),
    ]
    pdiff = daily["parity_diff"]
    worst = daily.loc[pdiff.abs().idxmax()] if pdiff.notna().any() else None
    rows += [
        ("a_parity_spot", "spot_diff_mean", float(pdiff.mean()), "pt", "parity spot - print spot, mean"),
        ("a_parity_spot", "spot_diff_sd", float(pdiff.std(ddof=1)), "pt", "parity spot - print spot, sd"),
        ("a_parity_spot", "spot_diff_max_abs", float(pdiff.abs().max()), "pt", "largest |parity - print|"),
        ("a_parity_spot", "spot_diff_worst_day", float(worst["parity_diff"]) if worst is not None else np.nan, "pt",
         f"the worst day: {worst['date'] if worst is not None else 'n/a'}"),
        ("a_parity_spot", "days_without_parity", int(pdiff.isna().sum()), "days", "no expiry qualified"),
    ]
    rows += [
        ("a_parity_spot", "vendor_iv_gap_print", float(daily["vendor_iv_gap_print"].mean()), "vol pt",
         "median |IV re-solved from the mid at the print - vendor IV|, near-money quotes 3-60 days, mean of days"),
        ("a_parity_spot", "vendor_iv_gap_parity", float(daily["vendor_iv_gap_parity"].mean()), "vol pt",
         "the same at the parity spot"),
    ]
    rows += _series_measures("a_parity_spot", net, daily["net_parity"], "net GEX at the parity spot vs at the print")
    rows += [
        ("b_wide_quotes", "share_contracts", 100 * float((daily["n_wide"] / daily["n_contracts"]).mean()), "%",
         "mean share of live contracts with bid = 0 or relative spread > 50%"),
        ("b_wide_quotes", "share_gross", 100 * float((daily["wide_gross"] / gross).mean()), "%",
         "mean share of gross GEX on those contracts"),
        ("b_wide_quotes", "net_of_wide_pct", 100 * float(daily["wide_net"].mean()) / level, "%",
         "mean net GEX of those contracts / mean |net GEX|"),
    ]
    rows += _series_measures("b_wide_quotes", net, daily["net_wide_surface"],
                             "their IV replaced by the smoothed surface's (at the print)")
    rows += [
        ("c_deep_iv", "share_gross_deep", 100 * float((daily["deep_gross"] / gross).mean()), "%",
         "mean share of gross GEX with |K/S - 1| > 10%"),
        ("c_deep_iv", "net_of_deep_pct", 100 * float(daily["deep_net"].mean()) / level, "%",
         "mean net GEX of |K/S - 1| > 10% / mean |net GEX|"),
        ("c_deep_iv", "share_gross_deep_lowdelta", 100 * float((daily["deep_lowdelta_gross"] / gross).mean()), "%",
         "mean share of gross GEX with |K/S - 1| > 10% and |delta| < 0.02"),
        ("c_deep_iv", "net_of_deep_lowdelta_pct", 100 * float(daily["deep_lowdelta_net"].mean()) / level, "%",
         "mean net GEX of those / mean |net GEX|"),
    ]
    rows += _series_measures("c_deep_iv", net, daily["net_all_surface"],
                             "every IV from the smoothed surface (at the print) vs each contract's own")
    rows += [("d_next_oi", "next_oi_unlisted_share", 100 * float(daily["next_oi_unlisted_share"].mean()), "%",
              "mean share of the next snapshot's live OI on contracts today's snapshot does not list")]
    rows += _series_measures("d_next_oi", net, daily["net_next_oi"],
                             "today's prices with the NEXT snapshot's OI (look-ahead diagnostic)")
    rows += _monthly_rows(daily, level)
    rows += _series_measures("ab_parity_surface", net, daily["net_parity_surface"],
                             "parity spot and every IV from the surface fitted at it")
    out = pd.DataFrame(rows, columns=list(EFFECT_COLUMNS[1:]))
    out.insert(0, "archive", archive)
    return out


def _monthly_rows(daily: pd.DataFrame, level: float) -> list[tuple]:
    has = daily["monthly_expiration"].notna()
    m = daily[has]
    near = m[m["monthly_days"] <= NEAR_MONTHLY_DAYS]
    rows: list[tuple] = []
    for tag, sub in (("", m), ("_near", near)):
        what = " (days with a live AM-settled expiry)" if not tag else \
            f" (days within {NEAR_MONTHLY_DAYS} calendar days of the expiry)"
        both = sub["monthly_spx_gross"] + sub["monthly_spxw_gross"]
        amdiff = sub["monthly_spx_pm"] - sub["monthly_spx"]
        rows += [
            ("e_monthly", f"n_days{tag}", len(sub), "days", "days measured" + what),
            ("e_monthly", f"spx_share_gross{tag}", 100 * float((sub["monthly_spx_gross"] / both).mean()), "%",
             "SPX (AM) rows' share of the monthly expiry's gross GEX" + what),
            ("e_monthly", f"spx_net_mean{tag}", float(sub["monthly_spx"].mean()), "$",
             "mean net GEX of the monthly's SPX rows" + what),
            ("e_monthly", f"spxw_net_mean{tag}", float(sub["monthly_spxw"].mean()), "$",
             "mean net GEX of the monthly's SPXW rows" + what),
            ("e_monthly", f"shared_keys_mean{tag}", float(sub["monthly_shared_keys"].mean()), "keys",
             "(strike, right) listed under both roots, mean per day" + what),
            ("e_monthly", f"identical_keys_max{tag}", float(sub["monthly_identical_keys"].max()), "keys",
             "of those, with OI > 0 and identical bid, ask and OI under both roots (max per day)" + what),
            ("e_monthly", f"am_time_diff_mean{tag}", float(amdiff.mean()), "$",
             "SPX rows' GEX with T to 16:00 minus with T to the 09:30 open, mean" + what),
            ("e_monthly", f"am_time_diff_mean_abs_pct{tag}", 100 * float(amdiff.abs().mean()) / level, "%",
             "mean |that difference| / mean |net GEX|" + what),
            ("e_monthly", f"am_time_diff_max_abs_pct{tag}", 100 * float(amdiff.abs().max()) / level, "%",
             "largest |that difference| / mean |net GEX|" + what),
        ]
    return rows


@dataclasses.dataclass(frozen=True, eq=False)
class DataEffects:
    """The measurements of one archive (:func:`measure_effects`).

    Attributes
    ----------
    table : DataFrame
        The tidy table, columns :data:`EFFECT_COLUMNS` (``value`` in ``unit``: ``$`` per 1% move, ``%``,
        ``pt`` index points, ``days``, ``keys``; ``what`` says what it is).
    daily : DataFrame
        The per-snapshot series (:func:`daily_effects`).
    """

    table: pd.DataFrame
    daily: pd.DataFrame

    def to_markdown(self) -> str:
        """The table as GitHub markdown (:func:`effects_markdown`)."""
        return effects_markdown(self.table)

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): both tables as records."""
        return jsonable({"table": self.table.to_dict("records"), "daily": self.daily.to_dict("records")})


def _fmt(value: float, unit: str, measure: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    if unit == "$":
        return fmt_money(float(value), symbol="$", signed=not measure.startswith(("sd", "mean_abs", "mean_gross")))
    if unit in ("days", "keys"):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    if unit == "":
        return f"{value:.3f}"
    return f"{value:+.2f}" if unit == "pt" and "sd" not in measure else f"{value:.2f}"


def effects_markdown(table: pd.DataFrame) -> str:
    """A markdown table of :func:`data_effects`' output: one row per (effect, measure), one value column
    per archive (formatted in its unit), then the unit and what it is (each archive's own text, after its
    name, where they differ)."""
    archives = list(dict.fromkeys(table["archive"]))
    first = table[table["archive"] == archives[0]]
    head = "| effect | measure | " + " | ".join(a.split(":")[-1] for a in archives) + " | unit | what |"
    lines = [head, "|" + "---|" * (len(archives) + 4)]
    values = {(a, e, m): (v, u, w) for a, e, m, v, u, w in
              table[["archive", "effect", "measure", "value", "unit", "what"]].itertuples(index=False)}
    for e, m, u, w in first[["effect", "measure", "unit", "what"]].itertuples(index=False):
        cells = [_fmt(values[(a, e, m)][0], u, m) if (a, e, m) in values else "" for a in archives]
        texts = [values[(a, e, m)][2] for a in archives if (a, e, m) in values]
        if len(set(texts)) > 1:
            w = "; ".join(f"{a.split(':')[-1]}: {values[(a, e, m)][2]}" for a in archives
                          if (a, e, m) in values)
        w = w.replace("|", "\\|")
        lines.append(f"| {e} | {m} | " + " | ".join(cells) + f" | {u} | {w} |")
    return "\n".join(lines)


def measure_effects(snapshots: Iterable[ChainSnapshot], *, market_dir: str | os.PathLike | None = None
                    ) -> DataEffects:
    """:func:`daily_effects` and :func:`effects_table` in one :class:`DataEffects`."""
    daily = daily_effects(snapshots, market_dir=market_dir)
    return DataEffects(table=effects_table(daily), daily=daily)


def data_effects(snapshots: Iterable[ChainSnapshot], *, market_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The tidy table of every effect over an archive (module docstring); columns :data:`EFFECT_COLUMNS`.

    Parameters
    ----------
    snapshots : iterable of ChainSnapshot
        One archive, in date order (e.g. ``read_chains(path)``).
    market_dir : path, optional
        Where the rates and dividend-yield history is found.

    Returns
    -------
    DataFrame
        ``archive`` (the first snapshot's source), ``effect``, ``measure``, ``value``, ``unit``, ``what``.
        Concatenate two archives' tables and pass them to :func:`effects_markdown` for a side-by-side view.
    """
    return measure_effects(snapshots, market_dir=market_dir).table

