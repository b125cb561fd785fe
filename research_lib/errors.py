"""Foundation: every exception class research_lib raises on purpose, under one base, grouped by kind.

Standard library only. The modules that raise an error import it from here and re-export it under its old
name (``research_lib.chain.ChainError`` is ``research_lib.errors.ChainError``). The HTTP providers' errors
(:class:`research_lib.data.sources.http.ProviderError` and its subclasses) stay beside the client: their
messages pass through its secret filter. They too derive from :class:`ResearchLibError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


# ----------------------------------------------------------------------------------------------------
# The base
# ----------------------------------------------------------------------------------------------------
class ResearchLibError(Exception):
    """Base class of every error research_lib raises on purpose."""


# ----------------------------------------------------------------------------------------------------
# Bad input: a chain, a file or market history that is malformed or cannot be true
# ----------------------------------------------------------------------------------------------------
def describe_bad_rows(message: str, *, where: str | None = None, column: str | None = None,
                      n_bad: int | None = None, example: str | None = None) -> str:
    """The one wording of a bad-data message: ``"{where}: {message} [column 'c', 3 bad rows, e.g. {example}]"``.

    Parameters
    ----------
    message : str
        What is wrong, in words.
    where : str, optional
        The file or feed, put first with a colon; omitted when None or empty.
    column : str, optional
        The column concerned (shown quoted).
    n_bad : int, optional
        How many rows are bad ("1 bad row", "2 bad rows").
    example : str, optional
        One bad value, already formatted by the caller (``repr(value)``, ``"'x' on line 3"``), shown as given.

    Returns
    -------
    str
        The bracket lists those of column, count and example that are given, in that order, and is left
        out when none is.
    """
    inner = []
    if column is not None:
        inner.append(f"column {column!r}")
    if n_bad is not None:
        inner.append(f"{n_bad} bad row{'s' if n_bad != 1 else ''}")
    if example is not None:
        inner.append(f"e.g. {example}")
    return (f"{where}: " if where else "") + message + (" [" + ", ".join(inner) + "]" if inner else "")


class ChainError(ResearchLibError, ValueError):
    """An option chain (or a file claiming to be one) is malformed.

    The message names where (file, column), how many rows are bad and one example (see
    :func:`describe_bad_rows`; the example is shown as its ``repr``).
    """

    def __init__(self, message: str, *, column: str | None = None, n_bad: int | None = None,
                 example: Any = None, where: str | None = None):
        self.column = column
        self.n_bad = n_bad
        self.example = example
        self.where = where
        super().__init__(describe_bad_rows(message, where=where, column=column, n_bad=n_bad,
                                           example=None if example is None else repr(example)))


class UnreadableFileError(ChainError):
    """A chain file exists but cannot be read: damaged or truncated bytes, a directory, no permission.

    Raised once, at the reading edge (:mod:`research_lib.sources`), in place of the low-level error
    (a pyarrow ``OSError`` such as "ZSTD decompression failed", an ``EOFError`` of a truncated gzip, a
    pandas ``ParserError`` of a row cut in half ...), which stays chained as ``__cause__``. The message
    names the file and what went wrong, on one line.
    """


class ImplausibleChainError(ChainError):
    """A chain parses but cannot be true as a whole (see :mod:`research_lib.plausibility`).

    ``check`` names the check that failed (``"forward"``, ``"spot"``, ``"iv"``, ``"iv_gamma_swapped"``,
    ``"open_interest"``).
    """

    def __init__(self, message: str, *, check: str, where: str | None = None):
        self.check = check
        super().__init__(message, where=where)


class UnknownFormatError(ChainError):
    """A file is not in any chain format research_lib reads."""


class SnapshotNotFoundError(ChainError):
    """A date was asked of a multi-day file that does not hold it (or holds it only unclean)."""


class DuplicateContractError(ChainError):
    """A contract table holds the same contract (root, expiration, strike, right) more than once, so a
    contract of one snapshot cannot be matched with one of another (:mod:`research_lib.core.gex_change`).
    ``ChainSnapshot.create`` refuses such tables; this catches snapshots built around it."""


class ChangeInputError(ResearchLibError, ValueError):
    """Two snapshots given to :func:`~research_lib.core.gex_change.attribute_change` do not make a
    before/after pair."""


class UnderlyingMismatchError(ChangeInputError):
    """The two snapshots are of different underlyings; the message names both."""


class SnapshotOrderError(ChangeInputError):
    """The "after" snapshot is not quoted later than the "before" one; the message gives both quote times."""


class MarketDataError(ResearchLibError, ValueError):
    """A market history file is malformed, or a lookup has no data for the date asked.

    The message names the file (``path``), the column, how many rows are bad and one example (see
    :func:`describe_bad_rows`; the example is shown as given, e.g. ``"'x' on line 3"``).
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, column: str | None = None,
                 n_bad: int | None = None, example: Any = None):
        self.path = None if path is None else str(path)
        self.column = column
        self.n_bad = n_bad
        self.example = example
        super().__init__(describe_bad_rows(message, where=self.path, column=column, n_bad=n_bad,
                                           example=None if example is None else str(example)))


