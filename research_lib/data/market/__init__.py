"""Daily market history (index, VIX family, rates, published GEX) and the rate / dividend-yield lookups.

One module per job: :mod:`.files` (the file registry: patterns, directories, finding a file), :mod:`.parsing`
(strict, cached parsing), :mod:`.loaders` (``load_*``, :func:`load_market_history`) and :mod:`.rates`
(risk-free rate, dividend yield, :func:`snapshot_rates`), :mod:`.day_table` (one row per session of
everything the model-priced history reads, :func:`load_day_table`) and :mod:`.cboe_index` (a published Cboe strategy index
history the user downloads, :func:`load_cboe_index`); every public name is importable from here (and
from the short name ``research_lib.market``). Functions only. Every loader returns a DataFrame indexed by a tz-naive ``date``
:class:`~pandas.DatetimeIndex` (midnight, sorted, unique) with the columns its docstring lists, and sets
``frame.attrs["source"]`` to what served it (a file path, or the offline fallback's description).

Where files come from
---------------------
Every loader takes ``market_dir``. When it is given, only that directory is searched. When it is ``None``
the search order is (:func:`market_data_dirs`):

1. ``$RESEARCH_LIB_MARKET_DATA`` (when set),
2. ``<repo>/data/market`` -- the user's own copies (repo = the directory holding the ``research_lib``
   package),
3. ``<repo>/../shared/data/market`` -- the shared development data (see ``shared/data/SOURCES.md``).

Files are matched by name pattern (``spx_daily_*.csv``, ``cboe_VIX_History.csv`` or Cboe's own download name
``VIX_History.csv``, ``fred_DFF_*.csv`` or FRED's ``DFF.csv`` ...), so a fresh download of the same public
file works. The first directory holding a match wins; within it, the lexicographically last match (the newest
date-stamped name). A missing file raises :class:`MarketDataNotFoundError` saying which patterns were
looked for, in which directories, and where to get the file.

Validation
----------
Files are parsed strictly, once, at the edge. Unparseable dates or numbers and duplicate dates raise
:class:`MarketDataError` naming the file, the column, the number of bad rows and an example (with its line
number); nothing is silently dropped. Empty cells (and the documented missing markers: FRED's ``"."``,
Yahoo's ``"null"``) are NaN: known holes stay holes. Parsed files are cached per (path, size, mtime), so
repeated lookups are cheap; every call returns a fresh copy.

Rates and dividend yield
------------------------
:func:`risk_free_rate` / :func:`risk_free_rates` give a continuously-compounded decimal rate from the
13-week T-bill (IRX), else the 3-month constant-maturity Treasury (FRED DGS3MO), else the effective fed
funds rate (FRED DFF), always the last observation at or before the date (no look-ahead). Each quote is
converted exactly from its own quoting basis (see :func:`tbill_discount_to_continuous`,
:func:`bond_equivalent_to_continuous`, :func:`money_market_to_continuous`).
:func:`dividend_yield` implies the S&P 500's continuous dividend yield from its total-return index against
its price index over a trailing window.
"""

from __future__ import annotations

from research_lib.core.indicators import iv_percentile, iv_rank, moving_average
from research_lib.data.market.cboe_index import load_cboe_index
from research_lib.data.market.day_table import DAY_TABLE_COLUMNS, load_day_table
from research_lib.data.market.files import ENV_VAR, find_market_file, market_data_dirs
from research_lib.data.market.loaders import (
    DECISION_KINDS,
    PUT_CALL_BROAD,
    PUT_CALL_PLACEHOLDERS,
    VOL_INDICES,
    VVIX_CLEAN_START,
    load_index_daily,
    load_market_history,
    load_published_gex,
    load_put_call_ratios,
    load_rates,
    load_spy_daily,
    load_vix_family,
    load_vol_index,
    market_view,
)
from research_lib.data.market.rates import (
    BILL_DAYS,
    RATE_SOURCES,
    RATES_METHOD,
    DividendYield,
    SnapshotRates,
    bond_equivalent_to_continuous,
    dividend_yield,
    dividend_yields,
    money_market_to_continuous,
    risk_free_rate,
    risk_free_rates,
    snapshot_config,
    snapshot_rates,
    tbill_discount_to_continuous,
)
from research_lib.errors import MarketDataError, MarketDataNotFoundError, MarketDataWarning
from research_lib.settings import SP500_UNDERLYINGS

__all__ = [
    "BILL_DAYS",
    "DAY_TABLE_COLUMNS",
    "DECISION_KINDS",
    "ENV_VAR",
    "PUT_CALL_BROAD",
    "PUT_CALL_PLACEHOLDERS",
    "RATES_METHOD",
    "RATE_SOURCES",
    "SP500_UNDERLYINGS",
    "VOL_INDICES",
    "VVIX_CLEAN_START",
    "DividendYield",
    "MarketDataError",
    "MarketDataNotFoundError",
    "MarketDataWarning",
    "SnapshotRates",
    "bond_equivalent_to_continuous",
    "dividend_yield",
    "dividend_yields",
    "find_market_file",
    "iv_percentile",
    "iv_rank",
    "load_cboe_index",
    "load_day_table",
    "load_index_daily",
    "load_market_history",
    "load_published_gex",
    "load_put_call_ratios",
    "load_rates",
    "load_spy_daily",
    "load_vix_family",
    "load_vol_index",
    "market_data_dirs",
    "market_view",
    "money_market_to_continuous",
    "moving_average",
    "risk_free_rate",
    "risk_free_rates",
    "snapshot_config",
    "snapshot_rates",
    "tbill_discount_to_continuous",
]
