"""Interactive GEX exploration for notebooks: :class:`GexExplorer`, ipywidgets controls that recompute
and redraw the key levels, the charts and the pin-risk tables in place.

The explorer takes the same arguments as the parameters cell of ``notebooks/explore_gex.ipynb`` and
gets its chain through :func:`research_lib.sources.auto.get_chain`, computes with
:func:`research_lib.gex.analyze` and draws with :mod:`research_lib.plots`. It needs no running kernel:
every control is an ordinary widget whose ``value`` can be set from Python, and every output area is an
:class:`ipywidgets.Output` filled with :meth:`~ipywidgets.Output.append_display_data`, so a test (or a
script) can drive it and read what it shows.

Controls
--------
``date_select``
    The snapshot. A chain file offers its usable days (:func:`research_lib.sources.scan`, status ``ok``);
    ``source="store"`` the stored dates of the symbol; any other source only the snapshot it served.
    Loaded snapshots are cached per date: changing another control never reloads the chain.
``convention_toggle``
    ``model`` or ``perfiliev`` (:func:`research_lib.gex.config_from`).
``max_dte_select``, ``exclude_0dte_check``
    The expiry filter: keep expiries at most this many calendar days after the snapshot date (``"all"``
    keeps every expiry), and drop the snapshot date's own expiry.
``grid_points_input``
    Points of the gamma-profile grid. Until it is changed it follows the convention's default (model
    400, perfiliev 60); setting it back to the current convention's default re-links it.

Units are those of :mod:`research_lib.gex`: GEX in $ per 1% move of the underlying, vanna in $ delta per
vol point, charm in $ delta per calendar day, levels in index points; the charts show GEX in $bn.

Pricing
-------
The rate and dividend yield are those of :func:`research_lib.market.snapshot_rates`, the default every
path shares (``research-lib gex``, ``decide``, the daily report, the history): ``model`` prices with the
selected snapshot's trading-date rate and dividend yield (0 with a note when the history is missing),
``perfiliev`` with 0 and 0. Explicit ``rate`` / ``div_yield`` override both. The status line and the levels
table say which values were used and where they came from.

Tables
------
The panel shows readable tables (:func:`levels_display`, :func:`pin_risk_display`,
:func:`expiries_display`): money as ``+16.08B``, levels with two decimals, dates without a time, plain
column names, no cell cut short; :meth:`GexExplorer.levels_dict` and :attr:`GexExplorer.analysis` keep the
raw numbers.

Example
-------
>>> from research_lib.ui.explore import GexExplorer
>>> explorer = GexExplorer("SPX", "modelled")          # doctest: +SKIP
>>> explorer.convention_toggle.value = "perfiliev"     # doctest: +SKIP
>>> explorer.levels.zero_gamma                         # doctest: +SKIP
>>> display(explorer)                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import html
import io
import os
from collections.abc import Iterator
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
from IPython.display import HTML, Image

from research_lib.core import gex
from research_lib.core.chain import ResearchLibError
from research_lib.data import market
from research_lib.data.sources import scan
from research_lib.data.sources.auto import NAMED_SOURCES, NoChainAvailableError, ServedChain, get_chain
from research_lib.data.store import ChainStore
from research_lib.formatting import fmt_level, fmt_money
from research_lib.ui import plots

#: Value of :attr:`GexExplorer.max_dte_select` that keeps every expiry.
ALL_EXPIRIES = "all"
#: Horizons (calendar days) the max-DTE control offers besides "all" (and the constructor's value).
DTE_CHOICES = (0, 1, 2, 7, 14, 30, 45, 60, 90, 180, 365)
#: Conventions the toggle offers.
CONVENTIONS = ("model", "perfiliev")
#: Errors a control combination can cause; shown in the panel and kept on :attr:`GexExplorer.error`.
#: OSError: a chain file that vanished or became unreadable between two selections.
CONTROL_ERRORS = (ResearchLibError, OSError)

_ERROR_STYLE = "color:#b00020"
_MODELLED_STYLE = "color:#b00020;font-weight:bold"


class GexExplorer:
    """Widgets to explore the GEX of a chain: pick a snapshot, a convention, an expiry filter and a grid;
    the levels table and the charts are recomputed and redrawn in place.

    Parameters
    ----------
    symbol : str
        Underlying (``"SPX"``, ``"SPY"`` ...).
    source : str or path
        ``"auto"``, ``"cboe"``, ``"tradier"``, ``"polygon"``, ``"store"``, ``"modelled"`` or a chain file
        path (see :func:`research_lib.sources.auto.get_chain`).
    date : str or date, optional
        ``"YYYY-MM-DD"`` of the first snapshot shown (multi-day files and the store); None = the latest.
    convention : {"model", "perfiliev"}
        The starting convention.
    rate, div_yield : float, optional
        Risk-free rate and dividend yield, decimals (0.05 = 5%); None = the default of every path
        (:func:`research_lib.market.snapshot_rates`: ``model`` looks up the selected snapshot's trading
        date, ``perfiliev`` uses 0). Fixed for the life of the explorer.
    grid_points : int, optional
        Profile grid points; None = the convention's default (model 400, perfiliev 60).
    max_dte : int, optional
        Keep expiries at most this many calendar days after the snapshot date; None = all.
    exclude_0dte : bool
        Drop the expiry on the snapshot date.
    store : ChainStore, optional
        The store of ``source="store"`` (default: ``data/`` or ``$RESEARCH_LIB_DATA``).

    Attributes
    ----------
    config : GexConfig or None
        The configuration of the current controls (None when the controls cannot make one).
    rates : SnapshotRates or None
        The rate and dividend yield of the current snapshot and convention, with their sources and notes.
    analysis : GexAnalysis or None
        The current result; None while :attr:`error` is set.
    error : Exception or None
        Why the current control combination gives no result (e.g. a
        :class:`~research_lib.gex.NoExposureError` for a filter that leaves no expiry); None when fine.
    served : ServedChain
        The chain of the selected snapshot and where it came from.
    widget : ipywidgets.VBox
        Controls, a status line, the levels table and a tab per chart; ``display(explorer)`` shows it.

    Raises
    ------
    GexConfigError
        ``convention``, ``rate``, ``div_yield``, ``grid_points``, ``max_dte`` or ``exclude_0dte`` is
        impossible (the message names it).
    NoChainAvailableError
        ``symbol`` or ``source`` is not a string / path, or no source could serve a chain.
    UnknownFormatError, SnapshotNotFoundError, FileNotFoundError
        From reading a chain file.
    NoExposureError
        The starting filter leaves no contract to compute exposures from.
    """

    def __init__(self, symbol: str = "SPX", source: str | os.PathLike = "auto", date=None,
                 convention: str = "model", rate: float | None = None, div_yield: float | None = None,
                 grid_points: int | None = None, max_dte: int | None = None, exclude_0dte: bool = False,
                 *, store=None):
        if not isinstance(symbol, str) or not symbol.strip():
            raise NoChainAvailableError(f"symbol must be a ticker such as 'SPX', got {symbol!r}")
        if not isinstance(source, str | os.PathLike) or not str(source).strip():
            raise NoChainAvailableError(f"source must be one of {list(NAMED_SOURCES)} or a chain file path, "
                                        f"got {source!r}")
        if not isinstance(exclude_0dte, bool):
            raise gex.GexConfigError(f"exclude_0dte must be True or False, got {exclude_0dte!r}")
        # config_from names the bad convention, rate, div_yield, grid_points or max_dte.
        gex.config_from(convention, rate=rate, div_yield=div_yield, grid_points=grid_points, max_dte=max_dte,
                        exclude_0dte=exclude_0dte)
        self.symbol = symbol
        self.source = source
        self.rate = rate
        self.div_yield = div_yield
        self._store = store
        self._rates: dict[tuple[str, str], market.SnapshotRates] = {}
        served = get_chain(symbol, source, date=date, store=store)
        self.rates: market.SnapshotRates | None = self._rates_of(served, convention)
        self.config: gex.GexConfig | None = self.rates.config(grid_points=grid_points, max_dte=max_dte,
                                                              exclude_0dte=exclude_0dte)
        self.analysis: gex.GexAnalysis | None = gex.analyze(served.snapshot, self.config)
        self.error: Exception | None = None
        self.served: ServedChain = served
        first = served.snapshot.snapshot_date.isoformat()
        self._chains: dict[str, ServedChain] = {first: served}
        # An explicit grid sticks across conventions; the convention's own default stays linked to it.
        linked = grid_points == gex.GexConfig.preset(convention).grid_points
        self._grid_override: int | None = None if linked else grid_points
        self._syncing = False

        dates = self._available_dates(first)
        labels = {d: d for d in dates}
        if len(dates) == 1:  # say who served a single snapshot
            labels[first] = f"{first} ({served.served_by})"
        self.date_select = widgets.Dropdown(
            options=[(labels[d], d) for d in dates], value=first, description="snapshot",
            disabled=len(dates) == 1, style={"description_width": "initial"})
        self.convention_toggle = widgets.ToggleButtons(options=list(CONVENTIONS), value=convention,
                                                       description="convention",
                                                       style={"description_width": "initial"})
        dte = None if max_dte is None else int(max_dte)
        choices = sorted(set(DTE_CHOICES) | ({dte} if dte is not None else set()))
        self.max_dte_select = widgets.Dropdown(
            options=[("all", ALL_EXPIRIES)] + [(f"≤ {d} days", d) for d in choices],
            value=ALL_EXPIRIES if dte is None else dte, description="expiries",
            style={"description_width": "initial"})
        self.exclude_0dte_check = widgets.Checkbox(value=exclude_0dte, description="exclude 0DTE", indent=False)
        self.grid_points_input = widgets.BoundedIntText(
            value=self.config.grid_points, min=2, max=100_000, description="grid points",
            style={"description_width": "initial"}, layout=widgets.Layout(width="180px"))

        self.status = widgets.HTML()
        self.levels_out = widgets.Output()
        self.by_strike_out = widgets.Output()
        self.profile_out = widgets.Output()
        self.heatmap_out = widgets.Output()
        self.pins_out = widgets.Output()
        tabs = widgets.Tab(children=[self.by_strike_out, self.profile_out, self.heatmap_out, self.pins_out])
        tabs.titles = ("GEX by strike", "Gamma profile", "Strike × expiry", "Pin risk & expiries")
        self.widget = widgets.VBox([
            widgets.HBox([self.date_select, self.convention_toggle]),
            widgets.HBox([self.max_dte_select, self.exclude_0dte_check, self.grid_points_input]),
            self.status, self.levels_out, tabs,
        ])

        for control in (self.date_select, self.max_dte_select, self.exclude_0dte_check):
            control.observe(self._on_change, names="value")
        self.convention_toggle.observe(self._on_convention, names="value")
        self.grid_points_input.observe(self._on_grid_points, names="value")
        self._redraw()

    # -- state -------------------------------------------------------------------------------------

    @property
    def snapshot(self):
        """The selected :class:`~research_lib.chain.ChainSnapshot`."""
        return self.served.snapshot

    @property
    def levels(self) -> gex.KeyLevels | None:
        """The current :class:`~research_lib.gex.KeyLevels` (None while :attr:`error` is set)."""
        return None if self.analysis is None else self.analysis.levels

    @property
    def dates(self) -> tuple[str, ...]:
        """The snapshot dates the date control offers, ``YYYY-MM-DD``."""
        return tuple(value for _, value in self.date_select.options)

    def levels_dict(self) -> dict:
        """The current key levels, JSON-ready (:meth:`KeyLevels.to_dict`), for recording.

        Raises the current :attr:`error` when the controls give no result.
        """
        if self.analysis is None:
            raise self.error
        return self.analysis.levels.to_dict()

    def levels_table(self) -> pd.DataFrame:
        """The key levels as people read them (:func:`levels_display`): one row per level, columns
        ``value`` (formatted text) and ``unit``. :meth:`levels_dict` has the raw numbers.

        Raises the current :attr:`error` when the controls give no result.
        """
        if self.analysis is None:
            raise self.error
        return levels_display(self.analysis.levels, self.rates)

    def describe(self) -> str:
        """Where the selected chain came from (modelled and stale data say so), the snapshot and its notes."""
        lines = [self.served.describe(), repr(self.snapshot)]
        lines += [f"note: {note}" for note in self.snapshot.notes]
        return "\n".join(lines)

    # -- recomputing -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute from the current control values and redraw every output area.

        A control combination that gives no result sets :attr:`error`, clears :attr:`analysis` and shows
        the message in the panel; the next valid change recovers.
        """
        self.error = None
        self.analysis = None
        self.config = None
        self.rates = None
        try:
            self.served = self._load(self.date_select.value)
            self.rates = self._rates_of(self.served, self.convention_toggle.value)
            self.config = self._control_config()
            self.analysis = gex.analyze(self.served.snapshot, self.config)
        except CONTROL_ERRORS as exc:
            self.error = exc
        self._redraw()

    def _rates_of(self, served: ServedChain, convention: str) -> market.SnapshotRates:
        """The rates of a snapshot and convention (looked up once per date and convention)."""
        key = (served.snapshot.snapshot_date.isoformat(), convention)
        if key not in self._rates:
            self._rates[key] = market.snapshot_rates(served.snapshot, convention, rate=self.rate,
                                                     div_yield=self.div_yield)
        return self._rates[key]

    def _control_config(self) -> gex.GexConfig:
        max_dte = self.max_dte_select.value
        return self.rates.config(grid_points=self.grid_points_input.value,
                                 max_dte=None if max_dte == ALL_EXPIRIES else max_dte,
                                 exclude_0dte=self.exclude_0dte_check.value)

    def _load(self, day: str) -> ServedChain:
        """The chain of ``day``, read once and cached."""
        if day not in self._chains:
            self._chains[day] = get_chain(self.symbol, self.source, date=day, store=self._store)
        return self._chains[day]

    def _available_dates(self, served_day: str) -> list[str]:
        src = str(self.source)
        if src == "store":
            stored = (self._store or ChainStore()).list(self.symbol.upper().lstrip("_"))
            days = {d.isoformat() for d in stored["date"]}
        elif src not in NAMED_SOURCES:  # a chain file
            table = scan(Path(src))
            days = {d.isoformat() for d in table.loc[table["status"] == "ok", "date"]}
        else:  # a live provider, auto or modelled: only the snapshot served
            days = set()
        return sorted(days | {served_day})

    # -- callbacks ---------------------------------------------------------------------------------

    def _on_change(self, change) -> None:
        self.refresh()

    def _on_convention(self, change) -> None:
        if self._grid_override is None:  # untouched: follow the new convention's default
            with self._quietly():
                self.grid_points_input.value = gex.GexConfig.preset(change["new"]).grid_points
        self.refresh()

    def _on_grid_points(self, change) -> None:
        if self._syncing:
            return
        default = gex.GexConfig.preset(self.convention_toggle.value).grid_points
        self._grid_override = None if change["new"] == default else change["new"]
        self.refresh()

    def _quietly(self):
        return syncing(self)

    # -- drawing -----------------------------------------------------------------------------------

    def _redraw(self) -> None:
        """Clear every output area, then fill it from :attr:`analysis` (or show :attr:`error`)."""
        self.status.value = self._status_html()
        for out in (self.levels_out, self.by_strike_out, self.profile_out, self.heatmap_out, self.pins_out):
            out.outputs = ()
        if self.analysis is None:
            return
        self.levels_out.append_display_data(HTML(_no_math(
            "<b>Key levels</b> — GEX in USD of dealer hedging per 1% move; vanna in USD of delta per vol "
            "point; charm in USD of delta per day; levels in index points")))
        self.levels_out.append_display_data(Table(self.levels_table()))
        for out, draw in ((self.by_strike_out, plots.gex_by_strike), (self.profile_out, plots.gamma_profile),
                          (self.heatmap_out, plots.gex_heatmap)):
            out.append_display_data(Image(data=figure_png(draw(self.analysis)), format="png"))
        self.pins_out.append_display_data(HTML(_no_math("<b>Pin risk and max pain of the next expiries</b>")))
        self.pins_out.append_display_data(Table(pin_risk_display(self.analysis.pin_risk)))
        self.pins_out.append_display_data(HTML(_no_math("<b>Exposures of the next 10 expiries</b> — USD per "
                                                        "1% move (GEX), per vol point (vanna), per day (charm)")))
        self.pins_out.append_display_data(Table(expiries_display(self.analysis.expiries.head(10))))

    def _status_html(self) -> str:
        served = html.escape(self.served.describe())
        style = _MODELLED_STYLE if self.served.modelled else ""
        lines = [f'<div style="{style}">{served}</div>']
        if self.error is not None:
            lines.append(f'<div style="{_ERROR_STYLE}"><b>{type(self.error).__name__}</b>: '
                         f"{html.escape(str(self.error))}</div>"
                         "<div>No levels or charts for these controls; change a control to recompute.</div>")
        else:
            cfg = self.config
            flt = cfg.expiries
            expiries = "all expiries" if flt.max_dte is None else f"expiries ≤ {flt.max_dte} days"
            if flt.exclude_0dte:
                expiries += ", 0DTE excluded"
            lines.append(f"<div>{html.escape(cfg.convention)} convention · {expiries} · profile grid "
                         f"{cfg.grid_points} points · {self.levels.n_contracts:,} contracts counted</div>")
        if self.rates is not None:
            lines.append(f"<div>pricing: {html.escape(self.rates.describe())}</div>")
            lines += [f'<div style="{_ERROR_STYLE}">note: {html.escape(n)}</div>' for n in self.rates.notes]
        return _no_math("".join(lines))

    # -- display -----------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Close every widget of the explorer (front-end views disappear; the results stay readable)."""
        close_widgets(self.widget)