class DayTableError(MarketDataError):
    """The day table (:func:`research_lib.data.market.load_day_table`) cannot be built for a session: a
    required input (``open``, ``close``, ``vix``) is missing that day, or a carried input has been missing
    for more sessions than allowed. ``date`` and ``column`` name the first offending session and input."""

    def __init__(self, message: str, *, date: Any = None, column: str | None = None,
                 path: str | os.PathLike | None = None, n_bad: int | None = None):
        self.date = None if date is None else str(date)
        super().__init__(message, path=path, column=column, n_bad=n_bad, example=self.date)


class IntradayFileError(MarketDataError):
    """An intraday file (OHLCV bars, tick trades, 1-second quote or trade bars) cannot be read or holds bad
    rows: a malformed line (wrong number of fields), a non-numeric value, a negative size, ``high < low``, an
    open or close outside the bar's range, a duplicate bar time, a file name without its date.

    The message names the file (``path``), the column, how many rows are bad and one example with its line
    number (``line``, 1-based in the file as written, header included); see :func:`describe_bad_rows`.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, column: str | None = None,
                 n_bad: int | None = None, example: Any = None, line: int | None = None):
        self.line = line
        super().__init__(message, path=path, column=column, n_bad=n_bad, example=example)


class OrderFlowInputError(ResearchLibError, ValueError):
    """An input of :mod:`research_lib.core.order_flow` is impossible: an unknown rule, arrays of different
    lengths, a non-finite or non-positive price, a negative size, a quote rule without quotes, a window or
    threshold out of range. The message names the argument and, for bad values, the count and an example."""


class MarketDataNotFoundError(ResearchLibError, FileNotFoundError):
    """No file matching a market history pattern was found in any searched directory.

    Attributes ``patterns`` (the file-name patterns tried) and ``searched`` (the directories, in order).
    """

    def __init__(self, message: str, *, patterns: Iterable[str] = (), searched: Iterable[Path] = ()):
        self.patterns = tuple(patterns)
        self.searched = tuple(Path(p) for p in searched)
        super().__init__(message)

    def __str__(self) -> str:  # FileNotFoundError would format errno/filename; keep the plain message
        return str(self.args[0]) if self.args else ""


class ModelledChainError(ResearchLibError, ValueError):
    """An input of :func:`modelled_chain` is impossible or missing (no spot offline for that date ...)."""


class ModelledHistoryError(ModelledChainError):
    """An input of the model-priced history (:mod:`research_lib.data.modelled_history`) is impossible: a
    non-positive or non-finite VIX level, spot or strike, mismatched shapes, a bad delta band ..."""


class RegimeInputError(ResearchLibError, ValueError):
    """A :class:`RegimeInputs` field has an impossible value; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"RegimeInputs.{field}: {message}")


class AlertInputError(ResearchLibError, ValueError):
    """An input to an alert rule is malformed (missing column, impossible level, mismatched snapshots)."""


class CalendarRangeError(ResearchLibError, ValueError):
    """A moment outside the range the exchange calendar covers (1990–2040)."""


class MarketViewError(ResearchLibError, LookupError):
    """A market file kind that the history was not loaded with."""


class DecisionInputError(ResearchLibError, ValueError):
    """:func:`decide_on` was given inputs that do not belong to the same day (a view or a previous
    decision dated on or after the chain's trading date)."""


# ----------------------------------------------------------------------------------------------------
# Bad parameters: what the caller asked for is out of range or unknown
# ----------------------------------------------------------------------------------------------------
class GexConfigError(ResearchLibError, ValueError):
    """A :class:`GexConfig` field has an impossible value."""


