"""Reporting (an app): papermill + nbconvert runs of the report notebooks, the index, secret scrubbing
(:mod:`.runner`). Imports the pipeline and below, never :mod:`research_lib.cli`.
"""
