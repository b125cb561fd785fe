"""Matplotlib figures, one function per chart, each returning a :class:`matplotlib.figure.Figure`.

Most take a :class:`~research_lib.gex.GexAnalysis` (from :func:`research_lib.gex.analyze`; the intraday
:func:`volume_profile` takes bars and a profile), draw on a new
figure (or on ``ax`` when given). Figures are built with :class:`~matplotlib.figure.Figure` directly, not
pyplot, so nothing global is touched and nothing leaks: notebooks display the returned figure, scripts
call ``fig.savefig(...)``.
GEX axes are in billions of dollars per 1% move. Modelled data is labelled as such in every title.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from research_lib.core import gex_signal, volume_profile as vp
from research_lib.core.gex import GexAnalysis
from research_lib.core.gex_change import CAUSES, GexChange
from research_lib.errors import (
    AttributionParamsError,
    BacktestInputError,
    HistoryArgumentError,
    PaperDisplayError,
    ProfileParamsError,
    SweepStatisticError,
)

BILLION = 1e9
CALL_COLOR = "#2a9d8f"
PUT_COLOR = "#e76f51"
NET_COLOR = "#264653"
VALUE_LABELS = {"gex": "net GEX", "vanna_exposure": "vanna exposure", "charm_exposure": "charm exposure",
                "delta_exposure": "delta exposure"}
LEVEL_STYLE = {
    "spot": dict(color="black", linestyle="-", linewidth=1.2),
    "zero gamma": dict(color="#8338ec", linestyle="--", linewidth=1.2),
    "call wall": dict(color=CALL_COLOR, linestyle=":", linewidth=1.5),
    "put wall": dict(color=PUT_COLOR, linestyle=":", linewidth=1.5),
}


def _title(analysis: GexAnalysis, what: str) -> str:
    lv = analysis.levels
    tag = "  [MODELLED DATA]" if lv.modelled else ""
    return f"{lv.underlying} {what} — {lv.date} ({lv.convention}){tag}"


def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _mark_levels(ax, analysis: GexAnalysis, lo: float, hi: float) -> None:
    lv = analysis.levels
    marks = {"spot": lv.spot, "zero gamma": lv.zero_gamma, "call wall": lv.call_wall, "put wall": lv.put_wall}
    for name, x in marks.items():
        if x is not None and lo <= x <= hi:
            ax.axvline(x, label=f"{name} {x:,.0f}", **LEVEL_STYLE[name])


def gex_by_strike(analysis: GexAnalysis, *, window_pct: float = 10.0, ax=None) -> Figure:
    """Call and put GEX by strike (bars) with the net line, spot, zero gamma and the walls marked.

    Shows strikes within ``window_pct`` % of spot.
    """
    fig, ax = _new_axes(ax, (11, 5))
    S = analysis.levels.spot
    lo, hi = S * (1 - window_pct / 100), S * (1 + window_pct / 100)
    st = analysis.strikes[(analysis.strikes.index >= lo) & (analysis.strikes.index <= hi)]
    k = st.index.to_numpy(dtype=float)
    width = np.median(np.diff(k)) * 0.8 if len(k) > 1 else 1.0
    ax.bar(k, st["call_gex"] / BILLION, width=width, color=CALL_COLOR, label="call GEX")
    ax.bar(k, st["put_gex"] / BILLION, width=width, color=PUT_COLOR, label="put GEX")
    ax.plot(k, st["net_gex"] / BILLION, color=NET_COLOR, linewidth=1, label="net GEX")
    ax.axhline(0, color="grey", linewidth=0.6)
    _mark_levels(ax, analysis, lo, hi)
    ax.set_xlabel("strike")
    ax.set_ylabel("GEX ($bn per 1% move)")
    ax.set_title(_title(analysis, "GEX by strike"))
    ax.legend(loc="best", fontsize=8)
    return fig


def gamma_profile(analysis: GexAnalysis, *, ax=None) -> Figure:
    """Net, call and put GEX re-priced over the grid of hypothetical spots, zero-gamma crossings marked."""
    fig, ax = _new_axes(ax, (11, 5))
    p = analysis.profile
    ax.plot(p.levels, p.net_gex / BILLION, color=NET_COLOR, linewidth=2, label="net GEX")
    ax.plot(p.levels, p.call_gex / BILLION, color=CALL_COLOR, linewidth=1, alpha=0.7, label="calls")
    ax.plot(p.levels, p.put_gex / BILLION, color=PUT_COLOR, linewidth=1, alpha=0.7, label="puts")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.fill_between(p.levels, 0, p.net_gex / BILLION, where=p.net_gex < 0, color=PUT_COLOR, alpha=0.08)
    ax.fill_between(p.levels, 0, p.net_gex / BILLION, where=p.net_gex >= 0, color=CALL_COLOR, alpha=0.08)
    _mark_levels(ax, analysis, p.levels[0], p.levels[-1])
    for z in analysis.levels.zero_gamma_crossings:
        if z != analysis.levels.zero_gamma:
            ax.axvline(z, color="#8338ec", linestyle="--", linewidth=0.6, alpha=0.6)
    ax.set_xlabel("hypothetical spot")
    ax.set_ylabel("GEX ($bn per 1% move)")
    ax.set_title(_title(analysis, "gamma profile"))
    ax.legend(loc="best", fontsize=8)
    return fig


def gex_heatmap(analysis: GexAnalysis, *, value: str = "gex", window_pct: float = 5.0,
                max_expiries: int = 12, ax=None) -> Figure:
    """Strike × expiry heatmap of ``value`` (default net GEX), strikes within ``window_pct`` % of spot,
    the first ``max_expiries`` expiries. Diverging colours centred on zero (puts red, calls green)."""
    fig, ax = _new_axes(ax, (11, 7))
    table = analysis.heatmap_table(value)
    S = analysis.levels.spot
    table = table[(table.index >= S * (1 - window_pct / 100)) & (table.index <= S * (1 + window_pct / 100))]
    table = table.iloc[:, :max_expiries]
    data = table.to_numpy() / BILLION
    if data.size == 0:
        ax.text(0.5, 0.5, "no strikes in the window", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(_title(analysis, f"{value} heatmap"))
        return fig
    lim = float(np.nanmax(np.abs(data))) or 1.0
    im = ax.imshow(data, aspect="auto", origin="lower", cmap="RdYlGn", norm=TwoSlopeNorm(0, -lim, lim))
    ax.set_xticks(range(table.shape[1]), [f"{c:%m-%d}" for c in table.columns], rotation=45, fontsize=8)
    step = max(1, len(table.index) // 25)
    ax.set_yticks(range(0, len(table.index), step), [f"{k:,.0f}" for k in table.index[::step]], fontsize=8)
    ax.set_xlabel("expiry")
    ax.set_ylabel("strike")
    label = VALUE_LABELS.get(value, value)
    fig.colorbar(im, ax=ax, label=f"{label} ($bn)")
    ax.set_title(_title(analysis, f"{label} by strike × expiry"))
    return fig


PUBLISHED_COLOR = "#8338ec"
VIX_COLOR = "#1d3557"


def _history_axes(ax):
    """Three stacked axes sharing x: a new figure's, the three given, or one given axes split in three."""
    if ax is None:
        fig = Figure(figsize=(11, 8), layout="constrained")
        return list(fig.subplots(3, 1, sharex=True, height_ratios=(2, 1, 1)))
    if isinstance(ax, list | tuple | np.ndarray):
        axes = list(np.ravel(ax))
        if len(axes) != 3:
            raise HistoryArgumentError("ax", f"give one Axes or three, got {len(axes)}")
        return axes
    spec = ax.get_subplotspec()
    if spec is None:
        raise HistoryArgumentError("ax", "a single Axes must belong to a grid (fig.add_subplot) to be split in three")
    fig = ax.figure
    ax.remove()
    grid = spec.subgridspec(3, 1, height_ratios=(2, 1, 1))
    top = fig.add_subplot(grid[0])
    return [top, fig.add_subplot(grid[1], sharex=top), fig.add_subplot(grid[2], sharex=top)]


