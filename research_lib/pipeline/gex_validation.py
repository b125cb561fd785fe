"""Validation of the regime's GEX series on real chain archives: each documented variant of
:data:`research_lib.core.regime_gex.VARIANTS` computed over every clean day of an archive, measured against
SqueezeMetrics' published GEX and the S&P 500's next-day and next-5-day realised volatility
(:mod:`research_lib.core.gex_signal`), and the choice rule that picked :data:`~research_lib.core.regime_gex.DEFAULT`.

The choice rule (fixed before the figures were read, the same on every archive): a variant scores one point
per goal it meets on each archive — correlation with the published series (≥ 0.90 on the 2019 archive, ≥ 0.80
on 2026), sign agreement ≥ 85%, relative noise ≤ 1.5× the published series', and a next-day and a next-5-day
realised-volatility separation at least the published series' on the same days (not assessed, for any variant,
where the published series has fewer than ``MIN_SIDE_DAYS`` = 5 negative or positive days: on the 2026 archive
it has one negative day). The variant with the most points wins; ties go to the one listed first in ``VARIANTS`` (the simpler). No variant has a parameter fitted
to the published series. :func:`choose` applies it; the tests check that it still picks the default.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib.core import gex_signal, regime_gex
from research_lib.data import market
from research_lib.data.sources import read_chains
from research_lib.errors import ResearchLibError
from research_lib.formatting import jsonable
from research_lib.pipeline import gex_change

#: The two real archives of issue 11, by label, relative to the shared data folder.
ARCHIVES = {"2019": "chains/spx_intraday_2019-04-25_2019-07-22.parquet",
            "2026": "chains/spx_eod_2026-06-12_2026-08-21.parquet"}

#: Columns of :attr:`GexValidation.table` besides the measures of :func:`research_lib.core.gex_signal.signal_measures`.
GOAL_COLUMNS = ("goal_correlation", "goal_sign", "goal_noise", "goal_rv1", "goal_rv5")


def variant_series(snapshots: Iterable, variants: Mapping[str, regime_gex.RegimeGexSpec] = regime_gex.VARIANTS, *,
                   market_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per snapshot (index: trading date), one column per variant ($ per 1% move), each variant's
    smoothing applied over the days in order; plus ``spot``.

    ``snapshots``: ChainSnapshots in date order (e.g. :func:`research_lib.data.sources.read_chains`). Rates per
    snapshot as every command uses them (:func:`research_lib.data.market.snapshot_config`, model convention).
    A variant that cannot be computed on a day (no parity spot, no window) is NaN there and the reason is in
    ``attrs["notes"]``.
    """
    rows, notes = [], []
    for snap in snapshots:
        config = market.snapshot_config(snap, "model", market_dir=market_dir)
        row = {"date": pd.Timestamp(snap.snapshot_date), "spot": snap.spot}
        for name, spec in variants.items():
            try:
                row[name] = regime_gex.of(snap, config, spec).value
            except ResearchLibError as exc:
                row[name] = np.nan
                notes.append(f"{snap.snapshot_date} {name}: {type(exc).__name__}: {exc}")
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("date") if rows else pd.DataFrame(columns=["spot", *variants])
    for name, spec in variants.items():
        if name in frame:
            frame[name] = regime_gex.smooth(frame[name], spec)
    frame.attrs["notes"] = notes
    return frame


