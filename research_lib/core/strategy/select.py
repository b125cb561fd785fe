"""Strategy selection: a regime's ``(action, trend)`` to a :class:`StrategyKind` and the reason (the table in
:mod:`research_lib.core.strategy`). Pure."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any

from research_lib.errors import StrategyError, UnknownActionError, UnknownStrategyError, UnknownTrendError

__all__ = ["ACTIONS", "TRENDS", "StrategyChoice", "StrategyKind", "select_strategy"]


#: The actions :func:`select_strategy` understands (normalised spelling).
ACTIONS: tuple[str, ...] = ("SELL_PREMIUM", "BUY_DIRECTIONAL", "STAY_OUT")
#: The trends :func:`select_strategy` understands (normalised spelling).
TRENDS: tuple[str, ...] = ("UPTREND", "DOWNTREND", "SIDEWAYS")


class StrategyKind(enum.StrEnum):
    """The structures :func:`build_strategy` can build (``NONE``: no position)."""

    BULL_PUT_SPREAD = "bull_put_spread"
    BEAR_CALL_SPREAD = "bear_call_spread"
    IRON_CONDOR = "iron_condor"
    BULL_CALL_SPREAD = "bull_call_spread"
    BEAR_PUT_SPREAD = "bear_put_spread"
    NONE = "none"

    @property
    def is_credit(self) -> bool:
        """True for the premium-selling structures (credit received)."""
        return self in (StrategyKind.BULL_PUT_SPREAD, StrategyKind.BEAR_CALL_SPREAD, StrategyKind.IRON_CONDOR)

    @property
    def label(self) -> str:
        """Human name: ``"bull put spread"``."""
        return self.value.replace("_", " ")


def _normalise(value: Any, allowed: Sequence[str], what: str, error: type[StrategyError]) -> str:
    if isinstance(value, enum.Enum):
        spellings = [value.value, value.name] if isinstance(value.value, str) else [value.name]
    elif isinstance(value, str):
        spellings = [value]
    else:
        raise error(f"{what} must be a string or a str-enum, got {type(value).__name__} {value!r}")
    for spelling in spellings:
        key = "_".join(spelling.strip().upper().replace("-", " ").replace("_", " ").split())
        if key in allowed:
            return key
    raise error(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _as_kind(value: Any) -> StrategyKind:
    if isinstance(value, StrategyKind):
        return value
    names = tuple(k.name for k in StrategyKind)
    return StrategyKind[_normalise(value, names, "strategy kind", UnknownStrategyError)]


@dataclasses.dataclass(frozen=True)
class StrategyChoice:
    """What :func:`select_strategy` decided.

    Attributes
    ----------
    kind : StrategyKind
        The structure to build (``NONE``: no position).
    reason : str
        Why, in words.
    action, trend : str or None
        The inputs, normalised (``"SELL_PREMIUM"``, ``"UPTREND"``); None when the choice was made by hand.
    """

    kind: StrategyKind
    reason: str
    action: str | None = None
    trend: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "kind", _as_kind(self.kind))


def select_strategy(action: Any, trend: Any) -> StrategyChoice:
    """The structure for a regime's ``action`` and ``trend`` (see the table in :mod:`research_lib.core.strategy`).

    Parameters
    ----------
    action : str or str-enum
        ``SELL_PREMIUM``, ``BUY_DIRECTIONAL`` or ``STAY_OUT`` (any case; ``-``/space for ``_``).
    trend : str or str-enum
        ``UPTREND``, ``DOWNTREND`` or ``SIDEWAYS``. Checked even when the action is ``STAY_OUT``.

    Raises
    ------
    UnknownActionError, UnknownTrendError
        Anything else (the message lists the accepted values).
    """
    a = _normalise(action, ACTIONS, "action", UnknownActionError)
    t = _normalise(trend, TRENDS, "trend", UnknownTrendError)
    K = StrategyKind
    if a == "STAY_OUT":
        return StrategyChoice(K.NONE, f"the regime says STAY_OUT ({t}): no position", a, t)
    if a == "SELL_PREMIUM":
        kind, why = {
            "UPTREND": (K.BULL_PUT_SPREAD, "sell premium below the market in an uptrend"),
            "DOWNTREND": (K.BEAR_CALL_SPREAD, "sell premium above the market in a downtrend"),
            "SIDEWAYS": (K.IRON_CONDOR, "sell premium on both sides in a sideways market"),
        }[t]
        return StrategyChoice(kind, f"SELL_PREMIUM + {t} → {kind.label}: {why}", a, t)
    if t == "SIDEWAYS":
        return StrategyChoice(K.NONE, "BUY_DIRECTIONAL needs a direction and the trend is SIDEWAYS: no position",
                              a, t)
    kind = K.BULL_CALL_SPREAD if t == "UPTREND" else K.BEAR_PUT_SPREAD
    return StrategyChoice(kind, f"BUY_DIRECTIONAL + {t} → {kind.label}: a debit spread in the trend's direction",
                          a, t)