class AttributionParamsError(ResearchLibError, ValueError):
    """A parameter of :func:`~research_lib.core.gex_change.attribute_change` is impossible (an unknown
    ``method``, bucket edges that are not strictly increasing finite numbers ...); ``argument`` names it."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class RegimeParamsError(ResearchLibError, ValueError):
    """A :class:`RegimeParams` field has an impossible value; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"RegimeParams.{field}: {message}")


class SizingError(ResearchLibError, ValueError):
    """Bad input to sizing: a non-positive account or max loss, a win rate outside [0, 1], NaN, a
    negative loss magnitude... The message names the argument and the value."""

    def __init__(self, message: str, *, argument: str | None = None, value: Any = None):
        self.argument = argument
        self.value = value
        super().__init__(f"{argument}={value!r}: {message}" if argument is not None else message)


class StrategyError(ResearchLibError, ValueError):
    """Bad input to the strategy module (not a chain without suitable legs: that is a NoValidStrategy)."""


class UnknownActionError(StrategyError):
    """The action is not one of :data:`ACTIONS`."""


class UnknownTrendError(StrategyError):
    """The trend is not one of :data:`TRENDS`."""


class UnknownStrategyError(StrategyError):
    """The strategy kind is not a :class:`StrategyKind`."""


class StrategyParamsError(StrategyError):
    """A :class:`StrategyParams` field has an impossible value."""


class AlertParamsError(ResearchLibError, ValueError):
    """An :class:`AlertParams` field has an impossible value."""


class HistoryArgumentError(ResearchLibError, ValueError):
    """An argument of :func:`net_gex_history` or :func:`history_context` is impossible; ``argument`` names
    it and the message says what was given and what is accepted."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class BacktestInputError(ResearchLibError, ValueError):
    """A backtest parameter or input is impossible (checked before anything runs); ``argument`` names it and the
    message says what was given and what is accepted."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class SweepInputError(ResearchLibError, ValueError):
    """A parameter sweep's grid file or output folder is unusable (checked before any configuration runs):
    ``path`` is the grid file (or the folder), ``table`` the TOML table (``backtest``, ``grid``, ``walk_forward``,
    or ``folder``) and ``key`` the entry; the message says what was given and what is accepted."""

    def __init__(self, path, table: str, key: str, message: str):
        self.path, self.table, self.key = str(path), table, key
        where = f"{self.path} [{table}]" + (f" {key}" if key else "")
        super().__init__(f"{where}: {message}")


class SweepStatisticError(ResearchLibError, ValueError):
    """An overfitting statistic (walk-forward, probabilistic or deflated Sharpe ratio) got impossible input: the
    message names the argument, what was given and what is accepted."""


class SettlementError(ResearchLibError, LookupError):
    """No settlement price for an expiring leg: the daily history lacks the session (its open for AM-settled,
    its close for PM-settled roots)."""


class ReportParameterError(ResearchLibError, ValueError):
    """A daily-report parameter is invalid; the message names the parameter, the value and what is allowed."""


class QuoteFitArgumentError(ResearchLibError, ValueError):
    """An argument of the quote-based estimates (parity forwards and spot, the smoothed IV surface, the
    data-effects measurements) is impossible; ``argument`` names it."""

    def __init__(self, message: str, *, argument: str | None = None):
        self.argument = argument
        super().__init__(message)


class ProfileParamsError(ResearchLibError, ValueError):
    """A parameter of the volume profile (:mod:`research_lib.core.volume_profile`) is impossible or unknown (a
    non-positive row size, a value-area fraction outside (0, 1], an unknown method, rule or preset, a method
    that contradicts the preset ...); ``argument`` names it and the message says what was given and what is
    accepted."""

    def __init__(self, argument: str, message: str):
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class ProfileInputError(ResearchLibError, ValueError):
    """The bars given to the volume profile are malformed: a missing column, a non-finite price or volume, a
    low above its high, a close outside its bar, a negative volume, timestamps out of order. The message names
    the column, how many rows are bad and one example (see :func:`describe_bad_rows`)."""

    def __init__(self, message: str, *, column: str | None = None, n_bad: int | None = None,
                 example: Any = None):
        self.column = column
        self.n_bad = n_bad
        self.example = example
        super().__init__(describe_bad_rows(message, column=column, n_bad=n_bad,
                                           example=None if example is None else str(example)))


