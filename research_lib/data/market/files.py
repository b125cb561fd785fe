"""The file registry of the market history: which file each kind is (name patterns, columns, where to get
it), the directories searched (:func:`market_data_dirs`) and finding a kind's file (:func:`find_market_file`).

The search order is described in :mod:`research_lib.data.market`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from research_lib.errors import MarketDataNotFoundError
from research_lib.settings import ENV_MARKET_DATA, REPO_ROOT

#: Environment variable naming a directory of market history files (searched first).
ENV_VAR = ENV_MARKET_DATA


# --------------------------------------------------------------------------------------------------------
# File registry
# --------------------------------------------------------------------------------------------------------
_CBOE_PAGE = "https://www.cboe.com/tradable_products/vix/vix_historical_data/"
_CBOE_CSV = "https://cdn.cboe.com/api/global/us_indices/daily_prices/{name}_History.csv"


@dataclasses.dataclass(frozen=True)
class _FileSpec:
    key: str
    title: str
    patterns: tuple[str, ...]
    get_it: str
    date_columns: tuple[str, ...]
    #: (output column, candidate input names (case-insensitive), required)
    columns: tuple[tuple[str, tuple[str, ...], bool], ...]
    na_values: tuple[str, ...] = ("",)
    text_columns: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: parse every other column as a number too, under its own name (the put/call file)
    keep_rest: bool = False


def _ohlc(*extra: tuple[str, tuple[str, ...], bool]) -> tuple[tuple[str, tuple[str, ...], bool], ...]:
    return (
        ("open", ("open",), False),
        ("high", ("high",), False),
        ("low", ("low",), False),
        ("close", ("close",), True),
        *extra,
    )


def _cboe_spec(name: str, columns) -> _FileSpec:
    return _FileSpec(
        key=name.lower(),
        title=f"Cboe {name} daily history",
        patterns=(f"cboe_{name}_History.csv", f"{name}_History.csv"),
        get_it=f"Cboe's historical data page {_CBOE_PAGE} ({_CBOE_CSV.format(name=name)})",
        date_columns=("date",),
        columns=columns,
    )


_SPECS: dict[str, _FileSpec] = {
    "spx": _FileSpec(
        key="spx",
        title="S&P 500 daily history (price and total-return index)",
        patterns=("spx_daily_*.csv",),
        get_it=("a daily S&P 500 history with columns date, open, high, low, close[, spxtr_close]: e.g. Yahoo "
                "Finance ^GSPC and ^SP500TR (https://finance.yahoo.com/quote/%5EGSPC/history) or LSEG .INX / "
                ".SPXTR, saved as spx_daily_<start>_<end>.csv"),
        date_columns=("date",),
        columns=_ohlc(("total_return_close", ("spxtr_close", "total_return_close"), False)),
        text_columns=(("vendor", ("source", "vendor")),),
    ),
    "spy": _FileSpec(
        key="spy",
        title="SPY daily history, unadjusted",
        patterns=("spy_daily_raw_*.csv",),
        get_it=("unadjusted SPY daily bars (date, open, high, low, close, volume), e.g. Yahoo Finance SPY history "
                "(https://finance.yahoo.com/quote/SPY/history), saved as spy_daily_raw_<start>_<end>.csv"),
        date_columns=("date",),
        columns=_ohlc(("volume", ("volume",), False)),
        na_values=("", "null"),
    ),
    "vix": _cboe_spec("VIX", _ohlc()),
    "vix9d": _cboe_spec("VIX9D", _ohlc()),
    "vix3m": _cboe_spec("VIX3M", _ohlc()),
    "vvix": _cboe_spec("VVIX", (("close", ("vvix", "close"), True),)),
    "skew": _cboe_spec("SKEW", (("close", ("skew", "close"), True),)),
    "put_call": _FileSpec(
        key="put_call",
        title="Cboe daily put/call ratios",
        patterns=("cboe_put_call_ratios_*.csv",),
        get_it=("Cboe's daily market statistics (https://www.cboe.com/us/options/market_statistics/daily/), one "
                "row per day, saved as cboe_put_call_ratios_<start>_<end>.csv"),
        date_columns=("fecha", "date"),
        columns=(),
        keep_rest=True,
    ),
    "dff": _FileSpec(
        key="dff",
        title="FRED DFF (effective federal funds rate, %, calendar-daily)",
        patterns=("fred_DFF_*.csv", "DFF.csv"),
        get_it="FRED series DFF, https://fred.stlouisfed.org/series/DFF (Download → CSV)",
        date_columns=("date", "observation_date"),
        columns=(("value", ("dff", "value"), True),),
        na_values=("", "."),
    ),
    "dgs3mo": _FileSpec(
        key="dgs3mo",
        title="FRED DGS3MO (3-month Treasury constant maturity, %, bond-equivalent)",
        patterns=("fred_DGS3MO_*.csv", "DGS3MO.csv"),
        get_it="FRED series DGS3MO, https://fred.stlouisfed.org/series/DGS3MO (Download → CSV)",
        date_columns=("date", "observation_date"),
        columns=(("value", ("dgs3mo", "value"), True),),
        na_values=("", "."),
    ),
    "irx": _FileSpec(
        key="irx",
        title="13-week T-bill yield (Cboe IRX, %, bank-discount basis)",
        patterns=("irx_13week_tbill_*.csv",),
        get_it=("the ^IRX daily history (13-week T-bill discount yield in %), e.g. Yahoo Finance "
                "https://finance.yahoo.com/quote/%5EIRX/history, saved as irx_13week_tbill_<start>_<end>.csv "
                "with columns date, irx_13w_tbill_yield_pct (a Yahoo download's Close column works too)"),
        date_columns=("date",),
        columns=(("value", ("irx_13w_tbill_yield_pct", "close", "value"), True),),
        na_values=("", "null"),
    ),
    "gex": _FileSpec(
        key="gex",
        title="SqueezeMetrics DIX and GEX (published)",
        patterns=("squeezemetrics_dix_gex_*.csv", "DIX.csv"),
        get_it="SqueezeMetrics' monitor, https://squeezemetrics.com/monitor/dix (CSV: .../monitor/static/DIX.csv)",
        date_columns=("date",),
        columns=(("price", ("price",), True), ("dix", ("dix",), True), ("gex", ("gex",), True)),
    ),
}


# --------------------------------------------------------------------------------------------------------
# Locating files
# --------------------------------------------------------------------------------------------------------
def market_data_dirs(market_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for market history files, in order.

    Parameters
    ----------
    market_dir : path, optional
        When given, the only directory searched.

    Returns
    -------
    list of Path
        ``[market_dir]``, or ``$RESEARCH_LIB_MARKET_DATA`` (when set and non-empty), ``<repo>/data/market``
        and ``<repo>/../shared/data/market``. Directories need not exist.
    """
    if market_dir is not None:
        return [Path(market_dir)]
    dirs = []
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        dirs.append(Path(env))
    dirs.append(REPO_ROOT / "data" / "market")
    dirs.append(REPO_ROOT.parent / "shared" / "data" / "market")
    return dirs


