"""The decision records: :class:`TradeDecision`, :class:`MarketContext`, :class:`DecisionType`, decision ids,
and the checks and converters that validate every field (see :mod:`research_lib.records.decisions`). Pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from research_lib.checks import FieldChecks
from research_lib.core.chain import NY
from research_lib.errors import DecisionError

__all__ = ["ID_PREFIX", "DecisionType", "MarketContext", "TradeDecision", "make_decision_id", "parse_decision_id"]


ID_PREFIX = "DEC-"
_ID_RE = re.compile(r"^DEC-(\d{14})(\d{2})$")


class DecisionType(enum.StrEnum):
    """What a decision did: open a position, close one, or deliberately not trade."""

    ENTRY = "ENTRY"
    EXIT = "EXIT"
    SKIP = "SKIP"


_CHECKS = FieldChecks(lambda field, value, why: DecisionError(f"{field}={value!r}: {why}"))


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


def _norm_type(v: Any) -> str:
    text = str(getattr(v, "value", v)).strip().upper()
    if text not in DecisionType.__members__:
        raise DecisionError(f"type must be one of {', '.join(DecisionType)}, got {v!r}")
    return text


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
