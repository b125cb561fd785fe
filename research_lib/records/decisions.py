"""The decision log: every ENTRY, EXIT and SKIP as a :class:`TradeDecision`, kept in SQLite.

A decision says *what* was done ("SELL 4x SPY Bull Put Spread 580/575 45DTE"), *why* ("Positive GEX
+2.45B with 45% IV rank; ...") and *how* it was sized ("Half-Kelly 4.4% of $50,000 = $2,200 at risk;
..."), with the market context it was taken in (spot, VIX, regime, net GEX, zero gamma), its legs and
its sizing. :class:`DecisionLog` keeps them, and the alerts raised beside them, in one SQLite file::

    <data root>/decisions.sqlite        ($RESEARCH_LIB_DATA, else data/ in the repository)

and gives them back as DataFrames filtered by date range, type and underlying.

Decision ids
    ``DEC-YYYYMMDDHHMMSSNN``: the decision's time to the second in New York (wall clock) and ``NN``, a
    two-digit sequence within that second (00-99). :meth:`DecisionLog.record` assigns it inside the
    write transaction (``BEGIN IMMEDIATE`` holds SQLite's write lock), so ids are unique across threads
    and processes. If 100 decisions already share a second, the id takes the next second with a free
    number (the ``timestamp`` column keeps the true time). Ids sort by time except in the repeated hour
    when New York leaves daylight saving time.

Storage
    Tables ``decisions`` (one row per decision; ``legs`` as JSON text), ``alerts`` (one row per alert,
    ``decision_id`` NULL for alerts recorded on their own) and ``schema_version`` (one row per schema
    version applied, with the library version and time). ``PRAGMA user_version`` holds the schema
    version too; it is the one checked. Times are stored twice: ``ts_utc_us`` (integer microseconds
    since the epoch, UTC: filters and ordering) and ``timestamp`` (ISO 8601 in New York with its
    offset, for people reading the file with the ``sqlite3`` shell).

Safety
    WAL journal, ``synchronous=FULL`` (a recorded decision survives a power cut, not only a crash;
    ``DecisionLog(durable=False)`` trades that for speed in backtests), one
    ``BEGIN IMMEDIATE`` transaction per :meth:`DecisionLog.record`: the decision row and its alerts
    commit together or not at all. A process killed mid-write leaves no partial row; the next
    connection rolls the unfinished transaction back. Writers wait up to ``timeout`` seconds for one
    another. Each thread keeps one connection open between calls (:meth:`DecisionLog.close`, or use
    the log as a context manager, to let go of it); after ``fork()`` the child opens its own. Like the
    chain store, it wants a local file system (SQLite's locks are not reliable over
    network mounts).

Schema versions
    :data:`SCHEMA_VERSION` is the version this code writes. Opening an older file applies the steps in
    :data:`MIGRATIONS` (``MIGRATIONS[v]`` takes a file from v to v + 1) in one transaction; a new file
    is created at version 1 and migrated the same way, so every migration runs on every new log.
    A file of a newer version raises :class:`SchemaVersionError` (upgrade research_lib), as does a
    file whose ``user_version`` and ``schema_version`` table disagree.

    * 1 → 2: ``decisions.trading_date`` (TEXT ``YYYY-MM-DD``, the trading session of the chain the
      decision was taken on: ``ChainSnapshot.snapshot_date``) and the index
      ``decisions_by_underlying_day (underlying, trading_date)`` behind :meth:`DecisionLog.last_for`.
      Rows written before have no trading date (NULL): the wall-clock time they were logged says
      nothing about which session's chain they read, so they are left unknown rather than guessed, and
      :meth:`DecisionLog.last_for` never returns them.

Trading date
    The regime-change alert compares a decision with the one taken on the previous trading day for the
    same underlying — by the chain's trading date, not by when it was logged (a backtest or a re-run of
    an old chain is logged "now" but belongs to its own day). :meth:`DecisionLog.last_for` is that one
    indexed query.

Example
-------
>>> from research_lib.records.decisions import DecisionLog, DecisionType, MarketContext, TradeDecision
>>> from research_lib.records.decisions import describe_what, describe_why
>>> from research_lib.core.sizing import TradeStats, size_position
>>> ctx = MarketContext("SPY", spot=584.2, vix=14.1, regime="positive gamma", net_gex=2.45e9,
...                     zero_gamma=575.0, source="cboe_csv")
>>> sizing = size_position(50_000, 500, TradeStats(0.68, 0.15, 0.25, 120))
>>> d = TradeDecision.create("ENTRY", source="paper", context=ctx, sizing=sizing,
...     what=describe_what("SELL", sizing.contracts, "SPY", "Bull Put Spread", (580, 575), 45),
...     why=describe_why(ctx, iv_rank=45), timestamp="2024-03-15 10:30:00")
>>> d.what
'SELL 4x SPY Bull Put Spread 580/575 45DTE'
>>> log = DecisionLog()                      # data/decisions.sqlite            # doctest: +SKIP
>>> log.record(d).decision_id                                                   # doctest: +SKIP
'DEC-2024031510300000'
>>> log.read(start="2024-03-01", type="ENTRY", underlying="SPY")                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
import math
import numbers
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research_lib import __version__
from research_lib.checks import FieldChecks
from research_lib.core.chain import NY
from research_lib.core.regime import describe_zero_gamma_distance
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    DecisionError as DecisionError,
    DecisionLogError as DecisionLogError,
    DecisionNotFoundError as DecisionNotFoundError,
    DuplicateDecisionError as DuplicateDecisionError,
    SchemaVersionError as SchemaVersionError,
)
from research_lib.settings import data_root

#: Schema version this code writes (``PRAGMA user_version``). 2 added ``decisions.trading_date``.
SCHEMA_VERSION = 2
#: File name of the log in the data root.
DB_NAME = "decisions.sqlite"
ID_PREFIX = "DEC-"
_ID_RE = re.compile(r"^DEC-(\d{14})(\d{2})$")


class DecisionType(enum.StrEnum):
    """What a decision did: open a position, close one, or deliberately not trade."""

    ENTRY = "ENTRY"
    EXIT = "EXIT"
    SKIP = "SKIP"


# --------------------------------------------------------------------------------------------------
# errors


_CHECKS = FieldChecks(lambda field, value, why: DecisionError(f"{field}={value!r}: {why}"))


# --------------------------------------------------------------------------------------------------
# small converters


def _text(name: str, value: Any, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if not isinstance(value, str) or not value.strip():
        kind = "a non-empty string" + (" or None" if optional else "")
        raise DecisionError(f"{name} must be {kind}, got {value!r}")
    return value.strip()


def _number(name: str, value: Any, *, optional: bool = True, positive: bool = False,
            allow_inf: bool = False) -> float | None:
    """A float, or None for None/NaN (when optional). Rejects bools, strings, inf (unless allowed)."""
    if value is None or (optional and isinstance(value, float | np.floating) and math.isnan(value)):
        if optional:
            return None
        raise DecisionError(f"{name} is required, got {value!r}")
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise DecisionError(f"{name} must be a number, got {value!r}")
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise DecisionError(f"{name} must be finite, got {value!r}")
    if positive and not x > 0:
        raise DecisionError(f"{name} must be > 0, got {value!r}")
    return x


def _underlying(value: Any, name: str = "underlying") -> str:
    return _text(name, value).upper().lstrip("_")  # type: ignore[union-attr]


def _ny(value: Any, name: str = "timestamp") -> pd.Timestamp:
    """A tz-aware New York timestamp to the microsecond (naive input is taken as New York time).

    A naive time in the repeated hour when daylight saving ends is read as the first (EDT) one, and a
    naive time in the skipped spring hour is moved forward, as :func:`parse_decision_id` does.
    """
    if isinstance(value, bool) or value is None:
        raise DecisionError(f"{name} must be a timestamp, got {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DecisionError(f"{name} is not a timestamp: {value!r} ({exc})") from None
    if ts is pd.NaT or pd.isna(ts):
        raise DecisionError(f"{name} is missing (NaT)")
    if ts.tzinfo is None:
        ts = ts.tz_localize(NY, ambiguous=True, nonexistent="shift_forward")
    return _floor(ts, "us")


def _day(value: Any, name: str) -> dt.date | None:
    """A calendar date or None: a ``datetime.date``, ``"YYYY-MM-DD"``, or a timestamp (its New York date)."""
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise DecisionError(f"{name} {value!r} is not a valid date") from None
    return _ny(value, name).date()


def _floor(ts: pd.Timestamp, unit: str) -> pd.Timestamp:
    """``ts`` floored to ``unit``, in New York time. Floors in UTC: flooring in New York time
    re-localises, which fails inside the repeated hour when daylight saving ends."""
    return ts.tz_convert("UTC").floor(unit).tz_convert(NY)


def _utc_us(ts: pd.Timestamp) -> int:
    return int(ts.value // 1000)


def _from_us(us: int) -> pd.Timestamp:
    return pd.Timestamp(int(us), unit="us", tz="UTC").tz_convert(NY)


def _now() -> pd.Timestamp:
    return _floor(pd.Timestamp.now(tz=NY), "us")


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (dicts with str keys, lists, str, int, float, bool, None)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, where)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return None
        if math.isinf(x):
            raise DecisionError(f"{where} is infinite ({value!r}); legs must hold finite numbers")
        return x
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | dt.time):
        if value is pd.NaT:
            return None
        return value.isoformat()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            key = k.value if isinstance(k, enum.Enum) else k
            if not isinstance(key, str):
                raise DecisionError(f"{where} has a non-string key {k!r}")
            out[key] = _jsonable(v, f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise DecisionError(f"{where} is a {type(value).__name__} ({value!r}); legs hold numbers, strings, "
                        "dates, booleans, lists and mappings")


def _leg_dict(leg: Any, i: int) -> dict[str, Any]:
    """One leg as a JSON-able dict: a mapping, a dataclass instance, a namedtuple or anything with to_dict()."""
    where = f"legs[{i}]"
    if isinstance(leg, Mapping):
        raw: Any = leg
    elif dataclasses.is_dataclass(leg) and not isinstance(leg, type):
        raw = {f.name: getattr(leg, f.name) for f in dataclasses.fields(leg)}
    elif hasattr(leg, "_asdict"):
        raw = leg._asdict()
    elif callable(getattr(leg, "to_dict", None)):
        raw = leg.to_dict()
    else:
        raise DecisionError(f"{where} is a {type(leg).__name__}: pass a mapping (e.g. {{'right': 'P', "
                            "'strike': 580, 'side': 'SELL', 'quantity': 4}}) or a dataclass")
    out = _jsonable(raw, where)
    if not isinstance(out, dict):  # pragma: no cover - to_dict() returning a list
        raise DecisionError(f"{where} is not a mapping")
    return out


# --------------------------------------------------------------------------------------------------
# records


@dataclasses.dataclass(frozen=True)
class MarketContext:
    """The market a decision was taken in.

    Attributes
    ----------
    underlying : str
        Upper-cased (``spx`` and ``_SPX`` become ``SPX``).
    spot : float
        Underlying price (> 0).
    vix : float, optional
        VIX level in points (14.2).
    regime : str, optional
        The regime's name (an Enum is stored by its value).
    net_gex : float, optional
        Net dealer gamma exposure, dollars per 1% move of the underlying.
    zero_gamma : float, optional
        Zero-gamma (gamma flip) level in underlying points.
    source : str, optional
        Where the chain came from (``ChainSnapshot.source``).
    modelled : bool
        True when the chain was modelled rather than quoted.
    NaN optional numbers become None.
    """

    underlying: str
    spot: float
    vix: float | None = None
    regime: str | None = None
    net_gex: float | None = None
    zero_gamma: float | None = None
    source: str | None = None
    modelled: bool = False

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "underlying", _underlying(self.underlying, "context.underlying"))
        s(self, "spot", _number("context.spot", self.spot, optional=False, positive=True))
        vix = _number("context.vix", self.vix)
        s(self, "vix", _CHECKS.number("context.vix", vix, lo=0, optional=True, unit="VIX points"))
        s(self, "regime", _text("context.regime", self.regime, optional=True))
        s(self, "net_gex", _number("context.net_gex", self.net_gex))
        zg = _number("context.zero_gamma", self.zero_gamma)
        s(self, "zero_gamma", _CHECKS.number("context.zero_gamma", zg, lo=0, lo_open=True, optional=True,
                                             unit="a level in underlying points"))
        s(self, "source", _text("context.source", self.source, optional=True))
        s(self, "modelled", _CHECKS.flag("context.modelled", self.modelled))


_SIZING_FIELDS = ("risk_budget", "risk_used", "kelly", "fractional_kelly", "risk_fraction")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TradeDecision:
    """One decision: what was done, why, how it was sized, in which market.

    Build one with :meth:`create` (fills the underlying from the context, the sizing fields and ``how``
    from a :class:`~research_lib.sizing.SizingResult`, the time from the clock) or the constructor
    (keywords only). Every field is validated; a bad one raises :class:`DecisionError`.

    Attributes
    ----------
    decision_id : str or None
        ``DEC-YYYYMMDDHHMMSSNN``; None until :meth:`DecisionLog.record` assigns it.
    timestamp : pandas.Timestamp
        When the decision was taken: tz-aware New York, to the microsecond (naive input = New York).
    source : str
        Who decided: ``"paper"``, ``"backtest:<name>"``, ``"notebook"`` ...
    type : DecisionType
        ENTRY, EXIT or SKIP (strings are accepted, any case).
    underlying : str
        Upper-cased; must match ``context.underlying``.
    what, why, how : str
        Readable sentences (see :func:`describe_what`, :func:`describe_why`, :func:`describe_how`).
    context : MarketContext or None
    legs : tuple of dict
        The position's legs as JSON-able dicts (``{"side": "SELL", "right": "P", "strike": 580.0,
        "expiration": "2024-04-29", "quantity": 4}``); any mapping, dataclass or namedtuple is accepted
        and converted (dates to ISO strings, NaN to None). Stored as JSON. Do not mutate.
    strategy : str or None
        Strategy name (``"Bull Put Spread"``).
    contracts : int
        Contracts traded: >= 1 for ENTRY and EXIT, 0 for SKIP.
    risk_budget, risk_used : float or None
        Dollars (see :class:`~research_lib.sizing.SizingResult`).
    kelly, fractional_kelly, risk_fraction : float or None
        Fractions of the account at risk (Kelly may be +-inf).
    capped_by : str or None
        What limited the size.
    confidence : float or None
        Signal confidence, percent in [0, 100].
    ref_id : str or None
        For an EXIT, the id of the ENTRY it closes (not checked against the log).
    trading_date : datetime.date or None
        The trading session of the chain the decision was taken on (``ChainSnapshot.snapshot_date``), as
        opposed to ``timestamp``, the wall-clock time it was taken. None when unknown (decisions logged
        before schema 2, or taken without a chain). A date, an ISO ``"YYYY-MM-DD"`` string or a
        timestamp (its New York date) is accepted.
    """

    decision_id: str | None = None
    timestamp: pd.Timestamp
    source: str
    type: DecisionType
    underlying: str
    what: str
    why: str
    how: str
    context: MarketContext | None = None
    legs: tuple[dict[str, Any], ...] = ()
    strategy: str | None = None
    contracts: int = 0
    risk_budget: float | None = None
    risk_used: float | None = None
    kelly: float | None = None
    fractional_kelly: float | None = None
    risk_fraction: float | None = None
    capped_by: str | None = None
    confidence: float | None = None
    ref_id: str | None = None
    trading_date: dt.date | None = None

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.decision_id is not None:
            parse_decision_id(self.decision_id)
        if self.ref_id is not None:
            parse_decision_id(self.ref_id, name="ref_id")
        s(self, "timestamp", _ny(self.timestamp))
        s(self, "source", _text("source", self.source))
        s(self, "type", DecisionType(_norm_type(self.type)))
        s(self, "underlying", _underlying(self.underlying))
        for name in ("what", "why", "how"):
            s(self, name, _text(name, getattr(self, name)))
        if self.context is not None:
            if not isinstance(self.context, MarketContext):
                raise DecisionError(f"context must be a MarketContext or None, got {type(self.context).__name__}")
            if self.context.underlying != self.underlying:
                raise DecisionError(f"context.underlying {self.context.underlying!r} is not the decision's "
                                    f"underlying {self.underlying!r}")
        legs = self.legs
        if isinstance(legs, Mapping) or not isinstance(legs, Iterable) or isinstance(legs, str):
            raise DecisionError(f"legs must be a sequence of legs, got {type(legs).__name__}")
        s(self, "legs", tuple(_leg_dict(leg, i) for i, leg in enumerate(legs)))
        s(self, "strategy", _text("strategy", self.strategy, optional=True))
        n = _CHECKS.whole("contracts", self.contracts, lo=0)
        if self.type is DecisionType.SKIP and n != 0:
            raise DecisionError(f"a SKIP trades 0 contracts, got contracts={n}")
        if self.type is not DecisionType.SKIP and n == 0:
            raise DecisionError(f"an {self.type} of 0 contracts: record a SKIP (with the sizing's reason) "
                                "instead")
        s(self, "contracts", n)
        for name in _SIZING_FIELDS:
            s(self, name, _number(name, getattr(self, name), allow_inf=name in ("kelly", "fractional_kelly")))
        s(self, "capped_by", _text("capped_by", self.capped_by, optional=True))
        conf = _number("confidence", self.confidence)
        s(self, "confidence", _CHECKS.number("confidence", conf, lo=0, hi=100, optional=True, unit="percent"))
        s(self, "trading_date", _day(self.trading_date, "trading_date"))

    @classmethod
    def create(cls, type: DecisionType | str, *, source: str, what: str, why: str, how: str | None = None,
               context: MarketContext | None = None, underlying: str | None = None,
               legs: Iterable[Any] = (), sizing: Any = None, strategy: str | None = None,
               timestamp: Any = None, contracts: int | None = None, ref_id: str | None = None,
               trading_date: Any = None) -> TradeDecision:
        """A decision with the obvious fields filled in.

        ``underlying`` defaults to ``context.underlying``; ``timestamp`` to now; the sizing fields
        (``contracts``, ``risk_budget``, ``risk_used``, ``kelly``, ``fractional_kelly``, ``risk_fraction``,
        ``capped_by``, ``confidence``) are read from ``sizing`` (any object with those attributes, e.g. a
        :class:`~research_lib.sizing.SizingResult`); ``how`` defaults to ``sizing.how``, or ``"No
        position."`` for a SKIP. A SKIP keeps the sizing figures but trades 0 contracts.
        ``trading_date`` is the chain's trading session (``snapshot.snapshot_date``).
        """
        dtype = DecisionType(_norm_type(type))
        if underlying is None:
            if context is None:
                raise DecisionError("give an underlying or a context")
            underlying = context.underlying
        fields: dict[str, Any] = {}
        if sizing is not None:
            for name in (*_SIZING_FIELDS, "capped_by", "confidence"):
                if hasattr(sizing, name):
                    fields[name] = getattr(sizing, name)
            if contracts is None and dtype is not DecisionType.SKIP:
                contracts = getattr(sizing, "contracts", None)
            if how is None:
                how = getattr(sizing, "how", None)
        if how is None and dtype is DecisionType.SKIP:
            how = "No position."
        if contracts is None:
            contracts = 0
        return cls(timestamp=_now() if timestamp is None else timestamp, source=source, type=dtype,
                   underlying=underlying, what=what, why=why, how=how, context=context, legs=tuple(legs),
                   strategy=strategy, contracts=contracts, ref_id=ref_id, trading_date=trading_date, **fields)


# --------------------------------------------------------------------------------------------------
# ids and sentences


def make_decision_id(ts: Any, seq: int) -> str:
    """``DEC-YYYYMMDDHHMMSSNN``: ``ts`` to the second in New York (naive = New York), ``seq`` 0-99.

    >>> make_decision_id("2024-03-15 10:30:05", 7)
    'DEC-2024031510300507'
    """
    t = _ny(ts, "ts")
    if isinstance(seq, bool) or not isinstance(seq, numbers.Integral) or not 0 <= seq <= 99:
        raise DecisionError(f"seq must be a whole number in 0..99 (two digits), got {seq!r}")
    return f"{ID_PREFIX}{t:%Y%m%d%H%M%S}{int(seq):02d}"


def parse_decision_id(decision_id: str, *, name: str = "decision_id") -> tuple[pd.Timestamp, int]:
    """``(second, seq)`` of a decision id; the second is tz-aware New York."""
    m = _ID_RE.match(decision_id) if isinstance(decision_id, str) else None
    if m is None:
        raise DecisionError(f"{name} must look like DEC-YYYYMMDDHHMMSSNN, got {decision_id!r}")
    try:
        naive = pd.Timestamp(dt.datetime.strptime(m.group(1), "%Y%m%d%H%M%S"))
    except ValueError:
        raise DecisionError(f"{name} {decision_id!r} holds no valid date and time") from None
    return naive.tz_localize(NY, ambiguous=True, nonexistent="shift_forward"), int(m.group(2))


def format_gex(value: float | None) -> str:
    """Signed dollars with a scale: ``+2.45B``, ``-850.00M``, ``+12.30K``, ``n/a`` for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    x = float(value)
    sign = "+" if x >= 0 else "-"
    a = abs(x)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if a >= scale:
            return f"{sign}{a / scale:.2f}{suffix}"
    return f"{sign}{a:.2f}"


