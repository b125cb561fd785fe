"""The paper-trading panel: ipywidgets over a :class:`~research_lib.paper.trader.PaperTrader`, the app of
``notebooks/paper_trading.ipynb`` (also served standalone: ``voila notebooks/paper_trading.ipynb``).

Every action calls the trader; the panel only shows what the trader and its ledger hold. Each control's
callback is a method a test (or a script) calls without a browser or a kernel:

=========================== ======================================================================
method                      what it does
=========================== ======================================================================
:meth:`on_account`          switch to the account picked in ``account_select`` ("new…" shows the form)
:meth:`on_new_account`      create the account named in ``account_name`` with ``account_cash`` dollars
:meth:`on_propose`          today's proposal again (:meth:`PaperTrader.propose`)
:meth:`on_place`            show the confirmation of the proposal ("Confirm" / "Cancel"); nothing placed yet
:meth:`on_confirm`          place it (:meth:`PaperTrader.place`, idempotent)
:meth:`on_cancel`           drop the confirmation; nothing placed
:meth:`on_mark`             mark the open positions now, closing what an exit rule fires on
:meth:`on_close_selected`   close the positions picked in ``close_select`` (reason ``manual``)
:meth:`on_save_config`      validate the settings form and save it (atomically) to the config file
:meth:`refresh`             redraw the summary, tables and chart from the ledger
=========================== ======================================================================

An error of an action (a :class:`~research_lib.errors.ResearchLibError` or an :class:`OSError`: a chain
that cannot be read, a knob out of range, a position already closed) is caught, kept in :attr:`PaperPanel.error`
and shown in the status line (``status``); the panel stays usable and the next action starts clean.

Every button and table has a stable CSS class (:data:`CSS`), for the browser test and for styling.
:meth:`PaperPanel.static_report` gives the same tables and the equity chart for a non-interactive run
(papermill, nbconvert).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
from matplotlib.figure import Figure

from research_lib.data.store import ChainStore
from research_lib.errors import OrderError, PaperDisplayError, ResearchLibError
from research_lib.formatting import fmt_money
from research_lib.fs import file_lock
from research_lib.paper import config as paper_config
from research_lib.paper.trader import PaperTrader
from research_lib.records.decisions.log import DB_NAME as DECISIONS_FILE, DecisionLog
from research_lib.records.paper import DB_NAME as LEDGER_FILE, PaperLedger
from research_lib.settings import ENV_PAPER_ACCOUNT, ENV_PAPER_DATE, ENV_PAPER_SOURCE
from research_lib.ui import plots
from research_lib.ui.explore import Table, close_widgets, figure_png, syncing

__all__ = ["ACTION_ERRORS", "CSS", "NEW_ACCOUNT", "PanelReport", "PaperPanel", "closed_display",
           "positions_display", "statistics_display"]

#: What an action may raise and the panel shows (OSError: a chain file or the config file unreadable).
ACTION_ERRORS = (ResearchLibError, OSError)
#: The account selector's last option: create an account.
NEW_ACCOUNT = "new…"
#: The CSS class of each control and table (``widget.add_class``), stable for the browser test.
CSS = {
    "panel": "rl-paper-panel", "status": "rl-status", "tabs": "rl-tabs", "notes": "rl-notes",
    "account": "rl-account", "new_account": "rl-new-account", "account_name": "rl-account-name",
    "account_cash": "rl-account-cash", "account_create": "rl-account-create", "summary": "rl-summary",
    "proposal": "rl-proposal", "legs": "rl-legs", "propose": "rl-propose", "place": "rl-place",
    "confirm_box": "rl-confirm-box", "confirm_text": "rl-confirm-text", "confirm": "rl-confirm",
    "cancel": "rl-cancel", "positions": "rl-positions", "mark": "rl-mark", "close_select": "rl-close-select",
    "close": "rl-close", "closed": "rl-closed", "statistics": "rl-stats", "equity": "rl-equity",
    "settings": "rl-settings", "save": "rl-save",
}

_ERROR_STYLE = "color:#b00020"
_OK_STYLE = "color:#1b7a3a"


# --------------------------------------------------------------------------------------------------
# readable tables


def _num(fmt: str) -> Callable[[Any], str]:
    return lambda v: fmt.format(v)


def _when(v) -> str:
    return pd.Timestamp(v).strftime("%Y-%m-%d %H:%M")


def _day(v) -> str:
    return pd.Timestamp(v).strftime("%Y-%m-%d")


def _dollars(v) -> str:
    return fmt_money(float(v), symbol="$", small_decimals=2)


def _price(v) -> str:
    """A price per share in credit terms (``+1.20``); ``n/a`` when unknown."""
    return "n/a" if _missing(v) else f"{float(v):+.2f}"


def _items(v) -> str:
    if isinstance(v, str):
        return v
    return ", ".join(str(x) for x in v) if v is not None and len(v) else ""


#: column -> (heading, formatter). The headings carry the units.
_POSITION_COLUMNS = {
    "id": ("id", str),
    "strategy": ("strategy", str),
    "contracts": ("contracts", str),
    "opened": ("opened", _when),
    "expiration": ("expiry", _day),
    "entry_price": ("entry (per share, credit +)", _price),
    "mark": ("mark (per share)", _price),
    "unrealized_pnl": ("unrealised P&L", _dollars),
    "pnl_pct": ("P&L % of entry", _num("{:+.1%}")),
    "dte": ("DTE (days)", _num("{:.0f}")),
    "to_profit_target": ("to profit target (per share)", _num("{:+.2f}")),
    "to_stop_loss": ("to stop loss (per share)", _num("{:+.2f}")),
    "to_exit_dte": ("to DTE exit (days)", _num("{:.0f}")),
    "marked_at": ("marked at", _when),
    "missing": ("legs missing", _items),
}
_CLOSED_COLUMNS = {
    "position_id": ("id", str),
    "strategy": ("strategy", str),
    "contracts": ("contracts", str),
    "opened_at": ("opened", _when),
    "closed_at": ("closed", _when),
    "entry_price": ("entry (per share)", _price),
    "exit_price": ("exit (per share)", _price),
    "exit_reason": ("exit reason", str),
    "exit_kind": ("exit", str),
    "realized_pnl": ("realised P&L", _dollars),
    "commissions": ("commissions", _dollars),
    "return_on_risk": ("return on risk", _num("{:+.2%}")),
}
_STATISTICS_COLUMNS = {
    "strategy": ("strategy", str),
    "n_trades": ("trades", str),
    "wins": ("wins", str),
    "win_rate": ("win rate", _num("{:.0%}")),
    "avg_win": ("average win (of risk)", _num("{:.2%}")),
    "avg_loss": ("average loss (of risk)", _num("{:.2%}")),
    "expectancy": ("expectancy (of risk)", _num("{:+.2%}")),
    "total_pnl": ("total P&L", _dollars),
}


def _missing(v) -> bool:
    if v is None or v is pd.NaT:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    return False


def _display(frame: pd.DataFrame, spec: dict, what: str, required: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` with readable headings and formatted text cells (``n/a`` for a missing value); columns not in
    ``spec`` keep their name (spaces for underscores) and ``str``."""
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise PaperDisplayError(f"{what}: the table lacks the columns {absent} (has {list(frame.columns)})")
    out = {}
    for col in frame.columns:
        heading, fmt = spec.get(col, (str(col).replace("_", " "), str))
        out[heading] = ["n/a" if _missing(v) else fmt(v) for v in frame[col].tolist()]
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)), columns=list(out))


