"""The content of the daily GEX report: :func:`build_daily` → :class:`DailyReport`.

``notebooks/daily_report.ipynb`` is a thin layer over this module: each of its sections is one call to a
:class:`DailyReport` method (a table, a Markdown block, or a figure from :mod:`research_lib.plots`), so
everything the report shows is reachable from tests. :mod:`research_lib.reports` runs that notebook with
papermill and exports it to HTML.

What one report holds
---------------------
- the decision pipeline of :func:`research_lib.decide.decide` (chain from ``source``, model-convention
  levels priced with the date's rate and dividend yield, regime, strategy with legs, size, decision,
  alerts), optionally logged in the decision log;
- the levels, tables and charts in the requested ``convention`` (``model``: the decision's own analysis;
  ``perfiliev``: the same chain analysed with :func:`research_lib.market.snapshot_config`, i.e. the
  published method with r = q = 0). The regime, the decision and the alerts always use the ``model``
  levels; with another convention the key-levels table shows both sets side by side and
  :meth:`DailyReport.convention_markdown` says in one sentence which section uses which;
- what moved GEX since the previous snapshot (:func:`research_lib.pipeline.gex_change.change_since_previous`,
  model convention: the previous clean day of a file, the store's previous date, the previous session's
  modelled chain), or the reason there is none;
- the history context over ``history_days`` (:func:`research_lib.history.history_context`): our net GEX
  from the local store beside SqueezeMetrics' published GEX, VIX and its IV rank.
"""

from __future__ import annotations

import dataclasses
import html
import math
from typing import Any

import pandas as pd

from research_lib import __version__
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    ReportParameterError as ReportParameterError,
)
from research_lib.formatting import (
    fmt_age,
    fmt_level as _level,
    fmt_money as _money,
    jsonable as json_safe,  # the one JSON helper; the old name kept
)

CONVENTIONS = ("model", "perfiliev")


def _age_text(age: pd.Timedelta | None) -> str:
    return fmt_age(age, missing="n/a (live quote)", hours="hours")


