"""UI (an app): one function per chart (:mod:`.plots`), the ipywidgets explorer (:mod:`.explore`).
Imports the pipeline and below, never :mod:`research_lib.cli`.
"""