def _strike(k: Any) -> str:
    x = _number("strike", k, optional=False, positive=True)
    return f"{x:.0f}" if x == round(x) else f"{x:.2f}".rstrip("0")


def describe_what(action: str, contracts: int | None, underlying: str, strategy_name: str | None = None,
                  strikes: Sequence[float] = (), dte: int | None = None) -> str:
    """``"SELL 5x SPY Bull Put Spread 580/575 45DTE"``.

    ``contracts`` None or 0 leaves out the ``Nx`` (``"SKIP SPY Iron Condor"``); ``strikes`` are joined
    with ``/`` (582.5 stays 582.5, 580.0 becomes 580); ``dte`` None leaves out the days to expiry.
    """
    parts = [_text("action", action).upper()]  # type: ignore[union-attr]
    if contracts is not None:
        if isinstance(contracts, bool) or not isinstance(contracts, numbers.Integral) or contracts < 0:
            raise DecisionError(f"contracts must be a whole number >= 0, got {contracts!r}")
        if contracts:
            parts.append(f"{int(contracts)}x")
    parts.append(_underlying(underlying))
    if strategy_name is not None:
        parts.append(_text("strategy_name", strategy_name))  # type: ignore[arg-type]
    if isinstance(strikes, str | numbers.Real):
        strikes = [strikes]  # type: ignore[list-item]
    if len(strikes):
        parts.append("/".join(_strike(k) for k in strikes))
    if dte is not None:
        if isinstance(dte, bool) or not isinstance(dte, numbers.Integral) or dte < 0:
            raise DecisionError(f"dte must be a whole number of days >= 0, got {dte!r}")
        parts.append(f"{int(dte)}DTE")
    return " ".join(parts)


