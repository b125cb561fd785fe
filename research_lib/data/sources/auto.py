"""One call for "a chain of SYMBOL", from wherever one can be had: :func:`get_chain`.

``source="auto"`` tries, in order:

1. the live providers in :data:`DEFAULT_PROVIDERS` order (``cboe`` needs no key; ``tradier`` and
   ``polygon`` only when their key is in the environment — ``TRADIER_TOKEN``, ``POLYGON_API_KEY``),
   storing every live chain in the local store;
2. the newest snapshot of SYMBOL in the local store (:class:`~research_lib.store.ChainStore`), marked
   **stale** with its age;
3. the **modelled** SPX chain (:func:`research_lib.modelled.modelled_chain`), labelled as modelled data.

The caller always learns which source served and why the earlier ones did not
(:class:`ServedChain`). Other values of ``source``: a provider name (``"cboe"``, ``"tradier"``,
``"polygon"``: that one only), ``"store"``, ``"modelled"``, or a path to any chain file.

Set ``RESEARCH_LIB_OFFLINE=1`` to skip the live providers (no network attempt at all);
``RESEARCH_LIB_PROVIDERS=tradier,cboe`` changes their order; ``RESEARCH_LIB_CBOE_URL`` points the Cboe
provider at a mirror or proxy of ``https://cdn.cboe.com``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import pandas as pd

from research_lib.core.chain import ChainSnapshot, ResearchLibError
from research_lib.data.modelled import modelled_chain
from research_lib.data.sources import read_chain
from research_lib.data.store import ChainStore, SnapshotNotStoredError, StoreError
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    NoChainAvailableError as NoChainAvailableError,
)
from research_lib.formatting import fmt_age

DEFAULT_PROVIDERS: tuple[str, ...] = ("cboe", "tradier", "polygon")
PROVIDER_KEYS = {"tradier": "TRADIER_TOKEN", "polygon": "POLYGON_API_KEY"}
NAMED_SOURCES = ("auto", "store", "modelled", *DEFAULT_PROVIDERS)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One source tried by :func:`get_chain` and why it did not serve."""

    source: str
    outcome: str


@dataclasses.dataclass(frozen=True, eq=False)
class ServedChain:
    """A chain and where it came from.

    Attributes
    ----------
    snapshot : ChainSnapshot
    served_by : str
        ``"cboe"``, ``"tradier"``, ``"polygon"``, ``"store"``, ``"modelled"`` or ``"file"``.
    stale : bool
        True when served from the store because no live source answered.
    age : pandas.Timedelta or None
        How old the quote is at the time of the call (store and file snapshots).
    attempts : tuple of Attempt
        The sources tried before, with what each said.
    """

    snapshot: ChainSnapshot
    served_by: str
    stale: bool = False
    age: pd.Timedelta | None = None
    attempts: tuple[Attempt, ...] = ()

    @property
    def modelled(self) -> bool:
        return self.snapshot.modelled

    def describe(self) -> str:
        """One line for banners and logs: who served, how old, what failed before."""
        s = self.snapshot
        text = f"{s.underlying} chain from {self.served_by} ({s.source}), quoted {s.quote_time:%Y-%m-%d %H:%M %Z}"
        if self.modelled:
            text += " — MODELLED DATA, not market quotes"
        if self.stale:
            text += f" — STALE: {fmt_age(self.age)} old, no live source answered"
        elif self.age is not None:
            text += f" ({fmt_age(self.age)} old)"
        if self.attempts:
            text += "; tried first: " + "; ".join(f"{a.source}: {a.outcome}" for a in self.attempts)
        return text


def provider_order() -> tuple[str, ...]:
    """The live providers ``auto`` tries, from ``RESEARCH_LIB_PROVIDERS`` or the default order."""
    env = os.environ.get("RESEARCH_LIB_PROVIDERS", "").strip()
    if not env:
        return DEFAULT_PROVIDERS
    names = tuple(n.strip().lower() for n in env.split(",") if n.strip())
    unknown = [n for n in names if n not in DEFAULT_PROVIDERS]
    if unknown:
        raise ValueError(f"RESEARCH_LIB_PROVIDERS names unknown providers {unknown}; use {list(DEFAULT_PROVIDERS)}")
    return names


