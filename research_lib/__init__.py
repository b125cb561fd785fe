"""research_lib — dealer gamma exposure (GEX) research and backtesting.

Option chains in (:mod:`research_lib.chain`, :mod:`research_lib.sources`), Black-Scholes-Merton
greeks (:mod:`research_lib.pricing`), exposures and key levels out (:mod:`research_lib.gex`).
"""

__version__ = "0.1.0"
