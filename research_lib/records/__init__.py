"""Records: the state the library keeps — the decision log (:mod:`.decisions`) and the paper ledger
(:mod:`.paper`), both SQLite files on :class:`.sqlite.SQLiteFile` (connections, one ``BEGIN IMMEDIATE``
transaction per change, versioned schemas and migrations).

Imports the foundation, :mod:`research_lib.core` and :mod:`research_lib.data`.
"""
