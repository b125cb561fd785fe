"""The paper bot's settings: one validated TOML file of knobs, ``data_root()/"paper.toml"``.

:data:`KNOBS` is the single table of every knob — its TOML table and key, type, default, range or choices and
a help sentence — and the only place defaults and validation live (the notebook's settings form is built from
it). :class:`PaperConfig` holds one value per knob; building one validates every value, so a config that
exists is a valid one.

The file (every table and key optional; a missing file is all defaults)::

    [account]   name = "paper"            cash = 100000.0
    [market]    symbols = ["SPX"]         source = "auto"
    [strategy]  name = "auto"  dte = 45  dte_tolerance = 15  short_delta = 0.30  long_delta = 0.15
                width = 0  min_open_interest = 5  max_spread_pct = 0.10
    [sizing]    kelly_fraction = 0.5  max_risk_per_trade = 0.05  max_total_open_risk = 0.20
                bootstrap_risk = 0.01  min_trades_for_kelly = 30  max_open_positions = 5  contracts = 0
    [fills]     model = "mid"  slippage = 0.25  commission = 0.65
    [exits]     profit_target = 0.5  stop_loss = 2.0  exit_dte = 7      (each: false switches the rule off)
    [schedule]  mark_every_minutes = 5

Refusals are :class:`~research_lib.errors.PaperConfigError` with ``key`` (``"exits.profit_target"``), ``value``
and ``allowed`` (the range or the choices) as attributes and in the message::

    `exits.profit_target` = 0: must be in (0, 10] or false

Numbers: a float knob takes an integer too (``cash = 100000``); a whole-number knob takes an integral float
(``dte = 45.0``, what a form widget may hand back) but not ``45.5``; booleans are never numbers. Two
relations are checked across knobs, naming both: ``strategy.long_delta < strategy.short_delta`` and
``sizing.bootstrap_risk <= sizing.max_risk_per_trade <= sizing.max_total_open_risk``.

:func:`save_config` writes the TOML itself (no writer dependency: every value is a string, a number, a boolean
or a list of strings) so that each key carries its help and range as a comment; :func:`load_config` reads it
back with :mod:`tomllib` to an equal config.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from research_lib.backtest.legspec import STRATEGY_LEGS
from research_lib.checks import interval
from research_lib.core.exits import ExitRules
from research_lib.core.sizing import SizingParams
from research_lib.core.strategy.params import StrategyParams
from research_lib.data.sources.auto import NAMED_SOURCES
from research_lib.errors import PaperConfigError
from research_lib.formatting import jsonable
from research_lib.fs import atomic_write
from research_lib.settings import data_root

__all__ = ["CONFIG_FILE", "FILL_MODELS", "KNOBS", "KNOBS_BY_FIELD", "KNOBS_BY_NAME", "STRATEGIES", "TABLES", "Knob",
           "PaperConfig", "config_path", "load_config", "save_config", "toml_value"]

#: The settings file's name under :func:`research_lib.settings.data_root`.
CONFIG_FILE = "paper.toml"
#: ``strategy.name`` values: ``"auto"`` (the decision core picks) or a fixed structure of the backtest.
STRATEGIES: tuple[str, ...] = ("auto", *STRATEGY_LEGS)
#: ``fills.model`` values (:mod:`research_lib.backtest.fills`).
FILL_MODELS: tuple[str, ...] = ("mid", "natural", "slippage")

_KINDS = ("float", "int", "str", "symbols")


@dataclasses.dataclass(frozen=True)
class Knob:
    """One setting: where it lives in the file, its type, default, what it accepts and what it means.

    Attributes
    ----------
    table, key : str
        The TOML table and key (``"exits"``, ``"profit_target"``); :attr:`name` joins them.
    field : str
        The :class:`PaperConfig` attribute (unique; ``"fill_model"`` for ``fills.model``).
    kind : {"float", "int", "str", "symbols"}
        A real number, a whole number, a string, or a list of ticker symbols.
    default : Any
        The value when the file does not set it.
    help : str
        One sentence, with the unit.
    lo, hi : float, optional
        Bounds of a number (inclusive unless ``lo_open``/``hi_open``).
    choices : tuple of str, optional
        The accepted strings of a ``str`` knob.
    pattern : str, optional
        A regular expression a ``str`` knob (or every symbol) must match in full, worded by ``pattern_words``.
    max_items : int
        Most symbols of a ``symbols`` knob (at least one, no repeats).
    off : bool
        ``false`` in the file (None on the config) switches this rule off.
    paths : bool
        Besides ``choices``, a path is accepted: printable text containing ``/`` with no space at either end
        (``"./chains.csv"`` for a relative one), so a misspelt source name is refused rather than read as a file.
    """

    table: str
    key: str
    field: str
    kind: str
    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    pattern_words: str = ""
    max_items: int = 1
    off: bool = False
    paths: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Knob {self.name}: kind {self.kind!r} is not one of {_KINDS}")

    @property
    def name(self) -> str:
        """``table.key``, as errors and the form show it."""
        return f"{self.table}.{self.key}"

    @property
    def allowed(self) -> str:
        """What the knob accepts, in words (``"in (0, 10] or false"``); the ``allowed`` of its errors."""
        if self.kind in ("float", "int"):
            rng = interval(self.lo, self.hi, lo_open=self.lo_open, hi_open=self.hi_open)
            text = rng if self.kind == "float" else f"a whole number {rng}"
        elif self.kind == "symbols":
            text = f"a list of 1 to {self.max_items} different symbols, each {self.pattern_words}"
        elif self.choices is not None:
            text = "one of " + ", ".join(f'"{c}"' for c in self.choices)
            text += " or a path (text containing '/')" if self.paths else ""
        else:
            text = self.pattern_words
        return f"{text} or false" if self.off else text

    def check(self, value: Any) -> Any:
        """``value`` validated and normalised (float, int, str, tuple of str, or None for a rule switched off).

        Raises
        ------
        PaperConfigError
            The value is of the wrong type or outside :attr:`allowed`.
        """
        if self.off and (value is None or value is False):
            return None
        if self.kind in ("float", "int"):
            return self._number(value)
        if self.kind == "symbols":
            return self._symbols(value)
        if not isinstance(value, str):
            raise self.refuse(value, f"must be text: {self.allowed}")
        if self.choices is not None and value in self.choices:
            return value
        if self.paths and "/" in value and value.isprintable() and value.strip() == value:
            return value
        if self.pattern is not None and re.fullmatch(self.pattern, value):
            return value
        raise self.refuse(value)

    def refuse(self, value: Any, why: str | None = None) -> PaperConfigError:
        """The :class:`PaperConfigError` for ``value`` (``why`` defaults to ``"must be " + allowed``)."""
        why = why or f"must be {self.allowed}"
        return PaperConfigError(f"`{self.name}` = {_show(value)}: {why}", key=self.name, value=value,
                                allowed=self.allowed)

    def _number(self, value: Any) -> float | int:
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(float(value)):
            raise self.refuse(value, f"must be a {'number' if self.kind == 'float' else 'whole number'} "
                                     f"{interval(self.lo, self.hi, lo_open=self.lo_open, hi_open=self.hi_open)}"
                                     + (" or false" if self.off else ""))
        if self.kind == "int":
            if float(value) != int(value):
                raise self.refuse(value)
            x: float | int = int(value)
        else:
            x = float(value)
        if (self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo))) or \
                (self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi))):
            raise self.refuse(value)
        return x

    def _symbols(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or not 1 <= len(value) <= self.max_items:
            raise self.refuse(value)
        for item in value:
            if not isinstance(item, str) or not re.fullmatch(self.pattern or "", item):
                raise self.refuse(value, f"{_show(item)} must be {self.pattern_words} ({self.allowed})")
        if len(set(value)) != len(value):
            raise self.refuse(value, f"a symbol is listed twice ({self.allowed})")
        return tuple(value)


def _k(table: str, key: str, kind: str, default: Any, help: str, field: str | None = None, **kw: Any) -> Knob:
    return Knob(table=table, key=key, field=field or key, kind=kind, default=default, help=help, **kw)


#: Every knob, in file order: the one place of the defaults, the ranges and the help.
KNOBS: tuple[Knob, ...] = (
    _k("account", "name", "str", "paper", "The paper account's name in the ledger.", field="account",
       pattern=r"[A-Za-z0-9_.-]{1,64}", pattern_words="1 to 64 characters of A-Z a-z 0-9 _ . -"),
    _k("account", "cash", "float", 100_000.0, "Starting cash of the account, in dollars.", lo=1_000.0, hi=1e9),
    _k("market", "symbols", "symbols", ("SPX",), "Underlyings the bot trades and marks.",
       pattern=r"[A-Z]{1,6}", pattern_words="1 to 6 capital letters A-Z", max_items=10),
    _k("market", "source", "str", "auto", "Where chains come from: auto (live providers, then the store, then "
       "the modelled SPX chain), one source, or a chain file.", choices=NAMED_SOURCES, paths=True),
    _k("strategy", "name", "str", "auto", "The structure traded: auto lets the decision core choose, any other "
       "name trades that structure whenever it proposes a trade.", field="strategy", choices=STRATEGIES),
    _k("strategy", "dte", "int", 45, "Target calendar days to expiry of an entry.", lo=1, hi=365),
    _k("strategy", "dte_tolerance", "int", 15, "Expiries up to this many calendar days from the target are "
       "candidates.", lo=0, hi=60),
    _k("strategy", "short_delta", "float", 0.30, "Absolute delta of the short leg(s).", lo=0.01, hi=0.9),
    _k("strategy", "long_delta", "float", 0.15, "Absolute delta of a credit spread's wing (below short_delta); "
       "used when width is 0.", lo=0.01, hi=0.9),
    _k("strategy", "width", "float", 0.0, "Wing distance in points of the underlying; 0 chooses the wing by "
       "long_delta.", lo=0.0, hi=500.0),
    _k("strategy", "min_open_interest", "int", 5, "Contracts with less open interest are not traded (0: all).",
       lo=0, hi=1_000_000),
    _k("strategy", "max_spread_pct", "float", 0.10, "Widest bid/ask spread accepted, as a fraction of the mid "
       "(0.10 = 10%).", lo=0.0, hi=1.0, lo_open=True),
    _k("sizing", "kelly_fraction", "float", 0.5, "Multiplier on the Kelly fraction (0.5 = half Kelly).",
       lo=0.0, hi=1.0, lo_open=True),
    _k("sizing", "max_risk_per_trade", "float", 0.05, "Cap on one trade's max loss, as a fraction of the account.",
       lo=0.0, hi=1.0, lo_open=True),
    _k("sizing", "max_total_open_risk", "float", 0.20, "Cap on the max loss of all open positions plus the new "
       "trade, as a fraction of the account.", lo=0.0, hi=1.0, lo_open=True),
    _k("sizing", "bootstrap_risk", "float", 0.01, "Risk per trade until the history is long enough for Kelly, as "
       "a fraction of the account.", lo=0.0, hi=1.0),
    _k("sizing", "min_trades_for_kelly", "int", 30, "Closed trades needed before Kelly replaces the bootstrap "
       "risk.", lo=0, hi=1000),
    _k("sizing", "max_open_positions", "int", 5, "Most positions open at once; no new entry beyond.", lo=1, hi=100),
    _k("sizing", "contracts", "int", 0, "Contracts per trade; 0 sizes by Kelly and the risk caps.", lo=0, hi=1000),
    _k("fills", "model", "str", "mid", "Fill price: mid, natural (buy at the ask, sell at the bid) or slippage "
       "(mid moved against the trader by a fraction of the half spread).", field="fill_model", choices=FILL_MODELS),
    _k("fills", "slippage", "float", 0.25, "Fraction of the half spread paid beyond the mid (the slippage model "
       "only).", lo=0.0, hi=1.0),
    _k("fills", "commission", "float", 0.65, "Commission in dollars per contract and leg, at every fill.",
       lo=0.0, hi=50.0),
    _k("exits", "profit_target", "float", 0.5, "Close when this fraction of the entry credit (or debit) is "
       "earned at mid marks.", lo=0.0, hi=10.0, lo_open=True, off=True),
    _k("exits", "stop_loss", "float", 2.0, "Close when the loss at mid marks reaches this multiple of the entry "
       "credit (or debit).", lo=0.0, hi=100.0, lo_open=True, off=True),
    _k("exits", "exit_dte", "int", 7, "Close when the nearest expiry is this many calendar days away or fewer.",
       lo=0, hi=365, off=True),
    _k("schedule", "mark_every_minutes", "int", 5, "Minutes between marks during the session.", lo=1, hi=390),
)
#: The knobs by ``table.key`` and by :class:`PaperConfig` field.
KNOBS_BY_NAME: dict[str, Knob] = {k.name: k for k in KNOBS}
KNOBS_BY_FIELD: dict[str, Knob] = {k.field: k for k in KNOBS}
#: The TOML tables, in file order, each with its keys.
TABLES: dict[str, tuple[str, ...]] = {t: tuple(k.key for k in KNOBS if k.table == t)
                                      for t in dict.fromkeys(k.table for k in KNOBS)}

def _default(field: str) -> Any:
    """The default of the knob behind :class:`PaperConfig` attribute ``field`` (defaults live in :data:`KNOBS`)."""
    return KNOBS_BY_FIELD[field].default


#: Cross-knob rules: (smaller field, larger field, strict).
_ORDERED = (("long_delta", "short_delta", True), ("bootstrap_risk", "max_risk_per_trade", False),
            ("max_risk_per_trade", "max_total_open_risk", False))


def _show(value: Any) -> str:
    """``value`` as the file would spell it (``0``, ``"abc"``, ``false``, ``["SPX"]``); ``repr`` for others."""
    try:
        return toml_value(value)
    except (TypeError, ValueError):
        return repr(value)


def toml_value(value: Any) -> str:
    """``value`` (str, bool, int, finite float, or a list/tuple of them) as a TOML value.

    Floats keep a decimal point or exponent (``100000.0``, ``1e-05``) so they read back as floats.

    Raises
    ------
    TypeError
        Any other value (None, NaN, a dict ...).
    ValueError
        Text with a lone surrogate (not Unicode).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise ValueError(f"{value!r} holds a lone surrogate: not Unicode text TOML can hold")
        out = value.replace("\\", "\\\\").replace('"', '\\"')
        out = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
                      for c in out)
        return f'"{out}"'
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return repr(float(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"{value!r} has no TOML spelling here")


@dataclasses.dataclass(frozen=True)
class PaperConfig:
    """Every paper-bot knob (see :data:`KNOBS` for each one's range, unit and help).

    Building one validates each value (:meth:`Knob.check`) and the cross-knob rules, and normalises the types
    (ints to float on float knobs, symbols to a tuple, a rule switched off to None).

    Raises
    ------
    PaperConfigError
        A value out of range or of the wrong type (``key``, ``value``, ``allowed`` name it), or a cross-knob
        rule broken (the message names both keys).
    """

    account: str = _default("account")
    cash: float = _default("cash")
    symbols: tuple[str, ...] = _default("symbols")
    source: str = _default("source")
    strategy: str = _default("strategy")
    dte: int = _default("dte")
    dte_tolerance: int = _default("dte_tolerance")
    short_delta: float = _default("short_delta")
    long_delta: float = _default("long_delta")
    width: float = _default("width")
    min_open_interest: int = _default("min_open_interest")
    max_spread_pct: float = _default("max_spread_pct")
    kelly_fraction: float = _default("kelly_fraction")
    max_risk_per_trade: float = _default("max_risk_per_trade")
    max_total_open_risk: float = _default("max_total_open_risk")
    bootstrap_risk: float = _default("bootstrap_risk")
    min_trades_for_kelly: int = _default("min_trades_for_kelly")
    max_open_positions: int = _default("max_open_positions")
    contracts: int = _default("contracts")
    fill_model: str = _default("fill_model")
    slippage: float = _default("slippage")
    commission: float = _default("commission")
    profit_target: float | None = _default("profit_target")
    stop_loss: float | None = _default("stop_loss")
    exit_dte: int | None = _default("exit_dte")
    mark_every_minutes: int = _default("mark_every_minutes")

    def __post_init__(self) -> None:
        for knob in KNOBS:
            object.__setattr__(self, knob.field, knob.check(getattr(self, knob.field)))
        for small, large, strict in _ORDERED:
            a, b = getattr(self, small), getattr(self, large)
            if a > b or (strict and a == b):
                ka, kb = KNOBS_BY_FIELD[small], KNOBS_BY_FIELD[large]
                rel = "below" if strict else "at most"
                raise PaperConfigError(f"`{ka.name}` = {_show(a)}: must be {rel} `{kb.name}` = {_show(b)}",
                                       key=ka.name, value=a, allowed=f"{'<' if strict else '<='} {kb.name}")

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, path: str | Path | None = None) -> PaperConfig:
        """A config from nested tables (what :func:`tomllib.load` returns); missing keys take their defaults.

        Parameters
        ----------
        data : mapping
            ``{"exits": {"profit_target": 0.6}, ...}``; a rule switched off is ``False`` (or None).
        path : path, optional
            The file the tables came from, named in the errors.

        Raises
        ------
        PaperConfigError
            An unknown table (the message lists the tables) or key (it lists that table's keys), a table that
            is not a table, or any value refused (see the class).
        """
        where = f"{path}: " if path is not None else ""
        if not isinstance(data, Mapping):
            raise PaperConfigError(f"{where}the settings must be tables of keys, not {type(data).__name__}",
                                   path=path)
        values: dict[str, Any] = {}
        for table, entries in data.items():
            if table not in TABLES:
                raise PaperConfigError(f"{where}unknown table [{table}] (the tables are "
                                       f"{', '.join(f'[{t}]' for t in TABLES)})", key=str(table), path=path,
                                       allowed=", ".join(TABLES))
            if not isinstance(entries, Mapping):
                raise PaperConfigError(f"{where}`{table}` = {_show(entries)}: must be a table [{table}] of keys "
                                       f"({', '.join(TABLES[table])})", key=table, value=entries, path=path,
                                       allowed=", ".join(TABLES[table]))
            for key, value in entries.items():
                knob = KNOBS_BY_NAME.get(f"{table}.{key}")
                if knob is None:
                    raise PaperConfigError(f"{where}unknown key `{table}.{key}` (the keys of [{table}] are "
                                           f"{', '.join(TABLES[table])})", key=f"{table}.{key}", value=value,
                                           path=path, allowed=", ".join(TABLES[table]))
                values[knob.field] = value
        try:
            return cls(**values)
        except PaperConfigError as exc:
            if path is None:
                raise
            raise PaperConfigError(f"{path}: {exc}", key=exc.key, value=exc.value, allowed=exc.allowed,
                                   path=path) from None

    def to_mapping(self) -> dict[str, dict[str, Any]]:
        """Nested tables ready for TOML: a rule switched off is ``False``, symbols a list."""
        out: dict[str, dict[str, Any]] = {t: {} for t in TABLES}
        for knob in KNOBS:
            v = getattr(self, knob.field)
            out[knob.table][knob.key] = (False if v is None else list(v) if isinstance(v, tuple) else v)
        return out

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested tables ready for JSON: a rule switched off is None (``null``). :meth:`from_mapping` reads it."""
        out = self.to_mapping()
        for knob in KNOBS:
            if knob.off and getattr(self, knob.field) is None:
                out[knob.table][knob.key] = None
        return jsonable(out)

    def replace(self, **changes: Any) -> PaperConfig:
        """A copy with ``changes`` (field names, see :data:`KNOBS_BY_FIELD`), validated like a new config.

        Raises
        ------
        PaperConfigError
            An unknown field (the message lists the fields) or a value refused.
        """
        unknown = sorted(set(changes) - set(KNOBS_BY_FIELD))
        if unknown:
            raise PaperConfigError(f"unknown setting {unknown[0]!r} (the settings are {', '.join(KNOBS_BY_FIELD)})",
                                   key=unknown[0], value=changes[unknown[0]], allowed=", ".join(KNOBS_BY_FIELD))
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------------------------
    @property
    def fixed_strategy(self) -> str | None:
        """The structure to trade, or None when ``strategy.name`` is ``"auto"`` (the decision core chooses)."""
        return None if self.strategy == "auto" else self.strategy

    def exit_rules(self) -> ExitRules:
        """The ``[exits]`` knobs as :class:`~research_lib.core.exits.ExitRules`."""
        return ExitRules(profit_target=self.profit_target, stop_loss=self.stop_loss, exit_dte=self.exit_dte)

    def sizing_params(self) -> SizingParams:
        """The Kelly knobs of ``[sizing]`` as :class:`~research_lib.core.sizing.SizingParams` (the other knobs of
        the table — ``max_open_positions``, ``contracts`` — are the trader's, not the sizer's)."""
        return SizingParams(kelly_fraction=self.kelly_fraction, max_risk_per_trade=self.max_risk_per_trade,
                            max_total_open_risk=self.max_total_open_risk, bootstrap_risk=self.bootstrap_risk,
                            min_trades_for_kelly=self.min_trades_for_kelly)

    def strategy_params(self, **overrides: Any) -> StrategyParams:
        """The ``[strategy]`` knobs as :class:`~research_lib.core.strategy.StrategyParams` (leg selection).

        ``width`` 0 selects the wing by ``long_delta``, else by ``width_points``. A debit spread's long leg
        keeps the core's 0.50 delta, or sits halfway between ``short_delta`` and 1 when ``short_delta`` is
        0.5 or more (the core needs it nearer the money than the short leg). ``overrides`` pass other
        :class:`StrategyParams` fields (``rate``, ``div_yield``, ``roots`` ...).
        """
        debit = 0.5 if self.short_delta < 0.5 else (self.short_delta + 1.0) / 2.0
        fields = dict(target_dte=self.dte, dte_tolerance=self.dte_tolerance, short_delta=self.short_delta,
                      long_delta=self.long_delta, debit_long_delta=debit,
                      width_points=self.width if self.width > 0 else None,
                      min_open_interest=float(self.min_open_interest), max_spread_pct=self.max_spread_pct)
        fields.update(overrides)
        return StrategyParams(**fields)


def config_path() -> Path:
    """``data_root()/"paper.toml"`` (``$RESEARCH_LIB_DATA`` moves it with the data)."""
    return data_root() / CONFIG_FILE


def _toml_line(message: str) -> int | None:
    m = re.search(r"at line (\d+)", message)
    return int(m.group(1)) if m else None


def load_config(path: str | Path | None = None) -> PaperConfig:
    """The settings in ``path`` (default :func:`config_path`); all defaults when the file does not exist.

    Raises
    ------
    PaperConfigError
        The file cannot be read, is not UTF-8, is not valid TOML (the message names the file, the line and
        shows it), or holds an unknown table or key or a refused value (see :meth:`PaperConfig.from_mapping`).
    """
    p = Path(path) if path is not None else config_path()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return PaperConfig()
    except OSError as exc:
        raise PaperConfigError(f"{p}: cannot read the paper settings: {exc.strerror or exc}", path=p) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise PaperConfigError(f"{p}: line {line}: not UTF-8 text (byte {exc.start})", path=p) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_line(str(exc))
        shown = ""
        if line is not None and 1 <= line <= len(text.splitlines()):
            shown = f": {text.splitlines()[line - 1].strip()!r}"
        where = f"line {line}{shown}" if line is not None else "somewhere"
        raise PaperConfigError(f"{p}: not valid TOML at {where} ({exc})", path=p) from None
    return PaperConfig.from_mapping(data, path=p)


def save_config(config: PaperConfig, path: str | Path | None = None) -> Path:
    """Write ``config`` to ``path`` (default :func:`config_path`) atomically, with every key and its range.

    The file starts with a header comment; each table lists all its keys (also those at their default), each
    preceded by a comment with its help sentence, range and default. Readers see the old file or the new one.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    PaperConfigError
        ``config`` is not a :class:`PaperConfig` or does not validate (one patched past its checks).
    """
    if not isinstance(config, PaperConfig):
        raise PaperConfigError(f"save_config needs a PaperConfig, not {type(config).__name__}")
    checked = PaperConfig.from_mapping(config.to_mapping())
    p = Path(path) if path is not None else config_path()
    mapping = checked.to_mapping()
    lines = ["# research_lib paper-trading settings (research-lib paper ...; research_lib.paper.config).",
             "# Every key is optional: a missing one takes its default. A rule in [exits] is switched off with "
             "false.", "# Written by save_config; edit freely: load_config checks every value.", ""]
    for table, keys in TABLES.items():
        lines.append(f"[{table}]")
        for key in keys:
            knob = KNOBS_BY_NAME[f"{table}.{key}"]
            lines.append(f"# {knob.help} Allowed: {knob.allowed}. Default: {_show(_toml_default(knob))}.")
            lines.append(f"{key} = {toml_value(mapping[table][key])}")
        lines.append("")
    atomic_write(p, "\n".join(lines).encode("utf-8"))
    return p


def _toml_default(knob: Knob) -> Any:
    d = knob.default
    return list(d) if isinstance(d, tuple) else d