@dataclasses.dataclass(frozen=True, eq=False)
class DailyReport:
    """One day's GEX report for one underlying (see the module docstring).

    Attributes
    ----------
    params : dict
        The report parameters as given (symbol, date, source, convention, account, ...).
    decision : DecisionReport
        :func:`research_lib.decide.decide`'s result (``model`` convention).
    analysis : GexAnalysis
        The levels, tables and charts in ``params["convention"]``.
    history : HistoryContext or None
        None when ``history_days`` is 0.
    generated_at : pandas.Timestamp
        When the report was built (New York time).
    change : GexChange or None
        What moved net GEX since the previous snapshot (model convention); None when there is none.
    change_reason : str
        What the change compares against, or why there is none.
    """

    params: dict
    decision: Any
    analysis: Any  # research_lib.gex.GexAnalysis
    history: Any
    generated_at: pd.Timestamp
    change: Any = None  # research_lib.core.gex_change.GexChange
    change_reason: str = "not computed"

    @property
    def served(self):
        return self.decision.served

    @property
    def levels(self):
        return self.analysis.levels

    @property
    def model_levels(self):
        """The ``model`` levels the regime, the decision and the alerts are computed from."""
        return self.decision.analysis.levels

    @property
    def two_conventions(self) -> bool:
        """True when the levels shown (``params["convention"]``) are not the ones the decision uses."""
        return self.levels.convention != self.model_levels.convention

    def convention_markdown(self) -> str:
        """One plain sentence saying which convention each section uses (and with which rates)."""
        m = self.model_levels
        model_pricing = f"rate {m.rate:.3%}, dividend yield {m.div_yield:.3%} of {m.date}"
        if not self.two_conventions:
            return (f"Every section uses the **{m.convention}** convention's levels ({model_pricing}): the key "
                    "levels, the charts, the regime, the decision and the alerts.")
        lv = self.levels
        return (f"Key levels, the expiries table and the charts use the **{lv.convention}** convention (rate "
                f"{lv.rate:.3%}, dividend yield {lv.div_yield:.3%}); the regime, the decision and the alerts "
                f"are computed from the **{m.convention}** convention's levels ({model_pricing}). The key-levels "
                f"table shows both sets side by side: they differ by construction (net GEX "
                f"{_money(lv.net_gex)} {lv.convention}, {_money(m.net_gex)} {m.convention}).")

    # -- sections ---------------------------------------------------------------------------------------

    def banner_html(self) -> str:
        """The provenance banner: source, quote time, staleness, modelled or market data, version, parameters.

        Red when the data is modelled or stale, green for market quotes.
        """
        s = self.served
        snap = s.snapshot
        if snap.modelled:
            kind, colour = "MODELLED DATA — not market quotes", "#b00020"
        elif s.stale:
            kind, colour = f"STALE market data — {_age_text(s.age)} old, no live source answered", "#b35c00"
        else:
            kind, colour = "market quotes", "#1b7f3b"
        rows = [
            ("Data", f"<b>{html.escape(kind)}</b>"),
            ("Source", html.escape(f"{s.served_by} — {snap.source}")),
            ("Quote time", html.escape(f"{snap.quote_time:%Y-%m-%d %H:%M %Z}") + f" (trading date {snap.snapshot_date})"),
            ("Quote age", html.escape("n/a — a modelled chain, priced as of its quote time" if snap.modelled
                                      else _age_text(s.age))),
            ("Served", html.escape(s.describe())),
            ("Pricing", html.escape(self._pricing_text())),
            ("research_lib", html.escape(__version__)),
            ("Parameters", html.escape(", ".join(f"{k}={v!r}" for k, v in self.params.items()))),
            ("Generated", html.escape(f"{self.generated_at:%Y-%m-%d %H:%M %Z}")),
        ]
        rows += [("Note", html.escape(n)) for n in (*self.decision.notes, *snap.notes)]
        body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{k}</th><td style='text-align:left'>"
                       f"{v}</td></tr>" for k, v in rows)
        title = html.escape(f"{snap.underlying} daily GEX report — {snap.snapshot_date}")
        return (f"<div style='border:3px solid {colour};padding:0.6em 1em;border-radius:6px'>"
                f"<h2 style='margin-top:0;color:{colour}'>{title}</h2><table>{body}</table></div>")

    def _pricing_text(self) -> str:
        m = self.model_levels
        text = f"{m.convention}: rate {m.rate:.4%}, dividend yield {m.div_yield:.4%}"
        if self.two_conventions:
            lv = self.levels
            text = (f"{lv.convention} (key levels, charts): rate {lv.rate:.4%}, dividend yield {lv.div_yield:.4%}; "
                    f"{text} (regime, decision, alerts)")
        return text

    def levels_table(self) -> pd.DataFrame:
        """The key levels as a readable table: one row per level, columns ``value`` (formatted) and ``unit``.

        With a convention other than ``model`` the columns are ``<convention>`` (what the charts show),
        ``model (regime, decision)`` (what the decision uses) and ``unit``: both sets side by side.
        GEX in $ per 1% move; vanna exposure in $ delta per vol point; charm in $ delta per calendar day.
        """
        rg = self.decision.regime_gex
        regime_row = pd.DataFrame({"value": [_money(rg.value)],
                                   "unit": [f"$ per 1% move — the regime's series: {rg.spec.describe()}"]},
                                  index=pd.Index(["regime GEX"], name="level"))

        def with_regime(rows: pd.DataFrame, value: str) -> pd.DataFrame:
            at = rows.index.get_loc("put GEX") + 1
            row = regime_row.assign(value=value)
            return pd.concat([rows.iloc[:at], row, rows.iloc[at:]])

        table = with_regime(self._levels_rows(self.levels), regime_row["value"].iloc[0])
        if not self.two_conventions:
            return table
        model = with_regime(self._levels_rows(self.model_levels), regime_row["value"].iloc[0])
        table.loc["regime GEX", "value"] = "(model only)"
        return pd.DataFrame({self.levels.convention: table["value"],
                             f"{self.model_levels.convention} (regime, decision)": model["value"],
                             "unit": table["unit"]}, index=table.index)

    @staticmethod
    def _levels_rows(lv) -> pd.DataFrame:
        crossings = ", ".join(f"{z:,.2f}" for z in lv.zero_gamma_crossings) or "none"
        rows = [
            ("spot", f"{lv.spot:,.2f}", "index points"),
            ("net GEX", _money(lv.net_gex), "$ per 1% move"),
            ("call GEX", _money(lv.call_gex), "$ per 1% move"),
            ("put GEX", _money(lv.put_gex), "$ per 1% move"),
            ("zero gamma (nearest spot)", _level(lv.zero_gamma), "index points"),
            ("all zero-gamma crossings", crossings, "index points"),
            ("call wall", _level(lv.call_wall), "strike"),
            ("put wall", _level(lv.put_wall), "strike"),
            ("cumulative GEX flip", _level(lv.cumulative_flip), "strike (running sum by strike)"),
            ("vanna exposure", _money(lv.net_vanna), "$ delta per vol point"),
            ("charm exposure", _money(lv.net_charm), "$ delta per calendar day"),
            ("contracts", f"{lv.n_contracts:,} counted, {lv.n_expired} expired, {lv.n_filtered} filtered, "
                          f"{lv.n_unpriced} without gamma", ""),
            ("convention", lv.convention, ""),
            ("rate", f"{lv.rate:.3%}", "continuously compounded, per year"),
            ("dividend yield", f"{lv.div_yield:.3%}", "continuous, per year"),
        ]
        return pd.DataFrame(rows, columns=["level", "value", "unit"]).set_index("level")

    def expiries_table(self, n: int | None = None) -> pd.DataFrame:
        """Max pain and pin risk of the next ``n`` expiries (default ``params["next_expiries"]``, else 5).

        Columns: ``net_gex`` ($ per 1% move), ``max_pain`` (strike), ``pin_strike`` (largest |GEX| strike
        within ±5% of spot), ``distance_pct`` (pin strike vs spot, %), ``expected_move`` (points, to
        settlement), ``score`` (pin-risk score 0–100). Index: expiration date.
        """
        n = int(self.params.get("next_expiries", 5) if n is None else n)
        a = self.analysis
        pin = a.pin_risk
        table = pd.DataFrame(index=pin.index[:n] if len(pin) else pd.Index([], name="expiration"))
        table["net_gex"] = a.expiries["net_gex"].reindex(table.index)
        for col in ("max_pain", "pin_strike", "distance_pct", "expected_move", "score"):
            table[col] = pin[col].reindex(table.index) if col in pin else float("nan")
        return table

    def expiries_styled(self, n: int | None = None):
        """:meth:`expiries_table` formatted for reading (a pandas Styler: $ in billions, strikes, %)."""
        return self.expiries_table(n).style.format({
            "net_gex": lambda x: _money(x), "max_pain": "{:,.0f}", "pin_strike": "{:,.0f}",
            "distance_pct": "{:+.2f}%", "expected_move": "±{:,.1f}", "score": "{:.0f}/100"}, na_rep="n/a")

    def regime_markdown(self) -> str:
        """The regime, trend, confidence and action, then every reason as a bullet."""
        r = self.decision.regime
        lines = [f"**{r.regime} / {r.trend}** — confidence **{r.confidence}/100** → action **{r.action}**", ""]
        if self.two_conventions:
            lines = [self._model_basis(), "", *lines]
        rg = self.decision.regime_gex
        lines += [f"*The regime reads regime GEX {_money(rg.value)} per 1% move ({rg.spec.describe()}; "
                  f"{rg.share_of_gross:.0%} of the chain's gross gamma), not the headline net GEX "
                  f"{_money(self.model_levels.net_gex)}.*", ""]
        lines += [f"- {reason}" for reason in r.reasons]
        return "\n".join(lines)

    def decision_markdown(self) -> str:
        """Strategy, sizing and the decision's what / why / how (and whether it was logged)."""
        rep = self.decision
        strat = rep.strategy
        lines = [self._model_basis(), ""] if self.two_conventions else []
        if getattr(strat, "valid", False):
            lines.append(f"**Strategy:** {strat.summary()}")
        else:
            lines.append(f"**Strategy:** none — {strat.reason}")
        if rep.sizing is not None:
            lines.append(f"\n**Sizing:** {rep.sizing.contracts} contract(s); {rep.sizing.how}")
        d = rep.decision
        logged = f"logged as `{d.decision_id}`" if d.decision_id else "not logged (record_decision=False)"
        lines += ["", f"**Decision ({d.type}, {logged})**", "", f"- **What:** {d.what}", f"- **Why:** {d.why}",
                  f"- **How:** {d.how}"]
        return "\n".join(lines)

    def legs_table(self) -> pd.DataFrame | None:
        """The strategy's legs (strike, right, side, prices, greeks), or None without a valid strategy."""
        strat = self.decision.strategy
        return strat.legs_frame() if getattr(strat, "valid", False) else None

    def alerts_table(self) -> pd.DataFrame:
        """The alerts raised with the decision: columns ``rule``, ``severity``, ``message`` (may be empty)."""
        return pd.DataFrame([{"rule": str(a.rule), "severity": str(a.severity), "message": a.message}
                             for a in self.decision.alerts], columns=["rule", "severity", "message"])

    def alerts_markdown(self) -> str:
        """The alerts as bullets (``[SEVERITY] rule: message``), or a line saying there are none."""
        alerts = self.decision.alerts
        basis = f"{self._model_basis()}\n\n" if self.two_conventions else ""
        if not alerts:
            return f"{basis}No alerts."
        return basis + "\n".join(f"- **[{a.severity}] {a.rule}:** {a.message}" for a in alerts)

    def _model_basis(self) -> str:
        m = self.model_levels
        return (f"*From the {m.convention} convention's levels (net GEX {_money(m.net_gex)}, zero gamma "
                f"{_level(m.zero_gamma)}), not the {self.levels.convention} levels of the charts: see the "
                f"{m.convention} column of Key levels.*")

    def change_markdown(self) -> str:
        """What moved net GEX since the previous snapshot: one sentence with the largest causes, then the
        cause table and the notes as a text block; or the reason there is no previous snapshot."""
        ch = self.change
        if ch is None:
            return f"No change to explain: {self.change_reason}."
        ranked = ch.by_cause.reindex(ch.by_cause.abs().sort_values(ascending=False).index)
        top = ", ".join(f"{c.replace('_', ' ')} {_money(float(v))}" for c, v in ranked.head(3).items() if v != 0)
        head = (f"Net GEX went from **{_money(ch.net_before)}** ({ch.date_before}) to **{_money(ch.net_after)}** "
                f"({ch.date_after}): **{_money(ch.change)}** $ per 1% move ({ch.convention} convention, compared "
                f"{self.change_reason}). Largest causes: {top or 'none'}.")
        return f"{head}\n\n```text\n{ch.describe()}\n```"

    def history_markdown(self) -> str:
        """The history context's summary with its notes (what was missing and why), as a text block."""
        if self.history is None:
            return "History context left out (history_days = 0)."
        return f"```text\n{self.history.summary()}\n```"

    # -- recording -------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready record of everything the report shows (what the runner and the tests read back).

        Keys: ``params``, ``provenance`` (served_by, source, quote_time, date, stale, age_hours, modelled,
        describe, version, generated_at), ``levels`` (requested convention), ``expiries``, ``decision``
        (:meth:`DecisionReport.to_dict`, model convention), ``model_levels`` (the levels the decision used),
        ``convention_note`` (:meth:`convention_markdown`), ``change`` (``reason`` and
        :meth:`GexChange.to_dict` or None), ``history`` (or None). Strict JSON
        (:func:`json_safe`: no NaN or infinity).
        """
        s = self.served
        snap = s.snapshot
        expiries = self.expiries_table()
        return json_safe({
            "params": dict(self.params),
            "provenance": {
                "served_by": s.served_by, "source": snap.source, "underlying": snap.underlying,
                "quote_time": snap.quote_time, "date": snap.snapshot_date,
                "stale": bool(s.stale), "modelled": bool(snap.modelled),
                "age_hours": None if s.age is None else s.age.total_seconds() / 3600,
                "describe": s.describe(), "version": __version__, "generated_at": self.generated_at,
            },
            "levels": self.levels.to_dict(),
            "expiries": [{"expiration": pd.Timestamp(d).date(), **row} for d, row in expiries.iterrows()],
            "decision": self.decision.to_dict(),
            "model_levels": self.model_levels.to_dict(),
            "convention_note": self.convention_markdown(),
            "change": {"reason": self.change_reason,
                       "change": None if self.change is None else self.change.to_dict()},
            "history": None if self.history is None else self.history.to_dict(),
        })


def normalise_params(symbol: str = "SPX", date: str | None = "latest", source: str = "auto",
                     convention: str = "model", account: float = 50_000.0, record_decision: bool = True,
                     history_days: int = 365, next_expiries: int = 5) -> dict:
    """Check the report parameters and return them normalised (symbol upper-case, file sources absolute).

    Raises :class:`ReportParameterError` naming the parameter, its value and what is allowed. Called by
    :func:`build_daily` and, before any kernel starts, by :func:`research_lib.reports.run_daily`.
    """
    # lazy for start-up time: research-lib report imports this module; the computation loads in the kernel
    import os
    import re
    from pathlib import Path

    from research_lib.data.sources.auto import NAMED_SOURCES, PROVIDER_KEYS

    def bad(name, value, allowed):
        raise ReportParameterError(f"report parameter {name}={value!r}: {allowed}")

    if not isinstance(symbol, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9.]{0,9}", symbol.strip()):
        bad("symbol", symbol, "expected a ticker such as SPX, SPY or QQQ (letters, digits and '.', at most 10)")
    symbol = symbol.strip().upper()
    if date is None or (isinstance(date, str) and date.strip().lower() == "latest"):
        date = "latest"
    else:
        text = str(date).strip()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            bad("date", date, "expected an ISO date YYYY-MM-DD or 'latest'")
        try:
            day = pd.Timestamp(text)
        except ValueError:
            bad("date", date, "not a calendar date")
        today = pd.Timestamp.now(tz="America/New_York").tz_localize(None).normalize()
        if day > today:
            bad("date", date, f"in the future (today is {today.date()} in New York)")
        if day.year < 1990:
            bad("date", date, "before 1990: no option chain history")
        date = text
    if not isinstance(source, str | os.PathLike) or not str(source).strip():
        bad("source", source, f"expected one of {list(NAMED_SOURCES)} or a chain file path")
    src = str(source).strip()
    if src.lower() in NAMED_SOURCES:
        src = src.lower()
        if src in PROVIDER_KEYS and not os.environ.get(PROVIDER_KEYS[src]):
            bad("source", source, f"the {src} provider needs the API key in the environment variable "
                                  f"{PROVIDER_KEYS[src]} (never as a parameter)")
        if src == "modelled" and symbol != "SPX":
            bad("symbol", symbol, "the modelled chain exists for SPX only")
    else:
        path = Path(src).expanduser()
        if not path.is_file():
            bad("source", source, f"neither one of {list(NAMED_SOURCES)} nor an existing chain file")
        src = str(path.resolve())
    if convention not in CONVENTIONS:
        bad("convention", convention, f"use one of {list(CONVENTIONS)}")
    try:
        account = float(account)
    except (TypeError, ValueError):
        bad("account", account, "expected a number of dollars")
    if not math.isfinite(account) or account <= 0:
        bad("account", account, "expected a positive, finite number of dollars")
    if not isinstance(record_decision, bool):
        bad("record_decision", record_decision, "expected True or False")
    for name, value, low in (("history_days", history_days, 0), ("next_expiries", next_expiries, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            bad(name, value, f"expected a whole number >= {low}")
    return {"symbol": symbol, "date": date, "source": src, "convention": convention, "account": account,
            "record_decision": record_decision, "history_days": history_days, "next_expiries": next_expiries}


def build_daily(symbol: str = "SPX", *, date: str | None = "latest", source: str = "auto",
                convention: str = "model", account: float = 50_000.0, record_decision: bool = True,
                history_days: int = 365, next_expiries: int = 5, store=None, market_dir=None,
                log=None) -> DailyReport:
    """Build one daily report (see the module docstring).

    Parameters
    ----------
    symbol, source : str
        As :func:`research_lib.sources.auto.get_chain` (``source`` may be a chain file path).
    date : str or None
        ``"YYYY-MM-DD"`` (archives, the store) or ``"latest"`` / None.
    convention : {"model", "perfiliev"}
        For the levels table and the charts; the regime and the decision use ``model``.
    account : float
        Account value in dollars, for the position size.
    record_decision : bool
        Log the decision and its alerts in the decision log (``log``, default ``data/decisions.sqlite``).
    history_days : int
        Calendar days of history context; 0 leaves it out.
    next_expiries : int
        Rows of the max-pain / pin-risk table.
    store, market_dir, log
        The chain store, market-data folder and decision log (defaults: see their modules).

    Raises
    ------
    ReportParameterError
        A bad parameter (before any chain is fetched).
    ResearchLibError
        The chain could not be had or analysed (the source's own error, e.g. NoChainAvailableError).
    """
    # lazy for start-up time: research-lib report imports this module; the computation loads in the kernel
    from research_lib.core import gex
    from research_lib.data.market import snapshot_config
    from research_lib.pipeline.decide import decide

    params = normalise_params(symbol, date, source, convention, account, record_decision, history_days,
                              next_expiries)
    report = decide(params["symbol"], params["source"], date=None if params["date"] == "latest" else params["date"],
                    account=params["account"], record=params["record_decision"], log=log, store=store,
                    market_dir=market_dir)
    analysis = report.analysis
    if params["convention"] != "model":
        snap = report.served.snapshot
        analysis = gex.analyze(snap, snapshot_config(snap, params["convention"], market_dir=market_dir))
    history = None
    if params["history_days"] > 0:
        # lazy for start-up time: research-lib report imports this module; the computation loads in the kernel
        from research_lib.pipeline.history import history_context

        history = history_context(report.analysis, days=params["history_days"], store=store,
                                  market_dir=market_dir)
    change, change_reason = _change_since_previous(report.served, params["source"], store, market_dir)
    return DailyReport(params=params, decision=report, analysis=analysis, history=history,
                       generated_at=pd.Timestamp.now(tz="America/New_York"), change=change,
                       change_reason=change_reason)


def _change_since_previous(served, source: str, store, market_dir):
    """(GexChange or None, reason) of the served chain against its previous snapshot. A failure to build it
    (an unreadable previous snapshot ...) is the reason the report shows, not a failed report."""
    # lazy for start-up time: research-lib report imports this module; the computation loads in the kernel
    from research_lib.errors import ResearchLibError
    from research_lib.pipeline.gex_change import change_since_previous

    try:
        result = change_since_previous(served.snapshot, served.served_by,
                                       path=source if served.served_by == "file" else None, store=store,
                                       market_dir=market_dir)
    except ResearchLibError as exc:
        return None, f"the change could not be computed ({type(exc).__name__}: {exc})"
    return result.change, result.reason
