"""Data: everything that reads or writes files or the network.

Chain readers and providers (:mod:`.sources`), the snapshot store (:mod:`.store`), market history
(:mod:`.market`: SPX, VIX family, rates, dividend yield, published GEX, the day table), the modelled chain
(:mod:`.modelled`) and the model-priced history (:mod:`.modelled_history`: any SPX option of 2011-2026 priced
from the day's VIX family). Prediction markets: the Polymarket CLOB market-channel client
(:mod:`.sources.polymarket`), the YES/NO monitor (:mod:`.binary_watch`), its Parquet series (:mod:`.binary_store`)
and the scan of a polled top-of-book dataset (:mod:`.binary_topbook`). Imports the foundation and
:mod:`research_lib.core`.
"""