def _align_zero(a, b) -> None:
    """Set the y-limits of ``a`` and ``b`` (twin axes) so that their zero lines coincide."""
    lims = [(min(lo, 0.0), max(hi, 0.0)) for lo, hi in (a.get_ylim(), b.get_ylim())]
    below = max(-lo / (hi - lo) for lo, hi in lims if hi > lo) if any(hi > lo for lo, hi in lims) else 0.5
    below = min(max(below, 0.05), 0.95)
    for ax, (lo, hi) in zip((a, b), lims, strict=True):
        span = max(-lo / below, hi / (1 - below)) or 1.0
        ax.set_ylim(-below * span, (1 - below) * span)


def _no_data(ax, text: str, y: float = 0.5) -> None:
    ax.text(0.5, y, text, ha="center", va="center", transform=ax.transAxes, color="grey", fontsize=9)


def history_context(ctx, *, ax=None) -> Figure:
    """Three stacked panels sharing the date axis, from a :class:`~research_lib.history.HistoryContext`.

    1. Our net GEX (bars, $bn per 1% move; green positive, red negative) with SqueezeMetrics' published GEX
       (line) on a twin y-axis in their own units ($bn as published: compare sign and shape, not level);
    2. VIX close (index points);
    3. VIX's IV rank (0-100 over ``ctx.iv_rank_window`` sessions).

    A series without data gets a "no data" note in its panel. ``ax``: None (new figure), one Axes (split in
    three within its grid cell) or three Axes. The twin axis is always created, so the figure has four axes.
    """
    import matplotlib.dates as mdates
    import pandas as pd

    ax_gex, ax_vix, ax_rank = _history_axes(ax)
    fig = ax_gex.figure
    f = ctx.frame
    end = pd.Timestamp(ctx.date)
    start = end - pd.Timedelta(days=ctx.days)

    twin = ax_gex.twinx()
    ours = f["net_gex"].dropna() / BILLION
    if len(ours):
        colors = np.where(ours.to_numpy() >= 0, CALL_COLOR, PUT_COLOR)
        ax_gex.bar(ours.index, ours.to_numpy(), width=0.8, color=colors, label="net GEX (ours)")
        ax_gex.plot(ours.index, ours.to_numpy(), ".", color=NET_COLOR, markersize=3)
    else:
        _no_data(ax_gex, "no data: our net GEX", 0.6)
    published = f["published_gex"].dropna() / BILLION
    if len(published):
        twin.plot(published.index, published.to_numpy(), color=PUBLISHED_COLOR, linewidth=1,
                  label="published GEX (SqueezeMetrics)")
    else:
        _no_data(twin, "no data: published GEX", 0.4)
    ax_gex.axhline(0, color="grey", linewidth=0.6)
    if len(ours) and len(published):
        _align_zero(ax_gex, twin)
    ax_gex.set_ylabel("our net GEX ($bn per 1% move)")
    twin.set_ylabel("SqueezeMetrics GEX ($bn, their units)", color=PUBLISHED_COLOR)
    twin.tick_params(axis="y", colors=PUBLISHED_COLOR)
    handles = ax_gex.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    if handles:
        ax_gex.legend(handles=handles, loc="upper left", fontsize=8)
    tag = "  [MODELLED DATA]" if ctx.modelled else ""
    ax_gex.set_title(f"{ctx.underlying} history context — {ctx.date} ({ctx.convention}, last {ctx.days} days){tag}")

    vix = f["vix"].dropna()
    if len(vix):
        ax_vix.plot(vix.index, vix.to_numpy(), color=VIX_COLOR, linewidth=1, label="VIX")
    else:
        _no_data(ax_vix, "no data: VIX")
    ax_vix.set_ylabel("VIX (points)")

    rank = f["iv_rank"].dropna()
    if len(rank):
        ax_rank.plot(rank.index, rank.to_numpy(), color=VIX_COLOR, linewidth=1, label="IV rank")
        ax_rank.fill_between(rank.index, 0, rank.to_numpy(), color=VIX_COLOR, alpha=0.1)
    else:
        _no_data(ax_rank, "no data: IV rank")
    ax_rank.set_ylim(0, 100)
    ax_rank.set_ylabel(f"IV rank of VIX\n({ctx.iv_rank_window} sessions)")

    ax_rank.set_xlim(start - pd.Timedelta(days=1), end + pd.Timedelta(days=1))
    locator = mdates.AutoDateLocator()
    ax_rank.xaxis.set_major_locator(locator)
    ax_rank.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for a in (ax_gex, ax_vix):
        a.tick_params(labelbottom=False)
    return fig


