"""Data: the polled prediction-market top-of-book dataset, and the scan of its multi-outcome events.

The layout (``../shared/data/binary/polymarket_topbook_2026-07/``, see ``SOURCES.md``)::

    DIR/quotes/dt=YYYY-MM-DD.parquet   ts (UTC, naive), slug, category, bid, ask, ... (the YES token's best prices)
    DIR/markets.parquet                slug -> question, category; a question with several slugs is one event
    DIR/labels.parquet                 optional: slug -> resolved outcome y (1 YES, 0 NO), source ("api" trusted)

:func:`scan_topbook` finds, per day and category, how often and for how long the sum of a multi-outcome event's
YES asks (bids) left a buy-all (sell-all) edge after costs, with the outcomes' quotes aligned in time by
:data:`research_lib.core.binary.ALIGNMENT_RULE`. It reads only the columns it needs with pyarrow (the slug as
dictionary codes), groups with numpy (``np.bincount`` over (event, poll) codes) one day at a time, and carries
each outcome's last quote of a day into the next, so an episode across midnight is one episode.

The dataset says each multi-slug question has exactly one YES outcome. The labels show that this is not so for
many questions (a "Top-10" question has ten winners; one question text can be asked of several games): the
scan reports, per event, what the authoritative labels say (``labelled_winners``), so a positive "edge" on a
question that is not exclusive can be told apart; ``events="exclusive"`` keeps only the events whose every outcome
is labelled with exactly one YES (a filter that uses the resolution, for diagnosis, not for trading).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from research_lib.core.binary import ALIGNMENT_RULE, align_event_polls, check_costs, edge_episodes
from research_lib.errors import BinaryParamsError, TopBookDatasetError

QUOTE_COLUMNS = ("ts", "slug", "bid", "ask")
MARKET_COLUMNS = ("slug", "question", "category")
_DAY_FILE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})(\.parquet)?$")

#: The columns of :attr:`TopBookScan.daily`.
DAILY_COLUMNS = ("date", "category", "events_quoted", "events_evaluated", "events_exclusive", "event_polls",
                 "incomplete_polls", "buy_positive_polls", "sell_positive_polls", "buy_positive_share",
                 "sell_positive_share", "buy_episodes", "sell_episodes", "buy_episodes_exclusive",
                 "sell_episodes_exclusive", "buy_median_minutes", "sell_median_minutes", "buy_max_minutes",
                 "sell_max_minutes", "buy_max_edge", "sell_max_edge")


@dataclasses.dataclass(frozen=True)
class TopBookEvents:
    """The multi-outcome events of a dataset: outcome (market row) -> event, and per event its facts.

    Attributes
    ----------
    slugs : pandas.Index
        Every market's slug, in ``markets.parquet`` order: the outcome code is the position here.
    event_of : numpy.ndarray of int64
        Outcome code -> event code, −1 for a market that is alone under its question.
    events : pandas.DataFrame
        One row per event code: ``question``, ``category`` (of its first outcome), ``n_outcomes``,
        ``labelled`` (outcomes with an ``api`` label), ``labelled_winners`` (of those, labelled YES),
        ``exclusive`` (True: every outcome labelled and exactly one YES; False: every outcome labelled, not one
        YES; NA: not every outcome labelled).
    """

    slugs: pd.Index
    event_of: np.ndarray
    events: pd.DataFrame


@dataclasses.dataclass(frozen=True)
class TopBookScan:
    """What :func:`scan_topbook` found.

    Attributes
    ----------
    daily : pandas.DataFrame
        One row per (date, category) (:data:`DAILY_COLUMNS`): ``events_quoted`` (events with an outcome quoted
        that day), ``events_evaluated`` (complete at one poll at least), ``events_exclusive`` (of those, the events
        the labels show to be exclusive: every outcome labelled, one YES), ``event_polls`` (complete (event, poll)
        pairs), ``incomplete_polls`` (some but not every outcome fresh), ``*_positive_polls`` and ``*_share`` (pairs
        with the edge positive after costs, and their share of ``event_polls``), ``*_episodes`` (runs of
        consecutive positive polls starting that day; ``*_episodes_exclusive``: on labelled-exclusive events),
        ``*_median_minutes`` / ``*_max_minutes`` (their lengths:
        from the first positive poll to the first poll without the edge), ``*_max_edge`` (dollars per set).
    largest : pandas.DataFrame
        The largest episodes, both sides, by ``max_edge``: ``date``, ``category``, ``question``, ``side``,
        ``n_outcomes``, ``start``, ``end`` (UTC), ``minutes``, ``n_polls``, ``max_edge``, ``sum_ask``, ``sum_bid``
        (at the poll of the largest edge), ``open_at_end``, ``labelled``, ``labelled_winners``, ``exclusive``.
    rule : str
        How the outcomes' quotes were aligned in time (:data:`~research_lib.core.binary.ALIGNMENT_RULE`).
    params : dict
        ``staleness_s``, ``fee_rate``, ``fee_exponent``, ``tick``, ``events``, ``two_sided``, ``top``.
    totals : dict
        ``files``, ``rows``, ``rows_in_events``, ``unknown_slug_rows``, ``polls``, ``events`` (multi-outcome events in
        ``markets.parquet``), and per side the episode counts split by ``exclusive`` (labelled exclusive, labelled
        not exclusive, unlabelled).
    """

    daily: pd.DataFrame
    largest: pd.DataFrame
    rule: str
    params: dict
    totals: dict

    def to_text(self) -> str:
        """A readable report: the parameters and rule, the per-day table, the largest episodes."""
        t = self.totals
        head = [f"top-of-book scan: {t['files']} day file(s), {t['rows']:,} quotes ({t['rows_in_events']:,} in "
                f"multi-outcome events), {t['polls']:,} polls, {t['events']:,} multi-outcome events listed",
                f"costs: fee rate {self.params['fee_rate']:g} (exponent {self.params['fee_exponent']:g}), edges "
                f"floored to {self.params['tick']:g}; events: {self.params['events']}"
                + ("; two-sided, uncrossed quotes only" if self.params["two_sided"] else ""),
                f"alignment: {self.rule}",
                f"episodes: buy-all {t['buy_episodes']} ({t['buy_episodes_exclusive']} on labelled-exclusive events, "
                f"{t['buy_episodes_not_exclusive']} on events the labels show are not exclusive, "
                f"{t['buy_episodes_unlabelled']} unlabelled); sell-all {t['sell_episodes']} "
                f"({t['sell_episodes_exclusive']}, {t['sell_episodes_not_exclusive']}, "
                f"{t['sell_episodes_unlabelled']})", ""]
        cols = ["date", "category", "events_quoted", "events_evaluated", "events_exclusive", "event_polls",
                "buy_positive_share", "buy_episodes", "buy_median_minutes", "buy_max_edge", "sell_positive_share",
                "sell_episodes", "sell_median_minutes", "sell_max_edge"]
        body = self.daily[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}") if len(self.daily) else \
            "(no multi-outcome event quoted)"
        tail = ["", "largest episodes:"]
        if len(self.largest):
            big = self.largest[["date", "category", "side", "max_edge", "minutes", "n_outcomes", "sum_ask", "sum_bid",
                                "labelled_winners", "exclusive", "question"]].copy()
            big["question"] = big["question"].str.slice(0, 60)
            tail.append(big.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        else:
            tail.append("(none)")
        return "\n".join(head) + body + "\n".join(tail)

    def to_dict(self) -> dict:
        """A strict-JSON-ready dict (pass it to :func:`research_lib.formatting.to_json`)."""
        return {"rule": self.rule, "params": self.params, "totals": self.totals,
                "daily": self.daily.to_dict(orient="records"), "largest": self.largest.to_dict(orient="records")}


def day_files(folder: Path) -> list[tuple[dt.date, Path]]:
    """The ``quotes/dt=YYYY-MM-DD.parquet`` files (or ``dt=...`` folders of parts) of a dataset, by date.

    Raises
    ------
    TopBookDatasetError
        No ``quotes`` folder, or no ``dt=`` file in it.
    """
    quotes = Path(folder) / "quotes"
    if not quotes.is_dir():
        raise TopBookDatasetError("no quotes/ folder (expected quotes/dt=YYYY-MM-DD.parquet)", where=folder)
    out = []
    for p in sorted(quotes.iterdir()):
        m = _DAY_FILE.match(p.name)
        if m and (p.is_dir() or p.suffix == ".parquet"):
            try:
                out.append((dt.date.fromisoformat(m.group(1)), p))
            except ValueError:
                raise TopBookDatasetError("a day file's date does not exist", where=p, example=m.group(1)) from None
    if not out:
        raise TopBookDatasetError("no quotes/dt=YYYY-MM-DD.parquet file", where=quotes)
    return out


def _read_table(path: Path, columns, **kwargs) -> pa.Table:
    try:
        schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    except (OSError, pa.ArrowInvalid) as exc:
        raise TopBookDatasetError(f"not a readable Parquet file ({exc})", where=path) from None
    for c in columns:
        if c not in schema.names:
            raise TopBookDatasetError("a column the scan reads is missing", where=path, column=c,
                                      example=schema.names[:10])
    return pq.read_table(path, columns=list(columns), **kwargs)


def read_events(folder: Path) -> TopBookEvents:
    """The multi-outcome events of a dataset folder (``markets.parquet``, and ``labels.parquet`` when present).

    An event is a question with two slugs or more; its outcomes are those slugs.

    Raises
    ------
    TopBookDatasetError
        ``markets.parquet`` missing, unreadable, without a needed column, or a slug listed twice.
    """
    folder = Path(folder)
    path = folder / "markets.parquet"
    if not path.is_file():
        raise TopBookDatasetError("no markets.parquet (slug -> question)", where=folder)
    markets = _read_table(path, MARKET_COLUMNS).to_pandas()
    dup = markets["slug"].duplicated()
    if dup.any():
        raise TopBookDatasetError("a slug is listed twice", where=path, column="slug", n_bad=int(dup.sum()),
                                  example=markets.loc[dup, "slug"].iloc[0])
    q_codes, questions = pd.factorize(markets["question"], use_na_sentinel=True)
    per_q = np.bincount(q_codes[q_codes >= 0], minlength=len(questions))
    multi = np.flatnonzero(per_q >= 2)
    code_of_q = np.full(len(questions), -1, dtype=np.int64)
    code_of_q[multi] = np.arange(len(multi))
    event_of = np.where(q_codes >= 0, code_of_q[np.maximum(q_codes, 0)], -1)
    in_event = event_of >= 0
    first = pd.Series(np.flatnonzero(in_event)).groupby(event_of[in_event]).first()
    events = pd.DataFrame({"question": np.asarray(questions)[multi],
                           "category": markets["category"].to_numpy()[first.to_numpy()],
                           "n_outcomes": per_q[multi].astype(np.int64)})
    labels_path = folder / "labels.parquet"
    labelled = np.zeros(len(multi), np.int64)
    winners = np.zeros(len(multi), np.int64)
    if labels_path.is_file():
        labels = _read_table(labels_path, ("slug", "y", "source")).to_pandas()
        labels = labels[labels["source"] == "api"].drop_duplicates("slug")
        pos = pd.Index(markets["slug"]).get_indexer(labels["slug"])
        ok = pos >= 0
        ev = event_of[pos[ok]]
        keep = ev >= 0
        labelled = np.bincount(ev[keep], minlength=len(multi))
        winners = np.bincount(ev[keep], weights=(labels["y"].to_numpy()[ok][keep] == 1), minlength=len(multi))
    events["labelled"] = labelled.astype(np.int64)
    events["labelled_winners"] = np.asarray(winners, dtype=np.int64)
    full = events["labelled"].to_numpy() == events["n_outcomes"].to_numpy()
    events["exclusive"] = pd.array(np.where(full, events["labelled_winners"].to_numpy() == 1, False),
                                   dtype="boolean")
    events.loc[~full, "exclusive"] = pd.NA
    return TopBookEvents(slugs=pd.Index(markets["slug"]), event_of=event_of.astype(np.int64), events=events)


def _read_day(path: Path, slugs: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """One day file: (outcome code, ts ns, bid, ask) sorted by (outcome, ts), the day's polling times, the rows
    of slugs not in markets.parquet (left out)."""
    table = _read_table(path, QUOTE_COLUMNS, read_dictionary=["slug"])
    ts_arrow = table.column("ts")
    if not pa.types.is_timestamp(ts_arrow.type):
        raise TopBookDatasetError("ts is not a timestamp column", where=path, column="ts", example=str(ts_arrow.type))
    if ts_arrow.null_count:
        raise TopBookDatasetError("ts has empty values", where=path, column="ts", n_bad=ts_arrow.null_count)
    ts = _ns(ts_arrow.combine_chunks().to_numpy(zero_copy_only=False))
    polls = np.sort(_ns(pc.unique(ts_arrow).to_numpy(zero_copy_only=False)))
    # each row group's chunk has its own small dictionary: map it to outcome codes, then its indices
    outcome = np.empty(table.num_rows, dtype=np.int64)
    at = 0
    for chunk in table.column("slug").chunks:
        if not pa.types.is_dictionary(chunk.type):  # pragma: no cover - read_dictionary always gives one
            chunk = pc.dictionary_encode(chunk)
        code_of_dict = slugs.get_indexer(pd.Index(chunk.dictionary.to_pylist()))
        idx = chunk.indices.to_numpy(zero_copy_only=False)
        outcome[at:at + len(idx)] = code_of_dict[idx]
        at += len(idx)
    bid = table.column("bid").to_numpy().astype(float, copy=False)
    ask = table.column("ask").to_numpy().astype(float, copy=False)
    unknown = int((outcome < 0).sum())
    return outcome, ts, bid, ask, polls, unknown


def _ns(values: np.ndarray) -> np.ndarray:
    """datetime64 of any unit (naive, UTC) -> int64 nanoseconds."""
    return np.asarray(values).astype("datetime64[ns]").view(np.int64)


def _check_quotes(path: Path, bid: np.ndarray, ask: np.ndarray) -> None:
    for name, values in (("bid", bid), ("ask", ask)):
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(values) & ~((values >= 0) & (values <= 1))
        if bad.any():
            raise TopBookDatasetError("a price is outside [0, 1]", where=path, column=name, n_bad=int(bad.sum()),
                                      example=float(values[bad][0]))


def scan_topbook(folder: Path, *, staleness_s: float = 300.0, fee_rate: float = 0.0, fee_exponent: float = 1.0,
                 tick: float = 0.001, events: str = "all", two_sided: bool = False, top: int = 10) -> TopBookScan:
    """Per day and category: the multi-outcome events seen, and how often and how long their summed-YES edges
    were positive after costs; the largest episodes.

    Parameters
    ----------
    folder : Path
        The dataset folder (module docstring).
    staleness_s : float, default 300
        The largest age, seconds, of an outcome's quote used at a poll (about two polling intervals of the
        real dataset: a market skipped by one sweep is carried once, never longer).
    fee_rate, fee_exponent : float
        The taker fee of every leg (:func:`research_lib.core.binary.taker_fee`); 0 by default.
    tick : float, default 0.001
        Edges are floored to it (the dataset has no tick column; 0.001 is the venue's finest, and about a fifth
        of its prices are off the 0.01 grid).
    events : {"all", "exclusive"}
        "all": every question with several slugs (the dataset's rule); "exclusive": only those whose outcomes
        are all labelled (``api``) with exactly one YES.
    two_sided : bool, default False
        True: an outcome's quote counts toward an edge only when it has both sides and is not crossed (bid <= ask);
        a one-sided or crossed quote still makes the outcome fresh, but leaves the event without an edge at that
        poll (near resolution a book is often one-sided, and its lone side stale).
    top : int, default 10
        How many of the largest episodes to list.

    Returns
    -------
    TopBookScan

    Raises
    ------
    TopBookDatasetError
        A missing or malformed file (named, with the column).
    BinaryParamsError
        A negative staleness or ``top``, an unknown ``events``, an impossible cost.
    """
    folder = Path(folder)
    check_costs(fee_rate=fee_rate, fee_exponent=fee_exponent, tick=tick)
    if not np.isfinite(staleness_s) or staleness_s < 0:
        raise BinaryParamsError("the staleness bound must be >= 0 seconds", where="scan_topbook", example=staleness_s)
    if events not in ("all", "exclusive"):
        raise BinaryParamsError("events must be 'all' or 'exclusive'", where="scan_topbook", example=events)
    if top < 0:
        raise BinaryParamsError("top must be >= 0", where="scan_topbook", example=top)
    files = day_files(folder)
    ev = read_events(folder)
    event_of = ev.event_of
    if events == "exclusive":
        keep_event = ev.events["exclusive"].fillna(False).to_numpy(dtype=bool)
        event_of = np.where((event_of >= 0) & keep_event[np.maximum(event_of, 0)], event_of, -1)
    n_outcomes = ev.events["n_outcomes"].to_numpy()
    event_of_ext = np.append(event_of, -1)
    staleness_ns = int(round(staleness_s * 1e9))

    grid_parts, cell_parts, quoted_parts = [], [], []
    incomplete_parts = []
    totals = {"files": len(files), "rows": 0, "rows_in_events": 0, "unknown_slug_rows": 0}
    carry = (np.empty(0, np.int64),) * 2 + (np.empty(0),) * 2
    offset = 0
    last_poll = None
    for day, path in files:
        outcome, ts, bid, ask, polls, unknown = _read_day(path, ev.slugs)
        _check_quotes(path, bid, ask)
        if two_sided:
            with np.errstate(invalid="ignore"):
                unusable = np.isnan(bid) | np.isnan(ask) | (bid > ask)
            bid, ask = np.where(unusable, np.nan, bid), np.where(unusable, np.nan, ask)
        totals["rows"] += len(outcome)
        totals["unknown_slug_rows"] += unknown
        keep = event_of_ext[outcome] >= 0  # an unknown slug (-1) maps to the -1 at the end
        o, t, b, a = outcome[keep], ts[keep], bid[keep], ask[keep]
        totals["rows_in_events"] += len(o)
        if len(polls) and last_poll is not None and polls[0] <= last_poll:
            raise TopBookDatasetError("the day files overlap in time (polls not after the previous file's)",
                                      where=path, column="ts")
        last_poll = polls[-1] if len(polls) else last_poll
        if len(o) > 1 and ((np.diff(o) < 0) | ((np.diff(o) == 0) & (np.diff(t) < 0))).any():
            order = np.lexsort((t, o))  # not in the layout's order (slug, then ts): a folder of parts, say
            o, t, b, a = o[order], t[order], b[order], a[order]
        # the previous day's last quote of each outcome, then this day's rows, by (outcome, ts)
        o_all, t_all, b_all, a_all = o, t, b, a
        if len(carry[0]):
            # each carried row goes just before its outcome's first row of the day (both sorted by outcome)
            at = np.searchsorted(o, carry[0], side="left")
            o_all, t_all, b_all, a_all = (np.insert(x, at, c) for x, c in zip((o, t, b, a), carry, strict=True))
        cells, incomplete = align_event_polls(o_all, t_all, b_all, a_all, event_of=event_of, n_outcomes=n_outcomes,
                                         poll_ts=polls, staleness_ns=staleness_ns, fee_rate=fee_rate,
                                         fee_exponent=fee_exponent, tick=tick)
        incomplete_parts.append(pd.DataFrame({"event": incomplete.index.to_numpy(), "date": day,
                                              "n": incomplete.to_numpy()}))
        cells["poll"] += offset
        cell_parts.append(cells)
        quoted_parts.append(pd.DataFrame({"event": np.flatnonzero(np.bincount(event_of[o], minlength=len(n_outcomes))),
                                          "date": day}))
        grid_parts.append(polls)
        offset += len(polls)
        last = np.r_[o_all[1:] != o_all[:-1], True] if len(o_all) else np.empty(0, bool)
        carry = (o_all[last], t_all[last], b_all[last], a_all[last])

    poll_ts = np.concatenate(grid_parts) if grid_parts else np.empty(0, np.int64)
    cells = pd.concat(cell_parts, ignore_index=True)
    totals["polls"] = int(len(poll_ts))
    totals["events"] = int(len(ev.events))
    poll_dates = pd.to_datetime(poll_ts, utc=True).date if len(poll_ts) else np.empty(0, object)
    episodes = edge_episodes(cells, n_polls=len(poll_ts))
    daily = _daily(cells, episodes, pd.concat(quoted_parts, ignore_index=True), ev.events, poll_ts, poll_dates,
                   pd.concat(incomplete_parts, ignore_index=True))
    largest = _largest(episodes, cells, ev.events, poll_ts, poll_dates, top)
    for side in ("buy", "sell"):
        ex = ev.events["exclusive"]
        sub = episodes[episodes["side"] == side]
        flag = ex.iloc[sub["event"].to_numpy()].reset_index(drop=True) if len(sub) else ex.iloc[:0]
        totals[f"{side}_episodes"] = int(len(sub))
        totals[f"{side}_episodes_exclusive"] = int((flag == True).sum())  # noqa: E712 (a nullable boolean)
        totals[f"{side}_episodes_not_exclusive"] = int((flag == False).sum())  # noqa: E712
        totals[f"{side}_episodes_unlabelled"] = int(flag.isna().sum())
    params = {"staleness_s": float(staleness_s), "fee_rate": float(fee_rate), "fee_exponent": float(fee_exponent),
              "tick": float(tick), "events": events, "two_sided": bool(two_sided), "top": int(top)}
    return TopBookScan(daily=daily, largest=largest, rule=ALIGNMENT_RULE.replace(
        "the staleness bound", f"{staleness_s:g} s"), params=params, totals=totals)


def _minutes(poll_ts: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Minutes from the start poll to the end poll (the last poll of the grid when the run is still open)."""
    end_c = np.minimum(end, len(poll_ts) - 1)
    return (poll_ts[end_c] - poll_ts[start]) / 60e9


def _daily(cells, episodes, quoted, events, poll_ts, poll_dates, incomplete) -> pd.DataFrame:
    cat = events["category"].to_numpy()
    exclusive = events["exclusive"].fillna(False).to_numpy(dtype=bool)
    c = pd.DataFrame({"date": poll_dates[cells["poll"].to_numpy()] if len(cells) else np.empty(0, object),
                      "category": cat[cells["event"].to_numpy()], "event": cells["event"].to_numpy(),
                      "buy": cells["buy_arb"].to_numpy(), "sell": cells["sell_arb"].to_numpy()})
    g = c.groupby(["date", "category"], sort=True)
    ex_events = c[exclusive[c["event"].to_numpy()]].groupby(["date", "category"])["event"].nunique()
    out = pd.DataFrame({"events_evaluated": g["event"].nunique(), "events_exclusive": ex_events,
                        "event_polls": g.size(),
                        "buy_positive_polls": g["buy"].sum(), "sell_positive_polls": g["sell"].sum()})
    quoted = quoted.assign(category=cat[quoted["event"].to_numpy()])
    q = quoted.groupby(["date", "category"]).size().rename("events_quoted")
    out = out.join(q, how="outer")
    for k in ("events_evaluated", "events_exclusive", "event_polls", "buy_positive_polls", "sell_positive_polls",
              "events_quoted"):
        out[k] = out[k].fillna(0).astype(np.int64)
    for side in ("buy", "sell"):
        n = out["event_polls"].to_numpy()
        out[f"{side}_positive_share"] = np.where(n > 0, out[f"{side}_positive_polls"] / np.maximum(n, 1), np.nan)
        e = episodes[episodes["side"] == side]
        if len(e):
            ed = pd.DataFrame({"date": poll_dates[e["start_poll"].to_numpy()],
                               "category": cat[e["event"].to_numpy()],
                               "minutes": _minutes(poll_ts, e["start_poll"].to_numpy(), e["end_poll"].to_numpy()),
                               "edge": e["max_edge"].to_numpy(), "exclusive": exclusive[e["event"].to_numpy()]})
            eg = ed.groupby(["date", "category"])
            agg = pd.DataFrame({f"{side}_episodes": eg.size(), f"{side}_episodes_exclusive": eg["exclusive"].sum(),
                                f"{side}_median_minutes": eg["minutes"].median(),
                                f"{side}_max_minutes": eg["minutes"].max(), f"{side}_max_edge": eg["edge"].max()})
            out = out.join(agg, how="left")
        else:
            for k in ("episodes", "episodes_exclusive", "median_minutes", "max_minutes", "max_edge"):
                out[f"{side}_{k}"] = np.nan
        for k in (f"{side}_episodes", f"{side}_episodes_exclusive"):
            out[k] = out[k].fillna(0).astype(np.int64)
    inc = incomplete.assign(category=cat[incomplete["event"].to_numpy()]).groupby(["date", "category"])["n"].sum()
    out = out.join(inc.rename("incomplete_polls"), how="left")
    out["incomplete_polls"] = out["incomplete_polls"].fillna(0).astype(np.int64)
    return out.reset_index()[list(DAILY_COLUMNS)]


def _largest(episodes, cells, events, poll_ts, poll_dates, top) -> pd.DataFrame:
    cols = ["date", "category", "question", "side", "n_outcomes", "start", "end", "minutes", "n_polls", "max_edge",
            "sum_ask", "sum_bid", "open_at_end", "labelled", "labelled_winners", "exclusive"]
    if episodes.empty or top == 0:
        return pd.DataFrame({c: [] for c in cols})
    e = episodes.sort_values(["max_edge", "n_polls"], ascending=[False, False], kind="stable").head(top)
    at = cells.set_index(["event", "poll"])[["sum_ask", "sum_bid"]]
    sums = at.reindex(pd.MultiIndex.from_arrays([e["event"].to_numpy(), e["max_poll"].to_numpy()]))
    meta = events.iloc[e["event"].to_numpy()].reset_index(drop=True)
    end_c = np.minimum(e["end_poll"].to_numpy(), len(poll_ts) - 1)
    return pd.DataFrame({
        "date": poll_dates[e["start_poll"].to_numpy()], "category": meta["category"].to_numpy(),
        "question": meta["question"].to_numpy(), "side": e["side"].to_numpy(),
        "n_outcomes": meta["n_outcomes"].to_numpy(),
        "start": pd.to_datetime(poll_ts[e["start_poll"].to_numpy()], utc=True),
        "end": pd.to_datetime(poll_ts[end_c], utc=True),
        "minutes": _minutes(poll_ts, e["start_poll"].to_numpy(), e["end_poll"].to_numpy()),
        "n_polls": e["n_polls"].to_numpy(), "max_edge": e["max_edge"].to_numpy(),
        "sum_ask": sums["sum_ask"].to_numpy().round(12), "sum_bid": sums["sum_bid"].to_numpy().round(12),
        "open_at_end": e["open_at_end"].to_numpy(), "labelled": meta["labelled"].to_numpy(),
        "labelled_winners": meta["labelled_winners"].to_numpy(), "exclusive": meta["exclusive"].to_numpy()})