def _not_found(spec: _FileSpec, dirs: list[Path], extra: str = "") -> MarketDataNotFoundError:
    where = "; ".join(f"{d}{'' if d.is_dir() else ' (missing)'}" for d in dirs)
    msg = (f"{spec.title}: no file matching {' or '.join(spec.patterns)} in {where}. "
           f"Get it from {spec.get_it}, and put it in one of those directories "
           f"(or set ${ENV_VAR}, or pass market_dir=).{extra}")
    return MarketDataNotFoundError(msg, patterns=spec.patterns, searched=dirs)


def _find(spec: _FileSpec, market_dir) -> Path | None:
    for d in market_data_dirs(market_dir):
        if not d.is_dir():
            continue
        for pattern in spec.patterns:
            matches = sorted(p for p in d.glob(pattern) if p.is_file())
            if matches:
                return matches[-1]
    return None


def find_market_file(kind: str, market_dir: str | os.PathLike | None = None) -> Path:
    """The file that would serve ``kind``.

    Parameters
    ----------
    kind : str
        One of ``spx``, ``spy``, ``vix``, ``vix9d``, ``vix3m``, ``vvix``, ``skew``, ``put_call``, ``dff``,
        ``dgs3mo``, ``irx``, ``gex``.
    market_dir : path, optional
        See :func:`market_data_dirs`.

    Raises
    ------
    MarketDataNotFoundError
        No matching file in any searched directory; the message says where to get it.
    """
    spec = _spec(kind)
    path = _find(spec, market_dir)
    if path is None:
        raise _not_found(spec, market_data_dirs(market_dir))
    return path


def _spec(kind: str) -> _FileSpec:
    try:
        return _SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown market file kind {kind!r}; expected one of {sorted(_SPECS)}") from None


