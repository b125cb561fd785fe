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

# the subpackage, one job a module: records (the dataclasses, ids and field checks), describe (the sentences),
# log (the SQLite file). Every public name is re-exported here: ``research_lib.decisions.X`` keeps working.
# Names a test monkeypatches (SCHEMA_VERSION, MIGRATIONS, _after_decision_insert) are read where they live:
# patch research_lib.records.decisions.log.
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    DecisionError as DecisionError,
    DecisionLogError as DecisionLogError,
    DecisionNotFoundError as DecisionNotFoundError,
    DuplicateDecisionError as DuplicateDecisionError,
    SchemaVersionError as SchemaVersionError,
)
from research_lib.records.decisions.describe import (
    describe_how as describe_how,
    describe_what as describe_what,
    describe_why as describe_why,
    format_gex as format_gex,
)
from research_lib.records.decisions.log import (
    ALERT_COLUMNS as ALERT_COLUMNS,
    DB_NAME as DB_NAME,
    DECISION_COLUMNS as DECISION_COLUMNS,
    MIGRATIONS as MIGRATIONS,
    SCHEMA_VERSION as SCHEMA_VERSION,
    DecisionLog as DecisionLog,
)
from research_lib.records.decisions.records import (
    ID_PREFIX as ID_PREFIX,
    DecisionType as DecisionType,
    MarketContext as MarketContext,
    TradeDecision as TradeDecision,
    make_decision_id as make_decision_id,
    parse_decision_id as parse_decision_id,
)

__all__ = [
    "ALERT_COLUMNS",
    "DB_NAME",
    "DECISION_COLUMNS",
    "ID_PREFIX",
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
