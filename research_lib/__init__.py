"""research_lib — dealer gamma exposure (GEX) research and backtesting.

The package is layered; data flows one way, from the bottom up (``tests/test_layers.py`` keeps it so):

- foundation: :mod:`~research_lib.errors`, :mod:`~research_lib.settings`, :mod:`~research_lib.fs`,
  :mod:`~research_lib.formatting`, :mod:`~research_lib.calendar`
- :mod:`research_lib.core` — pure computation: chain model, pricing, GEX, the change attribution
  (``gex_change``), put-call-parity spot (``parity``), the smoothed IV surface (``surface``), the regime's GEX
  series (``regime_gex``) and its signal measures (``gex_signal``), indicators, regime, strategy, sizing, alerts
- :mod:`research_lib.data` — I/O: chain sources and providers, the store, market history, the modelled chain
- :mod:`research_lib.records` — the decision log
- :mod:`research_lib.pipeline` — the decision (:func:`~research_lib.pipeline.decide.decide_on` and its I/O
  wrapper ``decide``), the net GEX history, the daily report's content, what moved GEX (``gex_change``), the
  data effects (``gex_effects``) and the validation of the regime's series on real archives (``gex_validation``)
- apps: :mod:`research_lib.backtest` (backtests on real chains: feed, fills, settlement, engine, the Cboe
  PUT/BXM methodologies, results and statistics), :mod:`research_lib.reporting` (papermill runner),
  :mod:`research_lib.ui` (plots, explorer), :mod:`research_lib.cli`

The short names the README and the notebooks use (``research_lib.gex``, ``research_lib.sources``,
``research_lib.decide`` ...) keep working: :data:`MOVED` maps each to the module that holds the code, and
importing the short name gives that very module (the same object, so ``monkeypatch`` on either name works).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

__version__ = "0.1.0"

#: Short public name -> where the code lives. ``import research_lib.gex`` is ``research_lib.core.gex``;
#: a moved package's submodules follow it (``research_lib.sources.auto`` is ``research_lib.data.sources.auto``).
MOVED: dict[str, str] = {
    "chain": "core.chain",
    "plausibility": "core.plausibility",
    "pricing": "core.pricing",
    "gex": "core.gex",
    "regime": "core.regime",
    "strategy": "core.strategy",
    "sizing": "core.sizing",
    "alerts": "core.alerts",
    "sources": "data.sources",
    "store": "data.store",
    "market": "data.market",
    "modelled": "data.modelled",
    "decisions": "records.decisions",
    "decide": "pipeline.decide",
    "daily": "pipeline.daily",
    "history": "pipeline.history",
    "reports": "reporting.runner",
    "plots": "ui.plots",
    "explore": "ui.explore",
}


def _target(fullname: str) -> str | None:
    """``research_lib.<short>[.sub]`` -> the module holding the code, or None for any other name."""
    prefix, _, rest = fullname.partition(".")
    if prefix != __name__ or not rest:
        return None
    head, _, tail = rest.partition(".")
    if head not in MOVED:
        return None
    return f"{__name__}.{MOVED[head]}" + (f".{tail}" if tail else "")


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a short name of :data:`MOVED` as the module it names (imported on first use, not before)."""

    def find_spec(self, fullname, path=None, target=None):
        real = _target(fullname)
        if real is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, loader_state=real)

    def create_module(self, spec):
        module = importlib.import_module(spec.loader_state)
        spec.loader_state = (spec.loader_state, module.__spec__)
        return module

    def exec_module(self, module):
        # the import system stamped the short name's spec on the real module: give it back its own
        _, own = module.__spec__.loader_state
        module.__spec__ = own


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())
