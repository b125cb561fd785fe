"""The SQLite paper ledger: :class:`PaperLedger`.

One file (default ``<data root>/paper.sqlite``) holds the accounts, orders, fills, positions and their legs, marks,
closed trades, equity snapshots, per-strategy statistics and the simulated broker's journal. The conventions (signs,
units, cash) are those of :mod:`research_lib.records.paper.records`; the tables and migrations are in
:mod:`research_lib.records.paper.schema`.

Safety
    WAL journal, ``synchronous=FULL`` (``durable=False``: ``NORMAL``), foreign keys on, writers wait up to
    ``timeout`` seconds for one another. Every state change is one ``BEGIN IMMEDIATE`` transaction: a process
    killed at any moment leaves either all of a change or none of it. An order lives in two phases,
    :meth:`PaperLedger.submit_order` (recorded ``submitted`` before it goes to the broker) and
    :meth:`PaperLedger.record_fill` or :meth:`PaperLedger.reject_order` (its outcome); a crash between the two
    leaves the order ``submitted``, and :meth:`PaperLedger.reconcile` settles it from the broker's answer. Both
    phases are idempotent on the client order id, so a caller that does not know whether its last call went
    through can simply make it again.

Times
    Stored as UTC microseconds (and ISO text in New York for people); returned as New York timestamps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import numbers
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from research_lib.core.exits import EXIT_REASONS
from research_lib.core.sizing import TradeStats
from research_lib.errors import (
    DecisionError,
    LedgerError,
    LedgerSchemaError,
    MarkError,
    OrderError,
    PaperAccountError,
    PositionNotFoundError,
)
from research_lib.records.decisions.records import _from_us, _now, _ny, _utc_us
from research_lib.records.paper.records import (
    MULTIPLIER,
    ORDER_KINDS,
    ORDER_STATUSES,
    Account,
    ClosedTrade,
    Execution,
    LegFill,
    LegOrder,
    Mark,
    Order,
    OrderRequest,
    Position,
    PositionLeg,
    ReconcileReport,
)
from research_lib.records.paper.schema import (
    DB_NAME,
    MIGRATIONS,
    REBUILD_STATS_SQL,
    SCHEMA_V1,
    SCHEMA_VERSION,
    STATS_SELECT_SQL,
)
from research_lib.records.sqlite import Migrations, SQLiteFile

__all__ = ["CLOSED_TRADE_COLUMNS", "EQUITY_COLUMNS", "FILL_COLUMNS", "MARK_COLUMNS", "NOT_EXECUTED",
           "ORDER_COLUMNS", "STATS_COLUMNS", "PaperLedger"]

#: Columns of :meth:`PaperLedger.orders`.
ORDER_COLUMNS = ("order_id", "client_order_id", "kind", "strategy", "contracts", "status", "legs", "position_id",
                 "broker_order_id", "max_loss", "decision_id", "reason", "reject_reason", "created_at",
                 "updated_at")
#: Columns of :meth:`PaperLedger.fills`.
FILL_COLUMNS = ("fill_id", "position_id", "order_id", "client_order_id", "kind", "leg_index", "leg", "quantity",
                "contracts", "price", "commission", "cash_flow", "bid", "ask", "quote_time", "source", "filled_at",
                "broker_order_id", "model")
#: Columns of :meth:`PaperLedger.marks`.
MARK_COLUMNS = ("mark_id", "position_id", "marked_at", "source", "mark", "mark_natural", "unrealized_pnl",
                "pnl_pct", "dte", "leg_mids", "missing")
#: Columns of :meth:`PaperLedger.closed_trades`.
CLOSED_TRADE_COLUMNS = ("position_id", "strategy", "contracts", "opened_at", "closed_at", "entry_price",
                        "exit_price", "exit_reason", "exit_kind", "realized_pnl", "commissions", "max_loss",
                        "return_on_risk", "exit_decision_id", "note")
#: Columns of :meth:`PaperLedger.equity_curve`.
EQUITY_COLUMNS = ("at", "cash", "positions_value", "equity", "open_risk", "realized_pnl", "unrealized_pnl")
#: Columns of :meth:`PaperLedger.strategy_stats`.
STATS_COLUMNS = ("strategy", "n_trades", "n_rated", "wins", "win_rate", "avg_win", "avg_loss", "expectancy",
                 "total_pnl")
#: The reason :meth:`PaperLedger.reconcile` gives an order the broker never had.
NOT_EXECUTED = "not executed: the process stopped before the broker had it"

_MAX_NAME = 64
_MAX_ID = 128
#: The cash check's tolerance: 1e-6 dollars, plus the rounding a sum of n fills can carry (n x 1e-15 x the sum of
#: the magnitudes: an account that lives for years of fills is not flagged for floating-point noise).
_CASH_TOL = 1e-6
_ROUNDING = 1e-15
_STAT_TOL = 1e-9


# ------------------------------------------------------------------------------------------------------------
# validation of what comes in


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _finite(error: type[Exception], where: str, value: Any, *, lo: float | None = None,
            lo_open: bool = False) -> float:
    """``value`` as a finite float (>= or > ``lo``), else ``error`` naming ``where`` and the value."""
    ok = _real(value) and math.isfinite(float(value))
    if ok and lo is not None:
        ok = float(value) > lo if lo_open else float(value) >= lo
    if not ok:
        bound = "" if lo is None else f" {'>' if lo_open else '>='} {lo:g}"
        raise error(f"{where}={value!r}: must be a finite number{bound}")
    return float(value)


def _whole(error: type[Exception], where: str, value: Any, *, lo: int | None = None, nonzero: bool = False) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if ok and lo is not None:
        ok = value >= lo
    if ok and nonzero:
        ok = value != 0
    if not ok:
        bound = f" >= {lo}" if lo is not None else (" other than 0" if nonzero else "")
        raise error(f"{where}={value!r}: must be a whole number{bound}")
    return int(value)


def _word(error: type[Exception], where: str, value: Any, *, optional: bool = False,
          max_len: int | None = None) -> str | None:
    """A non-empty string without surrounding blanks (stripped), or None when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise error(f"{where}={value!r}: must be a non-empty string" + (" or None" if optional else ""))
    text = value.strip()
    if max_len is not None and len(text) > max_len:
        raise error(f"{where}={value!r}: longer than {max_len} characters")
    return text


def _time(error: type[Exception], where: str, value: Any) -> pd.Timestamp:
    """A New York timestamp to the microsecond (naive = New York), else ``error`` naming ``where``."""
    try:
        return _ny(value, where)
    except DecisionError as exc:
        raise error(str(exc)) from None


def _account_name(name: Any) -> str:
    return _word(PaperAccountError, "account", name, max_len=_MAX_NAME)  # type: ignore[return-value]


def _client_id(value: Any) -> str:
    return _word(OrderError, "client_order_id", value, max_len=_MAX_ID)  # type: ignore[return-value]


def _leg(where: str, leg: Any) -> LegOrder:
    if not isinstance(leg, LegOrder):
        raise OrderError(f"{where} is a {type(leg).__name__}, not a LegOrder")
    exp = leg.expiration
    if not isinstance(exp, dt.date) or isinstance(exp, dt.datetime):
        raise OrderError(f"{where}.expiration={exp!r}: must be a datetime.date")
    if leg.settlement not in ("AM", "PM"):
        raise OrderError(f"{where}.settlement={leg.settlement!r}: must be 'AM' or 'PM'")
    if leg.right not in ("C", "P"):
        raise OrderError(f"{where}.right={leg.right!r}: must be 'C' or 'P'")
    bid = _finite(OrderError, f"{where}.bid", leg.bid, lo=0.0)
    ask = _finite(OrderError, f"{where}.ask", leg.ask, lo=0.0)
    if ask < bid:
        raise OrderError(f"{where}: ask {ask!r} is below bid {bid!r}")
    return LegOrder(root=_word(OrderError, f"{where}.root", leg.root), expiration=exp, settlement=leg.settlement,
                    strike=_finite(OrderError, f"{where}.strike", leg.strike, lo=0.0, lo_open=True),
                    right=leg.right, quantity=_whole(OrderError, f"{where}.quantity", leg.quantity, nonzero=True),
                    bid=bid, ask=ask, quote_time=_time(OrderError, f"{where}.quote_time", leg.quote_time),
                    source=_word(OrderError, f"{where}.source", leg.source))


