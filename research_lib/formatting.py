"""Numbers as people read them in tables, banners and the CLI (one place, so every report agrees), dates as
people type them (:func:`parse_date`), and strict JSON for every ``--json`` output (:func:`to_json`)."""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import json
import math
import re
from typing import Any

from research_lib.settings import NY


def fmt_money(x: float | None, *, symbol: str = "", signed: bool = True, small_decimals: int = 0) -> str:
    """Signed dollars with a unit: ``+60.73B``, ``-1.20M``, ``+950``; ``n/a`` for None, NaN or inf.

    Parameters
    ----------
    x : float or None
        Dollars.
    symbol : str
        Put between the sign and the number (``"$"`` gives ``+$60.73B``, as the regime and alert texts).
    signed : bool
        Show the sign (False: the magnitude only, ``$60.73B``).
    small_decimals : int
        Decimals below one thousand (``+950`` with 0, ``+950.00`` with 2); two decimals with a unit above.
    """
    if x is None or not math.isfinite(x):
        return "n/a"
    sign = ("+" if x >= 0 else "-") if signed else ""
    a = abs(x)
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if a >= div:
            return f"{sign}{symbol}{a / div:,.2f}{unit}"
    return f"{sign}{symbol}{a:,.{small_decimals}f}"


def fmt_level(x: float | None) -> str:
    """A price level with two decimals and thousands separators; ``none`` for None or NaN."""
    return "none" if x is None or not math.isfinite(x) else f"{x:,.2f}"


def fmt_age(age: dt.timedelta | None, *, missing: str = "unknown age", hours: str = "h") -> str:
    """How old something is: hours with one decimal below 48 hours (``5.2 h``), days above (``3.1 days``).

    Parameters
    ----------
    age : datetime.timedelta or pandas.Timedelta or None
    missing : str
        The text for None (``"n/a (live quote)"``).
    hours : str
        The hours unit as written after the number (``"h"`` or ``"hours"``).
    """
    if age is None:
        return missing
    h = age.total_seconds() / 3600
    return f"{h:.1f} {hours}" if h < 48 else f"{h / 24:.1f} days"


# --------------------------------------------------------------------------------------------------------
# dates as people type them


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(value: str | dt.date, *, name: str = "date") -> dt.date:
    """A real calendar date from ``YYYY-MM-DD`` text (or a date, returned as is).

    Parameters
    ----------
    value : str or datetime.date
        ``"2026-02-27"``; surrounding spaces are ignored. A ``datetime`` is cut to its date.
    name : str
        What the value is, for the message (``"--date"``).

    Raises
    ------
    ValueError
        Two different messages: ``--date '2026-2-3' is not YYYY-MM-DD`` when the text does not have that
        shape, and ``--date 2026-02-30 does not exist (February 2026 has 28 days)`` when it has the shape
        but is not a day of the calendar. Callers wrap it in their own named error.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"{name} {value!r} is not YYYY-MM-DD")
    year, month, day = (int(x) for x in text.split("-"))
    if year < 1:
        raise ValueError(f"{name} {text} does not exist (there is no year 0)")
    if not 1 <= month <= 12:
        raise ValueError(f"{name} {text} does not exist (there is no month {month:02d})")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        raise ValueError(f"{name} {text} does not exist ({calendar.month_name[month]} {year} has {last} days)")
    return dt.date(year, month, day)


# --------------------------------------------------------------------------------------------------------
# strict JSON


def jsonable(obj: Any) -> Any:
    """``obj`` with every value strict JSON can hold: NaN and ±inf become None, timestamps, dates and
    times ISO 8601 text, numpy scalars and arrays Python numbers and lists, paths and other objects
    their ``str``; dict keys become text (dates as ISO). Tuples and sets become lists."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if type(obj).__name__ in ("NAType", "NaTType"):  # pandas' missing values (NaT is a datetime)
        return None
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {_json_key(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj))
    # numpy and pandas without importing them (``research-lib report`` starts without pandas)
    if hasattr(obj, "isoformat"):  # pandas.Timestamp and other date-likes
        return obj.isoformat()
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalar or array, pandas Series
        return jsonable(obj.tolist())
    if hasattr(obj, "total_seconds"):  # timedelta
        return obj.total_seconds()
    return str(obj)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, dt.date | dt.datetime) or hasattr(key, "isoformat"):
        return key.isoformat()
    return str(key)


