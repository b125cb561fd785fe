"""Records: the state the library keeps — the decision log (:mod:`.decisions`, SQLite).

Imports the foundation, :mod:`research_lib.core` and :mod:`research_lib.data`.
"""