def _request(req: Any) -> OrderRequest:
    """The request with every field checked and normalised (OrderError naming the field)."""
    if not isinstance(req, OrderRequest):
        raise OrderError(f"an order must be an OrderRequest, got {type(req).__name__}")
    cid = _client_id(req.client_order_id)
    where = f"order {cid}"
    account = _account_name(req.account)
    if req.kind not in ORDER_KINDS:
        raise OrderError(f"{where}: kind={req.kind!r}: must be one of {', '.join(ORDER_KINDS)}")
    if not isinstance(req.legs, tuple | list) or not req.legs:
        raise OrderError(f"{where}: legs={req.legs!r}: must be a non-empty tuple of LegOrder")
    legs = tuple(_leg(f"{where}: legs[{i}]", leg) for i, leg in enumerate(req.legs))
    max_loss = None if req.max_loss is None else _finite(OrderError, f"{where}: max_loss", req.max_loss, lo=0.0,
                                                         lo_open=True)
    position_id = None
    reason = _word(OrderError, f"{where}: reason", req.reason, optional=True)
    if req.kind == "open":
        if req.position_id is not None:
            raise OrderError(f"{where}: position_id={req.position_id!r}: an open order opens a new position "
                             "(give position_id only to a close)")
    else:
        position_id = _whole(OrderError, f"{where}: position_id", req.position_id, lo=1)
        if max_loss is not None:
            raise OrderError(f"{where}: max_loss={max_loss!r}: a close takes the position's max loss")
        if reason is not None and reason not in EXIT_REASONS:
            raise OrderError(f"{where}: reason={reason!r}: a close's reason must be one of "
                             f"{', '.join(EXIT_REASONS)}")
    return OrderRequest(account=account, client_order_id=cid, kind=req.kind,
                        strategy=_word(OrderError, f"{where}: strategy", req.strategy),  # type: ignore[arg-type]
                        contracts=_whole(OrderError, f"{where}: contracts", req.contracts, lo=1), legs=legs,
                        created_at=_time(OrderError, f"{where}: created_at", req.created_at),
                        position_id=position_id, max_loss=max_loss,
                        decision_id=_word(OrderError, f"{where}: decision_id", req.decision_id, optional=True),
                        reason=reason)


def _execution(where: str, ex: Any, n_legs: int | None = None) -> Execution:
    if not isinstance(ex, Execution):
        raise OrderError(f"{where}: an execution must be an Execution, got {type(ex).__name__}")
    if not isinstance(ex.legs, tuple | list) or not ex.legs:
        raise OrderError(f"{where}: execution legs={ex.legs!r}: must be a non-empty tuple of LegFill")
    if n_legs is not None and len(ex.legs) != n_legs:
        raise OrderError(f"{where}: the execution has {len(ex.legs)} legs, the order {n_legs}")
    legs = []
    for i, leg in enumerate(ex.legs):
        if not isinstance(leg, LegFill):
            raise OrderError(f"{where}: execution legs[{i}] is a {type(leg).__name__}, not a LegFill")
        legs.append(LegFill(price=_finite(OrderError, f"{where}: execution legs[{i}].price", leg.price, lo=0.0),
                            commission=_finite(OrderError, f"{where}: execution legs[{i}].commission",
                                               leg.commission, lo=0.0)))
    return Execution(broker_order_id=_word(OrderError, f"{where}: broker_order_id",  # type: ignore[arg-type]
                                           ex.broker_order_id, max_len=_MAX_ID),
                     legs=tuple(legs), filled_at=_time(OrderError, f"{where}: filled_at", ex.filled_at),
                     model=_word(OrderError, f"{where}: model", ex.model))  # type: ignore[arg-type]


def _differences(order: Order, req: OrderRequest) -> list[str]:
    """What differs between a stored order and a (normalised) request with its client id (``created_at`` is not
    compared: a retry made later is the same order)."""
    out = []
    fields = ["account", "kind", "strategy", "contracts", "max_loss", "decision_id", "reason"]
    if req.kind == "close" or order.kind == "close":
        fields.append("position_id")
    for f in fields:
        old, new = getattr(order, f), getattr(req, f)
        if old != new:
            out.append(f"{f} {old!r} (recorded) vs {new!r}")
    if len(order.legs) != len(req.legs):
        out.append(f"{len(order.legs)} legs (recorded) vs {len(req.legs)}")
    else:
        for i, (a, b) in enumerate(zip(order.legs, req.legs, strict=True)):
            for f in dataclasses.fields(LegOrder):
                old, new = getattr(a, f.name), getattr(b, f.name)
                if old != new:
                    out.append(f"legs[{i}].{f.name} {old!r} (recorded) vs {new!r}")
    return out


# ------------------------------------------------------------------------------------------------------------
# storage helpers


def _db(x: float | None) -> float | None:
    """A float for SQLite: None for NaN (SQLite has no NaN)."""
    return None if x is None or math.isnan(x) else float(x)


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _stamp_now() -> tuple[int, str]:
    now = _now()
    return _utc_us(now), now.isoformat()


def _legs_json(legs: Sequence[LegOrder]) -> str:
    return json.dumps([{"root": leg.root, "expiration": leg.expiration.isoformat(), "settlement": leg.settlement,
                        "strike": leg.strike, "right": leg.right, "quantity": leg.quantity, "bid": leg.bid,
                        "ask": leg.ask, "quote_us": _utc_us(leg.quote_time), "source": leg.source}
                       for leg in legs], allow_nan=False, separators=(",", ":"))


def _legs_from_json(text: str) -> tuple[LegOrder, ...]:
    return tuple(LegOrder(root=d["root"], expiration=dt.date.fromisoformat(d["expiration"]),
                          settlement=d["settlement"], strike=float(d["strike"]), right=d["right"],
                          quantity=int(d["quantity"]), bid=float(d["bid"]), ask=float(d["ask"]),
                          quote_time=_from_us(d["quote_us"]), source=d["source"]) for d in json.loads(text))


def _times(us: pd.Series) -> pd.Series:
    """Integer UTC microseconds (None allowed) as New York timestamps (NaT for None)."""
    return pd.to_datetime(pd.to_numeric(us, errors="raise").astype("Int64"), unit="us",
                          utc=True).dt.tz_convert("America/New_York")


def _frame(rows: Sequence[sqlite3.Row], columns: Sequence[str], *, times: dict[str, str] | None = None,
           floats: Sequence[str] = (), ints: Sequence[str] = (), nullable_ints: Sequence[str] = ()) -> pd.DataFrame:
    """Rows as a DataFrame with ``columns`` (kept when empty): ``times`` maps a column to the integer microsecond
    column it is made from, ``floats`` become float64 (NaN for NULL), ``ints`` int64, ``nullable_ints`` Int64 (NA
    for NULL); a column the rows lack is None (the caller fills it)."""
    times = times or {}
    raw = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(rows[0].keys()) if rows else [])
    df = pd.DataFrame(index=range(len(rows)))
    for col in columns:
        if col in times:
            src = raw[times[col]] if rows else pd.Series([], dtype="int64")
            df[col] = _times(src)
        elif col in raw:
            df[col] = raw[col].to_numpy(dtype=object)
        else:
            df[col] = pd.Series([None] * len(rows), dtype=object)
    for col in floats:
        df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
    for col in ints:
        df[col] = df[col].astype("int64")
    for col in nullable_ints:
        df[col] = pd.to_numeric(df[col], errors="raise").astype("Int64")
    return df


