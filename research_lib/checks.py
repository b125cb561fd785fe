"""Field checks shared by the parameter dataclasses (``AlertParams``, ``RegimeParams``, ``SizingParams``,
``StrategyParams``, ``TradeDecision`` ...).

Each module keeps its own named error (:class:`~research_lib.alerts.AlertParamsError`,
:class:`~research_lib.sizing.SizingError` ...) and builds one :class:`FieldChecks` around it; the checks
word every refusal the same way: the field, the value and the accepted range, e.g.
``AlertParams.concentration_share=1.5: must be a finite number in (0, 1]``.

Pure: no file, network or database access (``numbers.Real`` covers numpy's ints and floats).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

__all__ = ["FieldChecks", "Fail", "interval", "prefixed"]

#: ``fail(field, value, why)`` returns the exception to raise (it does not raise it).
Fail = Callable[[str, Any, str], Exception]


def prefixed(error: Callable[[str], Exception], owner: str) -> Fail:
    """A :data:`Fail` building ``error(f"{owner}.{field}={value!r}: {why}")``.

    Parameters
    ----------
    error : exception class taking one message
        The module's named error (``AlertParamsError``).
    owner : str
        The class whose field it is (``"AlertParams"``).
    """
    def fail(field: str, value: Any, why: str) -> Exception:
        return error(f"{owner}.{field}={value!r}: {why}")
    return fail


def interval(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
             hi_open: bool = False) -> str:
    """A range in words: ``"in (0, 1]"``, ``">= 0"``, ``"< 0"``, or ``""`` when unbounded.

    Numbers are shown with ``:g`` (0.5, 100, 20000).
    """
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return ""


def _is_real(value: Any) -> bool:
    """A real number that is not a boolean (``numbers.Real`` includes numpy's ints and floats; numpy's
    bool_ is not registered as a number, Python's bool is excluded by hand)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class FieldChecks:
    """The checks of one parameter class, raising that module's named error.

    Parameters
    ----------
    fail : Fail
        Builds the exception from ``(field, value, why)``; see :func:`prefixed`.

    Every check returns the value converted (``float``, ``int``, ``bool``) so a ``__post_init__`` can
    store it, and raises ``fail(field, value, why)`` otherwise, ``why`` naming the accepted range. A
    ``unit`` (``"% of spot"``, ``"calendar days"``) is appended to ``why`` in parentheses.
    """

    def __init__(self, fail: Fail):
        self.fail = fail

    def number(self, field: str, value: Any, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False, unit: str = "", optional: bool = False) -> Any:
        """A finite real number (not a bool, not NaN or infinite) within the range given, as a float.

        ``lo``/``hi`` are inclusive unless ``lo_open``/``hi_open``; None: unbounded on that side.
        ``optional``: None is accepted too (and returned).
        """
        if optional and value is None:
            return None
        rng = interval(lo, hi, lo_open=lo_open, hi_open=hi_open)
        why = f"must be a finite number{' ' + rng if rng else ''}{' or None' if optional else ''}"
        why = f"{why} ({unit})" if unit else why
        if not _is_real(value) or not math.isfinite(float(value)):
            raise self.fail(field, value, why)
        x = float(value)
        if (lo is not None and (x < lo or (lo_open and x == lo))) or \
                (hi is not None and (x > hi or (hi_open and x == hi))):
            raise self.fail(field, value, why)
        return x

    def probability(self, field: str, value: Any, *, lo_open: bool = False, unit: str = "") -> float:
        """A finite number in [0, 1] (``lo_open``: (0, 1])."""
        return self.number(field, value, lo=0.0, hi=1.0, lo_open=lo_open, unit=unit)

    def whole(self, field: str, value: Any, *, lo: int = 0, hi: int | None = None, unit: str = "",
              integral_floats: bool = False) -> int:
        """A whole number (not a bool) >= ``lo`` (and <= ``hi``).

        ``integral_floats``: also accept a finite float with no fractional part (``45.0``).
        """
        why = f"must be a whole number {interval(lo, hi)}" + (f" ({unit})" if unit else "")
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not ok and integral_floats and _is_real(value) and math.isfinite(float(value)):
            ok = float(value) == int(value)
        if not ok or value < lo or (hi is not None and value > hi):
            raise self.fail(field, value, why)
        return int(value)

    def choice(self, field: str, value: Any, options: Collection[Any], *,
               normalise: Callable[[Any], Any] | None = None) -> Any:
        """``value`` (``normalise(value)`` when given, e.g. upper-casing) when it is one of ``options``.

        The error shows the value as given and lists the options.
        """
        key = value if normalise is None else normalise(value)
        try:
            ok = key in options
        except TypeError:  # an unhashable value against a set
            ok = False
        if not ok:
            raise self.fail(field, value, f"must be one of {', '.join(repr(o) for o in options)}")
        return key

    def flag(self, field: str, value: Any) -> bool:
        """True or False (numpy's bool_ too; not 0/1 or strings)."""
        if not isinstance(value, bool | np.bool_):
            raise self.fail(field, value, "must be True or False")
        return bool(value)

    def require(self, ok: bool, field: str, value: Any, why: str) -> None:
        """Raise ``fail(field, value, why)`` unless ``ok``: a relation between fields (``short < long``)."""
        if not ok:
            raise self.fail(field, value, why)