@contextlib.contextmanager
def syncing(owner) -> Iterator[None]:
    """Set ``owner._syncing`` for the block: its observers skip the changes the code itself makes to controls."""
    owner._syncing = True
    try:
        yield
    finally:
        owner._syncing = False


def close_widgets(root) -> None:
    """Close ``root`` and every widget under it (``children``, recursively): their front-end views disappear."""
    pending = [root]
    while pending:
        w = pending.pop()
        pending.extend(getattr(w, "children", ()))
        w.close()


def figure_png(fig) -> bytes:
    """``fig`` rendered as PNG bytes at its own size and dpi, then cleared.

    :mod:`research_lib.plots` builds figures outside pyplot, so no figure manager holds them: once
    rendered and cleared, nothing keeps the figure's artists alive.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    fig.clear()
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# readable tables


def _no_math(fragment: str) -> str:
    """An HTML fragment that Jupyter's MathJax leaves alone (two ``$`` would otherwise read as LaTeX)."""
    return f'<div class="tex2jax_ignore mathjax_ignore">{fragment}</div>'


class Table:
    """A table shown as HTML with every cell whole (no ``…``) and no LaTeX, and as plain text elsewhere.

    ``index=False`` leaves the row labels out of the HTML, ``header=False`` the column headings (a table of
    named values).
    """

    def __init__(self, frame: pd.DataFrame, *, index: bool = True, header: bool = True):
        self.frame = frame
        self.index = index
        self.header = header

    def _repr_html_(self) -> str:
        return _no_math(self.frame.to_html(escape=True, na_rep="n/a", border=0, index=self.index,
                                           header=self.header))

    def __repr__(self) -> str:
        with pd.option_context("display.max_colwidth", None, "display.width", 1000,
                               "display.max_columns", None):
            return self.frame.to_string(na_rep="n/a")