def _stats_close(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Two statistics rows ``(n_trades, n_rated, wins, sum_win, sum_loss, total_pnl)`` agree (sums to 1e-9)."""
    if tuple(a[:3]) != tuple(b[:3]):
        return False
    return all(abs(x - y) <= _STAT_TOL * max(1.0, abs(x), abs(y)) for x, y in zip(a[3:], b[3:], strict=True))


def _stats_mismatches(conn: sqlite3.Connection) -> list[tuple[str, str, Any, Any]]:
    """``(account name, strategy, stored, recomputed)`` for every statistics row that differs from the closed
    trades' (None for a row missing on one side); rows are ``(n_trades, n_rated, wins, sum_win, sum_loss,
    total_pnl)``."""
    stored = {(r[0], r[1]): tuple(r[2:]) for r in conn.execute(
        "SELECT account_id, strategy, n_trades, n_rated, wins, sum_win, sum_loss, total_pnl FROM strategy_stats")}
    fresh = {(r[0], r[1]): tuple(r[2:]) for r in conn.execute(STATS_SELECT_SQL)}
    names = dict(conn.execute("SELECT account_id, name FROM accounts").fetchall())
    return [(names.get(k[0], str(k[0])), k[1], stored.get(k), fresh.get(k))
            for k in sorted(stored.keys() | fresh.keys())
            if k not in stored or k not in fresh or not _stats_close(stored[k], fresh[k])]


class PaperLedger(SQLiteFile):
    """The paper-trading ledger in one SQLite file (see the module docstring for the guarantees).

    Parameters
    ----------
    path : path-like, optional
        The SQLite file; default ``<data root>/paper.sqlite`` (``$RESEARCH_LIB_DATA`` or ``data/``). Created, with
        its folder, when missing; an older schema is migrated (one transaction).
    timeout : float, default 30
        Seconds a writer waits for another one before failing (SQLite's busy timeout).
    durable : bool, default True
        ``synchronous=FULL``: a change is on disk when the call returns. False (``NORMAL``): as atomic and
        crash-safe, but a power cut may lose the last changes committed before it (never half of one).

    Raises
    ------
    LedgerError
        The file is a folder, not SQLite, or not a paper ledger (it holds other tables).
    LedgerSchemaError
        The file's schema is newer than this research_lib writes, or inconsistent.
    """

    KIND = "paper ledger"
    DB_NAME = DB_NAME
    TABLES = frozenset({"schema_version", "accounts", "orders", "positions"})
    ROW_FACTORY = sqlite3.Row

    def _schema(self) -> tuple[int, Sequence[str], Migrations]:
        return SCHEMA_VERSION, SCHEMA_V1, MIGRATIONS

    def _file_error(self, message: str) -> LedgerError:
        return LedgerError(message, path=self.path)

    def _schema_error(self, message: str, found: int) -> LedgerSchemaError:
        return LedgerSchemaError(message, path=self.path, found=found, supported=SCHEMA_VERSION)

    def _argument_error(self, message: str) -> LedgerError:
        return LedgerError(message, path=self.path)

    def __enter__(self) -> PaperLedger:
        return self

    # -- accounts ------------------------------------------------------------------------------------------

    @staticmethod
    def _account_from_row(r: sqlite3.Row) -> Account:
        return Account(name=r["name"], starting_cash=float(r["starting_cash"]), cash=float(r["cash"]),
                       created_at=_from_us(r["created_us"]))

    @staticmethod
    def _account_row(conn: sqlite3.Connection, name: Any) -> sqlite3.Row:
        key = _account_name(name)
        row = conn.execute("SELECT * FROM accounts WHERE name = ?", (key,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM accounts ORDER BY name")]
            raise PaperAccountError(f"no paper account {key!r}; known: {', '.join(known) or 'none'} "
                                    "(create one with ensure_account)")
        return row

    def ensure_account(self, name: str, cash: float) -> Account:
        """The account ``name``, created with ``cash`` dollars (its starting cash) when missing.

        The name is stripped of surrounding blanks. An existing account is returned as it is (``cash`` is checked
        but not applied: :meth:`reset_account` changes the cash).

        Raises
        ------
        PaperAccountError
            ``name`` empty or longer than 64 characters; ``cash`` not a finite number > 0.
        """
        key = _account_name(name)
        amount = _finite(PaperAccountError, "cash", cash, lo=0.0, lo_open=True)
        with self._write() as conn:
            row = conn.execute("SELECT * FROM accounts WHERE name = ?", (key,)).fetchone()
            if row is None:
                us, iso = _stamp_now()
                conn.execute("INSERT INTO accounts (name, starting_cash, cash, created_us, created_at) "
                             "VALUES (?, ?, ?, ?, ?)", (key, amount, amount, us, iso))
                row = conn.execute("SELECT * FROM accounts WHERE name = ?", (key,)).fetchone()
        return self._account_from_row(row)

    def account(self, name: str) -> Account:
        """The account ``name``; :class:`PaperAccountError` listing the known names when there is none."""
        with self._connect() as conn:
            return self._account_from_row(self._account_row(conn, name))

    def accounts(self) -> list[Account]:
        """Every account, by name."""
        with self._connect() as conn:
            return [self._account_from_row(r) for r in conn.execute("SELECT * FROM accounts ORDER BY name")]

    def reset_account(self, name: str, cash: float | None = None) -> Account:
        """Start the account afresh, in one transaction: its orders, fills, positions and legs, marks, closed
        trades, equity snapshots, statistics and the broker journal's entries of its orders are deleted, and
        ``cash = starting_cash = cash`` (None: the old starting cash).

        Raises
        ------
        PaperAccountError
            No such account, or ``cash`` not a finite number > 0.
        """
        amount = None if cash is None else _finite(PaperAccountError, "cash", cash, lo=0.0, lo_open=True)
        with self._write() as conn:
            row = self._account_row(conn, name)
            aid = row["account_id"]
            conn.execute("PRAGMA defer_foreign_keys = ON")  # positions and orders refer to each other
            mine = "SELECT position_id FROM positions WHERE account_id = ?"
            for table in ("marks", "fills", "position_legs", "closed_trades"):
                conn.execute(f"DELETE FROM {table} WHERE position_id IN ({mine})", (aid,))
            conn.execute("DELETE FROM broker_journal WHERE client_order_id IN "
                         "(SELECT client_order_id FROM orders WHERE account_id = ?)", (aid,))
            for table in ("positions", "orders", "equity", "strategy_stats"):
                conn.execute(f"DELETE FROM {table} WHERE account_id = ?", (aid,))
            start = float(row["starting_cash"]) if amount is None else amount
            conn.execute("UPDATE accounts SET cash = ?, starting_cash = ? WHERE account_id = ?", (start, start, aid))
            row = conn.execute("SELECT * FROM accounts WHERE account_id = ?", (aid,)).fetchone()
        return self._account_from_row(row)

    # -- orders --------------------------------------------------------------------------------------------

    _ORDER_SQL = "SELECT o.*, a.name AS account FROM orders o JOIN accounts a ON a.account_id = o.account_id"

    @staticmethod
    def _order_from_row(r: sqlite3.Row) -> Order:
        return Order(order_id=r["order_id"], account=r["account"], client_order_id=r["client_order_id"],
                     kind=r["kind"], strategy=r["strategy"], contracts=r["contracts"], status=r["status"],
                     legs=_legs_from_json(r["legs"]), created_at=_from_us(r["created_us"]),
                     updated_at=_from_us(r["updated_us"]), position_id=r["position_id"],
                     broker_order_id=r["broker_order_id"],
                     max_loss=None if r["max_loss"] is None else float(r["max_loss"]), decision_id=r["decision_id"],
                     reason=r["reason"])

    def _order_row(self, conn: sqlite3.Connection, cid: str) -> sqlite3.Row | None:
        return conn.execute(f"{self._ORDER_SQL} WHERE o.client_order_id = ?", (cid,)).fetchone()

    def _same_or_raise(self, row: sqlite3.Row, req: OrderRequest) -> Order:
        order = self._order_from_row(row)
        diff = _differences(order, req)
        if diff:
            raise OrderError(f"client order id {req.client_order_id!r} is already used by a different order: "
                             + "; ".join(diff))
        return order

    def submit_order(self, request: OrderRequest) -> Order:
        """Record an order before it goes to the broker (phase 1 of 2): status ``submitted``.

        A close must name an open position of the same account, with its legs (contract and quantity, in order)
        and contracts; only one close of a position can be ``submitted`` at a time.

        Idempotent on ``client_order_id``: the same request again returns the order recorded first, whatever its
        status now (``created_at`` is not compared: a retry made later is the same order).

        Raises
        ------
        OrderError
            A malformed field (named), a close that does not match its position, another close of the position
            in flight, or the client order id already used for a different order (naming what differs).
        PaperAccountError
            No such account.
        PositionNotFoundError
            A close of a position that does not exist.
        """
        req = _request(request)
        cid = req.client_order_id
        with self._connect() as conn:  # the common retry: nothing to write
            row = self._order_row(conn, cid)
        if row is not None:
            return self._same_or_raise(row, req)
        with self._write() as conn:
            row = self._order_row(conn, cid)
            if row is not None:  # another process recorded it since
                return self._same_or_raise(row, req)
            acct = self._account_row(conn, req.account)
            if req.kind == "close":
                self._check_close(conn, req, acct["account_id"])
            us, iso = _utc_us(req.created_at), req.created_at.isoformat()
            conn.execute(
                "INSERT INTO orders (account_id, client_order_id, kind, strategy, contracts, status, legs, "
                "position_id, max_loss, decision_id, reason, created_us, created_at, updated_us, updated_at, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, 'submitted', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (acct["account_id"], cid, req.kind, req.strategy, req.contracts, _legs_json(req.legs),
                 req.position_id, req.max_loss, req.decision_id, req.reason, us, iso, us, iso,
                 pd.Timestamp.now(tz="UTC").isoformat()))
            return self._order_from_row(self._order_row(conn, cid))

    def _check_close(self, conn: sqlite3.Connection, req: OrderRequest, account_id: int) -> None:
        where = f"close order {req.client_order_id}"
        pos = self._position_in(conn, req.position_id)  # type: ignore[arg-type]
        if pos.account != req.account:
            raise OrderError(f"{where}: position {pos.position_id} belongs to account {pos.account!r}, "
                             f"not {req.account!r}")
        if pos.status != "open":
            raise OrderError(f"{where}: position {pos.position_id} is already closed")
        if req.contracts != pos.contracts:
            raise OrderError(f"{where}: contracts={req.contracts}: the position holds {pos.contracts}")
        mine = [(leg.root, leg.expiration, leg.settlement, leg.strike, leg.right, leg.quantity) for leg in pos.legs]
        given = [(leg.root, leg.expiration, leg.settlement, leg.strike, leg.right, leg.quantity) for leg in req.legs]
        if mine != given:
            raise OrderError(f"{where}: legs {[leg.label for leg in req.legs]} are not the position's legs "
                             f"{[leg.label for leg in pos.legs]} (same contracts and quantities, in order)")
        other = conn.execute("SELECT client_order_id FROM orders WHERE position_id = ? AND kind = 'close' AND "
                             "status = 'submitted'", (pos.position_id,)).fetchone()
        if other is not None:
            raise OrderError(f"{where}: close order {other[0]!r} of position {pos.position_id} is still waiting "
                             "for its outcome (record its fill or reject it first)")

    def record_fill(self, client_order_id: str, execution: Execution) -> Position | ClosedTrade:
        """Record the broker's execution of a submitted order (phase 2 of 2), in one transaction.

        An open creates the position and its legs (``entry_price = −Σ quantity × fill price``), one fill row per
        leg, and adds ``entry_price × 100 × contracts − commission`` to the cash. A close records its fills, the
        closed trade (``exit_price = −Σ quantity × fill price``, realised P&L net of the entry and exit
        commissions, return on risk), closes the position, pays ``exit_price × 100 × contracts + commission``
        and updates the strategy's statistics. Both mark the order ``filled`` with the broker's id and take an
        equity snapshot at ``execution.filled_at``.

        Idempotent: an order already filled returns its position (open) or closed trade (close).

        Returns
        -------
        Position or ClosedTrade

        Raises
        ------
        OrderError
            A malformed execution, or one with another number of legs than the order.
        LedgerError
            No order with that id, an order rejected, already filled by another broker order id, or the close
            of a position closed meanwhile (settled).
        """
        cid = _client_id(client_order_id)
        ex = _execution(f"order {cid}", execution)
        with self._write() as conn:
            row = self._order_row(conn, cid)
            if row is None:
                raise LedgerError(f"no order with client order id {cid!r} to fill", path=self.path)
            order = self._order_from_row(row)
            if order.status == "rejected":
                raise LedgerError(f"order {cid!r} was rejected ({row['reject_reason']}): it cannot be filled",
                                  path=self.path)
            if order.status == "filled":
                if order.broker_order_id != ex.broker_order_id:
                    raise LedgerError(f"order {cid!r} is already filled by broker order {order.broker_order_id!r}, "
                                      f"not {ex.broker_order_id!r}", path=self.path)
                return self._outcome(conn, order)
            if len(ex.legs) != len(order.legs):
                raise OrderError(f"order {cid}: the execution has {len(ex.legs)} legs, the order {len(order.legs)}")
            aid = row["account_id"]
            if order.kind == "open":
                pid = self._open_position(conn, order, aid, ex)
            else:
                pid = order.position_id
                pos = self._position_in(conn, pid)  # type: ignore[arg-type]
                if pos.status != "open":
                    raise LedgerError(f"close order {cid!r}: position {pid} is already closed", path=self.path)
                self._insert_fills(conn, pos, order, ex, kind="close", sign=1.0)
                exit_price = -sum(leg.quantity * f.price for leg, f in zip(order.legs, ex.legs, strict=True))
                self._close_position(conn, pos, exit_price=exit_price, commission=ex.commission,
                                     closed_at=ex.filled_at, reason=order.reason or "manual", kind="fill",
                                     close_order_id=order.order_id, decision_id=order.decision_id, note=None)
            conn.execute("UPDATE orders SET status = 'filled', broker_order_id = ?, position_id = ?, updated_us = ?, "
                         "updated_at = ? WHERE order_id = ?",
                         (ex.broker_order_id, pid, _utc_us(ex.filled_at), ex.filled_at.isoformat(), order.order_id))
            self._snapshot(conn, aid, ex.filled_at)
            return self._outcome(conn, self._order_from_row(self._order_row(conn, cid)))

    def _outcome(self, conn: sqlite3.Connection, order: Order) -> Position | ClosedTrade:
        if order.kind == "open":
            return self._position_in(conn, order.position_id)  # type: ignore[arg-type]
        return self._closed_trade_in(conn, order.position_id)  # type: ignore[arg-type]

    def _open_position(self, conn: sqlite3.Connection, order: Order, account_id: int, ex: Execution) -> int:
        entry = -sum(leg.quantity * f.price for leg, f in zip(order.legs, ex.legs, strict=True))
        cur = conn.execute(
            "INSERT INTO positions (account_id, strategy, contracts, entry_price, max_loss, opened_us, opened_at, "
            "status, open_order_id, commissions, decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)",
            (account_id, order.strategy, order.contracts, entry, order.max_loss, _utc_us(ex.filled_at),
             ex.filled_at.isoformat(), order.order_id, ex.commission, order.decision_id))
        pid = int(cur.lastrowid)  # type: ignore[arg-type]
        conn.executemany(
            "INSERT INTO position_legs (position_id, leg_index, root, expiration, settlement, strike, right, "
            "quantity, entry_fill, entry_bid, entry_ask) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(pid, i, leg.root, leg.expiration.isoformat(), leg.settlement, leg.strike, leg.right, leg.quantity,
              f.price, leg.bid, leg.ask) for i, (leg, f) in enumerate(zip(order.legs, ex.legs, strict=True))])
        pos = self._position_in(conn, pid)
        self._insert_fills(conn, pos, order, ex, kind="open", sign=-1.0)
        return pid

    @staticmethod
    def _insert_fills(conn: sqlite3.Connection, pos: Position, order: Order | None, ex: Execution | None, *,
                      kind: str, sign: float, values: Sequence[float] = (), at: pd.Timestamp | None = None) -> None:
        """One fill row per leg, with its cash flow ``sign × quantity × price × 100 × contracts − commission``
        (an open: −1, a close or settlement: +1); the account's cash moves by their sum."""
        rows = []
        for i, leg in enumerate(pos.legs):
            if order is not None and ex is not None:
                q, f = order.legs[i], ex.legs[i]
                price, commission, bid, ask = f.price, f.commission, q.bid, q.ask
                quote_us, source, when, broker, model = (_utc_us(q.quote_time), q.source, ex.filled_at,
                                                         ex.broker_order_id, ex.model)
            else:
                price, commission, bid, ask, quote_us, source = values[i], 0.0, None, None, None, "settlement"
                when, broker, model = at, None, "settlement"
            flow = sign * leg.quantity * price * MULTIPLIER * pos.contracts - commission
            rows.append((pos.position_id, None if order is None else order.order_id, kind, i, leg.quantity,
                         pos.contracts, price, commission, flow, bid, ask, quote_us, source, _utc_us(when),
                         when.isoformat(), broker, model))  # type: ignore[union-attr]
        conn.executemany(
            "INSERT INTO fills (position_id, order_id, kind, leg_index, quantity, contracts, price, commission, "
            "cash_flow, bid, ask, quote_us, source, filled_us, filled_at, broker_order_id, model) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE accounts SET cash = cash + ? WHERE account_id = "
                     "(SELECT account_id FROM positions WHERE position_id = ?)",
                     (sum(r[8] for r in rows), pos.position_id))

    @staticmethod
    def _close_position(conn: sqlite3.Connection, pos: Position, *, exit_price: float, commission: float,
                        closed_at: pd.Timestamp, reason: str, kind: str, close_order_id: int | None,
                        decision_id: str | None, note: str | None) -> None:
        commissions = pos.commissions + commission
        realized = (pos.entry_price - exit_price) * MULTIPLIER * pos.contracts - commissions
        ror = realized / pos.risk if pos.max_loss is not None else None
        conn.execute(
            "INSERT INTO closed_trades (position_id, close_order_id, closed_us, closed_at, exit_price, exit_reason, "
            "exit_kind, realized_pnl, commissions, return_on_risk, exit_decision_id, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pos.position_id, close_order_id, _utc_us(closed_at), closed_at.isoformat(), exit_price, reason, kind,
             realized, commissions, ror, decision_id, note))
        conn.execute("UPDATE positions SET status = 'closed', commissions = ? WHERE position_id = ?",
                     (commissions, pos.position_id))
        rated = ror is not None
        win = rated and ror > 0  # type: ignore[operator]
        conn.execute(
            "INSERT INTO strategy_stats (account_id, strategy, n_trades, n_rated, wins, sum_win, sum_loss, total_pnl) "
            "SELECT account_id, strategy, 1, ?, ?, ?, ?, ? FROM positions WHERE position_id = ? "
            "ON CONFLICT (account_id, strategy) DO UPDATE SET n_trades = n_trades + 1, "
            "n_rated = n_rated + excluded.n_rated, wins = wins + excluded.wins, "
            "sum_win = sum_win + excluded.sum_win, sum_loss = sum_loss + excluded.sum_loss, "
            "total_pnl = total_pnl + excluded.total_pnl",
            (int(rated), int(win), ror if win else 0.0, -ror if rated and not win else 0.0,  # type: ignore[operator]
             realized, pos.position_id))

    def _snapshot(self, conn: sqlite3.Connection, account_id: int, at: pd.Timestamp) -> None:
        """One equity snapshot of the account at ``at``: open positions at their latest known mark (never
        marked: the entry price)."""
        cash = float(conn.execute("SELECT cash FROM accounts WHERE account_id = ?", (account_id,)).fetchone()[0])
        rows = conn.execute(
            "SELECT p.contracts, p.entry_price, p.max_loss, (SELECT m.mark FROM marks m WHERE "
            "m.position_id = p.position_id AND m.mark IS NOT NULL ORDER BY m.marked_us DESC, m.mark_id DESC "
            "LIMIT 1) AS mark FROM positions p WHERE p.account_id = ? AND p.status = 'open'", (account_id,))
        value = unrealized = risk = 0.0
        for r in rows:
            mark = r["entry_price"] if r["mark"] is None else r["mark"]
            value += mark * MULTIPLIER * r["contracts"]
            unrealized += (r["entry_price"] - mark) * MULTIPLIER * r["contracts"]
            risk += (r["max_loss"] or 0.0) * r["contracts"]
        realized = conn.execute("SELECT coalesce(sum(c.realized_pnl), 0) FROM closed_trades c JOIN positions p "
                                "ON p.position_id = c.position_id WHERE p.account_id = ?", (account_id,)).fetchone()[0]
        conn.execute("INSERT INTO equity (account_id, at_us, at, cash, positions_value, equity, open_risk, "
                     "realized_pnl, unrealized_pnl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (account_id, _utc_us(at), at.isoformat(), cash, value, cash - value, risk, float(realized),
                      unrealized))

    def reject_order(self, client_order_id: str, reason: str) -> Order:
        """Record that a submitted order was not executed (phase 2 of 2): status ``rejected``, ``reason`` kept.

        Idempotent: an order already rejected is returned as it is.

        Raises
        ------
        OrderError
            ``reason`` empty.
        LedgerError
            No order with that id, or one already filled.
        """
        cid = _client_id(client_order_id)
        why = _word(OrderError, "reason", reason)
        with self._write() as conn:
            row = self._order_row(conn, cid)
            if row is None:
                raise LedgerError(f"no order with client order id {cid!r} to reject", path=self.path)
            if row["status"] == "filled":
                raise LedgerError(f"order {cid!r} is already filled (broker order {row['broker_order_id']}): it "
                                  "cannot be rejected", path=self.path)
            if row["status"] == "submitted":
                us, iso = _stamp_now()
                conn.execute("UPDATE orders SET status = 'rejected', reject_reason = ?, updated_us = ?, "
                             "updated_at = ? WHERE order_id = ?", (why, us, iso, row["order_id"]))
                row = self._order_row(conn, cid)
            return self._order_from_row(row)

    def settle_position(self, position_id: int, *, settled_at: Any, leg_values: Sequence[float],
                        note: str) -> ClosedTrade:
        """Close an expired position at its legs' settlement values, in one transaction.

        ``exit_price = −Σ quantity × value``, no commission, ``exit_kind`` ``"settlement"``, ``exit_reason``
        ``"expiry"``; one fill row per leg (kind ``settlement``), cash ``+= −exit_price × 100 × contracts``,
        statistics updated, an equity snapshot at ``settled_at``.

        Parameters
        ----------
        position_id : int
        settled_at : timestamp-like
            The settlement's moment (naive = New York).
        leg_values : sequence of float
            Each leg's value per share at settlement (intrinsic value, ≥ 0), in leg order.
        note : str
            How the values were found (``"SPX settlement 6312.4 (SET)"``), kept with the trade.

        Raises
        ------
        PositionNotFoundError
        LedgerError
            The position is closed, or a close order of it is waiting for its outcome.
        OrderError
            ``leg_values`` of another length or not finite ≥ 0, ``settled_at`` not a time, ``note`` not text.
        """
        pid = _whole(OrderError, "position_id", position_id, lo=1)
        at = _time(OrderError, "settled_at", settled_at)
        if not isinstance(note, str):
            raise OrderError(f"note={note!r}: must be a string")
        values = [_finite(OrderError, f"leg_values[{i}]", v, lo=0.0) for i, v in enumerate(leg_values)]
        with self._write() as conn:
            pos = self._position_in(conn, pid)
            if pos.status != "open":
                raise LedgerError(f"position {pid} is already closed: it cannot be settled", path=self.path)
            if len(values) != len(pos.legs):
                raise OrderError(f"leg_values has {len(values)} values, position {pid} has {len(pos.legs)} legs")
            other = conn.execute("SELECT client_order_id FROM orders WHERE position_id = ? AND kind = 'close' "
                                 "AND status = 'submitted'", (pid,)).fetchone()
            if other is not None:
                raise LedgerError(f"position {pid}: close order {other[0]!r} is waiting for its outcome; reconcile "
                                  "before settling", path=self.path)
            self._insert_fills(conn, pos, None, None, kind="settlement", sign=1.0, values=values, at=at)
            exit_price = -sum(leg.quantity * v for leg, v in zip(pos.legs, values, strict=True))
            self._close_position(conn, pos, exit_price=exit_price, commission=0.0, closed_at=at, reason="expiry",
                                 kind="settlement", close_order_id=None, decision_id=None, note=note)
            self._snapshot(conn, conn.execute("SELECT account_id FROM positions WHERE position_id = ?",
                                              (pid,)).fetchone()[0], at)
            return self._closed_trade_in(conn, pid)

    def set_exit_decision(self, position_id: int, decision_id: str) -> None:
        """Tie a closed trade to its EXIT decision in the decision log.

        Raises
        ------
        PositionNotFoundError
        LedgerError
            The position is still open.
        """
        pid = _whole(OrderError, "position_id", position_id, lo=1)
        did = _word(OrderError, "decision_id", decision_id)
        with self._write() as conn:
            pos = self._position_in(conn, pid)
            if pos.status != "closed":
                raise LedgerError(f"position {pid} is open: it has no exit to tie a decision to", path=self.path)
            conn.execute("UPDATE closed_trades SET exit_decision_id = ? WHERE position_id = ?", (did, pid))

    def set_entry_decision(self, position_id: int, decision_id: str) -> None:
        """Tie a position to its ENTRY decision in the decision log (:class:`PositionNotFoundError` if none)."""
        pid = _whole(OrderError, "position_id", position_id, lo=1)
        did = _word(OrderError, "decision_id", decision_id)
        with self._write() as conn:
            self._position_in(conn, pid)
            conn.execute("UPDATE positions SET decision_id = ? WHERE position_id = ?", (did, pid))

    # -- marks ---------------------------------------------------------------------------------------------

    def record_marks(self, account: str, marks: Sequence[Mark], *, at: Any) -> None:
        """Store marks of the account's open positions and one equity snapshot at ``at``, in one transaction.

        The snapshot values each open position at its latest known mark: one not in ``marks``, or marked NaN
        (a leg missing from the chain), keeps its previous mark (its entry price when it never had one).

        Raises
        ------
        PaperAccountError
            No such account.
        MarkError
            A mark of a position that is closed, of another account or unknown, one with as many leg mids as the
            position has legs, two marks of one position, or a malformed field (named).
        """
        at_ts = _time(MarkError, "at", at)
        if isinstance(marks, Mark) or not isinstance(marks, Sequence):
            raise MarkError(f"marks must be a sequence of Mark, got {type(marks).__name__}")
        with self._write() as conn:
            acct = self._account_row(conn, account)
            open_legs = {r[0]: r[1] for r in conn.execute(
                "SELECT p.position_id, count(l.leg_index) FROM positions p LEFT JOIN position_legs l "
                "ON l.position_id = p.position_id WHERE p.account_id = ? AND p.status = 'open' "
                "GROUP BY p.position_id", (acct["account_id"],))}
            rows, seen = [], set()
            recorded = pd.Timestamp.now(tz="UTC").isoformat()
            for i, m in enumerate(marks):
                rows.append(self._mark_row(i, m, open_legs, account, seen) + (recorded,))
            conn.executemany(
                "INSERT INTO marks (position_id, marked_us, marked_at, source, mark, mark_natural, unrealized_pnl, "
                "pnl_pct, dte, leg_mids, missing, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._snapshot(conn, acct["account_id"], at_ts)

    @staticmethod
    def _mark_row(i: int, m: Any, open_legs: dict[int, int], account: str, seen: set[int]) -> tuple[Any, ...]:
        where = f"marks[{i}]"
        if not isinstance(m, Mark):
            raise MarkError(f"{where} is a {type(m).__name__}, not a Mark")
        pid = m.position_id
        if pid not in open_legs:
            raise MarkError(f"{where}: position {pid!r} is not an open position of account {account!r} "
                            f"(open: {sorted(open_legs) or 'none'})")
        if pid in seen:
            raise MarkError(f"{where}: position {pid} is marked twice in one call")
        seen.add(pid)
        when = _time(MarkError, f"{where}.marked_at", m.marked_at)
        source = _word(MarkError, f"{where}.source", m.source)

        def num(name: str) -> float | None:
            v = getattr(m, name)
            if not _real(v) or math.isinf(float(v)):
                raise MarkError(f"{where}.{name}={v!r}: must be a finite number or NaN (position {pid})")
            return _db(float(v))

        if not isinstance(m.leg_mids, tuple | list) or len(m.leg_mids) != open_legs[pid]:
            raise MarkError(f"{where}.leg_mids={m.leg_mids!r}: position {pid} has {open_legs[pid]} legs")
        mids = []
        for k, v in enumerate(m.leg_mids):
            if not _real(v) or math.isinf(float(v)):
                raise MarkError(f"{where}.leg_mids[{k}]={v!r}: must be a finite number or NaN (position {pid})")
            mids.append(_db(float(v)))
        if not isinstance(m.missing, tuple | list) or not all(isinstance(s, str) for s in m.missing):
            raise MarkError(f"{where}.missing={m.missing!r}: must be a tuple of leg labels")
        dte = _whole(MarkError, f"{where}.dte", m.dte)
        return (pid, _utc_us(when), when.isoformat(), source, num("mark"), num("mark_natural"),
                num("unrealized_pnl"), num("pnl_pct"), dte, json.dumps(mids), json.dumps(list(m.missing)))

    # -- the simulated broker's journal --------------------------------------------------------------------

    def journal_execution(self, client_order_id: str, execution: Execution) -> None:
        """Keep the simulated broker's execution of an order (idempotent: the same execution again is a no-op).

        Raises
        ------
        LedgerError
            Another execution is already journalled under that id (naming what differs), or the ledger's order
            with that id was rejected (the broker must not execute what the ledger gave up on: checked in the
            same transaction, so :meth:`reconcile` and the broker never both win).
        OrderError
            A malformed execution.
        """
        cid = _client_id(client_order_id)
        ex = _execution(f"order {cid}", execution)
        legs = json.dumps([[f.price, f.commission] for f in ex.legs], allow_nan=False)
        with self._write() as conn:
            old = conn.execute("SELECT * FROM broker_journal WHERE client_order_id = ?", (cid,)).fetchone()
            if old is not None:
                mine = self._journal_from_row(old)
                if mine != ex:
                    diff = [f.name for f in dataclasses.fields(Execution)
                            if getattr(mine, f.name) != getattr(ex, f.name)]
                    raise LedgerError(f"the broker journal already holds another execution of order {cid!r} "
                                      f"(differs in {', '.join(diff)})", path=self.path)
                return
            status = conn.execute("SELECT status, reject_reason FROM orders WHERE client_order_id = ?",
                                  (cid,)).fetchone()
            if status is not None and status[0] == "rejected":
                raise LedgerError(f"order {cid!r} was rejected ({status[1]}): the broker must not execute it",
                                  path=self.path)
            conn.execute("INSERT INTO broker_journal (client_order_id, broker_order_id, legs, filled_us, filled_at, "
                         "model, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (cid, ex.broker_order_id, legs, _utc_us(ex.filled_at), ex.filled_at.isoformat(), ex.model,
                          pd.Timestamp.now(tz="UTC").isoformat()))

    @staticmethod
    def _journal_from_row(r: sqlite3.Row) -> Execution:
        return Execution(broker_order_id=r["broker_order_id"],
                         legs=tuple(LegFill(float(p), float(c)) for p, c in json.loads(r["legs"])),
                         filled_at=_from_us(r["filled_us"]), model=r["model"])

    def journal_lookup(self, client_order_id: str) -> Execution | None:
        """The journalled execution of that client order id, or None (the broker never executed it)."""
        cid = _client_id(client_order_id)
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM broker_journal WHERE client_order_id = ?", (cid,)).fetchone()
        return None if row is None else self._journal_from_row(row)

    # -- queries -------------------------------------------------------------------------------------------

    def order(self, client_order_id: str) -> Order:
        """The order with that client id (:class:`~research_lib.errors.OrderError` when there is none)."""
        cid = _client_id(client_order_id)
        with self._connect() as conn:
            row = self._order_row(conn, cid)
        if row is None:
            raise OrderError(f"no order with client order id {cid!r} in {self.path}")
        return self._order_from_row(row)

    def orders(self, account: str, status: str | None = None) -> pd.DataFrame:
        """The account's orders, oldest first (optionally only those of one ``status``).

        Columns :data:`ORDER_COLUMNS`: ``order_id`` int64, ``client_order_id``, ``kind``, ``strategy``,
        ``contracts`` int64, ``status``, ``legs`` (a list of labels ``"-1 SPXW 2026-08-21 6300P"``),
        ``position_id`` Int64 (NA for an open not filled), ``broker_order_id``, ``max_loss`` float (NaN unknown),
        ``decision_id``, ``reason``, ``reject_reason`` (None when absent), ``created_at`` and ``updated_at``
        New York timestamps.
        """
        if status is not None and status not in ORDER_STATUSES:
            raise OrderError(f"status={status!r}: must be one of {', '.join(ORDER_STATUSES)} or None")
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            sql = "SELECT * FROM orders WHERE account_id = ?" + (" AND status = ?" if status else "")
            rows = conn.execute(sql + " ORDER BY created_us, order_id", (aid, status) if status else (aid,)).fetchall()
        df = _frame(rows, ORDER_COLUMNS, times={"created_at": "created_us", "updated_at": "updated_us"},
                    floats=("max_loss",),
                    ints=("order_id", "contracts"), nullable_ints=("position_id",))
        df["legs"] = pd.Series([[leg.label for leg in _legs_from_json(r["legs"])] for r in rows], dtype=object)
        return df

    def _position_in(self, conn: sqlite3.Connection, position_id: int) -> Position:
        r = conn.execute("SELECT p.*, a.name AS account FROM positions p JOIN accounts a "
                         "ON a.account_id = p.account_id WHERE p.position_id = ?", (position_id,)).fetchone()
        if r is None:
            open_ids = [x[0] for x in conn.execute("SELECT position_id FROM positions WHERE status = 'open' "
                                                   "ORDER BY position_id")]
            raise PositionNotFoundError(f"no position {position_id!r} in {self.path}; open positions: "
                                        f"{', '.join(map(str, open_ids)) or 'none'}")
        legs = tuple(PositionLeg(leg_index=x["leg_index"], root=x["root"],
                                 expiration=dt.date.fromisoformat(x["expiration"]), settlement=x["settlement"],
                                 strike=float(x["strike"]), right=x["right"], quantity=x["quantity"],
                                 entry_fill=float(x["entry_fill"]), entry_bid=float(x["entry_bid"]),
                                 entry_ask=float(x["entry_ask"]))
                     for x in conn.execute("SELECT * FROM position_legs WHERE position_id = ? ORDER BY leg_index",
                                           (position_id,)))
        return Position(position_id=r["position_id"], account=r["account"], strategy=r["strategy"],
                        contracts=r["contracts"], entry_price=float(r["entry_price"]),
                        max_loss=None if r["max_loss"] is None else float(r["max_loss"]),
                        opened_at=_from_us(r["opened_us"]), status=r["status"], legs=legs,
                        open_order_id=r["open_order_id"], commissions=float(r["commissions"]),
                        decision_id=r["decision_id"])

    def position(self, position_id: int) -> Position:
        """The position (open or closed) with its legs; :class:`PositionNotFoundError` listing the open ones."""
        pid = _whole(PositionNotFoundError, "position_id", position_id, lo=1)
        with self._connect() as conn:
            return self._position_in(conn, pid)

    def open_positions(self, account: str) -> list[Position]:
        """The account's open positions, oldest first."""
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            ids = [r[0] for r in conn.execute("SELECT position_id FROM positions WHERE account_id = ? AND "
                                              "status = 'open' ORDER BY opened_us, position_id", (aid,))]
            return [self._position_in(conn, pid) for pid in ids]

    def fills(self, account: str) -> pd.DataFrame:
        """The account's fills, one row per leg, in time order.

        Columns :data:`FILL_COLUMNS`: ``fill_id``, ``position_id``, ``order_id`` (Int64, NA for a settlement),
        ``client_order_id`` (None for a settlement), ``kind`` (``open``, ``close``, ``settlement``),
        ``leg_index``, ``leg`` (label), ``quantity`` (signed per unit), ``contracts``, ``price`` (per share),
        ``commission`` and ``cash_flow`` (dollars: what the fill moved into the cash), ``bid``/``ask`` and
        ``quote_time`` of the quote the order was priced from (NaN/NaT for a settlement), ``source``,
        ``filled_at``, ``broker_order_id``, ``model``.
        """
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            rows = conn.execute(
                "SELECT f.*, o.client_order_id, l.root, l.expiration, l.strike, l.right FROM fills f "
                "JOIN positions p ON p.position_id = f.position_id LEFT JOIN orders o ON o.order_id = f.order_id "
                "JOIN position_legs l ON l.position_id = f.position_id AND l.leg_index = f.leg_index "
                "WHERE p.account_id = ? ORDER BY f.filled_us, f.fill_id", (aid,)).fetchall()
        df = _frame(rows, FILL_COLUMNS, times={"quote_time": "quote_us", "filled_at": "filled_us"},
                    floats=("price", "commission", "cash_flow", "bid", "ask"),
                    ints=("fill_id", "position_id", "leg_index", "quantity", "contracts"),
                    nullable_ints=("order_id",))
        df["leg"] = pd.Series([f"{r['quantity']:+d} {r['root']} {r['expiration']} {r['strike']:g}{r['right']}"
                               for r in rows], dtype=object)
        return df

    def marks(self, account: str, position_id: int | None = None) -> pd.DataFrame:
        """The account's marks (or one position's), in time order.

        Columns :data:`MARK_COLUMNS`: ``mark_id``, ``position_id``, ``marked_at``, ``source``, ``mark``,
        ``mark_natural``, ``unrealized_pnl``, ``pnl_pct`` (float, NaN when a leg was missing), ``dte`` (int),
        ``leg_mids`` (a list of floats, NaN for a missing leg), ``missing`` (a list of leg labels).
        """
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            sql = ("SELECT m.* FROM marks m JOIN positions p ON p.position_id = m.position_id "
                   "WHERE p.account_id = ?")
            params: tuple[Any, ...] = (aid,)
            if position_id is not None:
                sql += " AND m.position_id = ?"
                params = (aid, _whole(PositionNotFoundError, "position_id", position_id, lo=1))
            rows = conn.execute(sql + " ORDER BY m.marked_us, m.mark_id", params).fetchall()
        df = _frame(rows, MARK_COLUMNS, times={"marked_at": "marked_us"},
                    floats=("mark", "mark_natural", "unrealized_pnl", "pnl_pct"),
                    ints=("mark_id", "position_id", "dte"))
        df["leg_mids"] = pd.Series([[_nan(v) for v in json.loads(r["leg_mids"])] for r in rows], dtype=object)
        df["missing"] = pd.Series([json.loads(r["missing"]) for r in rows], dtype=object)
        return df

    def latest_marks(self, account: str) -> dict[int, Mark]:
        """The latest mark of each open position of the account that has one (whatever its value: a NaN mark
        says the last chain lacked a leg), by position id."""
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            rows = conn.execute(
                "SELECT m.* FROM marks m JOIN positions p ON p.position_id = m.position_id "
                "WHERE p.account_id = ? AND p.status = 'open' AND m.mark_id = (SELECT m2.mark_id FROM marks m2 "
                "WHERE m2.position_id = m.position_id ORDER BY m2.marked_us DESC, m2.mark_id DESC LIMIT 1)",
                (aid,)).fetchall()
        return {r["position_id"]: Mark(position_id=r["position_id"], marked_at=_from_us(r["marked_us"]),
                                       source=r["source"], mark=_nan(r["mark"]), mark_natural=_nan(r["mark_natural"]),
                                       unrealized_pnl=_nan(r["unrealized_pnl"]), pnl_pct=_nan(r["pnl_pct"]),
                                       dte=r["dte"], leg_mids=tuple(_nan(v) for v in json.loads(r["leg_mids"])),
                                       missing=tuple(json.loads(r["missing"]))) for r in rows}

    _CLOSED_SQL = ("SELECT c.*, p.account_id, p.strategy, p.contracts, p.opened_us, p.entry_price, p.max_loss, "
                   "a.name AS account FROM closed_trades c JOIN positions p ON p.position_id = c.position_id "
                   "JOIN accounts a ON a.account_id = p.account_id")

    @staticmethod
    def _closed_from_row(r: sqlite3.Row) -> ClosedTrade:
        return ClosedTrade(position_id=r["position_id"], account=r["account"], strategy=r["strategy"],
                           contracts=r["contracts"], opened_at=_from_us(r["opened_us"]),
                           closed_at=_from_us(r["closed_us"]), entry_price=float(r["entry_price"]),
                           exit_price=float(r["exit_price"]), exit_reason=r["exit_reason"], exit_kind=r["exit_kind"],
                           realized_pnl=float(r["realized_pnl"]), commissions=float(r["commissions"]),
                           return_on_risk=_nan(r["return_on_risk"]), exit_decision_id=r["exit_decision_id"])

    def _closed_trade_in(self, conn: sqlite3.Connection, position_id: int) -> ClosedTrade:
        r = conn.execute(f"{self._CLOSED_SQL} WHERE c.position_id = ?", (position_id,)).fetchone()
        if r is None:
            self._position_in(conn, position_id)  # raises PositionNotFoundError for an unknown id
            raise PositionNotFoundError(f"position {position_id} is open: it has no closed trade yet")
        return self._closed_from_row(r)

    def closed_trade(self, position_id: int) -> ClosedTrade:
        """The closed trade of a position (:class:`PositionNotFoundError` when unknown or still open)."""
        pid = _whole(PositionNotFoundError, "position_id", position_id, lo=1)
        with self._connect() as conn:
            return self._closed_trade_in(conn, pid)

    def closed_trades(self, account: str) -> pd.DataFrame:
        """The account's closed trades, in the order they closed.

        Columns :data:`CLOSED_TRADE_COLUMNS`: ``position_id`` int64, ``strategy``, ``contracts`` int64,
        ``opened_at``/``closed_at`` New York timestamps, ``entry_price``/``exit_price`` (per unit, credit
        convention), ``exit_reason``, ``exit_kind`` (``fill``/``settlement``), ``realized_pnl`` and
        ``commissions`` dollars, ``max_loss`` dollars per contract and ``return_on_risk`` (NaN when the max loss is
        unknown), ``exit_decision_id``, ``note`` (None when absent).
        """
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            rows = conn.execute(f"{self._CLOSED_SQL} WHERE p.account_id = ? ORDER BY c.closed_us, c.position_id",
                                (aid,)).fetchall()
        return _frame(rows, CLOSED_TRADE_COLUMNS, times={"opened_at": "opened_us", "closed_at": "closed_us"},
                      floats=("entry_price", "exit_price", "realized_pnl", "commissions", "max_loss",
                              "return_on_risk"), ints=("position_id", "contracts"))

    def equity_curve(self, account: str) -> pd.DataFrame:
        """The account's equity snapshots in time order (one per fill, settlement and :meth:`record_marks`).

        Each snapshot is the account as it stood when it was recorded, stamped with the event's time (the fill's,
        the settlement's, the marks' ``at``): a curve is meaningful when the events are recorded in time order,
        as the trader and the monitor do (replayed days included).

        Columns :data:`EQUITY_COLUMNS`, dollars except ``at`` (New York): ``cash``; ``positions_value`` =
        Σ mark × 100 × contracts of the open positions (what closing them at their marks would pay; a credit
        position counts positive); ``equity`` = cash − positions_value; ``open_risk`` = Σ max loss × contracts;
        ``realized_pnl`` cumulative, net of commissions; ``unrealized_pnl`` = Σ (entry − mark) × 100 × contracts
        (before the entry commissions, already in the cash).
        """
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            rows = conn.execute("SELECT * FROM equity WHERE account_id = ? ORDER BY at_us, snapshot_id",
                                (aid,)).fetchall()
        return _frame(rows, EQUITY_COLUMNS, times={"at": "at_us"}, floats=EQUITY_COLUMNS[1:])

    def strategy_stats(self, account: str) -> pd.DataFrame:
        """The account's statistics per strategy (kept with every close), by strategy name.

        Columns :data:`STATS_COLUMNS`: ``n_trades`` closed trades; ``n_rated`` those with a known max loss (the
        rest count only in ``total_pnl``); over the rated ones, ``wins`` (return on risk > 0), ``win_rate``,
        ``avg_win`` and ``avg_loss`` (positive fractions of the capital at risk, scratches among the losses, as
        :meth:`TradeStats.from_returns`), ``expectancy`` = win_rate × avg_win − (1 − win_rate) × avg_loss (the
        mean return on risk); all 0 when no trade is rated. ``total_pnl`` dollars, net of commissions.
        """
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            rows = conn.execute("SELECT * FROM strategy_stats WHERE account_id = ? ORDER BY strategy",
                                (aid,)).fetchall()
        out = []
        for r in rows:
            n, wins = r["n_rated"], r["wins"]
            wr = wins / n if n else 0.0
            aw = r["sum_win"] / wins if wins else 0.0
            al = r["sum_loss"] / (n - wins) if n - wins else 0.0
            out.append((r["strategy"], r["n_trades"], n, wins, wr, aw, al, wr * aw - (1 - wr) * al,
                        float(r["total_pnl"])))
        df = pd.DataFrame.from_records(out, columns=list(STATS_COLUMNS))
        for col in ("n_trades", "n_rated", "wins"):
            df[col] = df[col].astype("int64")
        for col in ("win_rate", "avg_win", "avg_loss", "expectancy", "total_pnl"):
            df[col] = df[col].astype("float64")
        return df

    def trade_stats(self, account: str, strategy: str | None = None) -> TradeStats | None:
        """:meth:`TradeStats.from_returns` of the account's closed trades' returns on risk (of one strategy when
        given), in closing order; trades without a known max loss are left out. None when there is no such
        trade."""
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            sql = ("SELECT c.return_on_risk FROM closed_trades c JOIN positions p ON p.position_id = c.position_id "
                   "WHERE p.account_id = ? AND c.return_on_risk IS NOT NULL")
            params: tuple[Any, ...] = (aid,)
            if strategy is not None:
                sql += " AND p.strategy = ?"
                params = (aid, _word(OrderError, "strategy", strategy))
            returns = [r[0] for r in conn.execute(sql + " ORDER BY c.closed_us, c.position_id", params)]
        return TradeStats.from_returns(returns) if returns else None

    def open_risk(self, account: str) -> float:
        """Dollars at risk in the account's open positions: Σ max loss × contracts (unknown max loss: 0)."""
        with self._connect() as conn:
            aid = self._account_row(conn, account)["account_id"]
            return float(conn.execute("SELECT coalesce(sum(coalesce(max_loss, 0) * contracts), 0) FROM positions "
                                      "WHERE account_id = ? AND status = 'open'", (aid,)).fetchone()[0])

    def pending_orders(self, account: str | None = None) -> list[Order]:
        """Orders still ``submitted`` (sent, or about to be, with no outcome recorded), oldest first."""
        with self._connect() as conn:
            sql, params = f"{self._ORDER_SQL} WHERE o.status = 'submitted'", ()
            if account is not None:
                sql += " AND o.account_id = ?"
                params = (self._account_row(conn, account)["account_id"],)  # type: ignore[assignment]
            rows = conn.execute(sql + " ORDER BY o.created_us, o.order_id", params).fetchall()
        return [self._order_from_row(r) for r in rows]

    def closed_without_decision(self, account: str | None = None) -> list[ClosedTrade]:
        """Closed trades not yet tied to an EXIT decision (:meth:`set_exit_decision`), in closing order."""
        with self._connect() as conn:
            sql, params = f"{self._CLOSED_SQL} WHERE c.exit_decision_id IS NULL", ()
            if account is not None:
                sql += " AND p.account_id = ?"
                params = (self._account_row(conn, account)["account_id"],)  # type: ignore[assignment]
            rows = conn.execute(sql + " ORDER BY c.closed_us, c.position_id", params).fetchall()
        return [self._closed_from_row(r) for r in rows]

    # -- reconciliation and invariants ---------------------------------------------------------------------

    def reconcile(self, lookup: Callable[[str], Execution | None], *, min_age: float = 0.0) -> ReconcileReport:
        """Settle what a crash left in between, then check the ledger.

        Every order still ``submitted`` is asked of the broker (``lookup(client_order_id)``): an execution is
        recorded (:meth:`record_fill`; ``applied``), none means the broker never had it and the order is rejected
        with :data:`NOT_EXECUTED` (``rejected``). The statistics are recomputed from the closed trades and
        replaced where they differ (``repaired``). What :meth:`check` then finds, or a pending order that could not
        be settled, is in ``problems``.

        Parameters
        ----------
        lookup : callable
            ``client_order_id -> Execution or None``: the broker's record (the simulated broker:
            :meth:`journal_lookup`).
        min_age : float, default 0
            Seconds (wall clock, since the order was recorded) an order must have waited to be settled here;
            younger ones are left alone (still in :meth:`pending_orders`). A process that reconciles while others
            may be placing orders (a cron job beside the notebook) gives the broker's usual latency here, so an
            order another process has just submitted is not rejected under its feet. (With the simulated broker
            even that would stay consistent: :meth:`journal_execution` refuses a rejected order, and
            :meth:`record_fill` of an order reconcile filled first is a no-op.)
        """
        age = _finite(LedgerError, "min_age", min_age, lo=0.0)
        now = pd.Timestamp.now(tz="UTC")
        applied, rejected, repaired, problems = [], [], [], []
        for order in self.pending_orders():
            cid = order.client_order_id
            if age > 0 and (now - self._recorded_at(cid)).total_seconds() < age:
                continue
            try:
                found = lookup(cid)
                if found is not None:
                    out = self.record_fill(cid, found)
                    what = (f"position {out.position_id} opened" if isinstance(out, Position)
                            else f"position {out.position_id} closed")
                    applied.append(f"{cid}: broker order {found.broker_order_id} recorded ({what})")
                else:
                    self.reject_order(cid, NOT_EXECUTED)
                    rejected.append(f"{cid}: {NOT_EXECUTED}")
            except (LedgerError, OrderError) as exc:
                problems.append(f"{cid}: could not settle the pending {order.kind} order: {exc}")
        with self._write() as conn:
            wrong = _stats_mismatches(conn)
            if wrong:
                for stmt in REBUILD_STATS_SQL:
                    conn.execute(stmt)
                repaired.extend(f"statistics of {name!r} / {strategy!r} recomputed from the closed trades "
                                f"(were {was}, now {now})" for name, strategy, was, now in wrong)
        problems.extend(self.check())
        return ReconcileReport(applied=tuple(applied), rejected=tuple(rejected), repaired=tuple(repaired),
                               problems=tuple(problems))

    def _recorded_at(self, cid: str) -> pd.Timestamp:
        with self._connect() as conn:
            return pd.Timestamp(conn.execute("SELECT recorded_at FROM orders WHERE client_order_id = ?",
                                             (cid,)).fetchone()[0])

    def check(self) -> list[str]:
        """The ledger's invariants, each broken one as a sentence naming the rows; ``[]`` when consistent.

        ``PRAGMA integrity_check`` is ok; no orphan rows (foreign keys, and fills, legs, marks and closed trades
        of a missing position); every open position has legs and a filled open order of its own account, with
        one fill per leg; no two positions from one order; every filled open order has its position, every filled
        close its closed trade; a position is closed exactly when it has a closed trade; each account's cash is its
        starting cash plus the fills' cash flows (within 1e-6 dollars); the statistics equal those recomputed from
        the closed trades; no journalled execution of a rejected order.
        """
        out: list[str] = []

        def ids(sql: str) -> list[Any]:
            return [r[0] for r in conn.execute(sql)]

        with self._connect() as conn:
            integrity = ids("PRAGMA integrity_check")
            if integrity != ["ok"]:
                out.append("PRAGMA integrity_check: " + "; ".join(map(str, integrity[:5])))
            bad = conn.execute("PRAGMA foreign_key_check").fetchall()
            for table in sorted({r[0] for r in bad}):
                n = sum(r[0] == table for r in bad)
                out.append(f"{n} rows of {table} refer to a missing row of "
                           f"{', '.join(sorted({r[2] for r in bad if r[0] == table}))}")
            for table in ("fills", "position_legs", "marks", "closed_trades"):
                orphans = ids(f"SELECT DISTINCT t.position_id FROM {table} t LEFT JOIN positions p "
                              "ON p.position_id = t.position_id WHERE p.position_id IS NULL")
                if orphans:
                    out.append(f"{table} rows of missing positions {orphans[:10]}")
            checks = (
                ("open positions without legs: {}",
                 "SELECT p.position_id FROM positions p WHERE p.status = 'open' AND NOT EXISTS "
                 "(SELECT 1 FROM position_legs l WHERE l.position_id = p.position_id)"),
                ("positions without a filled open order of their account: {}",
                 "SELECT p.position_id FROM positions p LEFT JOIN orders o ON o.order_id = p.open_order_id "
                 "WHERE o.order_id IS NULL OR o.kind != 'open' OR o.status != 'filled' "
                 "OR o.account_id != p.account_id OR o.position_id IS NOT p.position_id"),
                ("positions whose opening fills do not cover their legs: {}",
                 "SELECT p.position_id FROM positions p WHERE (SELECT count(*) FROM fills f WHERE "
                 "f.position_id = p.position_id AND f.kind = 'open') != (SELECT count(*) FROM position_legs l "
                 "WHERE l.position_id = p.position_id)"),
                ("orders that opened more than one position: {}",
                 "SELECT open_order_id FROM positions GROUP BY open_order_id HAVING count(*) > 1"),
                ("filled open orders without their position: {}",
                 "SELECT o.client_order_id FROM orders o WHERE o.kind = 'open' AND o.status = 'filled' AND NOT "
                 "EXISTS (SELECT 1 FROM positions p WHERE p.open_order_id = o.order_id)"),
                ("filled close orders without their closed trade: {}",
                 "SELECT o.client_order_id FROM orders o WHERE o.kind = 'close' AND o.status = 'filled' AND NOT "
                 "EXISTS (SELECT 1 FROM closed_trades c WHERE c.close_order_id = o.order_id)"),
                ("closed positions without a closed trade: {}",
                 "SELECT p.position_id FROM positions p LEFT JOIN closed_trades c ON c.position_id = p.position_id "
                 "WHERE p.status = 'closed' AND c.position_id IS NULL"),
                ("closed trades of positions still open: {}",
                 "SELECT c.position_id FROM closed_trades c JOIN positions p ON p.position_id = c.position_id "
                 "WHERE p.status != 'closed'"),
                ("journalled executions of rejected orders: {}",
                 "SELECT j.client_order_id FROM broker_journal j JOIN orders o "
                 "ON o.client_order_id = j.client_order_id WHERE o.status = 'rejected'"),
            )
            for sentence, sql in checks:
                found = ids(sql)
                if found:
                    out.append(sentence.format(", ".join(map(str, found[:10])) + (" ..." if len(found) > 10 else "")))
            for r in conn.execute(
                    "SELECT a.name, a.cash, a.starting_cash + coalesce(sum(f.cash_flow), 0), "
                    "a.starting_cash + coalesce(sum(abs(f.cash_flow)), 0), count(f.fill_id) FROM accounts a "
                    "LEFT JOIN positions p ON p.account_id = a.account_id LEFT JOIN fills f "
                    "ON f.position_id = p.position_id GROUP BY a.account_id ORDER BY a.name"):
                if abs(r[1] - r[2]) > _CASH_TOL + _ROUNDING * r[4] * r[3]:
                    out.append(f"account {r[0]!r}: cash {r[1]:.6f} but starting cash + fills = {r[2]:.6f}")
            out.extend(f"statistics of account {name!r} / {strategy!r} are {was}, the closed trades give {now}"
                       for name, strategy, was, now in _stats_mismatches(conn))
        return out
