"""The SQLite decision log: :class:`DecisionLog` (schema, migrations, record, read, get,
:meth:`~DecisionLog.last_for`; connections, the one transaction and schema upgrades are
:class:`~research_lib.records.sqlite.SQLiteFile`'s). Layout and guarantees: :mod:`research_lib.records.decisions`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from research_lib.core.chain import NY
from research_lib.errors import (
    DecisionError,
    DecisionLogError,
    DecisionNotFoundError,
    DuplicateDecisionError,
    SchemaVersionError,
)
from research_lib.records.decisions.records import (
    ID_PREFIX,
    MarketContext,
    TradeDecision,
    _day,
    _floor,
    _from_us,
    _norm_type,
    _now,
    _number,
    _ny,
    _text,
    _underlying,
    _utc_us,
    parse_decision_id,
)
from research_lib.records.sqlite import SCHEMA_VERSION_TABLE, Migrations, SQLiteFile

__all__ = ["ALERT_COLUMNS", "DB_NAME", "DECISION_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "DecisionLog"]


#: Schema version this code writes (``PRAGMA user_version``). 2 added ``decisions.trading_date``.
SCHEMA_VERSION = 2
#: File name of the log in the data root.
DB_NAME = "decisions.sqlite"


_SCHEMA_V1: tuple[str, ...] = (
    SCHEMA_VERSION_TABLE,
    """CREATE TABLE decisions (
        decision_id TEXT PRIMARY KEY CHECK (decision_id GLOB 'DEC-[0-9]*' AND length(decision_id) = 20),
        ts_utc_us INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        source TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('ENTRY', 'EXIT', 'SKIP')),
        underlying TEXT NOT NULL,
        strategy TEXT,
        what TEXT NOT NULL,
        why TEXT NOT NULL,
        how TEXT NOT NULL,
        spot REAL,
        vix REAL,
        regime TEXT,
        net_gex REAL,
        zero_gamma REAL,
        context_source TEXT,
        modelled INTEGER,
        legs TEXT NOT NULL,
        contracts INTEGER NOT NULL CHECK (contracts >= 0),
        risk_budget REAL,
        risk_used REAL,
        kelly REAL,
        fractional_kelly REAL,
        risk_fraction REAL,
        capped_by TEXT,
        confidence REAL,
        ref_id TEXT,
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX decisions_by_time ON decisions (ts_utc_us)",
    "CREATE INDEX decisions_by_underlying ON decisions (underlying, ts_utc_us)",
    """CREATE TABLE alerts (
        alert_id INTEGER PRIMARY KEY AUTOINCREMENT,
        decision_id TEXT REFERENCES decisions (decision_id),
        ts_utc_us INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        date TEXT,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        value REAL,
        threshold REAL,
        underlying TEXT,
        recorded_at TEXT NOT NULL
    )""",
    "CREATE INDEX alerts_by_time ON alerts (ts_utc_us)",
    "CREATE INDEX alerts_by_decision ON alerts (decision_id)",
)

#: ``MIGRATIONS[v]`` takes a log from schema v to v + 1: SQL statements, or a callable given the
#: connection (inside the upgrade transaction; see :mod:`research_lib.records.decisions` for what each step does).
MIGRATIONS: Migrations = {
    1: (
        "ALTER TABLE decisions ADD COLUMN trading_date TEXT CHECK (trading_date IS NULL OR "
        "trading_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]')",
        "CREATE INDEX decisions_by_underlying_day ON decisions (underlying, trading_date)",
    ),
}

_DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id", "ts_utc_us", "timestamp", "source", "type", "underlying", "strategy", "what", "why", "how",
    "spot", "vix", "regime", "net_gex", "zero_gamma", "context_source", "modelled", "legs", "contracts",
    "risk_budget", "risk_used", "kelly", "fractional_kelly", "risk_fraction", "capped_by", "confidence",
    "ref_id", "recorded_at", "trading_date",
)
_ALERT_COLUMNS: tuple[str, ...] = (
    "decision_id", "ts_utc_us", "timestamp", "date", "rule", "severity", "message", "value", "threshold",
    "underlying", "recorded_at",
)

#: Columns of :meth:`DecisionLog.read`, in order.
DECISION_COLUMNS: tuple[str, ...] = tuple(c for c in _DECISION_COLUMNS if c != "ts_utc_us")
#: Columns of :meth:`DecisionLog.read_alerts`, in order.
ALERT_COLUMNS: tuple[str, ...] = ("alert_id", *(c for c in _ALERT_COLUMNS if c != "ts_utc_us"))