def measures_table(series: Mapping[str, pd.DataFrame], published: pd.Series, close: pd.Series) -> pd.DataFrame:
    """The variants' table: one row per (archive, variant) plus a ``published`` row per archive, columns the
    measures of :func:`~research_lib.core.gex_signal.signal_measures`, the goals (:data:`GOAL_COLUMNS`: True,
    False, or None where not assessable), ``goals_met`` and ``goals_assessed`` (the published rows have none).

    ``series``: archive label (``"2019"``, ``"2026"``) -> :func:`variant_series` frame. ``spot_change_corr``:
    the correlation of the series' daily change with the spot's daily % change (how much of its noise is the
    spot move; the published series' own on its row).
    """
    published = published.copy()
    published.index = pd.DatetimeIndex(published.index).normalize()
    rows = []
    for label, frame in series.items():
        ref = published.reindex(frame.index).dropna()
        ref_m = gex_signal.signal_measures(ref, None, close)
        ref_m["noise"] = gex_signal.relative_noise(ref)
        ref_m["spot_change_corr"] = (float(ref.diff().corr(frame["spot"].pct_change().reindex(ref.index)))
                                     if "spot" in frame else np.nan)
        rows.append({"archive": label, "variant": "published", **ref_m, "correlation": 1.0, "sign_agreement": 1.0,
                     "noise_vs_reference": 1.0})
        corr_goal = gex_signal.GOALS.get(f"correlation_{label}", gex_signal.GOALS["correlation_2026"])
        spot_change = frame["spot"].pct_change() if "spot" in frame else None
        for name in frame.columns.drop("spot", errors="ignore"):
            m = gex_signal.signal_measures(frame[name], ref, close)
            m["spot_change_corr"] = (float(frame[name].diff().corr(spot_change)) if spot_change is not None
                                     else np.nan)
            m.update({
                "goal_correlation": bool(m["correlation"] >= corr_goal),
                "goal_sign": bool(m["sign_agreement"] >= gex_signal.GOALS["sign_agreement"]),
                "goal_noise": bool(m["noise_vs_reference"] <= gex_signal.GOALS["noise_vs_reference"]),
                "goal_rv1": _at_least(m["rv1_separation"], ref_m["rv1_separation"]),
                "goal_rv5": _at_least(m["rv5_separation"], ref_m["rv5_separation"]),
            })
            rows.append({"archive": label, "variant": name, **m})
    table = pd.DataFrame(rows)
    for c in GOAL_COLUMNS:
        if c not in table:
            table[c] = None
    goals = table[list(GOAL_COLUMNS)]
    table["goals_met"] = goals.apply(lambda r: sum(v is True for v in r), axis=1)
    table["goals_assessed"] = goals.apply(lambda r: sum(v is not None and v == v for v in r), axis=1)
    ours = table["variant"] != "published"
    table.loc[~ours, ["goals_met", "goals_assessed"]] = np.nan
    return table


def _at_least(ours: float, reference: float) -> bool | None:
    """The separation goal: None (not assessable) when the reference's separation cannot be measured (a side
    with fewer than MIN_SIDE_DAYS days); False when ours cannot; else ours >= reference."""
    if not np.isfinite(reference):
        return None
    return bool(np.isfinite(ours) and ours >= reference)


def choose(table: pd.DataFrame, variants: Mapping[str, regime_gex.RegimeGexSpec] = regime_gex.VARIANTS) -> str:
    """The module docstring's rule: the variant with the most goals met over every archive; ties to the first
    listed in ``variants``."""
    ours = table[table["variant"] != "published"]
    points = ours.groupby("variant")["goals_met"].sum()
    order = [v for v in variants if v in points.index]
    best = max(order, key=lambda v: (points[v], -order.index(v)))
    return best


