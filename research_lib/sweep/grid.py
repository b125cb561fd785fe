"""The grid file of a parameter sweep (TOML) and its expansion into configurations.

A grid file has two tables and an optional third::

    [backtest]              # fixed options, named as the long command-line options with _ for -
    engine = "chains"       # or "history" (the model-priced 2011- backtest)
    source = "spx_eod_2026.parquet"   # chains only: an archive or "store"
    strategy = "bull_put"
    start = "2026-01-02"
    [grid]                  # each key a non-empty list; the sweep runs every combination
    short_delta = [0.20, 0.30]
    profit_target = [0.5, "none"]     # "none": the rule off, as on the command line
    "regime.iv_rank_sell" = [30, 50]  # a threshold of research_lib.core.regime.RegimeParams
    [walk_forward]          # optional: the overfitting checks (research_lib.sweep.walkforward)
    train_days = 504
    test_days = 252
    statistic = "sharpe"

Keys: the ``backtest chains`` flags (``strategy``, ``dte``, ``short_delta``, ``long_delta``, ``width``, ``entry``,
``max_open``, ``profit_target``, ``stop_loss``, ``exit_dte``, ``max_hold``, ``fill``, ``commission``,
``account``, ``start``, ``end``), any other :class:`~research_lib.backtest.params.BacktestParams` field
(``dte_tolerance``, ``min_open_interest``, ``rate``, ``roots`` ...), ``regime.<field>`` (a
:class:`~research_lib.core.regime.RegimeParams` field: the sweep builds a ``RegimeParams`` of them) and
``sizing.<field>`` (a :class:`~research_lib.core.sizing.SizingParams` field), and in ``[backtest]`` only
``engine``, ``source``, ``symbol``. Values are read as on the command line
(:meth:`BacktestParams.from_cli`: numbers may be strings, ``"none"`` turns an exit rule off); a list value of
``roots`` in ``[backtest]`` is the roots, in ``[grid]`` a list of lists.

:func:`load_grid` checks everything before anything runs: an unknown table or key, a grid value that is not a
non-empty list, a key in both tables, a key that only ``[backtest]`` may set, and every
:class:`BacktestParams` of the expansion is built (its :class:`~research_lib.errors.BacktestInputError` names the
field): each failure is a :class:`~research_lib.errors.SweepInputError` naming the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from research_lib.backtest.params import BacktestParams
from research_lib.core.regime import RegimeParams
from research_lib.core.sizing import SizingParams
from research_lib.errors import BacktestInputError, ResearchLibError, SweepInputError
from research_lib.formatting import jsonable
from research_lib.sweep.walkforward import STATISTICS

#: Engines a sweep runs: ``chains`` (real daily chains, :func:`research_lib.backtest.engine.run_backtest`) and
#: ``history`` (model-priced, :func:`research_lib.backtest.history.run_history_backtest`).
ENGINES = ("chains", "history")
#: Keys only ``[backtest]`` sets (they choose the data, not a backtest parameter).
META_KEYS = ("engine", "source", "symbol")
#: Nested parameter objects a ``prefix.field`` key sets, and the :class:`BacktestParams` field they fill.
NESTED = {"regime": RegimeParams, "sizing": SizingParams}
#: ``[walk_forward]`` keys and their defaults.
WALK_FORWARD_DEFAULTS = {"train_days": 504, "test_days": 252, "statistic": "sharpe"}
_PARAM_FIELDS = tuple(f.name for f in dataclasses.fields(BacktestParams) if f.name not in NESTED)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated grid file.

    Attributes
    ----------
    engine : str
        ``chains`` or ``history``.
    fixed : dict
        The ``[backtest]`` table without ``engine``/``source``/``symbol`` (key → value as written).
    grid : dict
        The ``[grid]`` table, key → tuple of values, in the file's order.
    source : str or None
        ``chains``: the chain archive or ``"store"`` (a relative path is taken from the grid file's folder
        when it exists there); ``history``: unused (None).
    symbol : str
        Underlying [``SPX``].
    path : str
        The grid file.
    walk_forward : dict
        ``train_days``, ``test_days`` (sessions) and ``statistic`` of the walk-forward evaluation.
    """

    engine: str
    fixed: dict
    grid: dict
    source: str | None
    symbol: str
    path: str
    walk_forward: dict = dataclasses.field(default_factory=lambda: dict(WALK_FORWARD_DEFAULTS))

    @property
    def keys(self) -> tuple[str, ...]:
        """The grid keys, in the file's order (the results table's parameter columns)."""
        return tuple(self.grid)

    def to_dict(self) -> dict:
        """JSON-ready: every field."""
        return jsonable({"engine": self.engine, "fixed": self.fixed, "grid": {k: list(v) for k, v in self.grid.items()},
                         "source": self.source, "symbol": self.symbol, "path": self.path,
                         "walk_forward": self.walk_forward})

    def spec_hash(self) -> str:
        """A stable hash of what the sweep computes (engine, data, fixed options, grid, walk-forward; not the
        file's path): an output folder belongs to one spec."""
        d = self.to_dict()
        d.pop("path")
        return _digest(d, 16)

    def with_engine(self, engine: str | None) -> SweepSpec:
        """This spec with ``engine`` (the command line's ``--engine``) instead of the file's; None keeps it.
        Re-validated (a ``chains`` sweep needs a ``source``)."""
        if engine is None or engine == self.engine:
            return self
        spec = dataclasses.replace(self, engine=_engine(engine, self.path))
        _check_source(spec)
        expand(spec)
        return spec


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """One configuration of a sweep.

    Attributes
    ----------
    config_id : str
        12 hex digits of the SHA-256 of the canonical JSON of the full parameter dict (engine, source, symbol and
        :meth:`BacktestParams.to_dict`, defaults included): the same parameters give the same id in any sweep.
    values : dict
        The grid values of this configuration, key → value as resolved (``"none"`` → None, a number a number).
    params : dict
        :class:`BacktestParams` keyword arguments (fixed and grid, ``regime``/``sizing`` built).
    index : int
        Position in the expansion (0-based).
    """

    config_id: str
    values: dict
    params: dict
    index: int

    def backtest_params(self) -> BacktestParams:
        return BacktestParams(**self.params)