_FLOAT_COLUMNS = ("spot", "vix", "net_gex", "zero_gamma", "risk_budget", "risk_used", "kelly",
                  "fractional_kelly", "risk_fraction", "confidence")


def _after_decision_insert(conn: sqlite3.Connection, decision_id: str) -> None:
    """Called inside :meth:`DecisionLog.record`'s transaction after the decision row is inserted and
    before its alerts and the commit.

    Does nothing; tests replace it (in a child process) to simulate a crash at the worst moment.
    """


def _alert_row(alert: Any, i: int) -> dict[str, Any]:
    """The stored fields of one alert (any object with ``rule, severity, message`` and optionally
    ``value, threshold, underlying, date, timestamp``)."""
    where = f"alerts[{i}]"
    missing = [a for a in ("rule", "severity", "message") if not hasattr(alert, a)]
    if missing:
        raise DecisionError(f"{where} ({type(alert).__name__}) has no {', '.join(missing)}: an alert needs "
                            "rule, severity and message (and may have value, threshold, underlying, date)")
    row: dict[str, Any] = {
        "rule": _text(f"{where}.rule", alert.rule),
        "severity": _text(f"{where}.severity", alert.severity),
        "message": _text(f"{where}.message", alert.message),
        "value": _number(f"{where}.value", getattr(alert, "value", None)),
        "threshold": _number(f"{where}.threshold", getattr(alert, "threshold", None)),
    }
    und = getattr(alert, "underlying", None)
    row["underlying"] = None if und is None else _underlying(und, f"{where}.underlying")
    day = getattr(alert, "date", None)
    if day is None:
        row["date"] = None
    elif isinstance(day, dt.date) and not isinstance(day, dt.datetime):
        row["date"] = day.isoformat()
    else:
        row["date"] = _ny(day, f"{where}.date").date().isoformat()
    own = getattr(alert, "timestamp", None)
    row["own_ts"] = None if own is None else _ny(own, f"{where}.timestamp")
    return row


def _is_day(value: Any) -> bool:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return True
    return isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value) is not None


def _range(start: Any, end: Any) -> tuple[int | None, int | None]:
    """``[lo, hi)`` in UTC microseconds. A date (``date`` or ``"YYYY-MM-DD"``) means the whole New York
    day: ``end="2024-03-15"`` includes all of the 15th. A timestamp is an instant, both ends inclusive."""
    lo = hi = None
    if start is not None:
        t = _ny(pd.Timestamp(str(start).strip()) if _is_day(start) else start, "start")
        lo = _utc_us(t)
    if end is not None:
        if _is_day(end):
            day = pd.Timestamp(str(end).strip()).date() + dt.timedelta(days=1)
            hi = _utc_us(_ny(pd.Timestamp(day), "end"))
        else:
            hi = _utc_us(_ny(end, "end")) + 1
    if lo is not None and hi is not None and lo >= hi:
        raise DecisionError(f"start {start!r} is after end {end!r}")
    return lo, hi


def _values(name: str, value: Any, norm: Callable[[Any], str]) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str | enum.Enum) else list(value)
    if not items:
        raise DecisionError(f"{name} filter is empty")
    return [norm(v) for v in items]


