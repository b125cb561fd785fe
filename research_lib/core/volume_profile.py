"""Core: volume profiles of intraday bars (pure, vectorised; no I/O).

A volume profile is the volume traded at each price row over a span of bars: one session
(:func:`session_profiles`), a custom time range (:func:`range_profile`), many sessions at once
(:func:`composite_profile`), or the profile as it stood after each bar (:func:`developing_profile`). From it come
the point of control (POC), the value area (VAL to VAH), high- and low-volume nodes (HVN, LVN) and single prints;
beside it the opening range and the initial balance (:func:`opening_range`, :func:`initial_balance`).

Bars
----
A DataFrame with the columns of :func:`research_lib.data.market.intraday.read_bars`: ``ts`` (the bar's start,
tz-aware), ``session`` (the trading date, :class:`datetime.date`), ``open``, ``high``, ``low``, ``close`` (dollars)
and ``volume`` (shares, float), sorted by ``ts``. Only ``ts``, ``session``, ``high``, ``low``, ``close`` and
``volume`` are read. Bad bars raise :class:`~research_lib.errors.ProfileInputError` (the column, the number of bad
rows, an example); bars that hold nothing raise :class:`~research_lib.errors.EmptyProfileError`.

Rows
----
Row ``k`` of size ``r`` holds the prices in ``((k - 1)·r, k·r]`` and is labelled by its upper edge ``price = k·r``
(a price on the grid is its own row: with ``r`` one tick every traded price is a row). A price's row is
``ceil(price / r)`` after rounding ``price / r`` to 6 decimals, so binary noise (``659.58 / 0.01 =
65957.99999999999``) cannot move a price into the next row. The profile's rows run without a gap from the row
of the lowest low to the row of the highest high (rows nothing traded at hold 0), so ``low`` and ``high`` are the
traded range in rows, whatever the method.

``method="range"`` (default) spreads a bar's volume evenly over the ``n`` rows its low-high range covers (each
gets ``volume / n``); ``method="close"`` puts it all in the row of its close. ``weight="time"`` counts every bar
as 1 instead of its volume (a time-at-price profile, for index bars that carry no volume).

Rules (the default, self-consistent model)
------------------------------------------
- **Row size**: ``row_size`` if given; else :func:`default_row_size` of the span's range: the smallest of
  ``tick × {1, 2, 5} × 10^j`` (``j ≥ 0``) that gives at most ``target_rows`` (100) rows; per session in
  :func:`session_profiles`.
- **POC**: the row with the most volume. Rows within a relative ``1e-9`` of the maximum count as tied (sums of
  floats); of tied rows the one nearest the middle of the profile's rows wins, and of two equally near the lower.
- **Value area** (``value_area`` = 0.70 of the volume by default), grown from the POC until it holds at least
  that share. ``va_rule="two_row"`` (default, the classic CBOT rule): compare the sum of the next two rows above
  the area with the sum of the next two below and add the larger pair; when a side has a single row left its
  "pair" is that row; when a side is exhausted the other side's pair is added; on a tie both pairs are added (no
  side is preferred). ``va_rule="one_row"``: the same one row at a time (ties: both rows). The area may end above
  the share (a pair is added whole).
- **HVN / LVN**: the profile is smoothed by a centred moving average over ``node_smoothing`` rows (3; 1: none;
  the ends average the rows that exist); an HVN is a local maximum of it (:func:`scipy.signal.find_peaks`; a plateau
  counts once, at its middle) whose prominence is at least ``node_prominence`` (0.10) × the smoothed maximum; an
  LVN is a local minimum by the same rule on the negated profile. The first and last rows are never nodes.
- **Single prints** (no TPO letters): rows whose price range was touched by exactly one bar of the span (the
  bar's low-high range covers the row). With 30-minute bars this is the TPO definition (one period at the price);
  with 1-minute bars they mark a price that was passed through once, in one minute, typically at a spike.
- **Opening range / initial balance**: the low and high of the bars that *start* less than ``opening_minutes``
  (10) / ``ib_minutes`` (60) after the span's first bar (with 1-minute bars from 09:30: the 10 bars 09:30-09:39).
- **Balanced target**: the longer side of the range mirrored about the POC (``poc − (high − poc)`` when the part
  above the POC is at least as long as the part below, else ``poc + (poc − low)``).

The ``market_profile`` preset
-----------------------------
:func:`market_profile` (or ``preset="market_profile"``) reproduces the py-market-profile package (bfolkens,
BSD; ``MarketProfile(df, row_size=r)[start:end]``) exactly: rows are the bar closes rounded up,
``ceil(close × (1/r)) / (1/r)`` (the package's own arithmetic), only rows that occur (no empty rows), volume
summed per row; the POC is the maximum nearest index ``len / 2`` of that list (the first on a tie); the value area
grows one occupied row at a time, taking the row below only when its volume is strictly larger than the row
above (a row of zero volume counts as absent, as the package's truth test has it), until the running volume
exceeds ``value_area`` of the total; HVN/LVN are the strict interior local maxima/minima of the occupied-row
volumes; the opening range and the initial balance take the bars starting *at or before* the first bar + 10
minutes / 1 hour (label-inclusive, as ``DataFrame.loc`` slices); ``low``/``high`` are the lowest and highest
occupied rows. Where the package crashes (a zero-volume row above when the rows below are exhausted: ``None``
added to a number) this takes the row above. The default row size is the package's, 0.05.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from research_lib.checks import FieldChecks
from research_lib.errors import EmptyProfileError, ProfileInputError, ProfileParamsError

METHODS = ("range", "close")
WEIGHTS = ("volume", "time")
VA_RULES = ("two_row", "one_row")
PRESETS = ("market_profile",)
#: Columns a bars DataFrame must have (see the module docstring).
BAR_COLUMNS = ("ts", "session", "high", "low", "close", "volume")
#: Relative tolerance for ties between row volumes (sums of floats).
TIE_RTOL = 1e-9
_CHECKS = FieldChecks(lambda field, value, why: ProfileParamsError(field, f"{value!r}: {why}"))
#: The py-market-profile package's default row size (its tick_size 0.05 × prices_per_row 1).
MARKET_PROFILE_ROW_SIZE = 0.05


# ----------------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ProfileParams:
    """Every choice a volume profile makes, validated in one place.

    Parameters
    ----------
    row_size : float, optional
        Dollars per price row (> 0, finite). None: :func:`default_row_size` of the span's range (per session in
        :func:`session_profiles`); for the ``market_profile`` preset 0.05.
    method : {"range", "close"}, optional
        How a bar's volume is put on rows (module docstring); None: "range" ("close" under the preset).
    value_area : float
        Share of the volume in the value area, in (0, 1]; default 0.70.
    va_rule : {"two_row", "one_row"}, optional
        How the value area grows from the POC; None: "two_row" (the preset has its own rule).
    tick : float
        The price increment the default row size is a multiple of (dollars, > 0); default 0.01.
    target_rows : int
        The default row size gives at most this many rows (>= 1); default 100.
    node_prominence : float
        HVN/LVN prominence threshold as a share of the smoothed profile's maximum, in [0, 1]; default 0.10.
    node_smoothing : int
        Rows in the centred moving average applied before finding HVN/LVN (odd, >= 1; 1 = none); default 3
        (on the 129 SPY 1-minute sessions with the default rows, about 3 HVN and 2 LVN a session).
    opening_minutes, ib_minutes : float
        Length of the opening range and the initial balance in minutes (> 0); defaults 10 and 60.
    preset : {"market_profile"}, optional
        Reproduce a published implementation exactly (module docstring); ``method`` and ``va_rule`` must then
        be None or the preset's own ("close", "one_row").
    weight : {"volume", "time"}
        What a bar puts on its rows: its volume (default), or 1 (a time-at-price profile, each bar one period;
        for index bars without volume; under the preset this is the package's ``mode="tpo"``). The profile's
        ``volume`` fields are then counts of bars.
    """

    row_size: float | None = None
    method: str | None = None
    value_area: float = 0.70
    va_rule: str | None = None
    tick: float = 0.01
    target_rows: int = 100
    node_prominence: float = 0.10
    node_smoothing: int = 3
    opening_minutes: float = 10.0
    ib_minutes: float = 60.0
    preset: str | None = None
    weight: str = "volume"

    def __post_init__(self):
        c = _CHECKS
        c.number("row_size", self.row_size, lo=0.0, lo_open=True, unit="dollars per row", optional=True)
        c.number("tick", self.tick, lo=0.0, lo_open=True, unit="dollars")
        c.number("opening_minutes", self.opening_minutes, lo=0.0, lo_open=True, unit="minutes")
        c.number("ib_minutes", self.ib_minutes, lo=0.0, lo_open=True, unit="minutes")
        c.number("value_area", self.value_area, lo=0.0, hi=1.0, lo_open=True, unit="share of the volume")
        c.probability("node_prominence", self.node_prominence, unit="share of the profile's maximum")
        c.whole("target_rows", self.target_rows, lo=1)
        c.whole("node_smoothing", self.node_smoothing, lo=1, unit="rows")
        c.require(self.node_smoothing % 2 == 1, "node_smoothing", self.node_smoothing, "must be odd (a centred window)")
        c.choice("weight", self.weight, WEIGHTS)
        if self.preset is not None:
            c.choice("preset", self.preset, PRESETS)
        if self.method is not None:
            c.choice("method", self.method, METHODS)
        if self.va_rule is not None:
            c.choice("va_rule", self.va_rule, VA_RULES)
        if self.preset == "market_profile":
            c.require(self.method in (None, "close"), "method", self.method,
                      "contradicts the market_profile preset, which puts volume at the close (leave it unset)")
            c.require(self.va_rule in (None, "one_row"), "va_rule", self.va_rule,
                      "contradicts the market_profile preset's own one-row rule (leave it unset)")

    @property
    def resolved_method(self) -> str:
        """The method in force: ``method``, else "close" under the preset, else "range"."""
        return self.method or ("close" if self.preset == "market_profile" else "range")

    @property
    def resolved_va_rule(self) -> str:
        """The value-area rule in force: "market_profile" under the preset, else ``va_rule`` or "two_row"."""
        return "market_profile" if self.preset == "market_profile" else (self.va_rule or "two_row")


# ----------------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class VolumeProfile:
    """The volume profile of a span of bars.

    Attributes
    ----------
    prices, row_volume, row_bars : numpy.ndarray
        The rows, ascending (see :attr:`rows`, the same as a DataFrame).
    row_size : float
        Dollars per row.
    method, va_rule, weight : str
        The method ("range", "close"), the value-area rule ("two_row", "one_row", "market_profile") and the
        weight ("volume", or "time": every volume below is then a count of bars) used.
    preset : str or None
        "market_profile" when the preset made it.
    session : datetime.date or None
        The trading date when every bar is of one session, else None.
    start, end : pandas.Timestamp
        The first and the last bar's start.
    n_bars, n_sessions : int
        Bars and sessions in the span.
    volume : float
        Total volume (shares), the sum of ``rows.volume``.
    poc, val, vah, low, high : float
        Point of control, value-area low and high, lowest and highest row (dollars, row prices).
    value_area : float
        The share asked for; ``va_volume`` is the volume actually inside [val, vah] (>= value_area × volume,
        except under the preset where it is > value_area × volume).
    va_volume : float
    hvn, lvn, single_prints : tuple of float
        High- and low-volume nodes and single-print rows (row prices, ascending).
    balanced_target : float
        The longer side of the range mirrored about the POC (module docstring).
    or_low, or_high, ib_low, ib_high : float
        Opening range and initial balance, dollars (bar lows and highs, not rows).
    """

    prices: np.ndarray
    row_volume: np.ndarray
    row_bars: np.ndarray
    row_size: float
    method: str
    va_rule: str
    weight: str
    preset: str | None
    session: dt.date | None
    start: pd.Timestamp
    end: pd.Timestamp
    n_bars: int
    n_sessions: int
    volume: float
    poc: float
    val: float
    vah: float
    low: float
    high: float
    value_area: float
    va_volume: float
    hvn: tuple[float, ...]
    lvn: tuple[float, ...]
    single_prints: tuple[float, ...]
    balanced_target: float
    or_low: float
    or_high: float
    ib_low: float
    ib_high: float

    @functools.cached_property
    def rows(self) -> pd.DataFrame:
        """One row per price row, ascending: ``price`` (float, dollars, the row's upper edge; the row holds prices
        in ``(price - row_size, price]``), ``volume`` (float, shares put on the row), ``bars`` (int: bars whose
        low-high range touched the row; under the preset, bars whose close fell in it). Rows run without gaps
        from ``low`` to ``high`` (zeros included), except under the preset (occupied rows only). Built on first
        use (a frame per profile would cost more than the profile)."""
        return pd.DataFrame({"price": self.prices, "volume": self.row_volume, "bars": self.row_bars})

    def describe(self) -> str:
        """One readable line: the span, POC, value area (with the share it holds), range, volume, nodes."""
        span = str(self.session) if self.session is not None else \
            f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC ({self.n_sessions} sessions)"
        nodes = lambda xs: ", ".join(f"{x:g}" for x in xs) or "-"  # noqa: E731
        return (f"{span}  POC {self.poc:g}  VA {self.val:g}-{self.vah:g} ({self.va_volume / self.volume:.1%})  "
                f"range {self.low:g}-{self.high:g}  {'volume' if self.weight == 'volume' else 'bars'} "
                f"{self.volume:,.0f}  rows {self.row_size:g}  "
                f"HVN {nodes(self.hvn)}  LVN {nodes(self.lvn)}  IB {self.ib_low:g}-{self.ib_high:g}  "
                f"OR {self.or_low:g}-{self.or_high:g}" + (f"  [{self.preset}]" if self.preset else ""))

    def to_dict(self) -> dict:
        """Every field but the row arrays, as plain Python values (lists for the tuples, ISO text for times);
        ``date`` is the session (ISO) or None. Pass it to :func:`research_lib.formatting.to_json`."""
        out = {"date": None if self.session is None else self.session.isoformat()}
        for f in dataclasses.fields(self):
            if f.name in ("prices", "row_volume", "row_bars", "session"):  # session: "date"
                continue
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, pd.Timestamp):
                v = v.isoformat()
            elif isinstance(v, dt.date):
                v = v.isoformat()
            out[f.name] = v
        return out


# ----------------------------------------------------------------------------------------------------
# row sizes and row indices
# ----------------------------------------------------------------------------------------------------
def default_row_size(low: float, high: float, *, tick: float = 0.01, target_rows: int = 100) -> float:
    """The default row size for a range: the smallest ``tick × {1, 2, 5} × 10^j`` (``j >= 0``) giving at most
    ``target_rows`` rows between ``low`` and ``high``.

    Parameters
    ----------
    low, high : float
        The range, dollars (``low <= high``, finite).
    tick : float
        The smallest row (dollars, > 0); default 0.01.
    target_rows : int
        Most rows wanted (>= 1); default 100.

    Returns
    -------
    float
        Dollars per row, a multiple of ``tick`` (``tick`` itself for an empty range), rounded to 12 decimals.
    """
    ProfileParams(tick=tick, target_rows=target_rows)  # validates
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise ProfileParamsError("low, high", f"need finite low <= high, got {low!r}, {high!r}")
    need = (high - low) / target_rows / tick  # ticks per row needed
    j = 0
    while True:
        for m in (1, 2, 5):
            if m * 10 ** j >= need - 1e-9:
                return round(tick * m * 10 ** j, 12)
        j += 1


def row_index(prices, row_size: float) -> np.ndarray:
    """The row (an integer ``k``: the row holds ``((k - 1)·row_size, k·row_size]``) of each price.

    ``ceil(price / row_size)`` after rounding the ratio to 6 decimals, so a price on the grid is its own row
    despite binary noise. ``prices`` finite (array-like, dollars); returns int64.
    """
    ratio = np.round(np.asarray(prices, dtype=float) / row_size, 6)
    return np.ceil(ratio).astype(np.int64)


def _row_prices(k: np.ndarray, row_size: float) -> np.ndarray:
    decimals = min(15, max(0, -math.floor(math.log10(row_size))) + 6)
    return np.round(k * row_size, decimals)


# ----------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------
def _check_bars(bars: pd.DataFrame) -> None:
    if not isinstance(bars, pd.DataFrame):
        raise ProfileInputError(f"bars must be a DataFrame with columns {', '.join(BAR_COLUMNS)}, "
                                f"got {type(bars).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ProfileInputError(f"bars lack the column(s) {', '.join(missing)} (have {', '.join(map(str, bars.columns))})",
                                column=missing[0])
    if len(bars) == 0:
        raise EmptyProfileError("no bars to profile (the file, date or range holds none)")
    values = {}
    for c in ("high", "low", "close", "volume"):
        try:
            a = bars[c].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ProfileInputError("not numeric", column=c, example=repr(bars[c].iloc[0])) from None
        bad = ~np.isfinite(a)
        if bad.any():
            raise ProfileInputError("not a finite number", column=c, n_bad=int(bad.sum()),
                                    example=_example(bars, bad, c))
        values[c] = a
    slack = 1e-9 * np.abs(values["close"])  # binary noise of a computed price is not a bad bar
    checks = (("low", values["low"] > values["high"] + slack, "low above the bar's high"),
              ("close", (values["close"] < values["low"] - slack) | (values["close"] > values["high"] + slack),
               "close outside the bar's low-high range"),
              ("volume", values["volume"] < 0, "negative volume"))
    for c, bad, what in checks:
        if bad.any():
            raise ProfileInputError(what, column=c, n_bad=int(bad.sum()), example=_example(bars, bad, c))
    ts = bars["ts"]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        raise ProfileInputError(f"not timestamps (dtype {ts.dtype})", column="ts", example=repr(ts.iloc[0]))
    if ts.isna().any():
        raise ProfileInputError("missing timestamp", column="ts", n_bad=int(ts.isna().sum()))
    if not ts.is_monotonic_increasing:
        bad = np.zeros(len(ts), dtype=bool)
        bad[1:] = (ts.to_numpy()[1:] < ts.to_numpy()[:-1])
        raise ProfileInputError("bars out of time order (sort by ts)", column="ts", n_bad=int(bad.sum()),
                                example=_example(bars, bad, "ts"))


def _example(bars: pd.DataFrame, bad: np.ndarray, column: str) -> str:
    i = int(np.flatnonzero(bad)[0])
    return f"{bars[column].iloc[i]!r} at ts {bars['ts'].iloc[i]}"


# ----------------------------------------------------------------------------------------------------
# rules on one row array
# ----------------------------------------------------------------------------------------------------
def point_of_control(volumes) -> int:
    """Index of the POC in a row-volume array (ascending prices): the maximum; rows within a relative
    :data:`TIE_RTOL` of it tie, and of tied rows the one nearest the middle index ``(n - 1) / 2`` wins (of two
    equally near, the lower). Raises :class:`EmptyProfileError` for an empty array."""
    v = np.asarray(volumes, dtype=float)
    if v.size == 0:
        raise EmptyProfileError("no rows to find a point of control in")
    top = v.max()
    cand = np.flatnonzero(v >= top - TIE_RTOL * abs(top))
    if cand.size == 1:
        return int(cand[0])
    dist = np.abs(cand - (v.size - 1) / 2.0)
    return int(cand[np.argmin(dist)])  # argmin: the first (lowest) of equally near


def grow_value_area(volumes, poc: int, share: float = 0.70, *, rule: str = "two_row") -> tuple[int, int]:
    """Grow the value area from the POC over a row-volume array; returns the (lowest, highest) row index.

    Parameters
    ----------
    volumes : array-like of float
        Row volumes, ascending prices, >= 0.
    poc : int
        Index of the POC.
    share : float
        Stop as soon as the area holds at least this share of the total (within 1e-12 relative).
    rule : {"two_row", "one_row"}
        Rows compared and added per step (module docstring: a side with one row left offers that row; an
        exhausted side yields; ties, within a relative :data:`TIE_RTOL`, add both sides).
    """
    step = {"two_row": 2, "one_row": 1}.get(rule)
    if step is None:
        raise ProfileParamsError("va_rule", f"unknown rule {rule!r}; known: {', '.join(VA_RULES)}")
    v = np.asarray(volumes, dtype=float).tolist()
    n = len(v)
    total = math.fsum(v)
    target = share * total - 1e-12 * total
    lo = hi = poc
    acc = v[poc]
    while acc < target:
        n_up = min(step, n - 1 - hi)
        n_dn = min(step, lo)
        if n_up == 0 and n_dn == 0:
            break
        up = sum(v[hi + 1:hi + 1 + n_up])
        dn = sum(v[lo - n_dn:lo])
        tie = abs(up - dn) <= TIE_RTOL * max(up, dn)  # sums of floats: a last-bit difference is a tie
        if n_dn == 0 or (n_up and up > dn and not tie):
            hi += n_up
            acc += up
        elif n_up == 0 or (dn > up and not tie):
            lo -= n_dn
            acc += dn
        else:  # a tie: both sides
            hi += n_up
            lo -= n_dn
            acc += up + dn
    return lo, hi


def volume_nodes(volumes, *, prominence: float = 0.10, smoothing: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """HVN and LVN row indices of a row-volume array (module docstring: local extrema of the profile smoothed over
    ``smoothing`` rows, with prominence >= ``prominence`` × its maximum; never the first or last row).

    Returns
    -------
    (hvn, lvn) : two int arrays of row indices, ascending.
    """
    v = np.asarray(volumes, dtype=float)
    if smoothing > 1 and v.size:
        kernel = np.ones(smoothing)
        v = np.convolve(v, kernel, mode="same") / np.convolve(np.ones(v.size), kernel, mode="same")
    if v.size < 3:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    threshold = prominence * float(v.max())
    hvn, _ = find_peaks(v, prominence=threshold if threshold > 0 else None)
    lvn, _ = find_peaks(-v, prominence=threshold if threshold > 0 else None)
    return hvn.astype(np.int64), lvn.astype(np.int64)


def balanced_target(poc: float, low: float, high: float) -> float:
    """The longer side of the range mirrored about the POC: ``poc − (high − poc)`` when the part above the POC
    is at least as long as the part below, else ``poc + (poc − low)`` (dollars; the package's arithmetic)."""
    above = high - poc
    below = poc - low
    return poc - above if above >= below else poc + below


# ----------------------------------------------------------------------------------------------------
# the builders
# ----------------------------------------------------------------------------------------------------
_OPTION_NAMES = ("tick", "target_rows", "node_prominence", "node_smoothing", "opening_minutes", "ib_minutes",
                 "weight")


def _params(row_size, method, value_area, va_rule, preset, options) -> ProfileParams:
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise ProfileParamsError(unknown[0], f"not a profile option; known: {', '.join(_OPTION_NAMES)}")
    return ProfileParams(row_size=row_size, method=method, value_area=value_area, va_rule=va_rule, preset=preset,
                         **options)


class _Bars:
    """The arrays of a checked bars DataFrame (ts as int64 ns UTC; ``volume`` the bars' weights)."""

    def __init__(self, bars: pd.DataFrame, weight: str = "volume"):
        _check_bars(bars)
        self.frame = bars
        self.ts = bars["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        self.ts_values = bars["ts"].array  # indexing gives a Timestamp with the column's zone
        self.low = bars["low"].to_numpy(dtype=float)
        self.high = bars["high"].to_numpy(dtype=float)
        self.close = bars["close"].to_numpy(dtype=float)
        self.volume = bars["volume"].to_numpy(dtype=float) if weight == "volume" else np.ones(len(bars))
        self.session = bars["session"].to_numpy()

    def session_starts(self) -> np.ndarray:
        """Index of each session's first bar (sessions are contiguous: bars are in time order)."""
        codes, _ = pd.factorize(self.session)
        if len(codes) and not (np.diff(codes) >= 0).all():
            raise ProfileInputError("sessions interleave in time (a bar's session does not follow from its ts)",
                                    column="session")
        return np.concatenate(([0], np.flatnonzero(np.diff(codes)) + 1))


def _first_window(ts: np.ndarray, lo: np.ndarray, hi: np.ndarray, minutes: float, *, inclusive: bool):
    """(low, high) of the bars starting within ``minutes`` of the first (``<=`` when ``inclusive``)."""
    end = ts[0] + int(round(minutes * 60e9))
    m = ts <= end if inclusive else ts < end
    return float(lo[m].min()), float(hi[m].max())


def _profiles(b: _Bars, starts: np.ndarray, params: ProfileParams) -> list[VolumeProfile]:
    """One profile per span ``[starts[i], starts[i + 1])`` of the bars."""
    ends = np.append(starts[1:], len(b.ts))
    if params.preset == "market_profile":
        row = params.row_size or MARKET_PROFILE_ROW_SIZE
        return [_market_profile_span(b, s, e, row, params) for s, e in zip(starts, ends, strict=True)]
    if params.row_size is not None:
        row_sizes = np.full(len(starts), float(params.row_size))
    else:
        lows = np.minimum.reduceat(b.low, starts)
        highs = np.maximum.reduceat(b.high, starts)
        row_sizes = np.array([default_row_size(lo, hi, tick=params.tick, target_rows=params.target_rows)
                              for lo, hi in zip(lows, highs, strict=True)])
    code = np.repeat(np.arange(len(starts)), ends - starts)
    r = row_sizes[code]
    k_lo = np.ceil(np.round(b.low / r, 6)).astype(np.int64)
    k_hi = np.ceil(np.round(b.high / r, 6)).astype(np.int64)
    k0 = np.minimum.reduceat(k_lo, starts)
    counts = np.maximum.reduceat(k_hi, starts) - k0 + 1
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    n_rows = int(counts.sum())
    first = offsets[code] + (k_lo - k0[code])      # flat index of each bar's lowest row
    n = k_hi - k_lo + 1                              # rows each bar covers
    bar_of = np.repeat(np.arange(len(n)), n)
    idx = np.repeat(first, n) + (np.arange(len(bar_of)) - np.repeat(np.cumsum(n) - n, n))
    touches = np.bincount(idx, minlength=n_rows)
    if params.resolved_method == "range":
        vol = np.bincount(idx, weights=(b.volume / n)[bar_of], minlength=n_rows)
    else:
        k_c = np.ceil(np.round(b.close / r, 6)).astype(np.int64)
        vol = np.bincount(offsets[code] + (k_c - k0[code]), weights=b.volume, minlength=n_rows)
    out = []
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        sl = slice(offsets[i], offsets[i] + counts[i])
        out.append(_generic_span(b, s, e, int(k0[i]), vol[sl], touches[sl], float(row_sizes[i]), params))
    return out


def _generic_span(b, s, e, k0, vol, touches, row_size, params) -> VolumeProfile:
    total = math.fsum(b.volume[s:e].tolist())
    if not total > 0:
        raise EmptyProfileError(f"no volume to profile: the {e - s} bar(s) from "
                                f"{b.frame['ts'].iloc[s]} all have volume 0 (an index file? weigh bars by time: weight='time', --weight time)")
    prices = _row_prices(np.arange(k0, k0 + len(vol)), row_size)
    poc = point_of_control(vol)
    lo, hi = grow_value_area(vol, poc, params.value_area, rule=params.resolved_va_rule)
    hvn, lvn = volume_nodes(vol, prominence=params.node_prominence, smoothing=params.node_smoothing)
    return _assemble(b, s, e, prices, vol, touches.astype(np.int64), row_size, params, total, poc, lo, hi,
                     hvn, lvn, np.flatnonzero(touches == 1), inclusive=False)


def _assemble(b, s, e, prices, vol, row_bars, row_size, params, total, poc, lo, hi, hvn, lvn, singles, *,
              inclusive):
    ts = b.ts[s:e]
    or_ = _first_window(ts, b.low[s:e], b.high[s:e], params.opening_minutes, inclusive=inclusive)
    ib = _first_window(ts, b.low[s:e], b.high[s:e], params.ib_minutes, inclusive=inclusive)
    first_session, last_session = b.session[s], b.session[e - 1]
    n_sessions = 1 if first_session == last_session else len(pd.unique(b.session[s:e]))
    p_poc, p_low, p_high = float(prices[poc]), float(prices[0]), float(prices[-1])
    return VolumeProfile(
        prices=prices, row_volume=vol, row_bars=row_bars, row_size=float(row_size), method=params.resolved_method, va_rule=params.resolved_va_rule,
        weight=params.weight, preset=params.preset, session=first_session if n_sessions == 1 else None,
        start=b.ts_values[s], end=b.ts_values[e - 1], n_bars=int(e - s), n_sessions=n_sessions,
        volume=float(total), poc=p_poc, val=float(prices[lo]), vah=float(prices[hi]), low=p_low, high=p_high,
        value_area=float(params.value_area), va_volume=float(math.fsum(vol[lo:hi + 1].tolist())),
        hvn=tuple(float(prices[i]) for i in hvn), lvn=tuple(float(prices[i]) for i in lvn),
        single_prints=tuple(float(prices[i]) for i in singles),
        balanced_target=float(balanced_target(p_poc, p_low, p_high)),
        or_low=or_[0], or_high=or_[1], ib_low=ib[0], ib_high=ib[1])


# ----------------------------------------------------------------------------------------------------
# the market_profile preset (py-market-profile, exactly)
# ----------------------------------------------------------------------------------------------------
def _market_profile_span(b: _Bars, s: int, e: int, row_size: float, params: ProfileParams) -> VolumeProfile:
    roundoff = 1 / float(row_size)
    keys = np.ceil(b.close[s:e] * roundoff) / roundoff   # the package's round_to_row, vectorised
    prices, inv = np.unique(keys, return_inverse=True)
    vol = np.bincount(inv, weights=b.volume[s:e])
    closes = np.bincount(inv)
    total = float(vol.sum())
    if not total > 0:
        raise EmptyProfileError(f"no volume to profile: the {e - s} bar(s) from "
                                f"{b.frame['ts'].iloc[s]} all have volume 0 (an index file? weigh bars by time: weight='time', --weight time)")
    n = len(vol)
    cand = np.flatnonzero(vol == vol.max())
    poc = int(cand[np.argmin(np.abs(cand - n / 2))])     # the package's midmax_idx: distance to len / 2
    lo, hi = _market_profile_value_area(vol.tolist(), poc, params.value_area)
    inner = vol[1:-1]
    hvn = np.flatnonzero((inner > vol[:-2]) & (inner > vol[2:])) + 1   # argrelextrema(np.greater), order 1
    lvn = np.flatnonzero((inner < vol[:-2]) & (inner < vol[2:])) + 1
    return _assemble(b, s, e, prices, vol, closes.astype(np.int64), row_size, params, total, poc, lo, hi,
                     hvn, lvn, np.flatnonzero(closes == 1), inclusive=True)


def _market_profile_value_area(v: list, poc: int, share: float) -> tuple[int, int]:
    """The package's ``calculate_value_area`` on occupied rows (a zero row counts as absent, as its truth
    tests have it; where it would add None, the row above is taken, or the loop ends)."""
    n = len(v)
    target = sum(v) * share
    trial = v[poc]
    lo = hi = poc
    while trial <= target:
        nlo, nhi = max(lo - 1, 0), min(hi + 1, n - 1)
        low_v = v[nlo] if nlo != lo else None
        high_v = v[nhi] if nhi != hi else None
        if not high_v or (low_v and low_v > high_v):
            if low_v is None:   # the package fails here (None added); the row above is the only one left
                if high_v is None:
                    break
                trial += high_v
                hi = nhi
                continue
            trial += low_v
            lo = nlo
        else:
            trial += high_v
            hi = nhi
    return lo, hi


# ----------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------
def volume_profile(bars: pd.DataFrame, *, row_size: float | None = None, method: str | None = None,
                   value_area: float = 0.70, va_rule: str | None = None, preset: str | None = None,
                   **options) -> VolumeProfile:
    """The volume profile of every bar given, as one profile (a session, a range or many sessions).

    Parameters
    ----------
    bars : DataFrame
        Bars with the columns of :data:`BAR_COLUMNS`, in time order (module docstring).
    row_size, method, value_area, va_rule, preset :
        See :class:`ProfileParams` (defaults: the span's :func:`default_row_size`, "range", 0.70, "two_row").
    **options
        The other :class:`ProfileParams` fields: ``tick``, ``target_rows``, ``node_prominence``,
        ``node_smoothing``, ``opening_minutes``, ``ib_minutes``, ``weight``.

    Returns
    -------
    VolumeProfile

    Raises
    ------
    ProfileParamsError
        An impossible or unknown parameter (named).
    ProfileInputError
        Malformed bars (the column, the number of bad rows, an example).
    EmptyProfileError
        No bars, or no volume.
    """
    params = _params(row_size, method, value_area, va_rule, preset, options)
    b = _Bars(bars, params.weight)
    return _profiles(b, np.array([0]), params)[0]


def session_profiles(bars: pd.DataFrame, *, row_size: float | None = None, method: str | None = None,
                     value_area: float = 0.70, va_rule: str | None = None, preset: str | None = None,
                     **options) -> tuple[VolumeProfile, ...]:
    """One profile per session (the ``session`` column), in date order, all built with one ``bincount``.

    Parameters as :func:`volume_profile`; with ``row_size`` None each session gets the default row size of its
    own range. A session whose bars all have volume 0 raises :class:`EmptyProfileError` (naming it).
    """
    params = _params(row_size, method, value_area, va_rule, preset, options)
    b = _Bars(bars, params.weight)
    return tuple(_profiles(b, b.session_starts(), params))


def composite_profile(bars: pd.DataFrame, sessions: Sequence[dt.date] | None = None, **kwargs) -> VolumeProfile:
    """One profile over the bars of ``sessions`` (default: every session in ``bars``), keyword arguments as
    :func:`volume_profile`. Raises :class:`EmptyProfileError` when none of ``sessions`` is in ``bars``."""
    if sessions is not None:
        _check_bars(bars)
        wanted = set(sessions)
        bars = bars[bars["session"].isin(wanted)]
        if len(bars) == 0:
            raise EmptyProfileError(f"no bars of the sessions asked ({', '.join(map(str, sorted(wanted)))})")
    return volume_profile(bars, **kwargs)


def range_profile(bars: pd.DataFrame, start, end, **kwargs) -> VolumeProfile:
    """One profile over the bars starting in ``[start, end]`` (both ends included, as ``DataFrame.loc``
    slices; timestamps, or text pandas reads, taken as UTC when naive), keyword arguments as
    :func:`volume_profile`. Raises :class:`ProfileParamsError` when ``end < start``,
    :class:`EmptyProfileError` when no bar starts in the range."""
    _check_bars(bars)
    lo, hi = (_utc(x, name) for x, name in ((start, "start"), (end, "end")))
    if hi < lo:
        raise ProfileParamsError("end", f"{hi} is before start {lo}")
    ts = bars["ts"]
    picked = bars[(ts >= lo) & (ts <= hi)]
    if len(picked) == 0:
        raise EmptyProfileError(f"no bar starts in [{lo}, {hi}] (the bars run {ts.iloc[0]} .. {ts.iloc[-1]})")
    return volume_profile(picked, **kwargs)


def _utc(x, name: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(x)
    except (TypeError, ValueError) as exc:
        raise ProfileParamsError(name, f"not a time: {x!r} ({exc})") from None
    return t.tz_localize("UTC") if t.tzinfo is None else t


def market_profile(bars: pd.DataFrame, *, row_size: float = MARKET_PROFILE_ROW_SIZE, value_area: float = 0.70,
                   opening_minutes: float = 10.0, ib_minutes: float = 60.0, weight: str = "volume") -> VolumeProfile:
    """The py-market-profile package's profile of every bar given (``MarketProfile(df, row_size=row_size)
    [first:last].as_dict()``; ``weight="time"``: its ``mode="tpo"``), exactly: see the module docstring. Same
    as ``volume_profile(bars, preset="market_profile", ...)``; per session with :func:`session_profiles`."""
    return volume_profile(bars, row_size=row_size, value_area=value_area, preset="market_profile",
                          opening_minutes=opening_minutes, ib_minutes=ib_minutes, weight=weight)


def developing_profile(bars: pd.DataFrame, *, row_size: float, method: str | None = None,
                       value_area: float = 0.70, va_rule: str | None = None, **options) -> pd.DataFrame:
    """The profile as it stood after each bar, session by session: no look-ahead.

    Row ``i`` is what :func:`volume_profile` gives for the bars of row ``i``'s session up to and including bar
    ``i`` (same ``row_size``; a test checks it), so a prefix of the bars gives a prefix of the result.

    Parameters
    ----------
    bars : DataFrame
        As :func:`volume_profile`.
    row_size : float
        Dollars per row, required: a default from the session's range would look ahead (use
        :func:`default_row_size` of an earlier session's range, or the full-day profile's own row size when
        looking back at a finished day).
    method, value_area, va_rule, **options
        As :func:`volume_profile` (the preset has no developing form).

    Returns
    -------
    DataFrame
        Index as ``bars``; columns ``ts``, ``session``, ``poc``, ``val``, ``vah`` (dollars), ``volume`` (the
        session's running total), ``low``, ``high`` (the rows of the range so far). While a session has traded no
        volume yet, ``poc``, ``val`` and ``vah`` are NaN (not defined); every other value is finite.
    """
    if options.get("preset") is not None:
        raise ProfileParamsError("preset", "the market_profile preset has no developing form")
    params = _params(row_size, method, value_area, va_rule, None, options)
    if row_size is None:
        raise ProfileParamsError("row_size", "developing_profile needs an explicit row size (a default from the "
                                             "session's range would look ahead)")
    b = _Bars(bars, params.weight)
    n = len(b.ts)
    out = {c: np.full(n, np.nan) for c in ("poc", "val", "vah", "volume", "low", "high")}
    k_lo, k_hi = row_index(b.low, row_size), row_index(b.high, row_size)
    k_c = row_index(b.close, row_size)
    by_range = params.resolved_method == "range"
    rule = params.resolved_va_rule
    starts = b.session_starts()
    for s, e in zip(starts, np.append(starts[1:], n), strict=True):
        k0 = int(k_lo[s:e].min())
        acc = np.zeros(int(k_hi[s:e].max()) - k0 + 1)
        lo_k, hi_k = k_lo[s] - k0, k_hi[s] - k0
        vols = b.volume[s:e].tolist()
        for i in range(s, e):
            a, z = k_lo[i] - k0, k_hi[i] - k0
            if by_range:
                acc[a:z + 1] += b.volume[i] / (z - a + 1)
            else:
                acc[k_c[i] - k0] += b.volume[i]
            lo_k, hi_k = min(lo_k, a), max(hi_k, z)
            prices = _row_prices(np.array([lo_k + k0, hi_k + k0]), row_size)
            out["low"][i], out["high"][i] = prices
            total = math.fsum(vols[:i - s + 1])
            out["volume"][i] = total
            if total > 0:
                sub = acc[lo_k:hi_k + 1]
                poc = point_of_control(sub)
                v_lo, v_hi = grow_value_area(sub, poc, params.value_area, rule=rule)
                out["poc"][i], out["val"][i], out["vah"][i] = _row_prices(
                    np.array([poc, v_lo, v_hi]) + lo_k + k0, row_size)
    frame = pd.DataFrame(out, index=bars.index)
    frame.insert(0, "session", bars["session"].to_numpy())
    frame.insert(0, "ts", bars["ts"])
    return frame


def _session_window(bars: pd.DataFrame, minutes: float, name: str) -> pd.DataFrame:
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes) \
            or minutes <= 0:
        raise ProfileParamsError(name, f"must be a positive number of minutes, got {minutes!r}")
    b = _Bars(bars)
    starts = b.session_starts()
    first = np.repeat(b.ts[starts], np.diff(np.append(starts, len(b.ts))))
    m = (b.ts - first) < int(round(minutes * 60e9))
    picked = bars.loc[m, ["session", "low", "high"]]
    g = picked.groupby("session", sort=False)
    out = pd.DataFrame({"low": g["low"].min(), "high": g["high"].max(), "bars": g.size()})
    out["end"] = bars["ts"].iloc[starts].to_numpy() + pd.Timedelta(minutes=minutes)
    return out


def opening_range(bars: pd.DataFrame, minutes: float = 10.0) -> pd.DataFrame:
    """Per session, the low and high of the bars starting less than ``minutes`` after its first bar.

    Returns a DataFrame indexed by session (date order): ``low``, ``high`` (dollars), ``bars`` (how many
    bars), ``end`` (first bar + ``minutes``: the range is final from then on). With 1-minute bars from 09:30
    and the default 10: the bars 09:30-09:39.
    """
    return _session_window(bars, minutes, "minutes")


def initial_balance(bars: pd.DataFrame, minutes: float = 60.0) -> pd.DataFrame:
    """Per session, the low and high of the first hour (``minutes``) of bars: as :func:`opening_range`."""
    return _session_window(bars, minutes, "minutes")


def profiles_frame(profiles: Sequence[VolumeProfile]) -> pd.DataFrame:
    """Many profiles as one table, one row each in the order given (e.g. of :func:`session_profiles`).

    Columns: ``date`` (the session, a :class:`datetime.date`, or None for a multi-session profile), ``start``,
    ``end`` (the first and last bar's start), then every scalar field of :class:`VolumeProfile` (``poc``, ``val``,
    ``vah``, ``low``, ``high``, ``volume``, ``va_volume``, ``row_size``, ``balanced_target``, ``or_low`` ...) and
    ``hvn``, ``lvn``, ``single_prints`` as tuples of prices. An empty sequence gives an empty table with those
    columns.
    """
    skip = {"prices", "row_volume", "row_bars", "session"}
    names = ["date"] + [f.name for f in dataclasses.fields(VolumeProfile) if f.name not in skip]
    rows = [[p.session] + [getattr(p, n) for n in names[1:]] for p in profiles]
    return pd.DataFrame(rows, columns=names)
