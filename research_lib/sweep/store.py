"""The output folder of a sweep: resumable while it runs, the results tables when it ends.

Layout of ``DIR`` (``--out``; default ``reports/sweeps/<run id>/``)::

    spec.json            the grid (SweepSpec.to_dict) and its hash: the folder belongs to that grid
    parts/<id>.parquet   one finished configuration: its daily equity (columns date, equity), its statistics,
                         seconds and error in the file's metadata (key ``research_lib.sweep``); written to a
                         temporary file then renamed (os.replace), so a part is whole or absent
    results.csv          one row per configuration (see :data:`RESULT_COLUMNS`), in the grid's expansion order
    results.parquet      the same table
    equity.parquet       dates × config_id, $ (the configurations that ran without error)
    sweep.json           the spec, counts, timings, the best configuration, the walk-forward and deflated Sharpe

A rerun of the same grid in the same folder skips the configurations whose part exists; a different grid
(another spec hash) in a folder that has one is a :class:`~research_lib.errors.SweepInputError`.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from research_lib.errors import SweepInputError
from research_lib.formatting import jsonable, to_json
from research_lib.fs import atomic_write
from research_lib.sweep.engines import STAT_KEYS, ConfigOutcome
from research_lib.sweep.grid import SweepConfig, SweepSpec

SPEC_FILE = "spec.json"
PARTS = "parts"
META_KEY = b"research_lib.sweep"
#: The results table: ``config_id``, the grid keys (columns named like them, inserted here), the statistics, then
#: ``seconds`` and ``error``.
RESULT_COLUMNS = ("config_id", *STAT_KEYS, "seconds", "error")


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


class SweepStore:
    """The folder of one sweep (see the module docstring).

    Parameters
    ----------
    folder : path
    spec : SweepSpec
        Checked against the folder's ``spec.json`` (written when absent).

    Raises
    ------
    SweepInputError
        The folder holds another grid's sweep, or its ``spec.json`` is unreadable.
    """

    def __init__(self, folder: str | os.PathLike, spec: SweepSpec):
        self.folder = Path(folder)
        self.spec = spec
        self.parts = self.folder / PARTS
        path = self.folder / SPEC_FILE
        digest = spec.spec_hash()
        if path.exists():
            try:
                stored = json.loads(path.read_text())["spec_hash"]
            except (OSError, ValueError, KeyError) as exc:
                raise SweepInputError(self.folder, "folder", SPEC_FILE, f"unreadable: {exc}") from exc
            if stored != digest:
                raise SweepInputError(self.folder, "folder", SPEC_FILE,
                                      f"holds another grid's sweep (spec hash {stored}, this grid {digest}): "
                                      "give another --out folder")
        else:
            self.parts.mkdir(parents=True, exist_ok=True)
            atomic_write(path, to_json({"spec_hash": digest, "spec": spec.to_dict()}, indent=1).encode())
        self.parts.mkdir(parents=True, exist_ok=True)

    def part_path(self, config_id: str) -> Path:
        return self.parts / f"{config_id}.parquet"

    def finished(self) -> set[str]:
        """The config ids with a part file."""
        return {p.stem for p in self.parts.glob("*.parquet")}

    def write(self, outcome: ConfigOutcome) -> Path:
        """Write one finished configuration atomically; returns its part file."""
        eq = outcome.equity
        frame = pd.DataFrame({"date": pd.DatetimeIndex(eq.index), "equity": eq.to_numpy(dtype=float)})
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = {"config_id": outcome.config_id, "stats": outcome.stats, "seconds": outcome.seconds,
                "error": outcome.error}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: to_json(meta).encode()})
        path = self.part_path(outcome.config_id)
        atomic_write(path, _parquet_bytes(table))
        return path

    def read(self, config_id: str) -> ConfigOutcome:
        """A finished configuration back from its part file."""
        table = pq.read_table(self.part_path(config_id))
        meta = json.loads(table.schema.metadata[META_KEY])
        frame = table.to_pandas()
        equity = pd.Series(frame["equity"].to_numpy(dtype=float),
                           index=pd.DatetimeIndex(pd.to_datetime(frame["date"]), name="date"), name="equity")
        return ConfigOutcome(config_id=meta["config_id"], stats=meta["stats"], equity=equity,
                             seconds=float(meta["seconds"]), error=meta["error"])

    # ------------------------------------------------------------------------------------------------
    def results(self, configs: list[SweepConfig]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(results table, equity matrix) of ``configs`` from their part files, in the expansion order.

        The results table has :data:`RESULT_COLUMNS` with the grid keys after ``config_id`` (each value as
        resolved: None for an exit rule off); the equity matrix is dates × config_id of the configurations
        without an error.
        """
        rows, curves = [], {}
        for c in configs:
            o = self.read(c.config_id)
            rows.append({"config_id": c.config_id, **jsonable(c.values), **o.stats, "seconds": o.seconds,
                         "error": o.error})
            if o.error is None:
                curves[c.config_id] = o.equity
        cols = ["config_id", *self.spec.keys, *STAT_KEYS, "seconds", "error"]
        table = pd.DataFrame(rows, columns=cols)
        for k in STAT_KEYS:
            table[k] = pd.to_numeric(table[k]) if table[k].notna().any() else table[k].astype(float)
        table["trades"] = table["trades"].astype("Int64")
        table["error"] = table["error"].astype(object)
        equity = pd.DataFrame(curves) if curves else pd.DataFrame(index=pd.DatetimeIndex([], name="date"))
        equity.index.name = "date"
        return table, equity

    def write_results(self, table: pd.DataFrame, equity: pd.DataFrame, summary: dict) -> dict[str, Path]:
        """Write ``results.csv``, ``results.parquet``, ``equity.parquet`` and ``sweep.json`` (atomically)."""
        paths = {"results_path": self.folder / "results.csv", "parquet_path": self.folder / "results.parquet",
                 "equity_path": self.folder / "equity.parquet", "summary_path": self.folder / "sweep.json"}
        atomic_write(paths["results_path"], table.to_csv(index=False).encode())
        atomic_write(paths["parquet_path"], _parquet_bytes(pa.Table.from_pandas(_parquet_safe(table),
                                                                                preserve_index=False)))
        atomic_write(paths["equity_path"], _parquet_bytes(pa.Table.from_pandas(equity, preserve_index=True)))
        atomic_write(paths["summary_path"], to_json(summary | {"paths": paths}, indent=1).encode())
        return paths


def _parquet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding mixed values (e.g. a grid of strings and numbers) as text, so Parquet can type them."""
    out = table.copy()
    for col in out.columns:
        if out[col].dtype == object and col != "error":
            kinds = {type(v) for v in out[col] if v is not None}
            if len(kinds) > 1 or kinds & {list, tuple, dict}:
                out[col] = [None if v is None else json.dumps(v) if isinstance(v, list | tuple | dict) else str(v)
                            for v in out[col]]
    return out


def read_results(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(results table, equity matrix, sweep.json) of a finished sweep folder.

    Raises
    ------
    SweepInputError
        The folder has no finished sweep (no ``sweep.json``).
    """
    folder = Path(folder)
    if not (folder / "sweep.json").exists():
        raise SweepInputError(folder, "folder", "sweep.json", "no finished sweep here (run research-lib sweep)")
    table = pd.read_parquet(folder / "results.parquet")
    equity = pd.read_parquet(folder / "equity.parquet")
    return table, equity, json.loads((folder / "sweep.json").read_text())


__all__ = ["RESULT_COLUMNS", "SweepStore", "read_results"]