def to_json(obj: Any, *, indent: int | None = None) -> str:
    """``obj`` as strict JSON text (:func:`jsonable`, then ``json.dumps(..., allow_nan=False)``).

    Every ``--json`` output of the command line and every JSON file this package writes goes through
    here, so a strict parser (one that rejects ``NaN`` and ``Infinity``) reads them all.
    """
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


def format_levels(levels, *, pin_risk=None, exclusions=None, rates=None, regime_gex=None) -> str:
    """A readable block for one :class:`~research_lib.gex.KeyLevels`.

    ``rates`` (a :class:`~research_lib.market.SnapshotRates`, optional) adds where the rate and the
    dividend yield came from; the values themselves are always printed (from the levels). ``regime_gex`` (a
    :class:`~research_lib.core.regime_gex.RegimeGex`, optional) adds the regime's GEX series under net GEX.
    """
    lv = levels
    rate = getattr(lv, "rate", 0.0)
    div_yield = getattr(lv, "div_yield", 0.0)
    pricing = f"  pricing           rate {rate:.3%}, dividend yield {div_yield:.3%}"
    if rates is not None:
        pricing += f"   ({rates.rate_source}; {rates.div_yield_source})"
    trading = getattr(lv, "date", None)
    quoted = lv.quote_time
    lines = [
        f"{lv.underlying} {lv.date}  spot {lv.spot:,.2f}  quoted {quoted:%Y-%m-%d %H:%M %Z}  "
        f"convention {lv.convention}{'  [MODELLED DATA]' if lv.modelled else ''}",
        f"  source            {lv.source}",
        pricing,
        f"  net GEX           {fmt_money(lv.net_gex)} $/1% move   (calls {fmt_money(lv.call_gex)}, "
        f"puts {fmt_money(lv.put_gex)})",
        *([f"  regime GEX        {fmt_money(regime_gex.value)} $/1% move   ({regime_gex.spec.describe()}; what "
           f"the regime reads)"] if regime_gex is not None else []),
        f"  zero gamma        {fmt_level(lv.zero_gamma)}"
        + (f"   (all crossings: {', '.join(f'{z:,.2f}' for z in lv.zero_gamma_crossings)})"
           if len(lv.zero_gamma_crossings) > 1 else ""),
        f"  call wall         {fmt_level(lv.call_wall)}",
        f"  put wall          {fmt_level(lv.put_wall)}",
        f"  cumulative flip   {fmt_level(lv.cumulative_flip)}   (running sum of GEX by strike; not zero gamma)",
        f"  vanna exposure    {fmt_money(lv.net_vanna)} $ delta per vol point",
        f"  charm exposure    {fmt_money(lv.net_charm)} $ delta per day",
        f"  contracts         {lv.n_contracts} counted, {lv.n_expired} expired, {lv.n_filtered} filtered, "
        f"{lv.n_unpriced} without gamma",
    ]
    if trading is not None and quoted.tz_convert(NY).date() != trading:
        lines.insert(1, f"  trading date      {trading} (prices of that session; downloaded "
                        f"{quoted:%Y-%m-%d %H:%M %Z})")
    mp = list(lv.max_pain.items())[:6]
    if mp:
        lines.append("  max pain          " + ", ".join(f"{d:%m-%d} {k:,.0f}" for d, k in mp)
                     + (" ..." if len(lv.max_pain) > 6 else ""))
    if pin_risk is not None and len(pin_risk):
        lines.append("  pin risk          " + ", ".join(
            f"{d:%m-%d} {row.pin_strike:,.0f} ({row.score:.0f}/100)" for d, row in pin_risk.iterrows()))
    if rates is not None:
        lines += [f"  note: {n}" for n in rates.notes]
    lines.extend(f"  WARNING: {w}" for w in lv.warnings)
    return "\n".join(lines)
