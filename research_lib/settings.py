"""Foundation: the settings every layer shares, defined once (standard library only).

Paths, the names of the environment variables that override them, the exchange time zone and the
underlyings priced off the S&P 500. Modules import these names; none redefines them.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The exchange time zone: quote times, trading dates and settlement moments are New York times.
NY = "America/New_York"

#: The directory holding the ``research_lib`` package.
PACKAGE_DIR = Path(__file__).resolve().parent
#: The directory holding the package (a checkout's root: ``data/``, ``notebooks/``, ``reports/``).
REPO_ROOT = PACKAGE_DIR.parent

# Environment variables (each overrides one default; empty means unset).
#: Root of the chain store and the decision log (default ``data/`` in the checkout).
ENV_DATA = "RESEARCH_LIB_DATA"
#: A directory of market history files, searched first.
ENV_MARKET_DATA = "RESEARCH_LIB_MARKET_DATA"
#: Root of the rendered reports (default ``reports/`` in the checkout).
ENV_REPORTS = "RESEARCH_LIB_REPORTS"
#: Where the exchange-calendar cache lives (default ``$XDG_CACHE_HOME/research_lib``).
ENV_CACHE = "RESEARCH_LIB_CACHE"
#: ``1``/``true``/``yes``: no network request at all.
ENV_OFFLINE = "RESEARCH_LIB_OFFLINE"
#: The paper panel's account, chain source and as-of date when its notebook's parameters leave them empty
#: (``voila notebooks/paper_trading.ipynb`` takes no parameters: set these instead). Empty: the paper config's
#: account and source, the latest chain.
ENV_PAPER_ACCOUNT = "RESEARCH_LIB_PAPER_ACCOUNT"
ENV_PAPER_SOURCE = "RESEARCH_LIB_PAPER_SOURCE"
ENV_PAPER_DATE = "RESEARCH_LIB_PAPER_DATE"

#: Underlyings whose price is the S&P 500 index (or a fixed fraction of it), priced with its dividend yield.
SP500_UNDERLYINGS = ("SPX", "SPXW", "SPY", "XSP")


def data_root() -> Path:
    """``$RESEARCH_LIB_DATA`` when set, else ``data/`` in the checkout: the chain store and the decision log."""
    env = os.environ.get(ENV_DATA, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT / "data"