def _digest(obj: Any, n: int) -> str:
    text = json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _engine(value: Any, path) -> str:
    text = str(value).strip().lower()
    if text not in ENGINES:
        raise SweepInputError(path, "backtest", "engine", f"{value!r}: one of {', '.join(ENGINES)}")
    return text


def _check_key(key: str, table: str, path) -> None:
    prefix, dot, field = key.partition(".")
    if dot:
        cls = NESTED.get(prefix)
        names = [f.name for f in dataclasses.fields(cls)] if cls is not None else []
        if field not in names:
            known = ", ".join(names) if names else f"prefixes {', '.join(NESTED)}"
            raise SweepInputError(path, table, key, f"not a parameter (known: {known})")
        return
    if key in META_KEYS:
        if table != "backtest":
            raise SweepInputError(path, table, key, "chooses the data: set it in [backtest], not in the grid")
        return
    if key not in _PARAM_FIELDS:
        raise SweepInputError(path, table, key, f"not a backtest parameter (known: {', '.join(_PARAM_FIELDS)}, "
                                                f"regime.<field>, sizing.<field>, {', '.join(META_KEYS)})")


def _normalise(key: str, value: Any) -> Any:
    """A TOML value as :meth:`BacktestParams.from_cli` takes it (lists of roots as tuples)."""
    if key == "roots" and isinstance(value, list):
        return tuple(str(v) for v in value)
    return value


def _kwargs(fixed: dict, values: dict, path, grid_keys) -> dict:
    """BacktestParams kwargs of fixed + grid values (nested objects built); errors name table and key."""
    merged = {**fixed, **values}
    flat = {k: _normalise(k, v) for k, v in merged.items() if "." not in k}
    nested: dict[str, dict] = {}
    for k, v in merged.items():
        if "." in k:
            prefix, _, field = k.partition(".")
            nested.setdefault(prefix, {})[field] = v
    try:
        params = BacktestParams.from_cli(**flat)
    except BacktestInputError as exc:
        key = exc.argument
        table = "grid" if key in grid_keys else "backtest"
        if key == "strategy_params":     # a combination: name the grid values
            key = ", ".join(grid_keys) or key
            table = "grid" if grid_keys else "backtest"
        raise SweepInputError(path, table, key, f"{exc} (values {jsonable(values)})") from exc
    kwargs = {f: getattr(params, f) for f in _PARAM_FIELDS}
    for prefix, fields in nested.items():
        try:
            kwargs[prefix] = NESTED[prefix](**fields)
        except (ResearchLibError, TypeError, ValueError) as exc:
            # RegimeParamsError names its field (.field), SizingError its argument (.argument)
            named = getattr(exc, "field", None) or getattr(exc, "argument", None)
            bad = f"{prefix}.{named}" if named in fields else \
                next((f"{prefix}.{f}" for f in fields if f in str(exc)), f"{prefix}.{next(iter(fields))}")
            raise SweepInputError(path, "grid" if bad in grid_keys else "backtest", bad,
                                  f"{exc} (values {jsonable(values)})") from exc
    try:
        BacktestParams(**kwargs)
    except BacktestInputError as exc:
        raise SweepInputError(path, "grid" if exc.argument in grid_keys else "backtest", exc.argument,
                              str(exc)) from exc
    return kwargs