# ----------------------------------------------------------------------------------------------------
# Nothing to compute: the input is valid but holds nothing to answer with
# ----------------------------------------------------------------------------------------------------
class NothingToComputeError(ResearchLibError, ValueError):
    """The input is valid but holds nothing to compute from (no exposure, no chain from any source)."""


class NoExposureError(NothingToComputeError):
    """Nothing is left to compute exposures from (every contract expired, filtered out or unpriceable).

    A :class:`~research_lib.chain.ChainError`: the chain is valid but cannot give levels.
    """


class NoParityExpiryError(NothingToComputeError):
    """No expiry of a chain qualifies for put-call parity (:func:`research_lib.core.parity.parity_spot`):
    none within the day window with two-sided call and put quotes at enough strikes. The message says
    which window and how many expiries were looked at."""


class EmptyProfileError(NothingToComputeError):
    """A volume profile was asked of bars that hold nothing to profile: no bar at all (an empty file, a date or
    range without bars) or no volume (an index file whose volume column is all zero). The message says which."""


class NoChainAvailableError(ResearchLibError):
    """No source could serve a chain; the message lists what each one said."""


# ----------------------------------------------------------------------------------------------------
# Stored state: the chain store, the decision log, the reports folder
# ----------------------------------------------------------------------------------------------------
class StoreError(ResearchLibError):
    """The store cannot do what was asked: a corrupt or foreign file, a version it cannot read, a
    snapshot it cannot hold. The message names the file (``path``) and what is wrong."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None):
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class SnapshotNotStoredError(StoreError, LookupError):
    """:meth:`ChainStore.get` found no snapshot matching the request; the message says what was asked
    and what the store holds."""


class NothingToImportError(StoreError, ValueError):
    """An import was given nothing to import: a chain file or archive without a single row, a folder
    without a file, or no path at all. The message names what was empty."""


class DecisionError(ResearchLibError, ValueError):
    """A decision, context, leg or alert is malformed, or a filter is; the message names the field."""


class DecisionLogError(ResearchLibError):
    """The log file cannot be used (not SQLite, not a decision log, unreadable). Names the file."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None):
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class SchemaVersionError(DecisionLogError):
    """The log was written with a schema this research_lib cannot read (a newer one, or inconsistent).

    ``supported`` is the schema this research_lib writes (:data:`research_lib.records.decisions.SCHEMA_VERSION`).
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, found: int | None = None,
                 supported: int | None = None):
        self.found = found
        self.supported = supported
        super().__init__(message, path=path)


class DuplicateDecisionError(DecisionLogError, ValueError):
    """A decision with that id is already in the log."""


class DecisionNotFoundError(DecisionLogError, LookupError):
    """:meth:`DecisionLog.get` found no decision with that id."""


class LockBusyError(ResearchLibError, BlockingIOError):
    """Another process holds a lock taken without waiting (:func:`research_lib.fs.file_lock`).

    Attributes ``path`` (the lock file) and ``holder`` (what the holder wrote into it).
    """

    def __init__(self, message: str, *, path: str | os.PathLike, holder: str):
        self.path = Path(path)
        self.holder = holder
        super().__init__(message)

    def __str__(self) -> str:  # BlockingIOError would format errno; keep the plain message
        return str(self.args[0]) if self.args else ""


class MarketStateError(ResearchLibError, ValueError):
    """Bad input to the intraday market-state rules (no bars, a missing column or price, an impossible value area,
    a parameter out of range); the message names it."""


class PaperError(ResearchLibError):
    """Base of the paper-trading errors (:mod:`research_lib.records.paper`, :mod:`research_lib.paper`)."""


class LedgerError(PaperError):
    """The paper ledger file cannot be used (not SQLite, not a ledger, a newer schema) or a state change broke
    one of its rules (a fill for an unknown order, a close of a closed position). Names the file or the row."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None):
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class LedgerSchemaError(LedgerError):
    """The ledger file's schema is one this research_lib cannot read: a newer version (upgrade research_lib), a
    version without a migration, or a ``user_version`` that disagrees with its ``schema_version`` table.

    ``found`` is the file's version, ``supported`` the one this research_lib writes
    (:data:`research_lib.records.paper.schema.SCHEMA_VERSION`).
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, found: int | None = None,
                 supported: int | None = None):
        self.found = found
        self.supported = supported
        super().__init__(message, path=path)


class PaperAccountError(PaperError, LookupError):
    """No paper account of that name (the message lists the accounts), or an account argument is malformed."""


class OrderError(PaperError, ValueError):
    """A paper order is malformed (names the field and value), or reuses a client order id for a different
    order (names the id and what differs)."""


class PositionNotFoundError(PaperError, LookupError):
    """No position with that id in the account (the message lists the open ones)."""


class MarkError(PaperError):
    """A position could not be marked: the chain lacks a leg (never marked at zero), or it is of another
    underlying or of a date before the entry. Names the position and the leg."""


class PaperConfigError(PaperError, ValueError):
    """A paper-bot setting is out of its range or of the wrong type: ``key``, ``value`` and ``allowed`` (the range
    or the choices) are attributes and in the message; or the file is not valid TOML (names the file and line)."""

    def __init__(self, message: str, *, key: str | None = None, value: Any = None, allowed: str | None = None,
                 path: str | os.PathLike | None = None):
        self.key = key
        self.value = value
        self.allowed = allowed
        self.path = None if path is None else Path(path)
        super().__init__(message)


class PaperDisplayError(PaperError, ValueError):
    """A table or curve given to the paper panel or its chart (:mod:`research_lib.paper.panel`,
    :func:`research_lib.ui.plots.paper_equity`) lacks a column it needs (names the columns missing)."""


class NightlyError(PaperError, ValueError):
    """The nightly pipeline was asked for something it cannot run: an unknown step (the message lists the
    steps), no symbol, or an ``--import`` folder that is not a folder. Raised before any step runs."""


class ReportError(ResearchLibError):
    """A report run could not be carried out (not a failed notebook: that is a FAILED result)."""


class ReportLockedError(ReportError):
    """Another run holds the reports folder's lock; the message says which process and since when."""