def positions_display(positions: pd.DataFrame) -> pd.DataFrame:
    """:meth:`PaperTrader.positions_table` for reading: units in the headings (prices per share in credit terms,
    P&L in dollars, distances to each exit rule per share or in days, ≤ 0 meaning fired), ``n/a`` where a value
    is unknown (a position never marked, a leg missing from the chain, a rule switched off).

    Raises
    ------
    PaperDisplayError
        ``positions`` lacks ``id``, ``strategy`` or ``contracts``.
    """
    return _display(positions, _POSITION_COLUMNS, "positions_display", ("id", "strategy", "contracts"))


def closed_display(closed: pd.DataFrame) -> pd.DataFrame:
    """:meth:`PaperTrader.closed_trades` for reading (dollars, prices per share, return on the capital at risk)."""
    return _display(closed, _CLOSED_COLUMNS, "closed_display", ("strategy",))


def statistics_display(statistics: pd.DataFrame) -> pd.DataFrame:
    """:meth:`PaperTrader.statistics` for reading (win rate, average win and loss and expectancy as fractions
    of the capital at risk, total P&L in dollars)."""
    return _display(statistics, _STATISTICS_COLUMNS, "statistics_display", ("strategy",))


def _table_html(frame: pd.DataFrame, empty: str, *, named_values: bool = False) -> str:
    """``frame`` as an HTML table without its row numbers (``named_values``: the row labels, no headings), or
    ``empty`` in italics when it has no row."""
    if not len(frame):
        return f"<p><i>{html.escape(empty)}</i></p>"
    return Table(frame, index=named_values, header=not named_values)._repr_html_()


