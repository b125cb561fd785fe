"""Exit rules of an open option position: which rule fires, and how far each one is.

Pure functions over arrays (one element per position), used by the paper monitor
(:mod:`research_lib.paper.monitor`) on every mark. The rules are those of the backtest engine
(:mod:`research_lib.backtest.engine`, step b) and of the systems this grew out of: close at 50% of the credit
earned, at a loss of 200% of the credit, or 7 calendar days before the nearest expiry; and settle what expired.

Conventions
-----------
A position's *price* is per unit of the strategy, per share, in credit terms: ``price = −Σ quantity × leg
price`` (a credit spread opened for 1.20 has ``entry_price = +1.20``; closing it costs its mark, e.g. 0.60). A
debit position has a negative price. P&L per unit = ``entry_price − mark``; the rules compare it with the
*basis* ``|entry_price|``:

* ``profit_target`` fires when ``entry_price − mark ≥ profit_target × basis``;
* ``stop_loss`` fires when ``mark − entry_price ≥ stop_loss × basis``;
* ``exit_dte`` fires when the calendar days to the nearest expiry are ``≤ exit_dte``;
* ``expiry`` fires when the nearest expiry is today or past (settle at intrinsic value, no fill).

First that fires wins, in the order ``expiry``, ``profit_target``, ``stop_loss``, ``exit_dte`` (the engine's
order). A rule set to None never fires. A position whose mark is unknown (NaN: a leg missing from the chain) can
still fire ``expiry`` and ``exit_dte`` (they need no price) but never the price rules.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from research_lib.checks import FieldChecks
from research_lib.errors import PaperConfigError

__all__ = ["EXIT_REASONS", "ExitRules", "days_to", "exit_reasons", "rule_distances"]

#: The reasons a position closes, in the order they are tested; ``manual`` is a close by hand.
EXIT_REASONS = ("expiry", "profit_target", "stop_loss", "exit_dte", "manual")

_CHECKS = FieldChecks(lambda field, value, why: PaperConfigError(f"exits.{field}={value!r}: {why}",
                                                                 key=f"exits.{field}", value=value, allowed=why))
_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class ExitRules:
    """When an open position closes (None switches a rule off).

    Attributes
    ----------
    profit_target : float or None
        Fraction of the entry credit (or debit) earned at mid marks [0.5]; in (0, 10].
    stop_loss : float or None
        Loss at mid marks as a multiple of the entry credit (or debit) [2.0]; in (0, 100].
    exit_dte : int or None
        Close when the nearest expiry is this many calendar days away or fewer [7]; in [0, 365].
    """

    profit_target: float | None = 0.5
    stop_loss: float | None = 2.0
    exit_dte: int | None = 7

    def __post_init__(self) -> None:
        for name, hi in (("profit_target", 10.0), ("stop_loss", 100.0)):
            object.__setattr__(self, name, _CHECKS.number(name, getattr(self, name), lo=0.0, hi=hi, lo_open=True,
                                                          optional=True, unit="of the entry credit"))
        if self.exit_dte is not None:
            object.__setattr__(self, "exit_dte", _CHECKS.whole("exit_dte", self.exit_dte, lo=0, hi=365,
                                                                unit="calendar days"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _arrays(entry_price, mark, dte) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = np.atleast_1d(np.asarray(entry_price, dtype=float))
    m = np.atleast_1d(np.asarray(mark, dtype=float))
    d = np.atleast_1d(np.asarray(dte, dtype=float))
    if not (e.shape == m.shape == d.shape):
        raise ValueError(f"entry_price, mark and dte must have one shape, got {e.shape}, {m.shape}, {d.shape}")
    return e, m, d


def exit_reasons(entry_price, mark, dte, rules: ExitRules | None = None) -> np.ndarray:
    """The exit reason of each position, or None where no rule fires.

    Parameters
    ----------
    entry_price : array-like of float
        Per unit, per share, credit positive (module docstring).
    mark : array-like of float
        The position's price now at mid marks, same convention; NaN when unknown (a missing leg).
    dte : array-like of int
        Calendar days from today to the position's nearest expiry (≤ 0: expired or expiring today).
    rules : ExitRules, optional
        Default ``ExitRules()``.

    Returns
    -------
    numpy.ndarray of object
        ``"expiry"``, ``"profit_target"``, ``"stop_loss"``, ``"exit_dte"`` or None, one per position.
    """
    r = rules or ExitRules()
    e, m, d = _arrays(entry_price, mark, dte)
    basis = np.abs(e)
    pnl = e - m                                        # NaN where the mark is unknown: no price rule fires
    out = np.full(e.shape, None, dtype=object)
    tests = [("expiry", d <= 0)]
    if r.profit_target is not None:
        tests.append(("profit_target", pnl >= r.profit_target * basis - _EPS))
    if r.stop_loss is not None:
        tests.append(("stop_loss", -pnl >= r.stop_loss * basis - _EPS))
    if r.exit_dte is not None:
        tests.append(("exit_dte", d <= r.exit_dte))
    for name, fired in reversed(tests):                # the first rule in order overwrites the later ones
        out[np.asarray(fired, dtype=bool)] = name
    return out


def rule_distances(entry_price, mark, dte, rules: ExitRules | None = None) -> pd.DataFrame:
    """How far each position is from each exit rule, for the positions table.

    Returns
    -------
    pandas.DataFrame
        One row per position:

        ``to_profit_target``
            Dollars per unit per share the mark must still fall before the target fires (≤ 0: fired); NaN
            when the rule is off or the mark unknown.
        ``to_stop_loss``
            Dollars per unit per share the mark may still rise before the stop fires (≤ 0: fired).
        ``to_exit_dte``
            Calendar days left before the DTE rule fires (≤ 0: fired).
        ``progress_profit``, ``progress_stop``
            The P&L as a fraction of the target's gain (1.0 = at the target) and the loss as a fraction of the
            stop's loss (1.0 = at the stop), NaN as above.
        ``exit_reason``
            :func:`exit_reasons`.
    """
    r = rules or ExitRules()
    e, m, d = _arrays(entry_price, mark, dte)
    basis = np.abs(e)
    pnl = e - m
    nan = np.full(e.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if r.profit_target is not None:
            gain = r.profit_target * basis
            to_pt, prog_pt = gain - pnl, np.where(gain > 0, pnl / gain, np.nan)
        else:
            to_pt, prog_pt = nan, nan
        if r.stop_loss is not None:
            loss = r.stop_loss * basis
            to_sl, prog_sl = loss + pnl, np.where(loss > 0, -pnl / loss, np.nan)
        else:
            to_sl, prog_sl = nan, nan
    to_dte = d - r.exit_dte if r.exit_dte is not None else nan
    return pd.DataFrame({"to_profit_target": to_pt, "to_stop_loss": to_sl, "to_exit_dte": to_dte,
                         "progress_profit": prog_pt, "progress_stop": prog_sl,
                         "exit_reason": exit_reasons(e, m, d, r)})


def days_to(expiration: Any, today: Any) -> int:
    """Calendar days from ``today`` to ``expiration`` (dates; negative once expired)."""
    return int((pd.Timestamp(expiration).normalize() - pd.Timestamp(today).normalize()).days)
