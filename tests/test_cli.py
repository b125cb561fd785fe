"""The command line, run in-process through main() and once as a real subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from conftest import EOD_ARCHIVE, QUOTEDATA, ROOT, shared_file

from research_lib import gex
from research_lib.cli import EXIT_BAD_INPUT, EXIT_NO_RESULT, EXIT_OK, EXIT_USAGE, main
from research_lib.market import snapshot_config
from research_lib.sources import read_chain

REQUIRED = {"date", "quote_time", "spot", "net_gex", "call_gex", "put_gex", "zero_gamma", "zero_gamma_crossings",
            "call_wall", "put_wall", "max_pain", "convention"}


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(map(str, argv)), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_gex_table_output():
    path = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    code, out, err = run("gex", path)
    assert code == EXIT_OK and err == ""
    # the Sunday download of Friday's close is a 2024-01-05 snapshot quoted 2024-01-07 (issue 9)
    assert "SPX 2024-01-05" in out and "quoted 2024-01-07" in out and "zero gamma" in out and "call wall" in out and "max pain" in out


@pytest.mark.parametrize("convention", ["model", "perfiliev"])
def test_gex_json_matches_library(convention):
    path = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    code, out, _ = run("gex", path, "--json", "--convention", convention)
    assert code == EXIT_OK
    lines = out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert REQUIRED <= set(record)
    snap = read_chain(path)
    expected = gex.analyze(snap, snapshot_config(snap, convention)).levels  # the one default (issue 9)
    assert record["net_gex"] == pytest.approx(expected.net_gex)
    assert record["zero_gamma"] == pytest.approx(expected.zero_gamma)
    assert record["call_wall"] == expected.call_wall and record["put_wall"] == expected.put_wall
    assert record["convention"] == convention
    assert record["max_pain"]["2024-01-19"] == expected.max_pain[__import__("datetime").date(2024, 1, 19)]
    assert abs(record["net_gex"]) > 1e9  # dollars, not billions


def test_gex_options_reach_the_config():
    path = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    code, out, _ = run("gex", path, "--json", "--convention", "perfiliev", "--days-per-year", "252",
                       "--no-zero-dte-floor", "--grid", "120")
    cfg = json.loads(out)["config"]
    assert code == 0 and (cfg["days_per_year"], cfg["zero_dte_floor"], cfg["grid_points"]) == (252, False, 120)
    code, out, _ = run("gex", path, "--json", "--rate", "0.05", "--div-yield", "0.01", "--max-dte", "30",
                       "--exclude-0dte")
    cfg = json.loads(out)["config"]
    assert (cfg["rate"], cfg["div_yield"], cfg["expiries"]["max_dte"], cfg["expiries"]["exclude_0dte"]) == (
        0.05, 0.01, 30, True)


def test_date_all_prints_one_line_per_clean_day():
    path = shared_file(EOD_ARCHIVE)
    code, out, _ = run("gex", path, "--date", "all", "--json")
    assert code == EXIT_OK
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert len(records) == 47  # the file labelled 08-07 serves 08-06 (issue 9)
    dates = [r["date"] for r in records]
    assert dates == sorted(dates) and "2026-06-19" not in dates and "2026-08-21" in dates
    assert all(r["zero_gamma"] is None or r["zero_gamma"] > 0 for r in records)


def test_scan_command():
    code, out, _ = run("scan", shared_file(EOD_ARCHIVE))
    assert code == EXIT_OK and "51 snapshot(s), 47 usable" in out and "Juneteenth" in out


@pytest.mark.parametrize("content, code", [("hello,world\n", EXIT_BAD_INPUT), ("", EXIT_BAD_INPUT)])
def test_bad_files_exit_nonzero_with_one_line(tmp_path, content, code):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    rc, out, err = run("gex", p)
    assert rc == code and out == ""
    assert len(err.strip().splitlines()) == 1 and "bad.csv" in err


def test_missing_file_and_bad_date(tmp_path):
    rc, _, err = run("gex", tmp_path / "nope.csv")
    assert rc == EXIT_BAD_INPUT and "no such file" in err
    rc, _, err = run("gex", shared_file(EOD_ARCHIVE), "--date", "2026-07-03")
    assert rc == EXIT_BAD_INPUT and "skipped" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run("gex", shared_file(EOD_ARCHIVE), "--date", "July 3rd")
    assert rc == EXIT_USAGE and "YYYY-MM-DD" in err


def test_expired_only_chain_exits_4(tmp_path):
    src = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    lines = src.read_text().splitlines()
    kept = lines[:4] + [ln for ln in lines[4:] if ln.startswith("Fri Jan 05 2024")]
    p = tmp_path / "expired.csv"
    p.write_text("\n".join(kept) + "\n")
    rc, out, err = run("gex", p)
    assert rc == EXIT_NO_RESULT and "expired" in err and len(err.strip().splitlines()) == 1


def test_bad_option_values():
    path = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    assert run("gex", path, "--grid", "1")[0] == EXIT_USAGE
    assert run("gex", path, "--rate", "nan")[0] == EXIT_USAGE
    assert run("gex", path, "--convention", "squeeze")[0] == EXIT_USAGE
    assert run("nonsense")[0] == EXIT_USAGE


def test_console_script_and_module_entry_points():
    path = shared_file(QUOTEDATA / "spy_2023-09-14.csv")
    script = ROOT / ".venv" / "bin" / "research-lib"
    commands = [[sys.executable, "-m", "research_lib", "gex", str(path), "--json"]]
    if script.exists():
        commands.append([str(script), "gex", str(path), "--json"])
    for cmd in commands:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        assert REQUIRED <= set(json.loads(proc.stdout))
    proc = subprocess.run([sys.executable, "-m", "research_lib", "gex", "/nonexistent.csv"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == EXIT_BAD_INPUT and "Traceback" not in proc.stderr


def test_auto_rates_come_from_market_history():
    from conftest import SHARED_DATA

    shared_file(SHARED_DATA / "market" / "irx_13week_tbill_2000-01-03_2026-08-20.csv")
    path = shared_file(QUOTEDATA / "spx_2023-09-14.csv")
    code, out, err = run("gex", path, "--json", "--rate", "auto", "--div-yield", "auto")
    assert code == EXIT_OK, err
    cfg = json.loads(out)["config"]
    assert 0.052 < cfg["rate"] < 0.056 and 0.013 < cfg["div_yield"] < 0.02
    assert run("gex", path, "--rate", "soon")[0] == EXIT_USAGE