def describe_why(context: MarketContext, *, iv_rank: float | None = None, reasons: Iterable[str] = ()) -> str:
    """``"Positive GEX +2.45B with 45% IV rank; spot 584.20 is 1.57% above zero gamma 575.00; regime
    positive gamma; VIX 14.1."`` -- built from the context (parts it lacks are left out), then
    ``reasons`` (sentences of your own) appended. ``iv_rank`` is a percent in [0, 100]. The distance to
    zero gamma is :func:`research_lib.regime.describe_zero_gamma_distance` (% of spot, two decimals), the
    same figure the regime's reasons and the alerts print.
    """
    if not isinstance(context, MarketContext):
        raise DecisionError(f"context must be a MarketContext, got {type(context).__name__}")
    rank = _number("iv_rank", iv_rank)
    if rank is not None and not 0 <= rank <= 100:
        raise DecisionError(f"iv_rank must be a percent in [0, 100], got {iv_rank!r}")
    if context.net_gex is None:
        head = "GEX unknown"
    else:
        head = f"{'Positive' if context.net_gex >= 0 else 'Negative'} GEX {format_gex(context.net_gex)}"
    if rank is not None:
        head += f" with {rank:.0f}% IV rank"
    parts = [head]
    if context.zero_gamma is not None:
        dist = describe_zero_gamma_distance(context.spot, context.zero_gamma)
        parts.append(f"spot {context.spot:,.2f} is {dist} zero gamma {context.zero_gamma:,.2f}")
    else:
        parts.append(f"spot {context.spot:,.2f}")
    if context.regime is not None:
        parts.append(f"regime {context.regime}")
    if context.vix is not None:
        parts.append(f"VIX {context.vix:.1f}")
    if context.modelled:
        parts.append("modelled chain")
    if isinstance(reasons, str):
        reasons = [reasons]
    parts.extend(_text("reason", r).rstrip(".") for r in reasons)  # type: ignore[union-attr]
    return "; ".join(parts) + "."


