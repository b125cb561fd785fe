"""Every knob of a backtest, with its default and its check, in one place: :class:`BacktestParams`.

Bad values raise :class:`~research_lib.errors.BacktestInputError` naming the field, when the parameters are built
(so before anything runs). The command-line spellings ``every:N`` (entry schedule), ``slippage:F`` (fill model)
and ``none`` (a disabled exit rule) are parsed by :func:`parse_entry`, :func:`parse_fill` and :func:`optional_number`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import pandas as pd

from research_lib.core.regime import RegimeParams
from research_lib.core.sizing import SizingParams
from research_lib.core.strategy import StrategyParams
from research_lib.errors import BacktestInputError, ResearchLibError
from research_lib.formatting import jsonable

#: Strategies the engine trades itself (``auto``: the regime pipeline's ``decide_on`` each day).
ENGINE_STRATEGIES = ("auto", "short_put", "bull_put", "bear_call", "iron_condor", "bull_call", "bear_put",
                     "strangle")
#: Strategies following a published index methodology (:mod:`research_lib.backtest.indexwrite`).
INDEX_STRATEGIES = ("putwrite", "buywrite")
STRATEGIES = ENGINE_STRATEGIES + INDEX_STRATEGIES
#: The gamma regimes a ``regime_filter`` may name.
REGIME_NAMES = ("POSITIVE_GAMMA", "NEGATIVE_GAMMA", "NEUTRAL")
ENTRY_SCHEDULES = ("when-flat", "daily", "every:N", "roll")
FILL_MODELS = ("mid", "natural", "slippage:F")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def parse_entry(value: Any) -> tuple[str, int]:
    """``"when-flat"``, ``"daily"``, ``"roll"`` or ``"every:N"`` (N ≥ 1 sessions) → (kind, N); N is 1 except for
    ``every``. Raises :class:`BacktestInputError` (``entry``)."""
    text = str(value).strip().lower()
    if text in ("when-flat", "daily", "roll"):
        return text, 1
    if text.startswith("every:"):
        raw = text.split(":", 1)[1]
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n >= 1 and str(n) == raw.strip():
            return "every", n
        raise BacktestInputError("entry", f"{value!r}: every:N needs a whole number of sessions N >= 1")
    raise BacktestInputError("entry", f"{value!r}: one of when-flat, daily, every:N, roll")


def as_date(value: Any, field: str):
    """A date-like (``"2026-07-01"``, a date, a Timestamp) as a ``datetime.date``; None stays None. Raises
    :class:`BacktestInputError` naming ``field``."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise BacktestInputError(field, f"not a date: {value!r}") from exc
    if pd.isna(ts):
        raise BacktestInputError(field, f"not a date: {value!r}")
    return ts.date()


def parse_fill(value: Any) -> tuple[str, float]:
    """``"mid"``, ``"natural"`` or ``"slippage:F"`` (0 ≤ F ≤ 1: mid ± F × half spread against the trader) →
    (model, F); ``mid`` is F = 0, ``natural`` F = 1. Raises :class:`BacktestInputError` (``fill``)."""
    text = str(value).strip().lower()
    if text == "mid":
        return "mid", 0.0
    if text == "natural":
        return "natural", 1.0
    if text.startswith("slippage:"):
        try:
            f = float(text.split(":", 1)[1])
        except ValueError:
            f = float("nan")
        if math.isfinite(f) and 0.0 <= f <= 1.0:
            return "slippage", f
        raise BacktestInputError("fill", f"{value!r}: slippage:F needs 0 <= F <= 1 (the fraction of the half "
                                         "spread paid beyond the mid)")
    raise BacktestInputError("fill", f"{value!r}: one of mid, natural, slippage:F (0 <= F <= 1)")