def offline() -> bool:
    """True when ``RESEARCH_LIB_OFFLINE`` is set to a true value (1, true, yes)."""
    return os.environ.get("RESEARCH_LIB_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def fetch_live(provider: str, symbol: str) -> ChainSnapshot:
    """A chain from one live provider (raises the provider's errors)."""
    if provider == "cboe":
        # lazy for start-up time: a provider (and the HTTP client) loads when it is asked
        from research_lib.data.sources.cboe_json import CboeProvider

        base = os.environ.get("RESEARCH_LIB_CBOE_URL")  # a mirror or proxy of cdn.cboe.com
        return (CboeProvider(base_url=base) if base else CboeProvider()).fetch_chain(symbol)
    if provider == "tradier":
        # lazy for start-up time: a provider (and the HTTP client) loads when it is asked
        from research_lib.data.sources.tradier import TradierProvider

        return TradierProvider().fetch_chain(symbol)
    if provider == "polygon":
        # lazy for start-up time: a provider (and the HTTP client) loads when it is asked
        from research_lib.data.sources.polygon import PolygonProvider

        return PolygonProvider().fetch_chain(symbol)
    raise ValueError(f"unknown provider {provider!r}; use one of {list(DEFAULT_PROVIDERS)}")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="America/New_York")


def get_chain(symbol: str = "SPX", source: str | os.PathLike = "auto", *, date=None, store=None,
              providers: Sequence[str] | None = None, allow_modelled: bool = True, save: bool = True,
              now: pd.Timestamp | None = None) -> ServedChain:
    """A chain of ``symbol`` from ``source`` (see the module docstring).

    Parameters
    ----------
    symbol : str
        Underlying (``SPX``, ``SPY``, ``QQQ`` ...). The modelled fallback exists for SPX only.
    source : str or path
        ``"auto"``, a provider name, ``"store"``, ``"modelled"``, or a chain file path.
    date : str or date, optional
        ``"latest"``/None for the newest; a date picks that day from a file or the store (live
        providers only serve today and are skipped when a past date is asked).
    store : ChainStore, optional
        Defaults to the store under ``data/`` (or ``$RESEARCH_LIB_DATA``).
    providers : sequence of str, optional
        Live providers for ``auto`` (default :func:`provider_order`).
    allow_modelled : bool
        Whether ``auto`` may end at the modelled chain.
    save : bool
        Store live chains in the store.

    Raises
    ------
    NoChainAvailableError
        Nothing could serve; the message lists each source's answer.
    """
    now = now or _now()
    if date in ("latest", ""):
        date = None
    src = str(source)
    if src not in NAMED_SOURCES:  # a chain file
        snap = read_chain(src, date=date)
        return ServedChain(snap, "file", age=now - snap.quote_time)

    attempts: list[Attempt] = []
    if src in DEFAULT_PROVIDERS:
        return ServedChain(_live(src, symbol, store, save), src)
    if src == "auto":
        if date is not None:
            attempts.append(Attempt("live providers", f"skipped: a past date ({date}) was asked"))
        elif offline():
            attempts.append(Attempt("live providers", "skipped: RESEARCH_LIB_OFFLINE is set"))
        else:
            for name in providers or provider_order():
                key = PROVIDER_KEYS.get(name)
                if key and not os.environ.get(key):
                    attempts.append(Attempt(name, f"skipped: {key} is not set"))
                    continue
                try:
                    return ServedChain(_live(name, symbol, store, save), name, attempts=tuple(attempts))
                except (ResearchLibError, OSError) as exc:
                    attempts.append(Attempt(name, f"{type(exc).__name__}: {exc}"))
    if src in ("auto", "store"):
        served = _from_store(symbol, date, store, now, stale=(src == "auto"), attempts=attempts)
        if served is not None:
            return served
        attempts.append(Attempt("store", f"no {symbol} snapshot{f' of {date}' if date else ''} in the store"))
    if src == "modelled" or (src == "auto" and allow_modelled):
        if symbol.upper().lstrip("_") != "SPX":
            attempts.append(Attempt("modelled", f"the modelled chain exists for SPX only, not {symbol}"))
        else:
            snap = modelled_chain("SPX", date=date)
            return ServedChain(snap, "modelled", attempts=tuple(attempts))
    raise NoChainAvailableError(f"no {symbol} chain from source {src!r}: "
                                + "; ".join(f"{a.source}: {a.outcome}" for a in attempts))


def _store(store):
    if store is not None:
        return store
    return ChainStore()


def _live(name: str, symbol: str, store, save: bool) -> ChainSnapshot:
    snap = fetch_live(name, symbol)
    if save:
        _store(store).put(snap)
    return snap


def _from_store(symbol, date, store, now, *, stale: bool, attempts) -> ServedChain | None:
    try:
        snap = _store(store).get(symbol.upper().lstrip("_"), date=date)
    except SnapshotNotStoredError:
        return None
    except StoreError as exc:  # a damaged store must not stop the modelled fallback
        attempts.append(Attempt("store", f"{type(exc).__name__}: {exc}"))
        return None
    return ServedChain(snap, "store", stale=stale and date is None, age=now - snap.quote_time,
                       attempts=tuple(attempts))
