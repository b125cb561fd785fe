"""Data: everything that reads or writes files or the network.

Chain readers and providers (:mod:`.sources`), the snapshot store (:mod:`.store`), market history
(:mod:`.market`: SPX, VIX family, rates, dividend yield, published GEX) and the modelled chain
(:mod:`.modelled`). Imports the foundation and :mod:`research_lib.core`.
"""
