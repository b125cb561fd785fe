"""Order flow of a file: read trades (and quotes) or bars, sign, aggregate to bars, summarise per session.

The I/O wrapper behind ``research-lib flow`` (the math is :mod:`research_lib.core.order_flow`, the readers
:mod:`research_lib.data.market.intraday`). Regular hours only; trades the vendor flagged suspicious are dropped
and counted.

Inputs
------
* a tick trade zip (``YYYYMMDD_trade.zip``) or a folder of them (the AlgoSeek layout: ``FOLDER/tick/``);
  rules ``tick`` (default without quotes), ``quote`` or ``lee_ready`` (default with ``quotes``). ``quotes`` is a
  1-second quote zip or a folder of them (``FOLDER/second/``), paired with the trade files by date. Quotes are
  read over the whole file (pre-market included), so the last pre-open quote prevails at 09:30, never a quote
  of another day; a quote bar is known one second after its start (``quote_lag``).
* an OHLCV bar file (anything :func:`~research_lib.data.market.intraday.read_bars` reads); rules ``bar``,
  ``clv`` or ``bvc`` (default).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib.core.order_flow import (
    SESSION_FLOW_COLUMNS,
    bar_flow,
    bar_flow_from_bars,
    prevailing_quote,
    session_flow,
    sign_trades,
)
from research_lib.data.market.intraday import (
    file_date,
    quote_files,
    read_bars,
    read_quote_bars,
    read_trades,
    tick_files,
)
from research_lib.errors import IntradayFileError, OrderFlowInputError

__all__ = ["BAR_FILE_RULES", "FLOW_COLUMNS", "TRADE_FILE_RULES", "FlowRun", "file_flow"]

#: Rules for tick trade input, and for bar input.
TRADE_FILE_RULES = ("tick", "quote", "lee_ready")
BAR_FILE_RULES = ("bar", "clv", "bvc")
#: Columns of :attr:`FlowRun.sessions`: the session summary, then how it was made.
FLOW_COLUMNS = SESSION_FLOW_COLUMNS + ("unsigned_trades", "suspicious_dropped", "rule", "source")


@dataclasses.dataclass(frozen=True)
class FlowRun:
    """The order flow of a file.

    Attributes
    ----------
    sessions : DataFrame
        One row per session, columns :data:`FLOW_COLUMNS` (:func:`~research_lib.core.order_flow.session_flow`
        plus ``unsigned_trades`` and ``suspicious_dropped`` (None for bar input), ``rule`` and ``source``,
        the file the session came from).
    bars : DataFrame
        The per-bar flow of every session (:data:`~research_lib.core.order_flow.BAR_FLOW_COLUMNS`).
    rule : str
    input_kind : str
        ``"trades"`` or ``"bars"``.
    """

    sessions: pd.DataFrame
    bars: pd.DataFrame
    rule: str
    input_kind: str

    def records(self) -> list[dict]:
        """The session rows as plain dicts (for ``--json``: pass each through ``to_json``)."""
        return self.sessions.to_dict(orient="records")


def _is_trade_input(path: Path) -> bool:
    if path.is_dir():
        return True
    return zipfile.is_zipfile(path) if path.exists() else False


def file_flow(path: str | os.PathLike, *, quotes: str | os.PathLike | None = None, rule: str | None = None,
              date: str | dt.date | None = None, bar: str = "1min", quote_lag: str = "1s", k: float = 3.0,
              window: int = 30, min_periods: int = 10, pressure_window: int = 5) -> FlowRun:
    """Order flow per session of a tick trade file / folder (optionally with quotes) or of a bar file.

    Parameters
    ----------
    path : path-like
        A tick trade zip, a folder of them, or an OHLCV bar file (see the module notes).
    quotes : path-like, optional
        1-second quote zip(s) for the quote rules (trade input only).
    rule : str, optional
        ``tick | quote | lee_ready`` for trades (default ``lee_ready`` with quotes, else ``tick``); ``bar | clv
        | bvc`` for bars (default ``bvc``).
    date : "YYYY-MM-DD", date, "all" or None
        One session, or every session of the input (None / "all").
    bar : str
        The flow bar for trades (default "1min"; whole seconds dividing an hour). Bar input keeps its own bars.
    quote_lag, k, window, min_periods, pressure_window
        See :func:`~research_lib.core.order_flow.prevailing_quote`, :func:`~research_lib.core.order_flow.aggressive_bars`
        and :func:`~research_lib.core.order_flow.pressure`.

    Raises
    ------
    OrderFlowInputError
        A rule that does not fit the input, a quote rule without quotes, quotes with bar input, a date the
        input does not hold.
    IntradayFileError
        A bad or missing file (from the readers).
    """
    path = Path(path)
    try:
        day = None if date in (None, "all") else pd.Timestamp(date).date()
    except (TypeError, ValueError) as exc:
        raise OrderFlowInputError(f"date must be YYYY-MM-DD, a date or 'all', got {date!r}") from exc
    params = dict(k=k, window=window, min_periods=min_periods, pressure_window=pressure_window)
    if _is_trade_input(path):
        rule = rule or ("lee_ready" if quotes is not None else "tick")
        if rule not in TRADE_FILE_RULES:
            raise OrderFlowInputError(f"rule {rule!r} is for bar files; tick trades take {', '.join(TRADE_FILE_RULES)}")
        if rule != "tick" and quotes is None:
            raise OrderFlowInputError(f"rule {rule!r} needs quotes (--quotes: a 1-second quote zip or folder)")
        return _trade_flow(path, quotes, rule, day, bar, quote_lag, params)
    rule = rule or "bvc"
    if rule not in BAR_FILE_RULES:
        raise OrderFlowInputError(f"rule {rule!r} needs tick trades; a bar file takes {', '.join(BAR_FILE_RULES)}")
    if quotes is not None:
        raise OrderFlowInputError("quotes are for tick trade input, not for a bar file")
    bars = read_bars(path)
    if day is not None:
        bars = bars[bars["session"] == day].reset_index(drop=True)
        if bars.empty:
            raise OrderFlowInputError(f"{path}: no regular-hours bars on {day}")
    flow = bar_flow_from_bars(bars, rule, **params)
    sessions = session_flow(flow).assign(unsigned_trades=None, suspicious_dropped=None, rule=rule, source=str(path))
    return FlowRun(sessions[list(FLOW_COLUMNS)], flow, rule, "bars")


def _trade_flow(path: Path, quotes, rule: str, day, bar: str, quote_lag: str, params: dict) -> FlowRun:
    files = tick_files(path)
    if day is not None:
        files = [f for f in files if file_date(f) == day]
        if not files:
            raise OrderFlowInputError(f"{path}: no trade file for {day}")
    by_date = {}
    if quotes is not None:
        by_date = {file_date(q): q for q in quote_files(quotes)}
    rows, bars = [], []
    for f in files:
        trades = read_trades(f)
        d = dt.date.fromisoformat(trades.attrs["date"])
        if rule == "tick":
            signs = sign_trades(trades["price"], "tick", session=trades["session"])
        else:
            if d not in by_date:
                raise IntradayFileError(f"no quote file for {d} (needed by rule {rule!r})", path=quotes)
            q = read_quote_bars(by_date[d], regular_hours=False)
            b, a = prevailing_quote(trades["ts"], q["ts"], q["bid"], q["ask"], lag=quote_lag,
                                    trade_session=trades["session"], quote_session=q["session"])
            signs = sign_trades(trades["price"], rule, b, a, trades["session"])
        flow = bar_flow(trades, signs, bar, **params)
        summary = session_flow(flow)
        summary["unsigned_trades"] = int(np.count_nonzero(signs == 0))
        summary["suspicious_dropped"] = trades.attrs["suspicious_dropped"]
        summary["source"] = str(f)
        rows.append(summary)
        bars.append(flow)
    sessions = pd.concat(rows, ignore_index=True).assign(rule=rule)
    return FlowRun(sessions[list(FLOW_COLUMNS)], pd.concat(bars, ignore_index=True), rule, "trades")
