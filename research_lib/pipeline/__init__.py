"""Pipeline: from a chain and the market history to a decision and a report's content.

:mod:`.decide` (the pure ``decide_on`` and its I/O wrapper ``decide``), :mod:`.history` (net GEX history
and the history context), :mod:`.daily` (the daily report's content). Imports every layer below.
"""