def _summary_frame(summary) -> pd.DataFrame:
    s = summary
    rows = [
        ("account", s.account),
        ("equity", _dollars(s.equity)),
        ("cash", _dollars(s.cash)),
        ("open risk", _dollars(s.open_risk)),
        ("realised P&L", _dollars(s.realized_pnl)),
        ("unrealised P&L", _dollars(s.unrealized_pnl)),
        ("return", "n/a" if _missing(s.return_pct) else f"{s.return_pct:+.2%}"),
        ("starting cash", _dollars(s.starting_cash)),
        ("positions", f"{s.n_open} open, {s.n_closed} closed"),
        ("as of", "n/a" if _missing(s.as_of) else _when(s.as_of)),
    ]
    return pd.DataFrame(rows, columns=["", "value"]).set_index("")


def _proposal_frame(p) -> pd.DataFrame:
    rows = [
        ("regime", p.regime),
        ("reasons", "; ".join(p.reasons) or "none given"),
        ("strategy", p.strategy),
        ("tradeable", "yes" if p.tradeable else f"no: {p.why_not}"),
        ("contracts", str(p.contracts)),
        ("entry (per share, credit +)", _price(p.entry_price)),
        ("entry value", _dollars(p.entry_price * 100.0 * p.contracts)),
        ("max loss per contract", _dollars(-abs(p.max_loss))),
        ("max loss", _dollars(-abs(p.max_loss) * p.contracts)),
        ("chain", f"{p.source}, {_day(p.snapshot_date)} (quoted {_when(p.quote_time)})"),
        ("decision", f"{p.decision.what} — {p.decision.why}"),
    ]
    return pd.DataFrame(rows, columns=["", "value"]).set_index("")


@dataclasses.dataclass(frozen=True)
class PanelReport:
    """What the panel shows, for a non-interactive run (:meth:`PaperPanel.static_report`).

    Attributes
    ----------
    summary : DataFrame
        The account (equity, cash, open risk, P&L in dollars), one row per figure, column ``value`` (text).
    proposal : DataFrame or None
        Today's proposal (regime and reasons, strategy, size, entry, max loss), None when none could be made
        (``proposal_error`` says why).
    proposal_error : str or None
    legs : DataFrame
        The proposal's legs (:meth:`Proposal.legs_frame`), empty without a proposal.
    positions, closed, statistics : DataFrame
        :func:`positions_display`, :func:`closed_display`, :func:`statistics_display`.
    equity : Figure
        :func:`research_lib.ui.plots.paper_equity` of the account's equity curve.
    """

    summary: pd.DataFrame
    proposal: pd.DataFrame | None
    proposal_error: str | None
    legs: pd.DataFrame
    positions: pd.DataFrame
    closed: pd.DataFrame
    statistics: pd.DataFrame
    equity: Figure

    def _repr_html_(self) -> str:
        proposal = (_table_html(self.proposal, "", named_values=True) + _table_html(self.legs, "no legs")
                    if self.proposal is not None else
                    f'<p style="{_ERROR_STYLE}">No proposal: {html.escape(self.proposal_error or "")}</p>')
        parts = [("Account", _table_html(self.summary, "", named_values=True)), ("Today's proposal", proposal),
                 ("Open positions", _table_html(self.positions, "no open position")),
                 ("Closed trades", _table_html(self.closed, "no closed trade yet")),
                 ("Statistics by strategy", _table_html(self.statistics, "no closed trade yet"))]
        return "".join(f"<h3>{title}</h3>{body}" for title, body in parts)


# --------------------------------------------------------------------------------------------------
# the panel