#: Colours of the causes of :func:`gex_change` (the waterfall's bars and the stacked bars by expiry).
CAUSE_COLORS = {"spot": "#264653", "time": "#8ab17d", "rates": "#b0b0b0", "iv": "#8338ec",
                "open_interest": "#e9c46a", "rolled_off": "#e76f51", "new_listings": "#2a9d8f",
                "window": "#6c757d"}


def _two_axes(ax):
    """Two side-by-side axes: a new figure's, the two given, or one given axes split in two."""
    if ax is None:
        fig = Figure(figsize=(12, 4.8), layout="constrained")
        return list(fig.subplots(1, 2, width_ratios=(1.2, 1)))
    if isinstance(ax, list | tuple | np.ndarray):
        axes = list(np.ravel(ax))
        if len(axes) != 2:
            raise AttributionParamsError("ax", f"give one Axes or two, got {len(axes)}")
        return axes
    spec = ax.get_subplotspec()
    if spec is None:
        raise AttributionParamsError("ax", "a single Axes must belong to a grid (fig.add_subplot) to be split in two")
    fig = ax.figure
    ax.remove()
    grid = spec.subgridspec(1, 2, width_ratios=(1.2, 1))
    return [fig.add_subplot(grid[0]), fig.add_subplot(grid[1])]


def _pad_ylim(ax, lo: float, hi: float, pad: float = 0.1) -> None:
    span = (hi - lo) or 1.0
    ax.set_ylim(lo - pad * span, hi + pad * span)


def gex_change(change: GexChange, *, ax=None) -> Figure:
    """What moved GEX since the previous snapshot, from a :class:`~research_lib.core.gex_change.GexChange`.

    Two panels, $bn per 1% move:

    1. a waterfall from ``net_before`` to ``net_after``: one floating bar per cause (in
       :data:`~research_lib.core.gex_change.CAUSES` order, causes that are exactly 0 left out), the two totals
       as full bars;
    2. the change by expiry bucket, stacked by cause (positive parts up, negative down), the bucket's total
       marked with a dot.

    ``ax``: None (new figure), one Axes (split in two within its grid cell) or two Axes.
    """
    ax_w, ax_e = _two_axes(ax)
    fig = ax_w.figure
    causes = [c for c in CAUSES if change.by_cause[c] != 0.0]
    labels = ["before", *causes, "after"]
    level = change.net_before / BILLION
    seen = [0.0, level]
    x = np.arange(len(labels))
    ax_w.bar(x[0], level, color=NET_COLOR, width=0.6)
    for i, c in enumerate(causes, start=1):
        v = change.by_cause[c] / BILLION
        ax_w.bar(x[i], v, bottom=level, color=CAUSE_COLORS[c], width=0.6, edgecolor="black", linewidth=0.4)
        ax_w.plot([x[i] - 0.7, x[i] + 0.3], [level, level], color="grey", linewidth=0.6, linestyle=":")
        ax_w.annotate(f"{v:+.2f}", (x[i], level + max(v, 0.0)), ha="center", va="bottom", fontsize=7)
        level += v
        seen.append(level)
    ax_w.bar(x[-1], change.net_after / BILLION, color=NET_COLOR, width=0.6)
    ax_w.axhline(0, color="grey", linewidth=0.6)
    _pad_ylim(ax_w, min(seen), max(seen))
    ax_w.set_xticks(x, [lbl.replace("_", " ") for lbl in labels], rotation=30, ha="right", fontsize=8)
    ax_w.set_ylabel("net GEX ($bn per 1% move)")
    tag = "  [MODELLED DATA]" if change.modelled else ""
    ax_w.set_title(f"{change.underlying} what moved GEX — {change.date_before} → {change.date_after} "
                   f"({change.method}){tag}", fontsize=10)

    table = change.by_expiry
    xe = np.arange(len(table))
    up = np.zeros(len(table))
    down = np.zeros(len(table))
    for c in CAUSES:
        v = table[c].to_numpy() / BILLION
        if not np.any(v != 0):
            continue
        pos, neg = np.where(v > 0, v, 0.0), np.where(v < 0, v, 0.0)
        ax_e.bar(xe, pos, bottom=up, color=CAUSE_COLORS[c], width=0.6, label=c.replace("_", " "))
        ax_e.bar(xe, neg, bottom=down, color=CAUSE_COLORS[c], width=0.6)
        up += pos
        down += neg
    ax_e.plot(xe, table["total"].to_numpy() / BILLION, "o", color="black", markersize=4, label="total")
    ax_e.axhline(0, color="grey", linewidth=0.6)
    _pad_ylim(ax_e, min(down.min(initial=0.0), table["total"].min() / BILLION),
              max(up.max(initial=0.0), table["total"].max() / BILLION))
    ax_e.set_xticks(xe, list(table.index), fontsize=8)
    ax_e.set_xlabel(f"expiry (calendar days from {change.date_after})")
    ax_e.set_ylabel("change ($bn per 1% move)")
    ax_e.set_title("change by expiry bucket", fontsize=10)
    ax_e.legend(loc="best", fontsize=7)
    return fig


def gex_change_history(history, *, title: str = "", ax=None) -> Figure:
    """The daily change of net GEX split by cause, one stacked bar per day (positive parts up, negative
    down), the change itself as a dot, from :func:`research_lib.pipeline.gex_change.change_history`
    ($bn per 1% move)."""
    import matplotlib.dates as mdates

    fig, ax = _new_axes(ax, (11, 4.5))
    if history.empty:
        _no_data(ax, "no data: fewer than two snapshots")
        return fig
    x = np.asarray([np.datetime64(d, "D") for d in history["date"]])
    up = np.zeros(len(history))
    down = np.zeros(len(history))
    for c in CAUSES:
        v = history[c].to_numpy() / BILLION
        if not np.any(v != 0):
            continue
        pos, neg = np.where(v > 0, v, 0.0), np.where(v < 0, v, 0.0)
        ax.bar(x, pos, bottom=up, color=CAUSE_COLORS[c], width=0.8, label=c.replace("_", " "))
        ax.bar(x, neg, bottom=down, color=CAUSE_COLORS[c], width=0.8)
        up += pos
        down += neg
    ax.plot(x, history["change"].to_numpy() / BILLION, "o", color="black", markersize=3, label="change")
    ax.axhline(0, color="grey", linewidth=0.6)
    _pad_ylim(ax, min(down.min(), history["change"].min() / BILLION), max(up.max(), history["change"].max() / BILLION))
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel("daily change of net GEX ($bn per 1% move)")
    ax.set_title(title or f"what moved GEX each day — {history['date'].iloc[0]} to {history['date'].iloc[-1]}",
                 fontsize=10)
    ax.legend(loc="best", fontsize=7, ncols=2)
    return fig