def _pct(x) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:.3%}"


def levels_display(levels: gex.KeyLevels, rates: market.SnapshotRates | None = None) -> pd.DataFrame:
    """The key levels as people read them: index ``level`` (plain words), columns ``value`` (text: money
    as ``+16.08B``, levels with two decimals, the rate and dividend yield in %) and ``unit``.

    Parameters
    ----------
    levels : KeyLevels
    rates : SnapshotRates, optional
        Adds where the rate and the dividend yield came from.
    """
    lv = levels
    crossings = ", ".join(f"{z:,.2f}" for z in lv.zero_gamma_crossings) or "none"
    rate_from = f" ({rates.rate_source})" if rates is not None else ""
    q_from = f" ({rates.div_yield_source})" if rates is not None else ""
    rows = [
        ("underlying", lv.underlying, ""),
        ("trading date", lv.date.isoformat(), ""),
        ("quote time", f"{lv.quote_time:%Y-%m-%d %H:%M %Z}", "New York"),
        ("spot", f"{lv.spot:,.2f}", "index points"),
        ("convention", lv.convention, ""),
        ("rate", _pct(getattr(lv, "rate", None)) + rate_from, "continuously compounded, per year"),
        ("dividend yield", _pct(getattr(lv, "div_yield", None)) + q_from, "continuous, per year"),
        ("net GEX", fmt_money(lv.net_gex), "USD per 1% move"),
        ("call GEX", fmt_money(lv.call_gex), "USD per 1% move"),
        ("put GEX", fmt_money(lv.put_gex), "USD per 1% move"),
        ("zero gamma (reported)", fmt_level(lv.zero_gamma), "index points"),
        ("all zero-gamma crossings", crossings, "index points"),
        ("call wall", fmt_level(lv.call_wall), "strike"),
        ("put wall", fmt_level(lv.put_wall), "strike"),
        ("cumulative GEX flip", fmt_level(lv.cumulative_flip), "strike (running sum by strike)"),
        ("vanna exposure", fmt_money(lv.net_vanna), "USD of delta per vol point"),
        ("charm exposure", fmt_money(lv.net_charm), "USD of delta per calendar day"),
        ("delta exposure", fmt_money(lv.net_delta), "USD of delta"),
        ("contracts", f"{lv.n_contracts:,} counted, {lv.n_expired:,} expired, {lv.n_filtered:,} filtered, "
                      f"{lv.n_unpriced:,} without gamma", ""),
        ("source", lv.source, "MODELLED DATA" if lv.modelled else "market quotes"),
    ]
    return pd.DataFrame(rows, columns=["level", "value", "unit"]).set_index("level")


