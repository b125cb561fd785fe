"""The one chain shape every source returns: :class:`ChainSnapshot` and its contract table.

A snapshot is one moment of one underlying's option chain: the underlying symbol, its spot, the quote
time (tz-aware, America/New_York), the name of the source, and a long table with one row per contract.

Contract table columns (:data:`CONTRACT_COLUMNS`)
-------------------------------------------------
========== =================== ==========================================================================
column     dtype               meaning
========== =================== ==========================================================================
root       str                 OCC root (``SPX``, ``SPXW``, ``SPY`` ...)
expiration datetime64 (date)   expiry date, midnight, tz-naive (a calendar date in New York)
settlement str ``AM``/``PM``   AM: settles on the opening print of the expiry date; PM: at the 16:00 close
strike     float64             strike in underlying points
right      str ``C``/``P``     call or put
bid, ask   float64             quotes; NaN when absent
last       float64             last sale; NaN when absent
volume     float64             contracts traded in the session; NaN when absent
open_interest float64          contracts open (finite, >= 0: required)
iv         float64             implied volatility, decimal (0.2 = 20%); NaN when the vendor had none
delta      float64             vendor delta; NaN when absent
gamma      float64             vendor gamma per 1 point of the underlying; NaN when absent
========== =================== ==========================================================================

Validation happens once, at the edge, in :func:`validate_contracts`. It raises :class:`ChainError` naming
the column, the number of bad rows and an example. Vendor zeros that mean "missing" become NaN there:
an IV of 0, a gamma of 0, and a delta of 0 on a contract whose IV is missing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import numpy as np
import pandas as pd

from research_lib.core.plausibility import check_chain
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    ChainError as ChainError,
    ImplausibleChainError as ImplausibleChainError,
    ResearchLibError as ResearchLibError,
    UnreadableFileError as UnreadableFileError,
)
from research_lib.settings import NY

CONTRACT_COLUMNS: tuple[str, ...] = (
    "root",
    "expiration",
    "settlement",
    "strike",
    "right",
    "bid",
    "ask",
    "last",
    "volume",
    "open_interest",
    "iv",
    "delta",
    "gamma",
)
FLOAT_COLUMNS: tuple[str, ...] = (
    "strike", "bid", "ask", "last", "volume", "open_interest", "iv", "delta", "gamma",
)
OPTIONAL_FLOAT_COLUMNS: tuple[str, ...] = ("bid", "ask", "last", "volume", "iv", "delta", "gamma")
KEY_COLUMNS: tuple[str, ...] = ("root", "expiration", "strike", "right")

#: Quote times the exchange calendar covers (see research_lib.calendar).
QUOTE_TIME_RANGE = (pd.Timestamp("1990-01-02"), pd.Timestamp("2040-12-31 23:59:59"))
#: Largest strike or quote we accept (in underlying points). Anything larger is a corrupt field.
MAX_PRICE = 1e9
#: Largest open interest or volume we accept for one contract.
MAX_CONTRACTS = 1e9
#: Largest implied volatility we accept (decimal). Deep-ITM Cboe rows reach 24 (2400%); 1000 is corrupt.
MAX_IV = 100.0


_OCC = re.compile(r"^\s*([A-Z0-9.]*?[A-Z.])\s*(\d{6})([CP])(\d{8})\s*$")


def parse_occ_symbol(symbol: str) -> tuple[str, dt.date, str, float]:
    """Split an OCC option symbol into ``(root, expiration, right, strike)``.

    ``SPXW240105C04700000`` → ``("SPXW", date(2024, 1, 5), "C", 4700.0)``. Spaces between the root and
    the date (``"SPXW  110107C01050000"``, the padded 21-character form) are accepted. Raises
    :class:`ChainError` when the symbol does not parse.
    """
    m = _OCC.match(symbol)
    if not m:
        raise ChainError("not an OCC option symbol", column="symbol", n_bad=1, example=symbol)
    root, ymd, right, strike = m.groups()
    try:
        expiry = dt.datetime.strptime(ymd, "%y%m%d").date()
    except ValueError as exc:
        raise ChainError("bad expiry date in OCC symbol", column="symbol", n_bad=1, example=symbol) from exc
    return root, expiry, right, int(strike) / 1000.0


def parse_occ_symbols(symbols: pd.Series, *, where: str | None = None) -> pd.DataFrame:
    """Vectorised :func:`parse_occ_symbol` over a Series.

    Returns a DataFrame with columns ``root, expiration (datetime64), right, strike`` aligned with the
    input. Raises :class:`ChainError` naming how many symbols failed and one example.
    """
    s = symbols.astype("string")
    parts = s.str.extract(_OCC.pattern)
    bad = parts[0].isna()
    if bad.any():
        raise ChainError("not an OCC option symbol", column="symbol", n_bad=int(bad.sum()),
                         example=str(s[bad].iloc[0]), where=where)
    expiration = pd.to_datetime(parts[1], format="%y%m%d", errors="coerce")
    if expiration.isna().any():
        badexp = expiration.isna()
        raise ChainError("bad expiry date in OCC symbol", column="symbol", n_bad=int(badexp.sum()),
                         example=str(s[badexp].iloc[0]), where=where)
    return pd.DataFrame({
        "root": parts[0].astype(str),
        "expiration": expiration.astype("datetime64[ns]"),
        "right": parts[2].astype(str),
        "strike": parts[3].astype(float) / 1000.0,
    }, index=symbols.index)


#: Roots whose standard monthly options settle AM (on the special opening quotation of the expiry day).
AM_SETTLED_ROOTS = frozenset({"SPX", "NDX", "RUT", "VIX", "DJX", "OEX", "XEO", "MXEF", "MXEA"})


def settlement_for_root(root: str) -> str:
    """``"AM"`` for the AM-settled index roots (SPX, NDX, RUT monthlies ...), else ``"PM"``.

    PM-settled weekly roots (SPXW, NDXP, RUTW, XSP) and every equity/ETF root settle at the close.
    """
    return "AM" if root.upper() in AM_SETTLED_ROOTS else "PM"


def contracts_from_occ(occ: pd.DataFrame, **columns) -> pd.DataFrame:
    """A contract table from :func:`parse_occ_symbols` output plus the quote columns given as keywords.

    ``root, expiration, strike, right`` come from the symbols and ``settlement`` from the root
    (:func:`settlement_for_root`); every other column of :data:`CONTRACT_COLUMNS` is taken from
    ``columns`` (NaN when not given). Validation is left to :func:`validate_contracts`.
    """
    unknown = set(columns) - set(CONTRACT_COLUMNS)
    if unknown:
        raise ValueError(f"not contract columns: {sorted(unknown)}")
    table = {"root": occ["root"], "expiration": occ["expiration"],
             "settlement": occ["root"].map(settlement_for_root), "strike": occ["strike"], "right": occ["right"]}
    for col in CONTRACT_COLUMNS[5:]:
        table[col] = columns.get(col, np.nan)
    return pd.DataFrame(table, index=occ.index)


def _example(series: pd.Series, mask: pd.Series) -> Any:
    value = series[mask].iloc[0]
    return value.item() if hasattr(value, "item") else value


def _check_columns(table: Any, where: str | None) -> None:
    """Step 1 of :func:`validate_contracts`: a DataFrame holding every contract column, each once."""
    if not isinstance(table, pd.DataFrame):
        raise ChainError(f"contract table must be a DataFrame, got {type(table).__name__}", where=where)
    dup_cols = table.columns[table.columns.duplicated()].unique()
    if len(dup_cols):
        raise ChainError(f"column{'s' if len(dup_cols) > 1 else ''} {list(dup_cols)} appear more than once",
                         column=str(dup_cols[0]), where=where)
    missing = [c for c in CONTRACT_COLUMNS if c not in table.columns]
    if missing:
        raise ChainError(f"missing column{'s' if len(missing) > 1 else ''} {missing}", column=missing[0],
                         where=where)


def _codes(src: pd.DataFrame, where: str | None) -> dict[str, pd.Series]:
    """Step 2: ``root``, ``right`` and ``settlement`` stripped and upper-cased, each value one of its codes
    (``C``/``P``, ``AM``/``PM``, 1-8 letters, digits or dots); no value may be missing."""
    out: dict[str, pd.Series] = {}
    for col in ("root", "right", "settlement"):
        raw = src[col]
        isnull = raw.isna()
        if isnull.any():
            raise ChainError("missing value", column=col, n_bad=int(isnull.sum()),
                             example=None, where=where)
        out[col] = raw.astype(str).str.strip().str.upper()
    for col, bad, what in (
            ("right", ~out["right"].isin(["C", "P"]), "right must be 'C' or 'P'"),
            ("settlement", ~out["settlement"].isin(["AM", "PM"]), "settlement must be 'AM' or 'PM'"),
            ("root", (out["root"] == "") | ~out["root"].str.fullmatch(r"[A-Z0-9.]{1,8}"),
             "root must be 1-8 letters/digits")):
        if bad.any():
            raise ChainError(what, column=col, n_bad=int(bad.sum()), example=_example(src[col], bad), where=where)
    return out


def _expirations(exp_raw: pd.Series, where: str | None) -> pd.Series:
    """Step 3: the ``expiration`` column as tz-naive midnights (datetime64[ns]).

    Accepts dates, date strings, timestamps (tz-aware ones are read in New York time) and numbers in
    YYYYMMDD form (20240315; any other number would be read as nanoseconds, so it is refused). Every
    value must parse, to a year in 1970-2100.
    """
    if isinstance(exp_raw.dtype, pd.DatetimeTZDtype):
        exp_raw = exp_raw.dt.tz_localize(None)
    if pd.api.types.is_numeric_dtype(exp_raw) and not pd.api.types.is_bool_dtype(exp_raw):
        as_int = pd.to_numeric(exp_raw, errors="coerce")
        bad = as_int.isna() | (as_int % 1 != 0) | (as_int < 19700101) | (as_int > 21001231)
        if bad.any():
            raise ChainError("a numeric expiration must be a YYYYMMDD date", column="expiration",
                             n_bad=int(bad.sum()), example=_example(exp_raw, bad), where=where)
        exp_raw = pd.to_datetime(as_int.astype("int64").astype(str), format="%Y%m%d", errors="coerce")
    try:
        expiration = pd.to_datetime(exp_raw, errors="coerce")
    except (ValueError, TypeError) as exc:  # mixed time zones, unhashable objects ...
        raise ChainError(f"not a column of dates ({exc})", column="expiration", where=where) from exc
    if isinstance(expiration.dtype, pd.DatetimeTZDtype):
        expiration = expiration.dt.tz_convert(NY).dt.tz_localize(None)
    bad = expiration.isna()
    if bad.any():
        raise ChainError("not a date", column="expiration", n_bad=int(bad.sum()),
                         example=_example(exp_raw, bad), where=where)
    bad = (expiration.dt.year < 1970) | (expiration.dt.year > 2100)
    if bad.any():
        raise ChainError("expiration outside 1970-2100", column="expiration", n_bad=int(bad.sum()),
                         example=str(_example(exp_raw, bad)), where=where)
    return expiration.dt.normalize().astype("datetime64[ns]")


def _numbers(raw: pd.Series, col: str, where: str | None) -> pd.Series:
    """Step 4: one numeric column as float64: numbers and numeric strings; blanks become NaN. A complex
    number, a non-numeric string or an infinite value is refused."""
    if raw.dtype.kind == "c" or raw.dtype == object:
        is_complex = raw.map(lambda v: isinstance(v, complex | np.complexfloating))
        if is_complex.any():
            raise ChainError("complex numbers are not prices", column=col, n_bad=int(is_complex.sum()),
                             example=_example(raw, is_complex), where=where)
    num = pd.to_numeric(raw, errors="coerce")
    not_number = num.isna() & raw.notna()
    if not_number.any():
        raise ChainError("not a number", column=col, n_bad=int(not_number.sum()),
                         example=_example(raw, not_number), where=where)
    values = num.astype("float64")
    inf = np.isinf(values)
    if inf.any():
        raise ChainError("infinite value", column=col, n_bad=int(inf.sum()),
                         example=float(values[inf].iloc[0]), where=where)
    return values


def _check_ranges(out: pd.DataFrame, where: str | None) -> None:
    """Step 5: every number within its possible range (strike > 0, open interest required, ...)."""
    def check(mask: pd.Series, col: str, what: str) -> None:
        if mask.any():
            raise ChainError(what, column=col, n_bad=int(mask.sum()), example=_example(out[col], mask),
                             where=where)

    check(out["strike"].isna() | (out["strike"] <= 0) | (out["strike"] > MAX_PRICE), "strike",
          "strike must be a positive number")
    check(out["open_interest"].isna(), "open_interest", "open interest is required")
    check((out["open_interest"] < 0) | (out["open_interest"] > MAX_CONTRACTS), "open_interest",
          f"open interest must lie in [0, {MAX_CONTRACTS:g}]")
    check((out["volume"] < 0) | (out["volume"] > MAX_CONTRACTS), "volume",
          f"volume must lie in [0, {MAX_CONTRACTS:g}]")
    for col in ("bid", "ask", "last"):
        check((out[col] < 0) | (out[col] > MAX_PRICE), col, f"{col} must lie in [0, {MAX_PRICE:g}]")
    check((out["iv"] < 0) | (out["iv"] > MAX_IV), "iv", f"implied volatility must lie in [0, {MAX_IV:g}]")
    check(out["gamma"] < 0, "gamma", "gamma cannot be negative")
    check(out["gamma"] > 1e3, "gamma", "gamma above 1000 per point is corrupt")
    check(out["delta"].abs() > 1.0 + 1e-6, "delta", "delta must lie in [-1, 1]")


def _check_unique(out: pd.DataFrame, where: str | None) -> None:
    """Step 7: no two rows for one contract (root, expiration, strike, right)."""
    dup = out.duplicated(list(KEY_COLUMNS), keep=False)
    if dup.any():
        first = out[dup].iloc[0]
        raise ChainError("duplicated contracts (same root, expiration, strike, right)", column="root",
                         n_bad=int(dup.sum()),
                         example=f"{first['root']} {first['expiration'].date()} {first['strike']:g} {first['right']}",
                         where=where)


def validate_contracts(table: pd.DataFrame, *, where: str | None = None) -> pd.DataFrame:
    """Check and normalise a contract table; return a clean copy in the canonical column order.

    Parameters
    ----------
    table : DataFrame
        Must hold every column of :data:`CONTRACT_COLUMNS`. Extra columns are dropped.
    where : str, optional
        A label for error messages (a file name, an endpoint).

    Returns
    -------
    DataFrame
        Canonical dtypes, sorted by ``root, expiration, strike, right``, a fresh RangeIndex.
        Vendor zeros that mean "missing" are NaN: ``iv == 0``, ``gamma == 0``, and ``delta == 0``
        where the IV is missing.

    Raises
    ------
    ChainError
        A missing column; a value that is not a number, not a date, or not one of the allowed codes;
        a non-positive or non-finite strike; a negative or non-finite open interest; a negative
        quote, volume, IV or gamma; an absurd magnitude; duplicated contracts (same root, expiration,
        strike and right). The message names the column, the number of bad rows and one example.
    """
    _check_columns(table, where)
    src = table.reset_index(drop=True)
    out = pd.DataFrame(index=pd.RangeIndex(len(table)))
    for col, values in _codes(src, where).items():
        out[col] = values
    out["expiration"] = _expirations(src["expiration"], where)
    for col in FLOAT_COLUMNS:
        out[col] = _numbers(src[col], col, where)
    _check_ranges(out, where)
    # Step 6: vendor zeros that mean "missing".
    out.loc[out["iv"] == 0, "iv"] = np.nan
    out.loc[out["gamma"] == 0, "gamma"] = np.nan
    out.loc[(out["delta"] == 0) & out["iv"].isna(), "delta"] = np.nan
    _check_unique(out, where)
    out = out.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
    return out[list(CONTRACT_COLUMNS)]


def _as_ny_timestamp(value: Any, *, where: str | None) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ChainError(f"quote_time {value!r} is not a timestamp", where=where) from exc
    if ts is pd.NaT or pd.isna(ts):
        raise ChainError("quote_time is missing", where=where)
    if ts.tzinfo is None:
        raise ChainError(f"quote_time {ts} must be tz-aware (America/New_York)", where=where)
    ts = ts.tz_convert(NY)
    if not QUOTE_TIME_RANGE[0] <= ts.tz_localize(None) <= QUOTE_TIME_RANGE[1]:
        raise ChainError(f"quote_time {ts} is outside the supported {QUOTE_TIME_RANGE[0]:%Y-%m-%d}.."
                         f"{QUOTE_TIME_RANGE[1]:%Y-%m-%d} (the exchange calendar's range)", where=where)
    return ts


@dataclasses.dataclass(frozen=True, eq=False)
class ChainSnapshot:
    """One moment of one underlying's option chain, validated.

    Build it with :meth:`ChainSnapshot.create` (which validates); every reader in
    :mod:`research_lib.sources` returns one.

    Attributes
    ----------
    underlying : str
        The underlying's symbol, upper case, without a leading underscore (``SPX``, ``SPY``).
    spot : float
        The underlying's price the quotes refer to (points / dollars).
    quote_time : pandas.Timestamp
        When the quotes were taken, tz-aware in America/New_York.
    source : str
        Where it came from: ``"cboe_csv:spx_2024-01-07.csv"``, ``"spx_eod_archive:..."`` ...
    contracts : DataFrame
        The contract table, columns :data:`CONTRACT_COLUMNS` (see the module docstring).
    snapshot_date : datetime.date
        The trading date the prices belong to. Usually ``quote_time``'s date; a weekend download of
        Friday's close keeps its own header date here (``quote_time`` is what the file says), and
        archives set it from their ``price_date``.
    modelled : bool
        True when the chain is generated by a model rather than observed market data.
    notes : tuple of str
        Provenance remarks made while reading (days skipped, roots inferred ...).
    warnings : tuple of str
        Plausibility warnings (:func:`research_lib.plausibility.check_chain`): findings that are
        suspicious but possible (a spot a few percent from the parity forward, one contract holding a
        large share of the open interest ...). Every output shows them. Impossibilities are not
        warnings: :meth:`create` raises :class:`ImplausibleChainError`.
    """

    underlying: str
    spot: float
    quote_time: pd.Timestamp
    source: str
    contracts: pd.DataFrame
    snapshot_date: dt.date
    modelled: bool = False
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def create(cls, *, underlying: str, spot: float, quote_time: Any, source: str,
               contracts: pd.DataFrame, snapshot_date: dt.date | None = None, modelled: bool = False,
               notes: tuple[str, ...] | list[str] = ()) -> ChainSnapshot:
        """Validate the parts and build a snapshot.

        The contract table goes through :func:`validate_contracts`, then the whole chain through the
        plausibility checks of :func:`research_lib.plausibility.check_chain`, whose warnings become
        :attr:`warnings`.

        Raises
        ------
        ChainError
            Any bad part; :class:`ImplausibleChainError` (a ChainError) when the chain as a whole
            cannot be true (a spot far from the parity forward, impossible IVs, an absurd open interest).
        """
        where = source
        if not isinstance(underlying, str) or not underlying.strip():
            raise ChainError(f"underlying must be a non-empty string, got {underlying!r}", where=where)
        try:
            spot_f = float(spot)
        except (TypeError, ValueError) as exc:
            raise ChainError(f"spot {spot!r} is not a number", where=where) from exc
        if not np.isfinite(spot_f) or spot_f <= 0 or spot_f > MAX_PRICE:
            raise ChainError(f"spot must be a positive finite price, got {spot!r}", where=where)
        qt = _as_ny_timestamp(quote_time, where=where)
        table = validate_contracts(contracts, where=where)
        if table.empty:
            raise ChainError("the chain has no contracts", where=where)
        day = snapshot_date or qt.date()
        warnings = check_chain(table, spot=spot_f, snapshot_date=day, where=where)
        return cls(
            underlying=underlying.strip().upper().lstrip("_"),
            spot=spot_f,
            quote_time=qt,
            source=source,
            contracts=table,
            snapshot_date=day,
            modelled=bool(modelled),
            notes=tuple(notes),
            warnings=warnings,
        )

    def __repr__(self) -> str:
        exps = self.contracts["expiration"]
        return (f"ChainSnapshot({self.underlying} spot={self.spot:g} at {self.quote_time:%Y-%m-%d %H:%M %Z}, "
                f"{len(self.contracts)} contracts, {exps.nunique()} expiries "
                f"{exps.min():%Y-%m-%d}..{exps.max():%Y-%m-%d}, source={self.source!r}"
                f"{', MODELLED' if self.modelled else ''})")

    @property
    def expirations(self) -> list[dt.date]:
        """The distinct expiry dates, ascending."""
        return [ts.date() for ts in sorted(self.contracts["expiration"].unique())]

    def replace(self, **changes: Any) -> ChainSnapshot:
        """A copy with some fields changed.

        A new contract table is re-validated; when the table, the spot or the date change, the
        plausibility checks run again and give the copy's :attr:`warnings` (or raise
        :class:`ImplausibleChainError`).
        """
        if "contracts" in changes:
            changes["contracts"] = validate_contracts(changes["contracts"], where=self.source)
        if {"contracts", "spot", "snapshot_date"} & set(changes) and "warnings" not in changes:
            changes["warnings"] = check_chain(changes.get("contracts", self.contracts),
                                              spot=float(changes.get("spot", self.spot)),
                                              snapshot_date=changes.get("snapshot_date", self.snapshot_date),
                                              where=self.source)
        return dataclasses.replace(self, **changes)