def _check_source(spec: SweepSpec) -> None:
    if spec.engine == "chains" and not spec.source:
        raise SweepInputError(spec.path, "backtest", "source", "a chains sweep needs a source (a chain archive or "
                                                               "'store')")


def load_grid(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a grid file (see the module docstring for its tables and keys).

    Parameters
    ----------
    path : path
        A TOML file.

    Returns
    -------
    SweepSpec

    Raises
    ------
    SweepInputError
        The file is missing or not TOML, or any check fails (the message names the file, the table and the key).
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise SweepInputError(p, "file", "", f"cannot read the grid file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SweepInputError(p, "file", "", f"not TOML: {exc}") from exc
    unknown = sorted(set(data) - {"backtest", "grid", "walk_forward"})
    if unknown:
        raise SweepInputError(p, unknown[0], "", "unknown table (the tables are [backtest], [grid], [walk_forward])")
    fixed = dict(data.get("backtest", {}))
    grid = dict(data.get("grid", {}))
    if not grid:
        raise SweepInputError(p, "grid", "", "no [grid] table or an empty one: nothing to sweep")
    for key in fixed:
        _check_key(key, "backtest", p)
    for key, values in grid.items():
        _check_key(key, "grid", p)
        if not isinstance(values, list) or not values:
            raise SweepInputError(p, "grid", key, f"{values!r}: a non-empty list of values")
        if key in fixed:
            raise SweepInputError(p, "grid", key, "is also fixed in [backtest]: set it in one table")
        if len({json.dumps(jsonable(v), sort_keys=True) for v in values}) != len(values):
            raise SweepInputError(p, "grid", key, f"{values!r}: a value is listed twice")
    wf = dict(WALK_FORWARD_DEFAULTS)
    for key, value in data.get("walk_forward", {}).items():
        if key not in WALK_FORWARD_DEFAULTS:
            raise SweepInputError(p, "walk_forward", key, f"unknown (known: {', '.join(WALK_FORWARD_DEFAULTS)})")
        wf[key] = value
    _check_walk_forward(wf, p)
    engine = _engine(fixed.pop("engine", "chains"), p)
    source = fixed.pop("source", None)
    if source is not None:
        source = str(source)
        if source != "store" and not Path(source).is_absolute() and (p.parent / source).exists():
            source = str((p.parent / source).resolve())
    symbol = str(fixed.pop("symbol", "SPX")).strip().upper()
    spec = SweepSpec(engine=engine, fixed=fixed, grid={k: tuple(v) for k, v in grid.items()}, source=source,
                     symbol=symbol, path=str(p), walk_forward=wf)
    _check_source(spec)
    expand(spec)   # every configuration's parameters built: a bad value fails here, before anything runs
    return spec


def _check_walk_forward(wf: dict, path) -> None:
    for key in ("train_days", "test_days"):
        v = wf[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 2:
            raise SweepInputError(path, "walk_forward", key, f"{v!r}: a whole number of sessions >= 2")
    if wf["statistic"] not in STATISTICS:
        raise SweepInputError(path, "walk_forward", "statistic", f"{wf['statistic']!r}: one of "
                                                                 f"{', '.join(STATISTICS)}")


def expand(spec: SweepSpec) -> list[SweepConfig]:
    """Every combination of the grid, in a deterministic order: the first key varies slowest (the order of
    :func:`itertools.product` over the keys in the file's order, each key's values in the listed order).

    Raises
    ------
    SweepInputError
        A combination's parameters are impossible (e.g. ``long_delta`` not below ``short_delta``).
    """
    keys = spec.keys
    out = []
    for i, combo in enumerate(itertools.product(*(spec.grid[k] for k in keys))):
        raw = dict(zip(keys, combo, strict=True))
        kwargs = _kwargs(spec.fixed, raw, spec.path, keys)
        values = {k: (getattr(kwargs[k.partition(".")[0]], k.partition(".")[2]) if "." in k else kwargs[k])
                  for k in keys}
        full = {"engine": spec.engine, "source": spec.source if spec.engine == "chains" else None,
                "symbol": spec.symbol, "params": BacktestParams(**kwargs).to_dict()}
        out.append(SweepConfig(config_id=_digest(full, 12), values=values, params=kwargs, index=i))
    ids = [c.config_id for c in out]
    if len(set(ids)) != len(ids):
        raise SweepInputError(spec.path, "grid", ", ".join(keys), "two combinations give the same parameters "
                                                                  "(a value repeated under another spelling)")
    return out


__all__ = ["ENGINES", "META_KEYS", "NESTED", "SweepConfig", "SweepSpec", "WALK_FORWARD_DEFAULTS", "expand",
           "load_grid"]