# ----------------------------------------------------------------------------------------------------
# Prediction markets (YES/NO books, the top-of-book store and scan, the WebSocket feed)
# ----------------------------------------------------------------------------------------------------
class BinaryMarketError(ResearchLibError, ValueError):
    """Bad prediction-market input: a quote table, a dataset folder or a parameter.

    The message names where (``where``: a file, a folder, a feed or a function), the column, how many rows
    are bad and one example (:func:`describe_bad_rows`).
    """

    def __init__(self, message: str, *, where: str | os.PathLike | None = None, column: str | None = None,
                 n_bad: int | None = None, example: Any = None):
        self.where = None if where is None else str(where)
        self.column = column
        self.n_bad = n_bad
        self.example = example
        super().__init__(describe_bad_rows(message, where=self.where, column=column, n_bad=n_bad,
                                           example=None if example is None else repr(example)))


class BinaryQuoteError(BinaryMarketError):
    """A YES/NO quote table is malformed: a missing or non-numeric column, a price outside [0, 1], a negative
    size, an outcome listed twice in one event at one time, rows out of order. (A crossed book is data, not an
    error: it is flagged.)"""


class BinaryParamsError(BinaryMarketError):
    """A parameter of the edge or scan computation is impossible (a negative fee rate, a tick that is not
    in (0, 1), a negative staleness bound, an empty asset list); raised before anything is computed."""


class TopBookDatasetError(BinaryMarketError):
    """A top-of-book dataset folder cannot be scanned: ``quotes/dt=*.parquet`` or ``markets.parquet``
    missing, or a file without the columns the scan reads (the message names the file and the column)."""


class BinaryFeedError(ResearchLibError):
    """The market-channel feed gave up: the URL is not a WebSocket URL, or the connection failed more times in
    a row than allowed (the message gives the URL, the attempts and the last error)."""


class BinaryStoreError(StoreError):
    """The binary top-of-book store refused: a frame whose columns or types are not the store's schema,
    or a part file in the folder that is not one (the message names the file and the column)."""


# ----------------------------------------------------------------------------------------------------
# Warnings (not raised: something fell back and said so)
# ----------------------------------------------------------------------------------------------------
class MarketDataWarning(UserWarning):
    """A lookup fell back to a less-preferred source because a preferred file is missing."""


class HistoryCacheWarning(UserWarning):
    """The net-GEX cache file could not be read (it is rebuilt) or written (results are not cached)."""