# --------------------------------------------------------------------------------------------------
# the regime's GEX series against the published one (notebooks/gex_validation.ipynb)

SERIES_COLORS = {"headline": "#adb5bd", "regime": NET_COLOR}


def gex_vs_published(frame, *, columns=("headline", "regime"), title: str = "", ax=None) -> Figure:
    """Our daily GEX series (lines, $bn per 1% move, left axis) beside SqueezeMetrics' published GEX (right axis,
    their units; zero lines aligned: compare sign and shape, not level).

    ``frame``: a :attr:`research_lib.pipeline.gex_validation.GexValidation.series` frame (date index, one column
    per variant and ``published``).
    """
    import matplotlib.dates as mdates

    fig, ax = _new_axes(ax, (11, 4.5))
    for name in columns:
        s = frame[name].dropna() / BILLION
        ax.plot(s.index, s.to_numpy(), marker=".", linewidth=1.4 if name == "regime" else 1.0,
                color=SERIES_COLORS.get(name), label=f"{name} (ours)")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_ylabel("our GEX ($bn per 1% move)")
    twin = ax.twinx()
    pub = frame["published"].dropna() / BILLION
    twin.plot(pub.index, pub.to_numpy(), color=PUBLISHED_COLOR, linewidth=1.2, label="published (SqueezeMetrics)")
    twin.set_ylabel("SqueezeMetrics GEX ($bn, their units)", color=PUBLISHED_COLOR)
    twin.tick_params(axis="y", colors=PUBLISHED_COLOR)
    if len(pub):
        _align_zero(ax, twin)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_title(title or "our GEX series beside the published one")
    return fig


def rv_separation(validation, *, columns=("headline", "regime", "published"), horizons=(1, 5)) -> Figure:
    """Mean next-day and next-5-day realised volatility of the S&P 500 (vol points) on the days each series is
    negative against positive, one panel per archive and horizon; each bar says how many days it averages.

    ``validation``: a :class:`research_lib.pipeline.gex_validation.GexValidation`.
    """
    archives = list(validation.series)
    fig = Figure(figsize=(11, 3.2 * len(archives)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(archives), len(horizons), squeeze=False))
    x = np.arange(len(columns))
    for i, label in enumerate(archives):
        frame = validation.series[label]
        for j, h in enumerate(horizons):
            ax = axes[i][j]
            seps = [gex_signal.rv_separation(frame[c], validation.close, h) for c in columns]
            neg = [s.negative for s in seps]
            pos = [s.positive for s in seps]
            bars_n = ax.bar(x - 0.2, neg, 0.4, color=PUT_COLOR, label="series < 0")
            bars_p = ax.bar(x + 0.2, pos, 0.4, color=CALL_COLOR, label="series > 0")
            for bars, counts in ((bars_n, [s.n_negative for s in seps]), (bars_p, [s.n_positive for s in seps])):
                for b, n in zip(bars, counts, strict=True):
                    height = b.get_height()
                    ax.text(b.get_x() + b.get_width() / 2, 0 if not np.isfinite(height) else height,
                            f"n={n}", ha="center", va="bottom", fontsize=7)
            ax.set_xticks(x, columns)
            ax.set_ylabel(f"next-{h}-day RV (vol pts)")
            ax.set_title(f"{label}: realised vol after negative vs positive days", fontsize=9)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------------
# backtests (notebooks/backtest.ipynb): each takes a research_lib.backtest.results.BacktestResult

EQUITY_COLOR = NET_COLOR
DRAWDOWN_COLOR = PUT_COLOR
ZERO_GAMMA_COLOR = "#8338ec"


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _days(values):
    """Trading dates (dates, strings or timestamps) as numpy datetime64[D] for matplotlib."""
    import pandas as pd

    return pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[D]")


def _backtest_title(result, what: str) -> str:
    strategy = (result.params or {}).get("strategy", "")
    return f"{result.underlying} backtest {what} — {result.start} to {result.end}" + (f" ({strategy})" if strategy else "")


def _stacked_axes(ax, n: int, ratios, figsize):
    """``n`` stacked axes sharing x: a new figure's, or the ``n`` given."""
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return list(np.ravel(fig.subplots(n, 1, sharex=True, height_ratios=ratios, squeeze=False)))
    axes = list(np.ravel(ax)) if isinstance(ax, list | tuple | np.ndarray) else [ax]
    if len(axes) != n:
        raise BacktestInputError("ax", f"give {n} Axes, got {len(axes)}")
    return axes


def backtest_equity(result, *, ax=None) -> Figure:
    """The daily equity curve ($, the initial equity dashed) above its drawdown (%, ≤ 0), sharing the date axis.

    ``ax``: None (new figure) or two Axes.
    """
    ax_eq, ax_dd = _stacked_axes(ax, 2, (2, 1), (11, 6))
    eq = result.equity
    x = _days(eq["date"])
    equity = eq["equity"].to_numpy(dtype=float)
    ax_eq.plot(x, equity, color=EQUITY_COLOR, linewidth=1.5, label="equity")
    ax_eq.axhline(result.initial_equity, color="grey", linewidth=0.8, linestyle="--",
                  label=f"initial {result.initial_equity:,.0f}")
    ax_eq.set_ylabel("equity ($)")
    ax_eq.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax_eq.legend(loc="best", fontsize=8)
    ax_eq.set_title(_backtest_title(result, "equity and drawdown"))
    running = np.maximum.accumulate(np.concatenate([[float(result.initial_equity)], equity]))[1:]
    dd = (equity / running - 1.0) * 100
    ax_dd.fill_between(x, dd, 0, color=DRAWDOWN_COLOR, alpha=0.35)
    ax_dd.plot(x, dd, color=DRAWDOWN_COLOR, linewidth=1, label="drawdown")
    ax_dd.set_ylabel("drawdown (%)")
    ax_dd.set_ylim(min(dd.min(initial=0.0) * 1.1, -0.1), 0.05)
    _date_axis(ax_dd)
    ax_eq.tick_params(labelbottom=False)
    return ax_eq.figure