def optional_number(value: Any, field: str) -> float | None:
    """A command-line number or ``none`` (→ None). Raises :class:`BacktestInputError` (``field``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off", "")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise BacktestInputError(field, f"{value!r} is not a number or 'none'") from exc


@dataclasses.dataclass(frozen=True)
class BacktestParams:
    """The parameters of one backtest (defaults in brackets).

    Attributes
    ----------
    strategy : str
        ``auto`` (the regime pipeline), ``short_put``, ``bull_put``, ``bear_call``, ``iron_condor``, ``bull_call``,
        ``bear_put``, ``strangle``, or the index methodologies ``putwrite`` / ``buywrite`` [``bull_put``].
    dte : int
        Target calendar days to expiry of an entry [45]; expiries within ``dte_tolerance`` [15] days are candidates.
    short_delta, long_delta : float
        ``|delta|`` of the short leg(s) [0.30] and of a credit spread's wing [0.15]. Debit spreads buy the
        ``debit_long_delta`` [0.50] leg and sell the ``short_delta`` one.
    width : float, optional
        Choose the far leg by distance in points instead of ``long_delta``.
    entry : str
        ``when-flat`` (enter when nothing is open) [default], ``daily``, ``every:N`` (every N-th served session
        from the first), ``roll`` (the monthly roll date: the standard monthly expiry, a third Friday, or the
        session before it when that Friday is a holiday). Never on the last served day (its positions would close
        at once, end of data).
    max_open : int
        Most positions open at once [1].
    profit_target : float or None
        Close when the P&L at mid marks reaches this fraction of the entry credit (or debit) [0.5].
    stop_loss : float or None
        Close when the loss at mid marks reaches this multiple of the entry credit (or debit) [2.0].
    exit_dte : int or None
        Close when the position's nearest expiry is this many calendar days away or fewer [7].
    max_hold : int or None
        Close after this many sessions held [None].
    regime_exit : bool
        ``auto`` only: close when the day's regime differs from the regime at entry [False].
    fill : str
        ``mid``, ``natural`` (buy at the ask, sell at the bid) or ``slippage:F`` (mid ± F × half spread) [``mid``].
    commission : float
        Dollars per contract and leg, at every fill (none at cash settlement) [0.65].
    account : float
        Starting equity, dollars [100000].
    contracts : int, optional
        Trade this many contracts per entry instead of the Kelly sizing (the open-risk cap still applies: an
        entry that would take the open risk over ``sizing.max_total_open_risk`` of equity is skipped) [None].
    sizing : SizingParams, optional
        Kelly fraction, per-trade and open-risk caps, bootstrap risk and count [``SizingParams()``].
    missing_leg_days : int
        A position with a leg missing from the chain for more than this many consecutive served days is closed at
        its last marks, reason ``missing_legs`` [3].
    start, end : date, optional
        Trading dates served, both included (None: the feed's).
    min_open_interest, max_spread_pct : float
        Liquidity rules of every entered leg (:class:`~research_lib.core.strategy.StrategyParams`) [5, 0.10].
    dte_tolerance : int
        [15] days around ``dte``.
    debit_long_delta : float
        [0.50].
    rate : float or None
        Continuously compounded rate for the model deltas and the book's greeks; None: the 13-week T-bill of each
        day (:func:`research_lib.data.market.risk_free_rates`), 0 where unavailable (said in the assumptions)
        [None].
    div_yield : float
        Dividend yield for the same [0.0].
    roots : tuple of str, optional
        Trade only these roots (e.g. ``("SPX",)`` for the AM-settled monthlies), preferred in the order given;
        None: every root, PM settlement preferred at an expiry listed under several [None].
    regime : RegimeParams, optional
        The regime classifier's thresholds (``auto``'s ``decide_on``, or the regime series of the modelled history)
        [``RegimeParams()``].
    regime_filter : tuple of str, optional
        Enter only on days whose gamma regime is one of these (``POSITIVE_GAMMA``, ``NEGATIVE_GAMMA``,
        ``NEUTRAL``; a comma-separated string is accepted), read from the run's regime series (the modelled
        history builds one from the published GEX) [None: every day].
    """

    strategy: str = "bull_put"
    dte: int = 45
    short_delta: float = 0.30
    long_delta: float = 0.15
    width: float | None = None
    entry: str = "when-flat"
    max_open: int = 1
    profit_target: float | None = 0.5
    stop_loss: float | None = 2.0
    exit_dte: int | None = 7
    max_hold: int | None = None
    regime_exit: bool = False
    fill: str = "mid"
    commission: float = 0.65
    account: float = 100_000.0
    contracts: int | None = None
    sizing: SizingParams | None = None
    missing_leg_days: int = 3
    start: dt.date | None = None
    end: dt.date | None = None
    min_open_interest: float = 5.0
    max_spread_pct: float | None = 0.10
    dte_tolerance: int = 15
    debit_long_delta: float = 0.50
    rate: float | None = None
    div_yield: float = 0.0
    roots: tuple[str, ...] | None = None
    regime: RegimeParams | None = None
    regime_filter: tuple[str, ...] | None = None

    def __post_init__(self):
        s = object.__setattr__
        strat = str(self.strategy).strip().lower().replace("-", "_")
        if strat not in STRATEGIES:
            raise BacktestInputError("strategy", f"{self.strategy!r}: one of {', '.join(STRATEGIES)}")
        s(self, "strategy", strat)
        self._whole("dte", lo=0)
        self._whole("dte_tolerance", lo=0)
        self._whole("max_open", lo=1)
        self._whole("missing_leg_days", lo=0)
        for name in ("exit_dte", "max_hold", "contracts"):
            if getattr(self, name) is not None:
                self._whole(name, lo=1 if name != "exit_dte" else 0)
        for name in ("short_delta", "long_delta", "debit_long_delta"):
            v = getattr(self, name)
            if not _is_number(v) or not 0 < v < 1:
                raise BacktestInputError(name, f"{v!r}: an absolute delta strictly between 0 and 1")
        if self.width is None and not self.long_delta < self.short_delta:
            raise BacktestInputError("long_delta", f"{self.long_delta!r} must be below short_delta "
                                                   f"{self.short_delta!r} (the wing is further out)")
        if not self.short_delta < self.debit_long_delta:
            raise BacktestInputError("debit_long_delta", f"{self.debit_long_delta!r} must be above short_delta "
                                                         f"{self.short_delta!r}")
        self._positive("width", optional=True)
        self._positive("profit_target", optional=True)
        self._positive("stop_loss", optional=True)
        self._positive("account")
        self._positive("max_spread_pct", optional=True)
        for name, lo in (("commission", 0.0), ("min_open_interest", 0.0)):
            v = getattr(self, name)
            if not _is_number(v) or v < lo:
                raise BacktestInputError(name, f"{v!r}: a finite number >= {lo:g}")
        if self.rate is not None and (not _is_number(self.rate) or not -1 <= self.rate <= 1):
            raise BacktestInputError("rate", f"{self.rate!r}: a decimal rate in [-1, 1] or None (the T-bill)")
        if not _is_number(self.div_yield) or not -1 <= self.div_yield <= 1:
            raise BacktestInputError("div_yield", f"{self.div_yield!r}: a decimal yield in [-1, 1]")
        if not isinstance(self.regime_exit, bool):
            raise BacktestInputError("regime_exit", f"{self.regime_exit!r}: True or False")
        if self.regime_exit and strat != "auto":
            raise BacktestInputError("regime_exit", "a regime-change exit needs strategy='auto' (a fixed strategy "
                                                    "has no regime)")
        if self.regime is not None and not isinstance(self.regime, RegimeParams):
            raise BacktestInputError("regime", f"a RegimeParams or None, got {type(self.regime).__name__}")
        if self.sizing is not None and not isinstance(self.sizing, SizingParams):
            raise BacktestInputError("sizing", f"a SizingParams or None, got {type(self.sizing).__name__}")
        parse_entry(self.entry)
        parse_fill(self.fill)
        s(self, "entry", str(self.entry).strip().lower())
        s(self, "fill", str(self.fill).strip().lower())
        for name in ("start", "end"):
            s(self, name, as_date(getattr(self, name), name))
        if self.start and self.end and self.start > self.end:
            raise BacktestInputError("start", f"{self.start} is after end {self.end}")
        if self.regime_filter is not None:
            raw = self.regime_filter.split(",") if isinstance(self.regime_filter, str) else list(self.regime_filter)
            names = tuple(str(x).strip().upper().replace("-", "_") for x in raw if str(x).strip())
            bad = [n for n in names if n not in REGIME_NAMES]
            if not names or bad:
                raise BacktestInputError("regime_filter", f"{self.regime_filter!r}: one or more of "
                                                          f"{', '.join(REGIME_NAMES)}")
            s(self, "regime_filter", names)
        if isinstance(self.roots, str):
            s(self, "roots", (self.roots,))
        try:
            sp = self.strategy_params()
        except ResearchLibError as exc:     # a combination the leg selection rejects, said under its field
            raise BacktestInputError("strategy_params", str(exc)) from exc
        s(self, "roots", sp.roots)

    def _whole(self, name: str, *, lo: int) -> None:
        v = getattr(self, name)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
            object.__setattr__(self, name, v)
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise BacktestInputError(name, f"{v!r}: a whole number >= {lo}")

    def _positive(self, name: str, *, optional: bool = False) -> None:
        v = getattr(self, name)
        if v is None and optional:
            return
        if not _is_number(v) or v <= 0:
            raise BacktestInputError(name, f"{v!r}: a positive finite number" + (" or None" if optional else ""))

    # ------------------------------------------------------------------------------------------------
    @property
    def entry_kind(self) -> tuple[str, int]:
        """(``when-flat`` | ``daily`` | ``every`` | ``roll``, N)."""
        return parse_entry(self.entry)

    @property
    def fill_model(self) -> tuple[str, float]:
        """(``mid`` | ``natural`` | ``slippage``, fraction of the half spread)."""
        return parse_fill(self.fill)

    @property
    def sizing_params(self) -> SizingParams:
        return self.sizing if self.sizing is not None else SizingParams()

    def strategy_params(self, rate: float | None = None):
        """The :class:`~research_lib.core.strategy.StrategyParams` of leg selection (target DTE, deltas or width,
        liquidity rules, ``rate`` or this object's)."""
        r = self.rate if rate is None else rate
        return StrategyParams(target_dte=self.dte, dte_tolerance=self.dte_tolerance, short_delta=self.short_delta,
                              long_delta=self.long_delta if self.width is None else min(self.long_delta,
                                                                                        self.short_delta / 2),
                              debit_long_delta=self.debit_long_delta, width_points=self.width,
                              min_open_interest=self.min_open_interest, max_spread_pct=self.max_spread_pct,
                              rate=0.0 if r is None else float(r), div_yield=float(self.div_yield),
                              roots=self.roots)

    @classmethod
    def from_cli(cls, **values) -> BacktestParams:
        """Build from command-line strings: ``profit_target``, ``stop_loss``, ``exit_dte``, ``max_hold``, ``width``,
        ``contracts`` and ``rate`` accept ``none``; numbers may be strings; None values are left at their defaults.
        Unknown names raise :class:`BacktestInputError` naming them."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise BacktestInputError(unknown[0], f"not a backtest parameter (known: {', '.join(fields)})")
        out: dict = {}
        for name, v in values.items():
            if v is None:
                continue
            if name in _NULLABLE:
                num = optional_number(v, name)
                out[name] = None if num is None else (int(num) if name in _WHOLE and float(num).is_integer()
                                                      else num)
            elif name in _WHOLE or name in _NUMBERS:
                try:
                    num = float(v)
                except (TypeError, ValueError) as exc:
                    raise BacktestInputError(name, f"{v!r} is not a number") from exc
                out[name] = int(num) if name in _WHOLE and num.is_integer() else num
            else:
                out[name] = v
        return cls(**out)

    def to_dict(self) -> dict:
        """JSON-ready: every field (``sizing`` as its own dict)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["sizing"] = dataclasses.asdict(self.sizing_params)
        d["regime"] = None if self.regime is None else dataclasses.asdict(self.regime)
        return jsonable(d)

    def replace(self, **changes) -> BacktestParams:
        return dataclasses.replace(self, **changes)


_NULLABLE = {"profit_target", "stop_loss", "exit_dte", "max_hold", "width", "contracts", "rate", "max_spread_pct"}
_WHOLE = {"dte", "max_open", "exit_dte", "max_hold", "contracts", "missing_leg_days", "dte_tolerance"}
_NUMBERS = {"short_delta", "long_delta", "commission", "account", "min_open_interest", "debit_long_delta",
            "div_yield"}

__all__ = ["BacktestParams", "ENGINE_STRATEGIES", "REGIME_NAMES", "as_date", "ENTRY_SCHEDULES", "FILL_MODELS", "INDEX_STRATEGIES", "STRATEGIES",
           "optional_number", "parse_entry", "parse_fill"]