def _action(name: str):
    """Run the method as the panel action ``name``: clear the last error, catch :data:`ACTION_ERRORS` into
    :attr:`PaperPanel.error` and the status line (the method returns None then)."""

    def wrap(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            self.error = None
            try:
                return method(self, *args, **kwargs)
            except ACTION_ERRORS as exc:
                self._fail(name, exc)
                return None

        return run

    return wrap


def _env_or(value: str | None, env: str) -> str | None:
    """``value`` when given (non-empty), else ``$env`` when set (non-empty), else None."""
    if value is not None and str(value).strip():
        return str(value).strip()
    fallback = os.environ.get(env, "").strip()
    return fallback or None


class PaperPanel:
    """Widgets to paper trade with a :class:`~research_lib.paper.trader.PaperTrader`.

    Parameters
    ----------
    trader : PaperTrader
        The trader (its ledger, account and config). The panel switches its account when asked, and replaces it
        by one with the new settings when the settings tab saves (:attr:`trader` is the current one).
    source : str or path, optional
        Where proposals and marks read their chain (``"auto"``, ``"store"``, a provider, ``"modelled"``, a chain
        file); None: the trader's config (``market.source``).
    date : str or date, optional
        The as-of trading date of that chain (``"YYYY-MM-DD"``, to replay a stored day or an archive's day);
        None: the latest.
    config_path : path, optional
        Where the settings tab saves (default :func:`research_lib.paper.config.config_path`,
        ``<data root>/paper.toml``).

    Attributes
    ----------
    widget : ipywidgets.VBox
        The root box: the status line, the account row and summary, and the tabs "Trade" (proposal, place,
        positions, mark, close), "History" (closed trades, statistics, equity curve) and "Settings".
    proposal : Proposal or None
        Today's proposal (None when none could be made: :attr:`proposal_error`).
    pending : Proposal or None
        The proposal awaiting "Confirm" (after "Place paper trade").
    message : str
        The status line's text (the last action's outcome).
    error : Exception or None
        The last action's error (None when it succeeded).
    last_mark : MarkReport or None
        What the last "Mark now" did.
    """

    def __init__(self, trader: PaperTrader, *, source=None, date=None, config_path=None):
        self.trader = trader
        self.config_path = Path(config_path) if config_path is not None else paper_config.config_path()
        self.source = source
        self.date = date
        self.proposal = None
        self.proposal_error: str | None = None
        self.pending = None
        self.message = ""
        self.error: Exception | None = None
        self.last_mark = None
        self._syncing = False

        def styled(w, key):
            w.add_class(CSS[key])
            return w

        wide = {"description_width": "initial"}
        self.status = styled(widgets.HTML(), "status")
        # account
        self.account_select = styled(widgets.Dropdown(description="account", style=wide), "account")
        self.account_name = styled(widgets.Text(description="name", placeholder="new account name", style=wide),
                                   "account_name")
        self.account_cash = styled(widgets.FloatText(value=float(trader.config.cash),
                                                     description="starting cash ($)", style=wide), "account_cash")
        self.create_button = styled(widgets.Button(description="Create account", icon="plus"), "account_create")
        self.new_account_box = styled(widgets.HBox([self.account_name, self.account_cash, self.create_button],
                                                   layout=widgets.Layout(display="none")), "new_account")
        self.summary_html = styled(widgets.HTML(), "summary")
        self.notes_html = styled(widgets.HTML(), "notes")
        # proposal
        self.proposal_html = styled(widgets.HTML(), "proposal")
        self.legs_html = styled(widgets.HTML(), "legs")
        self.propose_button = styled(widgets.Button(description="Refresh proposal", icon="refresh"), "propose")
        self.place_button = styled(widgets.Button(description="Place paper trade", button_style="primary",
                                                  icon="check"), "place")
        self.confirm_html = styled(widgets.HTML(), "confirm_text")
        self.confirm_button = styled(widgets.Button(description="Confirm", button_style="success"), "confirm")
        self.cancel_button = styled(widgets.Button(description="Cancel"), "cancel")
        self.confirm_box = styled(widgets.VBox([self.confirm_html,
                                                widgets.HBox([self.confirm_button, self.cancel_button])],
                                               layout=widgets.Layout(display="none")), "confirm_box")
        # positions
        self.positions_html = styled(widgets.HTML(), "positions")
        self.mark_button = styled(widgets.Button(description="Mark now", icon="refresh"), "mark")
        self.close_select = styled(widgets.SelectMultiple(description="positions", rows=4, style=wide),
                                   "close_select")
        self.close_button = styled(widgets.Button(description="Close selected", button_style="warning"), "close")
        # history
        self.closed_html = styled(widgets.HTML(), "closed")
        self.statistics_html = styled(widgets.HTML(), "statistics")
        self.equity_image = styled(widgets.Image(format="png"), "equity")
        # settings
        self.knob_inputs: dict[str, widgets.Widget] = {}
        self.knob_switches: dict[str, widgets.Checkbox] = {}
        self.save_button = styled(widgets.Button(description="Save", button_style="primary", icon="save"), "save")
        self.settings_box = styled(widgets.VBox(self._settings_form() + [self.save_button]), "settings")

        trade = widgets.VBox([
            widgets.HTML("<h3>Today's proposal</h3>"), self.proposal_html, self.legs_html,
            widgets.HBox([self.place_button, self.propose_button]), self.confirm_box,
            widgets.HTML("<h3>Open positions</h3>"), self.positions_html,
            widgets.HBox([self.mark_button, self.close_select, self.close_button]),
        ])
        history = widgets.VBox([widgets.HTML("<h3>Closed trades</h3>"), self.closed_html,
                                widgets.HTML("<h3>Statistics by strategy</h3>"), self.statistics_html,
                                widgets.HTML("<h3>Equity</h3>"), self.equity_image])
        self.tabs = styled(widgets.Tab(children=[trade, history, self.settings_box]), "tabs")
        self.tabs.titles = ("Trade", "History", "Settings")
        self.widget = styled(widgets.VBox([
            self.status, widgets.HBox([self.account_select]), self.new_account_box, self.summary_html, self.notes_html,
            self.tabs,
        ]), "panel")

        self.account_select.observe(self._on_account_change, names="value")
        self.create_button.on_click(self.on_new_account)
        self.propose_button.on_click(self.on_propose)
        self.place_button.on_click(self.on_place)
        self.confirm_button.on_click(self.on_confirm)
        self.cancel_button.on_click(self.on_cancel)
        self.mark_button.on_click(self.on_mark)
        self.close_button.on_click(self.on_close_selected)
        self.save_button.on_click(self.on_save_config)

        report = trader.reconciliation
        self.notes_html.value = ("" if report.clean else
                                 f'<div style="{_ERROR_STYLE}">reconciliation on start: '
                                 f"{html.escape(report.summary())}</div>")
        error = self._make_proposal()
        self.refresh()
        if self.error is None:
            self._say(f"account {trader.account.name!r} · " + report.summary(), ok=report.clean)
            if error is not None:
                self._fail("proposal", error)

    @classmethod
    def from_parameters(cls, *, account: str = "", source: str = "", date: str = "", data_dir: str = "",
                        market_dir: str | None = None) -> PaperPanel:
        """The panel of ``notebooks/paper_trading.ipynb``, from its parameters cell (empty string = default).

        Parameters
        ----------
        account : str
            The account to trade ("" : ``$RESEARCH_LIB_PAPER_ACCOUNT``, else the config's ``account.name``); made
            with the config's ``account.cash`` when missing.
        source : str
            The chain source ("" : ``$RESEARCH_LIB_PAPER_SOURCE``, else the config's ``market.source``).
        date : str
            ``YYYY-MM-DD`` as-of date ("" : ``$RESEARCH_LIB_PAPER_DATE``, else the latest).
        data_dir : str
            The data root holding ``paper.toml``, ``paper.sqlite``, ``decisions.sqlite`` and the chain store
            ("" : ``$RESEARCH_LIB_DATA``, else ``data/`` in the checkout).
        market_dir : str, optional
            The market history folder (None: the default search).
        """
        where = _trader_arguments(data_dir, market_dir)
        trader = PaperTrader(**where["trader"])
        name = _env_or(account, ENV_PAPER_ACCOUNT)
        if name is not None and name != trader.account.name:
            trader.switch_account(name)
        return cls(trader, source=_env_or(source, ENV_PAPER_SOURCE), date=_env_or(date, ENV_PAPER_DATE),
                   config_path=where["config_path"])

    # -- status ------------------------------------------------------------------------------------

    def _say(self, text: str, *, ok: bool = True) -> None:
        self.message = text
        style = _OK_STYLE if ok else ""
        self.status.value = f'<div style="{style}">{html.escape(text)}</div>'

    def _fail(self, action: str, exc: BaseException) -> None:
        self.error = exc
        self.message = f"{action} failed: {type(exc).__name__}: {exc}"
        self.status.value = (f'<div style="{_ERROR_STYLE}"><b>{html.escape(action)} failed</b> — '
                             f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</div>")

    # -- accounts ----------------------------------------------------------------------------------

    def _on_account_change(self, change) -> None:
        if not self._syncing:
            self.on_account()

    @_action("switch account")
    def on_account(self, _=None) -> None:
        """Switch to the account picked in ``account_select``; "new…" shows the new-account form instead."""
        name = self.account_select.value
        if name == NEW_ACCOUNT:
            self.new_account_box.layout.display = "flex"
            self._say("name the new account and its starting cash, then press 'Create account'")
            return
        self.new_account_box.layout.display = "none"
        if name == self.trader.account.name:
            return
        self._switched(self.trader.switch_account(name), "switched to")

    @_action("create account")
    def on_new_account(self, _=None) -> None:
        """Create (or switch to) the account ``account_name`` with ``account_cash`` dollars of starting cash."""
        account = self.trader.switch_account(self.account_name.value.strip(), float(self.account_cash.value))
        self.new_account_box.layout.display = "none"
        self.account_name.value = ""
        self._switched(account, "trading")

    def _switched(self, account, verb: str) -> None:
        error = self._make_proposal()  # the size depends on the account's equity and statistics
        self._redraw()
        self._say(f"{verb} account {account.name!r} ({_dollars(account.cash)} cash)")
        if error is not None:  # the switch worked, the proposal did not: say so
            self._fail("proposal", error)

    # -- proposal and placing ----------------------------------------------------------------------

    def _make_proposal(self) -> Exception | None:
        """Ask the trader for today's proposal; returns the error instead of raising it (kept as
        :attr:`proposal_error` and shown in the proposal area)."""
        self.proposal, self.proposal_error, self.pending = None, None, None
        self.confirm_box.layout.display = "none"
        try:
            self.proposal = self.trader.propose(source=self.source, date=self.date)
            return None
        except ACTION_ERRORS as exc:
            self.proposal_error = f"{type(exc).__name__}: {exc}"
            return exc
        finally:
            self._draw_proposal()

    @_action("proposal")
    def on_propose(self, _=None) -> None:
        """Make today's proposal again (:meth:`PaperTrader.propose` with the panel's source and date)."""
        error = self._make_proposal()
        if error is not None:
            raise error
        self._say(f"proposal: {self.proposal.decision.what}", ok=self.proposal.tradeable)

    @_action("place")
    def on_place(self, _=None) -> None:
        """Show the confirmation of the current proposal (what, size, credit, max loss); nothing is placed until
        :meth:`on_confirm`.

        Raises (shown in the panel) OrderError when there is no tradeable proposal.
        """
        p = self.proposal
        if p is None:
            raise OrderError(f"no proposal to place ({self.proposal_error or 'press Refresh proposal'})")
        if not p.tradeable:
            raise OrderError(f"today's proposal is not tradeable: {p.why_not}")
        self.pending = p
        legs = ", ".join(leg.label for leg in p.legs)
        self.confirm_html.value = (
            f"<b>Place {p.contracts} × {html.escape(p.strategy)}</b> on account "
            f"<b>{html.escape(self.trader.account.name)}</b>: {html.escape(legs)}<br>"
            f"entry {_price(p.entry_price)} per share ({html.escape(_dollars(p.entry_price * 100.0 * p.contracts))}), "
            f"max loss {html.escape(_dollars(-abs(p.max_loss) * p.contracts))}. Confirm?")
        self.confirm_box.layout.display = "flex"
        self._say("confirm or cancel the paper trade")

    @_action("confirm")
    def on_confirm(self, _=None):
        """Place the proposal awaiting confirmation (:meth:`PaperTrader.place`); returns the position."""
        p = self.pending
        if p is None:
            raise OrderError("nothing awaits confirmation: press 'Place paper trade' first")
        position = self.trader.place(p)
        self.pending = None
        self.confirm_box.layout.display = "none"
        self._redraw()
        self._say(f"placed paper position #{position.position_id}: {position.contracts} × {position.strategy} "
                  f"at {_price(position.entry_price)} per share")
        return position

    @_action("cancel")
    def on_cancel(self, _=None) -> None:
        """Drop the confirmation; nothing is placed."""
        self.pending = None
        self.confirm_box.layout.display = "none"
        self._say("cancelled: nothing placed")

    # -- marking and closing -----------------------------------------------------------------------

    @_action("mark")
    def on_mark(self, _=None):
        """Mark every open position now (:meth:`PaperTrader.mark`), closing what an exit rule fires on; returns
        the :class:`MarkReport`. Holds the lock of ``research-lib paper mark`` and the nightly run
        (:attr:`PaperTrader.mark_lock_path`): while one of them marks this ledger, the panel says so
        (:class:`~research_lib.errors.LockBusyError`, naming the holder) and marks nothing."""
        with file_lock(self.trader.mark_lock_path, wait=False, note=f"paper panel mark of {self.trader.name} "
                                                                       f"(pid {os.getpid()})"):
            report = self.trader.mark(source=self.source, date=self.date)
        self.last_mark = report
        self._redraw()
        self._say(report.summary(), ok=not report.problems)
        return report

    @_action("close selected")
    def on_close_selected(self, _=None) -> list:
        """Close each position picked in ``close_select`` at the chain's quotes (reason ``manual``); returns the
        :class:`ClosedTrade` list. A position that cannot be closed is reported and the others still close."""
        ids = [int(i) for i in self.close_select.value]
        if not ids:
            raise OrderError("close selected: no position picked (select one or more in the list)")
        closed, failed = [], []
        for position_id in ids:
            try:
                closed.append(self.trader.close(position_id, source=self.source, date=self.date, reason="manual"))
            except ACTION_ERRORS as exc:
                failed.append((position_id, exc))
        self._redraw()
        done = ", ".join(f"#{t.position_id} ({_dollars(t.realized_pnl)})" for t in closed)
        if failed:
            position_id, exc = failed[0]
            self._fail("close selected", exc)
            self.message = (f"closed {done or 'nothing'}; could not close "
                            + "; ".join(f"#{i}: {type(e).__name__}: {e}" for i, e in failed))
            self.status.value = f'<div style="{_ERROR_STYLE}">{html.escape(self.message)}</div>'
        else:
            self._say(f"closed {done}")
        return closed

    # -- settings ----------------------------------------------------------------------------------

    def _settings_form(self) -> list[widgets.Widget]:
        """One row per knob of :data:`research_lib.paper.config.KNOBS`: the input (a switch beside it for a rule
        that can be off) and the knob's help and range. No input clamps or rounds: a value out of range reaches
        :meth:`on_save_config`, which refuses it naming the key."""
        rows: list[widgets.Widget] = [widgets.HTML(
            f"<p>The paper bot's settings, saved to <code>{html.escape(str(self.config_path))}</code> "
            "(validated, written atomically). Saving also applies them to this panel's trader.</p>")]
        table = None
        for knob in paper_config.KNOBS:
            if knob.table != table:
                table = knob.table
                rows.append(widgets.HTML(f"<b>[{html.escape(table)}]</b>"))
            style = {"description_width": "220px"}
            layout = widgets.Layout(width="420px")
            if knob.kind == "float":
                w = widgets.FloatText(description=knob.name, style=style, layout=layout)
            elif knob.kind == "int":
                w = widgets.IntText(description=knob.name, style=style, layout=layout)
            elif knob.kind == "symbols":
                w = widgets.Text(description=knob.name, placeholder="SPX, SPY", style=style, layout=layout)
            elif knob.choices is not None and not knob.paths:
                w = widgets.Dropdown(options=list(knob.choices), description=knob.name, style=style, layout=layout)
            elif knob.choices is not None:  # a name or a path: suggestions, free text accepted
                w = widgets.Combobox(options=list(knob.choices), ensure_option=False, description=knob.name,
                                     style=style, layout=layout)
            else:
                w = widgets.Text(description=knob.name, style=style, layout=layout)
            w.add_class(f"rl-knob-{knob.table}-{knob.key}")
            self.knob_inputs[knob.name] = w
            row = [w]
            if knob.off:
                on = widgets.Checkbox(description="on", indent=False, layout=widgets.Layout(width="60px"))
                on.add_class(f"rl-knob-{knob.table}-{knob.key}-on")
                self.knob_switches[knob.name] = on
                row.append(on)
            help_text = f"{knob.help} Allowed: {knob.allowed}."
            row.append(widgets.HTML(f'<span style="color:#555">{html.escape(help_text)}</span>'))
            rows.append(widgets.HBox(row))
        self._fill_form(self.trader.config)
        return rows

    def _fill_form(self, config) -> None:
        """Put ``config``'s values in the form (a rule switched off: its switch off, the input at the default)."""
        mapping = config.to_mapping()
        for knob in paper_config.KNOBS:
            value = mapping[knob.table][knob.key]
            if knob.off:
                self.knob_switches[knob.name].value = value is not False
                value = knob.default if value is False else value
            self.knob_inputs[knob.name].value = ", ".join(value) if knob.kind == "symbols" else value

    def form_mapping(self) -> dict[str, dict[str, Any]]:
        """The settings form as nested tables (what :meth:`PaperConfig.from_mapping` reads), unvalidated."""
        out: dict[str, dict[str, Any]] = {t: {} for t in paper_config.TABLES}
        for knob in paper_config.KNOBS:
            value = self.knob_inputs[knob.name].value
            if knob.kind == "symbols":
                value = [v.strip() for v in str(value).split(",") if v.strip()]
            if knob.off and not self.knob_switches[knob.name].value:
                value = False
            out[knob.table][knob.key] = value
        return out

    @_action("save settings")
    def on_save_config(self, _=None):
        """Validate the settings form (:meth:`PaperConfig.from_mapping`: a bad value is refused naming its key,
        value and range), save it atomically to :attr:`config_path` (:func:`save_config`) and apply it: the
        trader is rebuilt on the same ledger, decision log and store with the new settings (fill model,
        commission, sizing, exits...), on the config's account when ``account.name`` changed, else on the panel's
        current account. Returns the saved :class:`PaperConfig`."""
        config = paper_config.PaperConfig.from_mapping(self.form_mapping())
        path = paper_config.save_config(config, self.config_path)
        old = self.trader
        trader = PaperTrader(config, ledger=old.ledger, log=old.log, store=old.store, market_dir=old.market_dir)
        if config.account == old.config.account and trader.account.name != old.account.name:
            trader.switch_account(old.account.name)
        self.trader = trader
        self._fill_form(config)
        error = self._make_proposal()  # sizing and strategy knobs change the proposal
        self._redraw()
        self._say(f"settings saved to {path} and applied (account {trader.account.name!r})")
        if error is not None:
            self._fail("proposal", error)
        return config

    # -- drawing -----------------------------------------------------------------------------------

    @_action("refresh")
    def refresh(self, _=None) -> None:
        """Redraw the account list and summary, the proposal, the positions, closed trades and statistics
        tables and the equity chart from the trader's ledger."""
        self._redraw()

    def _redraw(self) -> None:
        t = self.trader
        names = [a.name for a in t.ledger.accounts()]
        with syncing(self):  # the observer ignores this redraw
            self.account_select.options = [*names, NEW_ACCOUNT]
            self.account_select.value = t.account.name
        summary = t.summary()
        self.summary_html.value = _table_html(_summary_frame(summary), "", named_values=True)
        self._draw_proposal()
        positions = t.positions_table()
        self.positions_html.value = _table_html(positions_display(positions), "no open position")
        keep = set(self.close_select.value)
        options = [(f"#{r.id} {r.strategy} ×{r.contracts} exp {_day(r.expiration)}", int(r.id))
                   for r in positions.itertuples()]
        self.close_select.options = options
        self.close_select.value = tuple(i for _, i in options if i in keep)
        self.closed_html.value = _table_html(closed_display(t.closed_trades()), "no closed trade yet")
        self.statistics_html.value = _table_html(statistics_display(t.statistics()), "no closed trade yet")
        self.equity_image.value = figure_png(plots.paper_equity(t.equity_curve(), starting_cash=summary.starting_cash,
                                                                title=f"paper account {summary.account!r}"))

    def _draw_proposal(self) -> None:
        p = self.proposal
        if p is None:
            why = self.proposal_error or "not made yet"
            self.proposal_html.value = f'<p style="{_ERROR_STYLE}">No proposal: {html.escape(why)}</p>'
            self.legs_html.value = ""
            self.place_button.disabled = True
            return
        self.proposal_html.value = _table_html(_proposal_frame(p), "", named_values=True)
        self.legs_html.value = _table_html(p.legs_frame(), "no legs")
        self.place_button.disabled = not p.tradeable

    def static_report(self) -> PanelReport:
        """The summary, the proposal, the tables and the equity chart, for a non-interactive run (papermill,
        nbconvert): display the report for the tables and ``report.equity`` for the chart.

        Raises what the trader's queries raise (a ledger that cannot be read).
        """
        t = self.trader
        summary = t.summary()
        p = self.proposal
        return PanelReport(
            summary=_summary_frame(summary),
            proposal=None if p is None else _proposal_frame(p),
            proposal_error=self.proposal_error,
            legs=pd.DataFrame() if p is None else p.legs_frame(),
            positions=positions_display(t.positions_table()),
            closed=closed_display(t.closed_trades()),
            statistics=statistics_display(t.statistics()),
            equity=plots.paper_equity(t.equity_curve(), starting_cash=summary.starting_cash,
                                      title=f"paper account {summary.account!r}"))

    # -- display -----------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Close every widget of the panel (front-end views disappear)."""
        close_widgets(self.widget)


def _trader_arguments(data_dir: str, market_dir: str | None) -> dict[str, Any]:
    """:class:`PaperTrader` arguments for the data root ``data_dir`` ("" : the default root, ``$RESEARCH_LIB_DATA``
    or ``data/``): its settings file, ledger, decision log and chain store, and the panel's ``config_path``."""
    if not str(data_dir or "").strip():
        return dict(trader=dict(market_dir=market_dir), config_path=paper_config.config_path())
    root = Path(str(data_dir).strip()).expanduser()
    path = root / paper_config.CONFIG_FILE
    return dict(trader=dict(config=paper_config.load_config(path), ledger=PaperLedger(root / LEDGER_FILE),
                            log=DecisionLog(root / DECISIONS_FILE), store=ChainStore(root), market_dir=market_dir),
                config_path=path)