@dataclasses.dataclass(frozen=True, eq=False)
class GexValidation:
    """Everything the validation notebook shows.

    Attributes
    ----------
    series : Mapping of str to DataFrame
        Archive label -> :func:`variant_series` (plus a ``published`` column: SqueezeMetrics' GEX on those days).
    table : DataFrame
        :func:`measures_table`.
    chosen : str
        :func:`choose`'s pick (the tests check it is :data:`research_lib.core.regime_gex.DEFAULT`'s name).
    points : Series
        Goals met per variant over both archives.
    close : Series
        S&P 500 closes used for the realised volatility.
    changes : Mapping of str to DataFrame
        Archive label -> :func:`research_lib.pipeline.gex_change.change_history` of the headline net GEX (what
        moved it each day, by cause and expiry bucket); empty when not asked for.
    """

    series: Mapping[str, pd.DataFrame]
    table: pd.DataFrame
    chosen: str
    points: pd.Series
    close: pd.Series
    changes: Mapping[str, pd.DataFrame] = dataclasses.field(default_factory=dict)

    def noise_shares(self) -> pd.DataFrame:
        """:func:`research_lib.pipeline.gex_change.variance_shares` of each archive's changes, side by side:
        index (group, part), columns (archive, ``sd`` / ``share``); ``sd`` in $bn per 1% move."""
        parts = {label: gex_change.variance_shares(h).assign(sd=lambda f: f["sd"] / 1e9)
                 for label, h in self.changes.items()}
        return pd.concat(parts, axis=1) if parts else pd.DataFrame()

    def to_dict(self) -> dict:
        """Strict-JSON-ready: ``chosen``, ``default``, ``points``, ``table`` (records), ``noise_shares``
        ({archive: {group: {part: {sd ($bn), share}}}})."""
        shares = {}
        for label, h in self.changes.items():
            v = gex_change.variance_shares(h)
            shares[label] = {g: {p: {"sd_bn": row["sd"] / 1e9, "share": row["share"]}
                                 for (gg, p), row in v.iterrows() if gg == g} for g in ("cause", "expiry")}
        return jsonable({"chosen": self.chosen, "default": regime_gex.DEFAULT.name,
                         "points": {k: int(v) for k, v in self.points.items()},
                         "table": self.table.to_dict("records"), "noise_shares": shares})

    def markdown(self, columns=("correlation", "sign_agreement", "noise", "noise_vs_reference", "spot_change_corr",
                                "rv1_separation", "rv5_separation", "rv1_n_negative", "goals_met", "goals_assessed")) -> str:
        """The table as GitHub markdown, one block per archive (figures rounded)."""
        t = self.table.copy()
        lines = []
        for label, part in t.groupby("archive", sort=False):
            lines.append(f"**{label}** ({int(part['n'].max())} days)\n")
            lines.append("| variant | " + " | ".join(columns) + " |")
            lines.append("|---|" + "---|" * len(columns))
            for _, row in part.iterrows():
                cells = []
                for c in columns:
                    v = row[c]
                    cells.append("–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else
                                 (f"{v:.3f}" if isinstance(v, float) and not float(v).is_integer() else f"{v:g}"))
                lines.append(f"| {row['variant']} | " + " | ".join(cells) + " |")
            lines.append("")
        return "\n".join(lines)


def validate(data_dir: str | os.PathLike, *, variants: Mapping[str, regime_gex.RegimeGexSpec] = regime_gex.VARIANTS,
             archives: Mapping[str, str] = ARCHIVES, changes: bool = True,
             method: str = "sequential") -> GexValidation:
    """:class:`GexValidation` over the archives under ``data_dir`` (the shared data folder: ``chains/`` and
    ``market/``): each archive is read once; with ``changes`` the attribution of every day's change of the
    headline net GEX (``method`` as :func:`research_lib.core.gex_change.attribute_change`) is computed too.

    Raises FileNotFoundError naming the first archive that is missing.
    """
    root = Path(data_dir)
    market_dir = root / "market"
    published = market.load_published_gex(market_dir=market_dir)["gex"]
    published.index = pd.DatetimeIndex(published.index).normalize()
    close = market.load_index_daily("SPX", market_dir=market_dir)["close"]
    close.index = pd.DatetimeIndex(close.index).normalize()
    series, histories = {}, {}
    for label, rel in archives.items():
        path = root / rel
        if not path.exists():
            raise FileNotFoundError(f"{path}: archive {label} not found")
        snapshots = list(read_chains(path))
        frame = variant_series(snapshots, variants, market_dir=market_dir)
        frame["published"] = published.reindex(frame.index)
        series[label] = frame
        if changes:
            histories[label] = gex_change.change_history(snapshots, method=method, market_dir=market_dir)
    table = measures_table({k: v.drop(columns="published") for k, v in series.items()}, published, close)
    chosen = choose(table, variants)
    points = table[table["variant"] != "published"].groupby("variant", sort=False)["goals_met"].sum()
    return GexValidation(series=series, table=table, chosen=chosen, points=points, close=close, changes=histories)


__all__ = ["ARCHIVES", "GOAL_COLUMNS", "GexValidation", "choose", "measures_table", "validate", "variant_series"]
