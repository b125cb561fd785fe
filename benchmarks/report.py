"""Wall time of the daily report end to end, against the floor of any papermill report.

    .venv/bin/python benchmarks/report.py [--runs 3] [--source auto] [--online]

Measures, as separate processes started from the shell's point of view:

- **report**: ``research-lib report daily --symbol SPX --source auto`` — validation, a kernel, the whole
  ``daily_report.ipynb`` (chain, levels, decision, four charts, history), the HTML export and the index;
- **floor**: ``papermill empty.ipynb out.ipynb`` — a papermill run of a notebook with no cells: interpreter
  and papermill start-up, a kernel start and shutdown, writing the output. No report can be faster.

Prints each run, the medians and the ratio report / floor (goal: at most 3x). Offline by default
(``RESEARCH_LIB_OFFLINE=1``: the modelled chain, or the newest stored one with ``--source store``) so the
network does not add noise; ``--online`` lets ``auto`` try the live providers. Reports, the store and the
decision log go to a temporary folder; one warm-up run of each is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMPTY_NOTEBOOK = {
    "cells": [],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--source", default="auto", help="the report's --source (default auto)")
    parser.add_argument("--online", action="store_true", help="let auto try the live providers")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="research_lib_bench_") as tmp:
        tmp_path = Path(tmp)
        env = dict(os.environ, MPLBACKEND="Agg", RESEARCH_LIB_DATA=str(tmp_path / "data"),
                   RESEARCH_LIB_REPORTS=str(tmp_path / "reports"))
        if not args.online:
            env["RESEARCH_LIB_OFFLINE"] = "1"
        empty = tmp_path / "empty.ipynb"
        empty.write_text(json.dumps(EMPTY_NOTEBOOK))
        floor_cmd = [sys.executable, "-m", "papermill", str(empty), str(tmp_path / "empty_out.ipynb"),
                     "--no-progress-bar"]
        report_cmd = [sys.executable, "-m", "research_lib", "report", "daily", "--symbol", "SPX",
                      "--source", args.source, "--quiet"]

        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s); source {args.source}"
              f"{'' if args.online else ' (offline)'}; {args.runs} timed run(s) after one warm-up each")
        _timed(floor_cmd, env)
        _timed(report_cmd, env)
        floors, reports = [], []
        for i in range(args.runs):
            floors.append(_timed(floor_cmd, env))
            reports.append(_timed(report_cmd, env))
            print(f"  run {i + 1}: floor {floors[-1]:6.2f} s   report {reports[-1]:6.2f} s")
        floor, report = statistics.median(floors), statistics.median(reports)
        print(f"floor  (papermill, empty notebook)    median {floor:6.2f} s")
        print(f"report (research-lib report daily)    median {report:6.2f} s")
        ratio = report / floor
        print(f"ratio report / floor                  {ratio:6.2f}x   (goal <= 3x: {'met' if ratio <= 3 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