def equity_comparison(results, *, title: str = "", ax=None) -> Figure:
    """Several backtests' daily equity curves on one chart ($), each labelled with its name and net P&L — e.g. the
    same backtest on real chains and on MODELLED PRICES (:func:`research_lib.backtest.validation.compare_backtests`).

    Parameters
    ----------
    results : mapping of str -> BacktestResult
        Label -> result (at least one).
    title : str, optional
        Default: "equity curves" and the first result's dates.
    ax : Axes, optional
    """
    if not results:
        raise BacktestInputError("results", "give at least one backtest result to draw")
    fig, ax = _new_axes(ax, (11, 5))
    colors = (EQUITY_COLOR, PUT_COLOR, NET_COLOR, CALL_COLOR)
    for i, (label, result) in enumerate(results.items()):
        eq = result.equity
        ax.plot(_days(eq["date"]), eq["equity"].to_numpy(dtype=float), color=colors[i % len(colors)],
                linewidth=1.5, label=f"{label} (net {result.net_pnl:+,.0f})")
    first = next(iter(results.values()))
    ax.axhline(first.initial_equity, color="grey", linewidth=0.8, linestyle="--",
               label=f"initial {first.initial_equity:,.0f}")
    ax.set_ylabel("equity ($)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or f"equity curves — {first.start} to {first.end}")
    _date_axis(ax)
    return fig


def backtest_trades(result, price, *, zero_gamma=None, ax=None) -> Figure:
    """The trades on the underlying's price: the daily price (line), each entry (▲) and exit (●, green for a
    gain, red for a loss) at that day's price, and the daily zero-gamma level (dashed) when given.

    Parameters
    ----------
    result : BacktestResult
    price : Series
        The underlying's daily price (index points), indexed by trading date (the chains' spot, or the daily
        history's close).
    zero_gamma : Series, optional
        Daily zero-gamma level (index points) by trading date, e.g. from the regime run; NaN days are gaps.
    """
    import pandas as pd

    fig, ax = _new_axes(ax, (11, 5))
    px = pd.Series(price, dtype=float)
    px.index = pd.to_datetime(px.index).normalize()
    px = px.sort_index()
    ax.plot(px.index.to_numpy(dtype="datetime64[D]"), px.to_numpy(), color="black", linewidth=1.2,
            label=f"{result.underlying} price")
    if zero_gamma is not None:
        zg = pd.Series(zero_gamma, dtype=float)
        zg.index = pd.to_datetime(zg.index).normalize()
        zg = zg.sort_index()
        ax.plot(zg.index.to_numpy(dtype="datetime64[D]"), zg.to_numpy(), color=ZERO_GAMMA_COLOR, linestyle="--",
                linewidth=1.2, label="zero gamma")
    tr = result.trades
    if len(tr):
        entry = pd.to_datetime(tr["entry_date"]).dt.normalize()
        exit_ = pd.to_datetime(tr["exit_date"]).dt.normalize()
        pnl = tr["pnl"].to_numpy(dtype=float)
        ax.scatter(entry.to_numpy(dtype="datetime64[D]"), px.reindex(entry).to_numpy(), marker="^", s=50,
                   color=NET_COLOR, zorder=3, label=f"entry ({len(tr)})")
        colors = np.where(pnl > 0, CALL_COLOR, PUT_COLOR)
        ax.scatter(exit_.to_numpy(dtype="datetime64[D]"), px.reindex(exit_).to_numpy(), marker="o", s=40,
                   c=colors, edgecolors="black", linewidths=0.5, zorder=3,
                   label=f"exit ({int((pnl > 0).sum())} gains, {int((pnl <= 0).sum())} not)")
    else:
        _no_data(ax, "no trade")
    ax.set_ylabel("index points")
    ax.set_title(_backtest_title(result, "trades on the price"))
    ax.legend(loc="best", fontsize=8)
    _date_axis(ax)
    return fig


def pnl_distribution(result, *, bins: int = 20, ax=None) -> Figure:
    """Histogram of the trades' P&L ($ after commissions), gains green, losses red, the mean and zero marked."""
    fig, ax = _new_axes(ax, (8, 4.5))
    pnl = result.trades["pnl"].to_numpy(dtype=float) if len(result.trades) else np.empty(0)
    if not len(pnl):
        _no_data(ax, "no trade")
    else:
        edges = np.histogram_bin_edges(pnl, bins=min(bins, max(len(pnl), 1)))
        ax.hist(pnl[pnl > 0], bins=edges, color=CALL_COLOR, label=f"gains ({int((pnl > 0).sum())})")
        ax.hist(pnl[pnl <= 0], bins=edges, color=PUT_COLOR, label=f"losses ({int((pnl <= 0).sum())})")
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.axvline(float(pnl.mean()), color="black", linestyle="--", linewidth=1, label=f"mean {pnl.mean():+,.0f}")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("trade P&L ($, after commissions)")
    ax.set_ylabel("trades")
    ax.set_title(_backtest_title(result, "P&L distribution"), fontsize=10)
    return fig


def pnl_by_regime(result, *, ax=None) -> Figure:
    """Total P&L ($) of the trades by the regime at entry (bars), each bar labelled with its trade count and
    mean P&L; trades without a regime (fixed strategies) are "(none)"."""
    fig, ax = _new_axes(ax, (8, 4.5))
    tr = result.trades
    if not len(tr):
        _no_data(ax, "no trade")
    else:
        regime = tr["regime"].fillna("").astype(str).replace("", "(none)")
        groups = tr.assign(regime=regime).groupby("regime", sort=True)["pnl"]
        total, count, mean = groups.sum(), groups.count(), groups.mean()
        x = np.arange(len(total))
        bars = ax.bar(x, total.to_numpy(dtype=float), color=np.where(total.to_numpy() > 0, CALL_COLOR, PUT_COLOR),
                      width=0.6)
        for b, n, m in zip(bars, count.to_numpy(), mean.to_numpy(), strict=True):
            ax.annotate(f"n={n}, mean {m:+,.0f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                        va="bottom" if b.get_height() >= 0 else "top", fontsize=8)
        ax.set_xticks(x, [str(r).replace("_", " ") for r in total.index])
        ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlabel("regime at entry")
    ax.set_ylabel("total P&L ($)")
    ax.set_title(_backtest_title(result, "P&L by regime at entry"), fontsize=10)
    return fig


GREEKS = (("delta", "delta (shares)"), ("gamma", "gamma (shares per point)"), ("theta", "theta ($ per day)"),
          ("vega", "vega ($ per vol point)"))


def book_greeks(result, *, ax=None) -> Figure:
    """The book's net delta, gamma, theta and vega each day (four stacked panels sharing the date axis), from the
    equity table (units of :data:`research_lib.backtest.results.EQUITY_COLUMNS`). ``ax``: None or four Axes."""
    axes = _stacked_axes(ax, 4, (1, 1, 1, 1), (11, 8))
    eq = result.equity
    x = _days(eq["date"])
    for a, (col, label) in zip(axes, GREEKS, strict=True):
        v = eq[col].to_numpy(dtype=float)
        a.plot(x, v, color=NET_COLOR, linewidth=1.2, label=col)
        a.fill_between(x, v, 0, where=v >= 0, color=CALL_COLOR, alpha=0.2)
        a.fill_between(x, v, 0, where=v < 0, color=PUT_COLOR, alpha=0.2)
        a.axhline(0, color="grey", linewidth=0.6)
        a.set_ylabel(label, fontsize=8)
    for a in axes[:-1]:
        a.tick_params(labelbottom=False)
    _date_axis(axes[-1])
    axes[0].set_title(_backtest_title(result, "the book's greeks"))
    return axes[0].figure


def sweep_heatmap(table, x: str, y: str, statistic: str = "sharpe", *, agg: str = "max", ax=None) -> Figure:
    """A statistic of a parameter sweep over two of its grid keys, one cell per pair of values, annotated.

    Parameters
    ----------
    table : DataFrame
        A sweep's results table (:attr:`research_lib.sweep.runner.SweepResult.table`, or ``results.parquet``):
        the grid keys and the statistics as columns, one row per configuration.
    x, y : str
        Grid keys (columns) for the horizontal and vertical axes; their values in sorted order, None (a rule
        off) labelled ``none`` and put last.
    statistic : str
        A statistic column (``sharpe``, ``net_pnl``, ``total_return``...).
    agg : {"max", "mean", "median"}
        How the configurations sharing a cell (the other grid keys' values) are combined: the best of them by
        default. Rows whose statistic is undefined (NaN) are left out; a cell with none left is blank, ``n/a``.
    ax : Axes, optional

    Raises
    ------
    SweepStatisticError
        An unknown column, ``x == y``, an unknown ``agg``, or a table without rows.
    """
    for name in (x, y, statistic):
        if name not in table.columns:
            raise SweepStatisticError(f"sweep_heatmap: no column {name!r} in the table ({', '.join(table.columns)})")
    if x == y:
        raise SweepStatisticError(f"sweep_heatmap: x and y are both {x!r}")
    if agg not in ("max", "mean", "median"):
        raise SweepStatisticError(f"sweep_heatmap: agg {agg!r}: one of max, mean, median")
    if not len(table):
        raise SweepStatisticError("sweep_heatmap: the table has no row")

    def labels(col):
        vals = list(dict.fromkeys(table[col].tolist()))
        none = [v for v in vals if v is None or (isinstance(v, float) and np.isnan(v))]
        rest = sorted((v for v in vals if v not in none), key=lambda v: (isinstance(v, str), v))
        return rest + ([None] if none else [])

    def key(v):
        return "none" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    xs, ys = labels(x), labels(y)
    frame = pd.DataFrame({"x": table[x].map(key), "y": table[y].map(key),
                          "v": pd.to_numeric(table[statistic], errors="coerce")})
    grid = frame.dropna(subset=["v"]).groupby(["y", "x"])["v"].agg(agg)
    values = np.full((len(ys), len(xs)), np.nan)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            values[i, j] = grid.get((key(yv), key(xv)), np.nan)
    fig, ax = _new_axes(ax, (max(6.0, 1.2 * len(xs) + 3.0), max(3.5, 0.8 * len(ys) + 2.0)))
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", aspect="auto", vmin=lo,
                      vmax=hi if hi > lo else lo + 1)
    ax.set_xticks(range(len(xs)), [key(v) for v in xs])
    ax.set_yticks(range(len(ys)), [key(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for i in range(len(ys)):
        for j in range(len(xs)):
            v = values[i, j]
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:,.2f}", ha="center", va="center", fontsize=9)
    fig.colorbar(image, ax=ax, label=statistic)
    ax.set_title(f"sweep: {statistic} by {x} and {y}\n({agg} over the other keys' values, {len(table)} "
                 f"configurations)", fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------------
# paper trading (notebooks/paper_trading.ipynb, research_lib.paper.panel)

#: The columns :func:`paper_equity` reads (those of :meth:`research_lib.records.paper.ledger.PaperLedger.equity_curve`).
PAPER_EQUITY_COLUMNS = ("at", "cash", "equity", "open_risk", "realized_pnl", "unrealized_pnl")
CASH_COLOR = "#8d99ae"
OPEN_RISK_COLOR = "#f4a261"


def paper_equity(curve, *, starting_cash: float | None = None, title: str = "", ax=None) -> Figure:
    """A paper account's equity snapshots: equity and cash ($, the starting cash dashed) above the realised and
    unrealised P&L ($, left scale) with the open risk ($ of max loss, shaded, right scale), sharing the time axis
    (New York wall-clock times). Each snapshot holds until the next (steps).

    Parameters
    ----------
    curve : DataFrame
        One row per equity snapshot (each fill and each mark writes one), the columns of
        :meth:`research_lib.records.paper.ledger.PaperLedger.equity_curve`: ``at`` (tz-aware timestamps),
        ``cash``, ``equity``, ``open_risk``, ``realized_pnl``, ``unrealized_pnl`` (dollars). Other columns are
        ignored. An empty table gives the axes with "no equity snapshot yet".
    starting_cash : float, optional
        Drawn as a dashed line on the equity panel.
    title : str, optional
        Default ``"paper account equity"``.
    ax : Axes, optional
        None (new figure) or two Axes (the open risk gets a twin of the second).

    Raises
    ------
    PaperDisplayError
        A column of :data:`PAPER_EQUITY_COLUMNS` is missing (names them).
    """
    missing = [c for c in PAPER_EQUITY_COLUMNS if c not in curve.columns]
    if missing:
        raise PaperDisplayError(f"paper_equity: the equity curve lacks the columns {missing} "
                                f"(has {list(curve.columns)})")
    try:
        ax_eq, ax_pnl = _stacked_axes(ax, 2, (2, 1), (11, 6))
    except BacktestInputError as exc:
        raise PaperDisplayError(f"paper_equity: {exc}") from None
    ax_eq.set_title(title or "paper account equity")
    ax_eq.set_ylabel("equity ($)")
    ax_pnl.set_ylabel("P&L ($)")
    money = FuncFormatter(lambda v, _: f"{v:,.0f}")
    ax_eq.yaxis.set_major_formatter(money)
    ax_pnl.yaxis.set_major_formatter(money)
    if starting_cash is not None:
        ax_eq.axhline(float(starting_cash), color="grey", linewidth=0.8, linestyle="--",
                      label=f"starting cash {float(starting_cash):,.0f}")
    if not len(curve):
        _no_data(ax_eq, "no equity snapshot yet: place a trade or mark the positions")
        if starting_cash is not None:
            ax_eq.legend(loc="best", fontsize=8)
        return ax_eq.figure
    at = pd.to_datetime(curve["at"])
    if at.dt.tz is not None:
        at = at.dt.tz_convert("America/New_York").dt.tz_localize(None)
    x = at.to_numpy(dtype="datetime64[us]")
    step = dict(drawstyle="steps-post", marker="o", markersize=3)  # snapshots: the value holds until the next
    ax_eq.plot(x, curve["equity"].to_numpy(dtype=float), color=EQUITY_COLOR, linewidth=1.5, label="equity", **step)
    ax_eq.plot(x, curve["cash"].to_numpy(dtype=float), color=CASH_COLOR, linewidth=1.0, label="cash", **step)
    ax_eq.legend(loc="best", fontsize=8)
    risk = curve["open_risk"].to_numpy(dtype=float)
    ax_risk = ax_pnl.twinx()  # the risk is the max loss: often 100 times the P&L, so on its own scale
    ax_risk.fill_between(x, risk, 0, step="post", color=OPEN_RISK_COLOR, alpha=0.25, label="open risk (right)")
    ax_risk.set_ylabel("open risk ($)")
    ax_risk.yaxis.set_major_formatter(money)
    ax_risk.set_ylim(0, max(float(np.nanmax(risk, initial=0.0)) * 1.1, 1.0))
    ax_pnl.set_zorder(ax_risk.get_zorder() + 1)  # the P&L lines above the shading
    ax_pnl.patch.set_visible(False)
    ax_pnl.plot(x, curve["realized_pnl"].to_numpy(dtype=float), color=CALL_COLOR, linewidth=1.2,
                label="realised P&L", **step)
    ax_pnl.plot(x, curve["unrealized_pnl"].to_numpy(dtype=float), color=PUT_COLOR, linewidth=1.2,
                label="unrealised P&L", **step)
    ax_pnl.axhline(0, color="grey", linewidth=0.6)
    handles = ax_pnl.get_legend_handles_labels()
    extra = ax_risk.get_legend_handles_labels()
    ax_pnl.legend(handles[0] + extra[0], handles[1] + extra[1], loc="best", fontsize=8)
    _date_axis(ax_pnl)
    ax_eq.tick_params(labelbottom=False)
    return ax_eq.figure


# --------------------------------------------------------------------------------------------------------
# intraday: the volume profile beside the price bars

UP_COLOR = "#2a9d8f"
DOWN_COLOR = "#e76f51"
PROFILE_COLOR = "#8d99ae"
VALUE_AREA_COLOR = "#457b9d"
POC_COLOR = "#d62828"
DEVELOPING_COLOR = "#f4a261"


def volume_profile(bars, profile, *, style: str = "candles", developing: bool = True, title: str = "",
                   ax=None) -> Figure:
    """Price bars (candles or a close line) with the volume profile drawn beside them, sharing the price axis.

    Parameters
    ----------
    bars : DataFrame
        The bars the profile was built from (the ``read_bars`` layout: ``ts``, ``session``, ``open``, ``high``,
        ``low``, ``close``, ``volume``), in time order; drawn one after another (x = bar number, labelled with
        the New York time, or the date when they span several sessions: no overnight gaps).
    profile : VolumeProfile
        From :mod:`research_lib.core.volume_profile`. Its rows are drawn as horizontal bars (a row covers
        ``(price - row_size, price]``), the value-area rows in a darker colour; the POC, VAH and VAL are lines
        across both panels and the value area is shaded on the price panel; HVN (▲) and LVN (▼) are marked at
        the profile's edge.
    style : {"candles", "line"}
        Candles (body open-close, wick low-high) or a line of the closes.
    developing : bool
        Draw the developing POC (the POC after each bar, :func:`~research_lib.core.volume_profile.
        developing_profile` with the profile's own row size and rules) as a step line. Left out for the
        ``market_profile`` preset, which has no developing form.
    title : str
        Prefix of the title (e.g. the symbol).
    ax : None or (Axes, Axes)
        None: a new figure; else the price and the profile axes (the second shares the first's y).

    Raises
    ------
    ProfileParamsError
        An unknown ``style``, or ``ax`` that is not two Axes.
    """
    if style not in ("candles", "line"):
        raise ProfileParamsError("style", f"{style!r}: must be 'candles' or 'line'")
    if ax is None:
        fig = Figure(figsize=(12, 6), layout="constrained")
        ax_p, ax_v = fig.subplots(1, 2, sharey=True, width_ratios=(4, 1))
    else:
        axes = list(np.ravel(ax)) if isinstance(ax, list | tuple | np.ndarray) else [ax]
        if len(axes) != 2:
            raise ProfileParamsError("ax", f"give 2 Axes (price, profile), got {len(axes)}")
        ax_p, ax_v = axes
    n = len(bars)
    x = np.arange(n)
    o, h, lo, c = (bars[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close"))
    if style == "candles":
        up = c >= o
        colors = np.where(up, UP_COLOR, DOWN_COLOR)
        ax_p.vlines(x, lo, h, colors=colors, linewidth=0.6)
        body = np.maximum(np.abs(c - o), (h.max() - lo.min()) * 1e-3)
        ax_p.bar(x, body, bottom=np.minimum(o, c), width=0.7, color=colors, linewidth=0)
    else:
        ax_p.plot(x, c, color=NET_COLOR, linewidth=1, label="close")
    r = profile.row_size
    ax_p.axhspan(profile.val - r, profile.vah, color=VALUE_AREA_COLOR, alpha=0.12,
                 label=f"value area {profile.val:g}-{profile.vah:g}")
    if developing and profile.preset is None:
        dev = vp.developing_profile(bars, row_size=r, method=profile.method, value_area=profile.value_area,
                                    va_rule=profile.va_rule)
        ax_p.step(x, dev["poc"].to_numpy() - r / 2, where="post", color=DEVELOPING_COLOR, linewidth=1.2,
                  label="developing POC")
    rows = profile.rows
    prices = rows["price"].to_numpy(dtype=float)
    in_va = (prices >= profile.val) & (prices <= profile.vah)
    ax_v.barh(prices - r / 2, rows["volume"].to_numpy(dtype=float), height=r * 0.9,
              color=np.where(in_va, VALUE_AREA_COLOR, PROFILE_COLOR), linewidth=0)
    edge = float(rows["volume"].max()) * 1.02
    for ys, marker, name in ((profile.hvn, "^", "HVN"), (profile.lvn, "v", "LVN")):
        if ys:
            ax_v.scatter(np.full(len(ys), edge), np.asarray(ys) - r / 2, marker=marker, s=18, color=NET_COLOR,
                         label=name, zorder=3)
    for y, name, style_ in ((profile.poc, "POC", "-"), (profile.vah, "VAH", "--"), (profile.val, "VAL", "--")):
        for a in (ax_p, ax_v):
            a.axhline(y - r / 2, color=POC_COLOR if name == "POC" else VALUE_AREA_COLOR, linestyle=style_,
                      linewidth=1.0, label=f"{name} {y:g}" if a is ax_p else None)
    ts = bars["ts"].dt.tz_convert("America/New_York")
    many_days = bars["session"].nunique() > 1
    ticks = np.unique(np.linspace(0, n - 1, min(n, 8)).round().astype(int)) if n else np.zeros(0, int)
    ax_p.set_xticks(ticks)
    ax_p.set_xticklabels([ts.iloc[i].strftime("%m-%d %H:%M" if many_days else "%H:%M") for i in ticks], fontsize=8)
    ax_p.set_xlim(-1, n)
    ax_p.set_ylabel("price ($)")
    ax_p.set_xlabel("New York time" + (" (sessions back to back)" if many_days else ""))
    ax_p.legend(loc="best", fontsize=8)
    ax_v.set_xlabel("volume (shares)")
    ax_v.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax_v.tick_params(labelleft=False)
    if profile.hvn or profile.lvn:
        ax_v.legend(loc="lower right", fontsize=8)
    span = str(profile.session) if profile.session is not None else \
        f"{profile.start:%Y-%m-%d} .. {profile.end:%Y-%m-%d} ({profile.n_sessions} sessions)"
    how = profile.preset or f"{profile.method}, {profile.va_rule.replace('_', '-')}"
    ax_p.set_title(f"{title + ' ' if title else ''}volume profile — {span} (rows {r:g}, {how})")
    return ax_p.figure


#: Columns :func:`order_flow` reads (the per-bar tables of :mod:`research_lib.core.order_flow`).
ORDER_FLOW_COLUMNS = ("ts", "session", "delta", "cvd")


def order_flow(flow, *, title: str = "", ax=None) -> Figure:
    """Per-bar delta (buy − sell volume; bars green above zero, red below) with the session's cumulative delta
    (CVD, a line on its own right-hand scale, reset each session), bars one after another (x = bar number,
    labelled with the New York time, or the date when the table spans several sessions).

    Parameters
    ----------
    flow : DataFrame
        A per-bar flow table of :func:`research_lib.core.order_flow.bar_flow` or
        :func:`~research_lib.core.order_flow.bar_flow_from_bars` (columns :data:`ORDER_FLOW_COLUMNS`; shares).
        ``aggressive`` (+1/−1/0), when present, marks the aggressive-flow bars with triangles.
    title : str, optional
        Prefix of the title.
    ax : Axes, optional
        Draw on it (the CVD gets a twin axis).

    Raises
    ------
    ProfileParamsError
        A column is missing (names it), or the table is empty.
    """
    missing = [c for c in ORDER_FLOW_COLUMNS if c not in flow.columns]
    if missing or not len(flow):
        raise ProfileParamsError("flow", f"order_flow needs a non-empty per-bar flow table with {list(ORDER_FLOW_COLUMNS)}"
                                 + (f"; missing {missing}" if missing else ""))
    if ax is None:
        fig = Figure(figsize=(11, 3.6))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    x = np.arange(len(flow))
    delta = flow["delta"].to_numpy(dtype=float)
    ax.bar(x, delta, width=0.9, color=np.where(delta >= 0, CALL_COLOR, PUT_COLOR), alpha=0.8, label="delta")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.set_ylabel("delta (shares)")
    twin = ax.twinx()
    cvd = flow["cvd"].to_numpy(dtype=float)
    sessions = flow["session"].to_numpy()
    starts = np.r_[0, np.flatnonzero(sessions[1:] != sessions[:-1]) + 1, len(flow)]
    for a, b in zip(starts[:-1], starts[1:], strict=True):          # one line per session (CVD resets)
        twin.plot(x[a:b], cvd[a:b], color=NET_COLOR, linewidth=1.4, label="CVD" if a == 0 else None)
    twin.set_ylabel("CVD (shares)")
    if "aggressive" in flow.columns:
        ag = flow["aggressive"].to_numpy()
        for side, marker, color in ((1, "^", CALL_COLOR), (-1, "v", PUT_COLOR)):
            hit = ag == side
            if hit.any():
                ax.scatter(x[hit], delta[hit], marker=marker, color=color, edgecolor="black", zorder=3, s=30,
                           label=f"aggressive {'buying' if side > 0 else 'selling'}")
    ts = pd.DatetimeIndex(flow["ts"]).tz_convert("America/New_York")
    many = len(starts) > 2
    ticks = np.linspace(0, len(flow) - 1, min(8, len(flow))).astype(int)
    ax.set_xticks(ticks)
    ax.set_xticklabels([ts[i].strftime("%m-%d" if many else "%H:%M") for i in ticks])
    lines, labels = ax.get_legend_handles_labels()
    lines2, labels2 = twin.get_legend_handles_labels()
    ax.legend(lines + lines2, labels + labels2, loc="upper left", fontsize=8)
    ax.set_title(f"{title + ' ' if title else ''}order flow: delta per bar and cumulative delta")
    return fig