def describe_how(sizing: Any = None, *extra: str) -> str:
    """``sizing.how`` (a :class:`~research_lib.sizing.SizingResult`'s sentence) followed by ``extra``
    sentences (an exit plan ...), joined with ``"; "``; ``"No position."`` when there is nothing."""
    parts = []
    if sizing is not None:
        how = getattr(sizing, "how", None)
        if not isinstance(how, str):
            raise DecisionError(f"sizing has no 'how' sentence: {type(sizing).__name__}")
        parts.append(how)
    parts.extend(_text("extra", e) for e in extra)  # type: ignore[misc]
    return "; ".join(parts) if parts else "No position."


# --------------------------------------------------------------------------------------------------
# the SQLite log

_SCHEMA_V1: tuple[str, ...] = (
    """CREATE TABLE schema_version (
        version INTEGER PRIMARY KEY,
        applied_at TEXT NOT NULL,
        library_version TEXT NOT NULL
    )""",
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
#: connection (inside the upgrade transaction; see the module docstring for what each step does).
MIGRATIONS: dict[int, Sequence[str] | Callable[[sqlite3.Connection], None]] = {
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


#: Connections inherited from a parent process: kept referenced so they are never closed here.
_INHERITED: list[sqlite3.Connection] = []


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


def _norm_type(v: Any) -> str:
    text = str(getattr(v, "value", v)).strip().upper()
    if text not in DecisionType.__members__:
        raise DecisionError(f"type must be one of {', '.join(DecisionType)}, got {v!r}")
    return text


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """The one write transaction of the decision log: ``BEGIN IMMEDIATE`` (takes SQLite's write lock at
    once, so concurrent writers queue instead of failing on upgrade), ``COMMIT`` when the block ends,
    ``ROLLBACK`` on any exception (a failed rollback is ignored; the original exception propagates).

    ``conn`` must be in autocommit mode (``isolation_level=None``), as every connection of
    :class:`DecisionLog` is.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class DecisionLog:
    """The SQLite decision log (see the module docstring for the layout and guarantees).

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

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = 30.0, durable: bool = True):
        if path is None:
            path = data_root() / DB_NAME
        self.path = Path(path).expanduser().absolute()
        self.timeout = float(timeout)
        if not isinstance(durable, bool):
            raise DecisionError(f"durable must be True or False, got {durable!r}")
        self.durable = durable
        if self.path.is_dir():
            raise DecisionLogError("is a folder; give the path of the SQLite file", path=self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._open_schema()

    def __repr__(self) -> str:
        return f"DecisionLog({str(self.path)!r})"

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one). Also done at ``with`` exit."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections -------------------------------------------------------------------------------

    def _raw_connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise DecisionLogError(f"not a usable SQLite database ({exc})", path=self.path) from exc
        return conn

    def _thread_connection(self) -> sqlite3.Connection:
        """This thread's connection, kept open between calls (closing the last connection to a WAL
        database checkpoints it: ~3 ms a call). A connection inherited through fork() is never used or
        closed in the child (SQLite forbids both); the child opens its own."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if conn is not None:
            _INHERITED.append(conn)
        conn = self._raw_connect()
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = self._thread_connection()
        try:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found != SCHEMA_VERSION:
                raise self._version_error(found)
            yield conn
        except sqlite3.Error:
            self.close()  # start afresh next time
            raise

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        with self._connect() as conn, _transaction(conn):
            yield conn

    def _version_error(self, found: int) -> SchemaVersionError:
        if found > SCHEMA_VERSION:
            msg = (f"decision log schema version {found} is newer than this research_lib "
                   f"({__version__}) reads (up to {SCHEMA_VERSION}): upgrade research_lib")
        else:
            msg = f"decision log schema version {found}, expected {SCHEMA_VERSION} (open it with DecisionLog to migrate)"
        return SchemaVersionError(msg, path=self.path, found=found, supported=SCHEMA_VERSION)

    def _open_schema(self) -> None:
        """Create the schema in a new file, migrate an old one, refuse a newer or foreign one."""
        conn = self._raw_connect()
        try:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise DecisionLogError(f"not a usable SQLite database ({exc})", path=self.path) from exc
            if str(mode).lower() != "wal":  # pragma: no cover - e.g. a file system without shared memory
                raise DecisionLogError(f"could not switch the journal to WAL (got {mode!r})", path=self.path)
            with _transaction(conn):
                self._migrate(conn)
        finally:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise self._version_error(version)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0:
            if tables - {"sqlite_sequence"}:
                raise DecisionLogError(f"is not a research_lib decision log (it holds tables "
                                       f"{', '.join(sorted(tables))} and no schema version)", path=self.path)
            for stmt in _SCHEMA_V1:
                conn.execute(stmt)
            version = 1
            self._stamp(conn, version)
        elif "schema_version" not in tables or "decisions" not in tables:
            raise DecisionLogError(f"is not a research_lib decision log (user_version {version} but tables "
                                   f"{', '.join(sorted(tables)) or 'none'})", path=self.path)
        while version < SCHEMA_VERSION:
            step = MIGRATIONS.get(version)
            if step is None:
                raise SchemaVersionError(f"no migration from decision log schema {version} to {version + 1}",
                                         path=self.path, found=version, supported=SCHEMA_VERSION)
            if callable(step):
                step(conn)
            else:
                for stmt in step:
                    conn.execute(stmt)
            version += 1
            self._stamp(conn, version)
        recorded = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if recorded != version:
            raise SchemaVersionError(f"PRAGMA user_version is {version} but the schema_version table says "
                                     f"{recorded}: the file was changed by something else", path=self.path,
                                     found=version, supported=SCHEMA_VERSION)

    @staticmethod
    def _stamp(conn: sqlite3.Connection, version: int) -> None:
        conn.execute("INSERT INTO schema_version (version, applied_at, library_version) VALUES (?, ?, ?)",
                     (version, pd.Timestamp.now(tz="UTC").isoformat(), __version__))
        conn.execute(f"PRAGMA user_version = {int(version)}")

    @property
    def schema_version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        return int(self._thread_connection().execute("PRAGMA user_version").fetchone()[0])

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


__all__ = [
    "ALERT_COLUMNS",
    "DB_NAME",
    "DECISION_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DecisionError",
    "DecisionLog",
    "DecisionLogError",
    "DecisionNotFoundError",
    "DecisionType",
    "DuplicateDecisionError",
    "MarketContext",
    "SchemaVersionError",
    "TradeDecision",
    "describe_how",
    "describe_what",
    "describe_why",
    "format_gex",
    "make_decision_id",
    "parse_decision_id",
]
