"""Reporting (an app): papermill + nbconvert runs of the report notebooks (:mod:`.runner`), their results,
lock and paths (:mod:`.results`), the index and its pruning (:mod:`.index`), secret scrubbing
(:mod:`.secrets`). Imports the pipeline and below, never :mod:`research_lib.cli`.
"""