class DecisionLog(SQLiteFile):
    """The SQLite decision log (see :mod:`research_lib.records.decisions` for the layout and guarantees).

    Parameters
    ----------
    path : path-like, optional
        The SQLite file; default ``<data root>/decisions.sqlite`` (``$RESEARCH_LIB_DATA`` or ``data/``).
        Created, with its folder, when missing.
    timeout : float, default 30
        Seconds a writer waits for another one before failing.
    durable : bool, default True
        ``synchronous=FULL``: each recorded decision is on disk (fsynced) when :meth:`record` returns,
        a few milliseconds per write. False (``synchronous=NORMAL``, for long backtests) is ~10x faster
        and just as atomic and crash-safe, but a power cut or OS crash may lose the last decisions
        committed before it (never half of one).

    Raises
    ------
    SchemaVersionError
        The file was written by a newer research_lib.
    DecisionLogError
        The file is not SQLite or not a decision log.
    """

    KIND = "decision log"
    DB_NAME = DB_NAME
    TABLES = frozenset({"schema_version", "decisions"})

    def _schema(self) -> tuple[int, Sequence[str], Migrations]:
        return SCHEMA_VERSION, _SCHEMA_V1, MIGRATIONS

    def _file_error(self, message: str) -> DecisionLogError:
        return DecisionLogError(message, path=self.path)

    def _schema_error(self, message: str, found: int) -> SchemaVersionError:
        return SchemaVersionError(message, path=self.path, found=found, supported=SCHEMA_VERSION)

    def _argument_error(self, message: str) -> DecisionError:
        return DecisionError(message)

    def __enter__(self) -> DecisionLog:
        return self

    # -- writes ------------------------------------------------------------------------------------

    @staticmethod
    def _next_id(conn: sqlite3.Connection, ts: pd.Timestamp) -> str:
        second = _floor(ts, "s")
        while True:
            prefix = f"{ID_PREFIX}{second:%Y%m%d%H%M%S}"
            top = conn.execute("SELECT max(decision_id) FROM decisions WHERE decision_id BETWEEN ? AND ?",
                               (prefix + "00", prefix + "99")).fetchone()[0]
            if top is None:
                return prefix + "00"
            seq = int(top[-2:])
            if seq < 99:
                return f"{prefix}{seq + 1:02d}"
            second += pd.Timedelta(seconds=1)

    @staticmethod
    def _decision_values(d: TradeDecision, recorded_at: str) -> tuple[Any, ...]:
        c = d.context

        def ctx(name: str) -> Any:
            return None if c is None else getattr(c, name)

        row = {
            "decision_id": d.decision_id, "ts_utc_us": _utc_us(d.timestamp), "timestamp": d.timestamp.isoformat(),
            "source": d.source, "type": d.type.value, "underlying": d.underlying, "strategy": d.strategy,
            "what": d.what, "why": d.why, "how": d.how,
            "spot": ctx("spot"), "vix": ctx("vix"), "regime": ctx("regime"), "net_gex": ctx("net_gex"),
            "zero_gamma": ctx("zero_gamma"), "context_source": ctx("source"),
            "modelled": None if c is None else int(c.modelled),
            "legs": json.dumps(list(d.legs), allow_nan=False, separators=(",", ":")),
            "contracts": d.contracts, "risk_budget": d.risk_budget, "risk_used": d.risk_used, "kelly": d.kelly,
            "fractional_kelly": d.fractional_kelly, "risk_fraction": d.risk_fraction, "capped_by": d.capped_by,
            "confidence": d.confidence, "ref_id": d.ref_id, "recorded_at": recorded_at,
            "trading_date": None if d.trading_date is None else d.trading_date.isoformat(),
        }
        return tuple(row[k] for k in _DECISION_COLUMNS)

    @staticmethod
    def _insert_alerts(conn: sqlite3.Connection, rows: list[dict[str, Any]], decision_id: str | None,
                       default_ts: pd.Timestamp, recorded_at: str) -> None:
        sql = f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(_ALERT_COLUMNS))})"
        for r in rows:
            ts = r["own_ts"] if r["own_ts"] is not None else default_ts
            conn.execute(sql, (decision_id, _utc_us(ts), ts.isoformat(), r["date"], r["rule"], r["severity"],
                               r["message"], r["value"], r["threshold"], r["underlying"], recorded_at))

    def record(self, decision: TradeDecision, alerts: Iterable[Any] = ()) -> TradeDecision:
        """Store a decision and the alerts raised with it, in one transaction.

        The decision gets a fresh id (unless it carries one). Alerts are stored with its id and, unless
        they have a ``timestamp`` attribute of their own, its timestamp.

        Returns
        -------
        TradeDecision
            The decision as stored (with its ``decision_id``).

        Raises
        ------
        DecisionError
            A malformed alert (checked before anything is written).
        DuplicateDecisionError
            The decision carries an id already in the log.
        """
        if not isinstance(decision, TradeDecision):
            raise DecisionError(f"decision must be a TradeDecision, got {type(decision).__name__}")
        rows = [_alert_row(a, i) for i, a in enumerate(alerts)]
        recorded_at = pd.Timestamp.now(tz="UTC").isoformat()
        sql = (f"INSERT INTO decisions ({', '.join(_DECISION_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(_DECISION_COLUMNS))})")
        with self._write() as conn:
            did = decision.decision_id or self._next_id(conn, decision.timestamp)
            stored = dataclasses.replace(decision, decision_id=did)
            try:
                conn.execute(sql, self._decision_values(stored, recorded_at))
            except sqlite3.IntegrityError as exc:
                raise DuplicateDecisionError(f"decision {did} is already in the log ({exc})",
                                             path=self.path) from None
            _after_decision_insert(conn, did)
            self._insert_alerts(conn, rows, did, stored.timestamp, recorded_at)
        return stored

    def record_alerts(self, alerts: Iterable[Any], *, decision_id: str | None = None,
                      timestamp: Any = None) -> int:
        """Store alerts on their own (one transaction); returns how many.

        ``decision_id`` ties them to a recorded decision (it must exist). Their time is ``timestamp``,
        else each alert's own ``timestamp`` attribute, else now.
        """
        rows = [_alert_row(a, i) for i, a in enumerate(alerts)]
        if decision_id is not None:
            parse_decision_id(decision_id)
        ts = _now() if timestamp is None else _ny(timestamp)
        if timestamp is not None:
            for r in rows:
                r["own_ts"] = None
        if not rows:
            return 0
        with self._write() as conn:
            try:
                self._insert_alerts(conn, rows, decision_id, ts, pd.Timestamp.now(tz="UTC").isoformat())
            except sqlite3.IntegrityError:
                raise DecisionError(f"decision_id {decision_id} is not in the log") from None
        return len(rows)

    # -- reads -------------------------------------------------------------------------------------

    def read(self, start: Any = None, end: Any = None, type: Any = None, underlying: Any = None, *,
             source: Any = None) -> pd.DataFrame:
        """Decisions as a DataFrame, oldest first.

        Parameters
        ----------
        start, end : date-like or timestamp-like, optional
            A date (``"2024-03-15"`` or a ``datetime.date``) is a whole New York day, so
            ``start=end="2024-03-15"`` is that day; a timestamp is an instant (naive = New York). Both
            ends inclusive.
        type : DecisionType or str, or several, optional
        underlying : str or several, optional
        source : str or several, optional
            The decision's ``source``.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`DECISION_COLUMNS`: ``timestamp`` tz-aware New York, ``recorded_at`` UTC,
            ``legs`` a list of dicts, ``modelled`` nullable boolean (NA without a context), context and
            sizing numbers float (NaN when absent), ``contracts`` int64, ``trading_date`` a
            ``datetime.date`` or None, text columns strings (missing values NA: test with ``pd.isna``).
        """
        where, params = self._filters(start, end, [("type", _values("type", type, _norm_type)),
                                                   ("underlying", _values("underlying", underlying, _underlying)),
                                                   ("source", _values("source", source,
                                                                      lambda v: _text("source", v)))])
        sql = f"SELECT {', '.join(_DECISION_COLUMNS)} FROM decisions{where} ORDER BY ts_utc_us, decision_id"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        df = pd.DataFrame.from_records(rows, columns=list(_DECISION_COLUMNS))
        df["timestamp"] = self._times(df.pop("ts_utc_us"))
        for col in _FLOAT_COLUMNS:
            df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
        df["contracts"] = df["contracts"].astype("int64")
        df["modelled"] = pd.array([None if v is None else bool(v) for v in df["modelled"]], dtype="boolean")
        df["legs"] = [json.loads(v) for v in df["legs"]]
        df["recorded_at"] = pd.to_datetime(df["recorded_at"], utc=True, format="ISO8601")
        df["trading_date"] = pd.Series([None if pd.isna(v) else dt.date.fromisoformat(v) for v in df["trading_date"]],
                                       index=df.index, dtype=object)
        return df[list(DECISION_COLUMNS)]

    def read_alerts(self, start: Any = None, end: Any = None, *, underlying: Any = None, rule: Any = None,
                    severity: Any = None, decision_id: Any = None) -> pd.DataFrame:
        """Alerts as a DataFrame, oldest first; filters as in :meth:`read`.

        Columns :data:`ALERT_COLUMNS`: ``alert_id`` int64, ``decision_id`` (NA for alerts recorded on
        their own), ``timestamp`` tz-aware New York, ``date`` (the alert's own date as ``datetime.date``,
        or None), ``rule``, ``severity``, ``message``, ``value`` and ``threshold`` float, ``underlying``,
        ``recorded_at`` UTC.
        """
        where, params = self._filters(start, end, [
            ("underlying", _values("underlying", underlying, _underlying)),
            ("rule", _values("rule", rule, lambda v: _text("rule", v))),
            ("severity", _values("severity", severity, lambda v: _text("severity", v))),
            ("decision_id", _values("decision_id", decision_id, lambda v: (parse_decision_id(v), v)[1])),
        ])
        cols = ("alert_id", *_ALERT_COLUMNS)
        sql = f"SELECT {', '.join(cols)} FROM alerts{where} ORDER BY ts_utc_us, alert_id"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        df = pd.DataFrame.from_records(rows, columns=list(cols))
        df["alert_id"] = df["alert_id"].astype("int64")
        df["timestamp"] = self._times(df.pop("ts_utc_us"))
        df["date"] = pd.Series([None if pd.isna(v) else dt.date.fromisoformat(v) for v in df["date"]],
                               index=df.index, dtype=object)
        for col in ("value", "threshold"):
            df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
        df["recorded_at"] = pd.to_datetime(df["recorded_at"], utc=True, format="ISO8601")
        return df[list(ALERT_COLUMNS)]

    @staticmethod
    def _times(us: pd.Series) -> pd.Series:
        return pd.to_datetime(us.astype("int64"), unit="us", utc=True).dt.tz_convert(NY)

    @staticmethod
    def _filters(start: Any, end: Any, lists: list[tuple[str, list[str] | None]]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        lo, hi = _range(start, end)
        if lo is not None:
            clauses.append("ts_utc_us >= ?")
            params.append(lo)
        if hi is not None:
            clauses.append("ts_utc_us < ?")
            params.append(hi)
        for col, values in lists:
            if values is not None:
                clauses.append(f"{col} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def get(self, decision_id: str) -> TradeDecision:
        """The stored decision with that id, as a :class:`TradeDecision` equal to what was recorded.

        Raises
        ------
        DecisionNotFoundError
        """
        parse_decision_id(decision_id)
        with self._connect() as conn:
            row = conn.execute(f"SELECT {', '.join(_DECISION_COLUMNS)} FROM decisions WHERE decision_id = ?",
                               (decision_id,)).fetchone()
        if row is None:
            raise DecisionNotFoundError(f"no decision {decision_id} in the log", path=self.path)
        return self._decision_from_row(row)

    def last_for(self, underlying: Any, before: Any = None, *, source: Any = None) -> TradeDecision | None:
        """The decision of the latest trading day before ``before`` for ``underlying``, or None.

        One indexed query (``decisions_by_underlying_day``): among the decisions for ``underlying`` whose
        ``trading_date`` is strictly before ``before``, those of the latest such day, and of them the one
        logged last (then the highest id). Decisions without a trading date (logged before schema 2) are
        never returned. This is what a regime change is measured against: the previous trading day's
        decision, whatever the wall-clock order the runs were logged in.

        Parameters
        ----------
        underlying : str
        before : date-like, optional
            The current decision's trading date (``"2026-08-21"``, a ``datetime.date``, or a timestamp:
            its New York date). None: the latest trading day in the log.
        source : str or several, optional
            Only decisions with this ``source`` (``"paper"``, ``"backtest:<name>"``); None: any.
        """
        und = _underlying(underlying)
        day = _day(before, "before")
        sql = f"SELECT {', '.join(_DECISION_COLUMNS)} FROM decisions WHERE underlying = ? AND trading_date "
        params: list[Any] = [und]
        if day is None:
            sql += "IS NOT NULL"
        else:
            sql += "< ?"
            params.append(day.isoformat())
        sources = _values("source", source, lambda v: _text("source", v))
        if sources is not None:
            sql += f" AND source IN ({', '.join('?' * len(sources))})"
            params.extend(sources)
        sql += " ORDER BY trading_date DESC, ts_utc_us DESC, decision_id DESC LIMIT 1"
        with self._connect() as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else self._decision_from_row(row)

    @staticmethod
    def _decision_from_row(row: Sequence[Any]) -> TradeDecision:
        r = dict(zip(_DECISION_COLUMNS, row, strict=True))
        ctx = None
        if r["spot"] is not None:
            ctx = MarketContext(r["underlying"], r["spot"], r["vix"], r["regime"], r["net_gex"], r["zero_gamma"],
                                r["context_source"], bool(r["modelled"]))
        return TradeDecision(
            decision_id=r["decision_id"], timestamp=_from_us(r["ts_utc_us"]), source=r["source"], type=r["type"],
            underlying=r["underlying"], what=r["what"], why=r["why"], how=r["how"], context=ctx,
            legs=tuple(json.loads(r["legs"])), strategy=r["strategy"], contracts=r["contracts"],
            risk_budget=r["risk_budget"], risk_used=r["risk_used"], kelly=r["kelly"],
            fractional_kelly=r["fractional_kelly"], risk_fraction=r["risk_fraction"], capped_by=r["capped_by"],
            confidence=r["confidence"], ref_id=r["ref_id"], trading_date=r["trading_date"])

    def count(self) -> int:
        """Number of decisions in the log."""
        with self._connect() as conn:
            return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])
