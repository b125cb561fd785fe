"""The market history as one day sees it: :class:`MarketHistory` (everything loaded) and
:class:`MarketView` (the same, cut at a date).

Both are in-memory containers; building a view reads no file. :class:`MarketView` holds only rows dated
at or before its ``date`` (the same-day close included, as the regime has always used it), so nothing
computed from a view can see past that date: the cut happens once, in :meth:`MarketView.as_of`, not in
each consumer. :func:`research_lib.data.market.load_market_history` fills a :class:`MarketHistory` from
the market files; the loaders of :mod:`research_lib.data.market` accept a view wherever they take a
``market_dir`` and then serve its rows instead of a file's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    MarketViewError as MarketViewError,
)
from research_lib.settings import NY


def _day(value) -> dt.date:
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        raise MarketViewError(f"not a date: {value!r}")
    if ts.tz is not None:
        ts = ts.tz_convert(NY).tz_localize(None)
    return ts.date()


def _cut(obj, date: dt.date):
    """Rows of a date-indexed frame or series dated on or before ``date`` (a copy, attrs kept)."""
    if obj is None:
        return None
    idx = obj.index
    if isinstance(idx, pd.DatetimeIndex) and idx.tz is not None:
        idx = idx.tz_convert(NY).tz_localize(None)
    keep = pd.DatetimeIndex(idx).normalize() <= pd.Timestamp(date)
    out = obj.loc[keep].copy()
    out.attrs = dict(obj.attrs)
    return out


@dataclasses.dataclass(frozen=True)
class MarketHistory:
    """Every market file a decision reads, loaded once.

    Attributes
    ----------
    frames : Mapping of str to (DataFrame, Path)
        By file kind (``spx``, ``spy``, ``vix``, ``vix9d``, ``vix3m``, ``vvix``, ``skew``, ``irx``,
        ``dgs3mo``, ``dff``, ``gex``): the parsed file, date-indexed, and the path it came from.
    errors : Mapping of str to Exception
        Kinds whose file was missing or malformed: the error the loader raised, raised again by a view.
    net_gex : Series or None
        Our own net GEX history (dollars per 1% move, date-indexed), when known.
    regime_gex : Series or None
        Our own history of the regime's GEX series (:mod:`research_lib.core.regime_gex`, same units), when
        known: the trailing distribution the regime's thresholds are relative to.
    """

    frames: Mapping[str, tuple[pd.DataFrame, Path]]
    errors: Mapping[str, Exception] = dataclasses.field(default_factory=dict)
    net_gex: pd.Series | None = None
    regime_gex: pd.Series | None = None

    def __post_init__(self):
        object.__setattr__(self, "frames", MappingProxyType(dict(self.frames)))
        object.__setattr__(self, "errors", MappingProxyType(dict(self.errors)))


@dataclasses.dataclass(frozen=True)
class MarketView:
    """A :class:`MarketHistory` cut at ``date``: no row after it exists in the view.

    Build it with :meth:`as_of`. Attributes as :class:`MarketHistory`, plus ``date`` (a New York
    calendar date).
    """

    date: dt.date
    frames: Mapping[str, tuple[pd.DataFrame, Path]]
    errors: Mapping[str, Exception]
    net_gex: pd.Series | None = None
    regime_gex: pd.Series | None = None

    @classmethod
    def as_of(cls, history: MarketHistory, date) -> MarketView:
        """The view of ``history`` on ``date``: every frame and series cut to rows dated at or before it.

        ``date`` is a date-like; a tz-aware moment is taken as its New York date.
        """
        day = _day(date)
        frames = {k: (_cut(f, day), p) for k, (f, p) in history.frames.items()}
        return cls(date=day, frames=MappingProxyType(frames), errors=history.errors,
                   net_gex=_cut(history.net_gex, day), regime_gex=_cut(history.regime_gex, day))

    def frame(self, kind: str) -> tuple[pd.DataFrame, Path]:
        """(a copy of the ``kind`` frame up to :attr:`date`, its path); raises the load error of a kind
        whose file was missing or malformed, :class:`MarketViewError` for a kind never loaded."""
        if kind in self.frames:
            frame, path = self.frames[kind]
            out = frame.copy()
            out.attrs = {**frame.attrs, "source": str(path)}  # as the file loader labels a frame
            return out, path
        if kind in self.errors:
            raise self.errors[kind]
        raise MarketViewError(f"market kind {kind!r} is not in this history (loaded: {sorted(self.frames)})")