#: Readable name and formatter of the pin-risk / expiry columns the panel knows; other columns keep their
#: name with spaces for underscores and a general number format.
_COLUMNS = {
    "pin_strike": ("pin strike", fmt_level),
    "distance_pct": ("pin strike vs spot", lambda x: f"{x:+.2f}%"),
    "expected_move": ("expected move (points)", lambda x: f"±{x:,.1f}"),
    "z": ("distance in expected moves", lambda x: f"{x:.2f}"),
    "concentration": ("GEX concentration", lambda x: f"{x:.1%}"),
    "pin_open_interest": ("open interest at pin", lambda x: f"{x:,.0f}"),
    "gamma_share": ("share of gamma", lambda x: f"{x:.1%}"),
    "max_pain": ("max pain", lambda x: f"{x:,.0f}"),
    "score": ("pin-risk score", lambda x: f"{x:.0f}/100"),
    "call_gex": ("call GEX", fmt_money),
    "put_gex": ("put GEX", fmt_money),
    "net_gex": ("net GEX", fmt_money),
    "vanna_exposure": ("vanna exposure", fmt_money),
    "charm_exposure": ("charm exposure", fmt_money),
    "open_interest": ("open interest", lambda x: f"{x:,.0f}"),
}


def _general(x) -> str:
    if isinstance(x, bool | str):
        return str(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.4g}"


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.Index([pd.Timestamp(d).date().isoformat() for d in frame.index],
                                      name="expiry"))
    for col in frame.columns:
        label, fmt = _COLUMNS.get(col, (str(col).replace("_", " "), _general))
        out[label] = [("n/a" if v is None or (not isinstance(v, str) and pd.isna(v)) else fmt(v))
                      for v in frame[col].tolist()]
    return out


def pin_risk_display(pin_risk: pd.DataFrame) -> pd.DataFrame:
    """:attr:`GexAnalysis.pin_risk` for reading: expiry dates without a time, plain column names, formatted
    numbers (text); missing values ``n/a``."""
    return _display(pin_risk)


def expiries_display(expiries: pd.DataFrame) -> pd.DataFrame:
    """:attr:`GexAnalysis.expiries` for reading, as :func:`pin_risk_display`."""
    return _display(expiries)
