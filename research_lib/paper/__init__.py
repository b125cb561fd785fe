"""Paper trading: a simulated broker, the position monitor, the trader that ties the decision core to the ledger,
the bot's validated settings, the nightly pipeline and the widget panel.

Modules: :mod:`.broker` (the broker interface and the simulated broker), :mod:`.marks` (marking positions from a
chain), :mod:`.monitor` (exits), :mod:`.trader` (propose, place, mark, close, status), :mod:`.config` (the TOML
settings), :mod:`.nightly` (the nightly pipeline), :mod:`.panel` (the ipywidgets app of
``notebooks/paper_trading.ipynb``). The ledger they write is :mod:`research_lib.records.paper`.
"""
