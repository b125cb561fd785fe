"""The GEX explorer's widget callbacks, driven headlessly: set a control's value, then compare what the
explorer computed and shows with the library called directly."""

from __future__ import annotations

import os
import subprocess
import sys

import matplotlib.pyplot as plt
import pytest
from conftest import EOD_ARCHIVE, QUOTEDATA, ROOT, shared_file

from research_lib.core import gex
from research_lib.data.market import snapshot_config, snapshot_rates
from research_lib.data.sources import read_chain, scan
from research_lib.data.sources.auto import NoChainAvailableError
from research_lib.ui import explore
from research_lib.ui.explore import ALL_EXPIRIES, GexExplorer

SCALARS = ("net_gex", "call_gex", "put_gex", "zero_gamma", "cumulative_flip", "call_wall", "put_wall",
           "net_vanna", "net_charm", "net_delta")
COUNTS = ("n_contracts", "n_expired", "n_filtered", "n_unpriced")


def assert_levels_match(got: dict, want: dict) -> None:
    for key in SCALARS:
        if want[key] is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(want[key], rel=1e-12), key
    for key in ("max_pain", "convention", "date", "source", "modelled", *COUNTS):
        assert got[key] == want[key], key


def pngs(out) -> list[str]:
    return [o["data"]["image/png"] for o in out.outputs if "image/png" in o["data"]]


def chart_pngs(explorer) -> list[str]:
    return [p for out in (explorer.by_strike_out, explorer.profile_out, explorer.heatmap_out) for p in pngs(out)]


def html_of(out) -> str:
    return "".join(o["data"].get("text/html", "") for o in out.outputs)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))


@pytest.fixture
def count_loads(monkeypatch):
    """Counts the chains the explorer asks :func:`get_chain` for."""
    calls = []
    real = explore.get_chain

    def counting(*args, **kwargs):
        calls.append(kwargs.get("date"))
        return real(*args, **kwargs)

    monkeypatch.setattr(explore, "get_chain", counting)
    return calls


# --------------------------------------------------------------------------------------------------
# the modelled chain


def test_modelled_explorer_shows_the_library_levels_and_charts(offline):
    explorer = GexExplorer("SPX", "modelled")
    # the one default of every path: the snapshot's own rate and dividend yield (issue 9; was r = q = 0)
    config = snapshot_config(explorer.snapshot, "model")
    direct = gex.analyze(explorer.snapshot, config)
    assert explorer.config == config and explorer.rates == snapshot_rates(explorer.snapshot, "model")
    assert explorer.error is None
    assert_levels_match(explorer.levels_dict(), direct.levels.to_dict())
    assert explorer.levels == explorer.analysis.levels
    assert len(chart_pngs(explorer)) == 3
    shown = html_of(explorer.levels_out)
    assert "net GEX" in shown and "net_gex" not in shown  # plain words, not snake_case
    assert f"{config.rate:.3%}" in shown and f"{config.rate:.3%}" in explorer.status.value
    assert "MODELLED DATA" in explorer.status.value and "MODELLED DATA" in explorer.describe()
    # one served snapshot: the date control offers it alone, labelled with who served it
    assert explorer.dates == (explorer.snapshot.snapshot_date.isoformat(),)
    assert explorer.date_select.disabled and "modelled" in explorer.date_select.options[0][0]
    assert explorer.grid_points_input.value == 400


def test_switching_convention_recomputes_in_place_without_reloading(offline, count_loads):
    explorer = GexExplorer("SPX", "modelled", rate=0.04)
    before = chart_pngs(explorer)
    assert len(count_loads) == 1
    explorer.convention_toggle.value = "perfiliev"
    assert len(count_loads) == 1  # the cached snapshot, not a reload
    expected = gex.config_from("perfiliev", rate=0.04)
    assert explorer.config == expected
    assert explorer.grid_points_input.value == 60  # untouched grid follows the convention
    assert_levels_match(explorer.levels_dict(), gex.analyze(explorer.snapshot, expected).levels.to_dict())
    after = chart_pngs(explorer)
    assert len(after) == 3 and set(after).isdisjoint(before)  # cleared, then redrawn
    table = "".join(o["data"]["text/plain"] for o in explorer.levels_out.outputs)
    assert "perfiliev" in table and "model " not in table
    assert "perfiliev convention" in explorer.status.value
    assert plt.get_fignums() == []  # nothing left open in pyplot


def test_grid_points_override_sticks_across_conventions_until_set_back(offline):
    explorer = GexExplorer("SPX", "modelled")
    explorer.grid_points_input.value = 120
    assert explorer.config == snapshot_config(explorer.snapshot, "model", grid_points=120)
    assert len(explorer.analysis.profile.levels) == 120
    explorer.convention_toggle.value = "perfiliev"
    assert explorer.config == gex.config_from("perfiliev", grid_points=120)
    explorer.grid_points_input.value = 60  # the perfiliev default: follows the convention again
    explorer.convention_toggle.value = "model"
    assert explorer.grid_points_input.value == 400
    assert explorer.config == snapshot_config(explorer.snapshot, "model")
    assert_levels_match(explorer.levels_dict(),
                        gex.analyze(explorer.snapshot, snapshot_config(explorer.snapshot)).levels.to_dict())


def test_an_impossible_filter_shows_the_error_and_the_next_change_recovers(offline):
    explorer = GexExplorer("SPX", "modelled", max_dte=7)
    assert explorer.max_dte_select.value == 7
    explorer.max_dte_select.value = 0
    explorer.exclude_0dte_check.value = True  # nothing within 0 days once 0DTE is gone
    assert isinstance(explorer.error, gex.NoExposureError)
    assert explorer.analysis is None and explorer.levels is None
    assert "NoExposureError" in explorer.status.value and "filtered out" in explorer.status.value
    assert chart_pngs(explorer) == [] and explorer.levels_out.outputs == ()  # no stale results shown
    with pytest.raises(gex.NoExposureError):
        explorer.levels_dict()
    explorer.max_dte_select.value = ALL_EXPIRIES
    assert explorer.error is None and "Error" not in explorer.status.value
    expected = snapshot_config(explorer.snapshot, "model", exclude_0dte=True)
    assert explorer.config == expected
    assert_levels_match(explorer.levels_dict(), gex.analyze(explorer.snapshot, expected).levels.to_dict())
    assert len(chart_pngs(explorer)) == 3


def test_the_explorer_displays_as_its_widget(offline):
    explorer = GexExplorer("SPX", "modelled")
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.widget.model_id
    explorer.close()
    assert explorer.widget.comm is None and explorer.levels is not None


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(convention="gexbot"), gex.GexConfigError, "gexbot"),
    (dict(grid_points=1), gex.GexConfigError, "grid_points"),
    (dict(max_dte=-3), gex.GexConfigError, "max_dte"),
    (dict(rate=5.0), gex.GexConfigError, "rate"),
    (dict(exclude_0dte="yes"), gex.GexConfigError, "exclude_0dte"),
    (dict(symbol=""), NoChainAvailableError, "symbol"),
    (dict(source=None), NoChainAvailableError, "source"),
])
def test_bad_arguments_raise_named_errors(offline, kwargs, error, match):
    with pytest.raises(error, match=match):
        GexExplorer(**{"source": "modelled", **kwargs})


def test_a_starting_filter_that_leaves_nothing_raises(offline):
    with pytest.raises(gex.NoExposureError):
        GexExplorer("SPX", "modelled", max_dte=0, exclude_0dte=True)


def test_the_store_offers_its_stored_dates(offline, tmp_path):
    from research_lib.data.modelled import modelled_chain, offline_spot_history
    from research_lib.data.store import ChainStore

    store = ChainStore(tmp_path / "mystore")
    # two days the offline history covers (with or without ../shared/data)
    first, second = (d.date().isoformat() for d in offline_spot_history().index[-2:])
    for day in (first, second):
        store.put(modelled_chain("SPX", date=day))
    explorer = GexExplorer("SPX", "store", store=store)
    assert explorer.dates == (first, second)
    assert explorer.date_select.value == second and not explorer.date_select.disabled
    explorer.date_select.value = first
    assert explorer.levels.date.isoformat() == first
    snap = store.get("SPX", date=first)
    direct = gex.analyze(snap, snapshot_config(snap, "model"))
    assert_levels_match(explorer.levels_dict(), direct.levels.to_dict())


def test_the_module_needs_no_running_kernel(tmp_path):
    code = """
import sys
from IPython import get_ipython
assert get_ipython() is None
from research_lib.ui.explore import GexExplorer
e = GexExplorer("SPX", "modelled")
e.convention_toggle.value = "perfiliev"
assert e.error is None and e.levels.convention == "perfiliev"
assert "ipykernel" not in sys.modules
assert type(e.widget.comm).__name__ == "DummyComm"
print("ok", len(e.by_strike_out.outputs))
"""
    env = {**os.environ, "RESEARCH_LIB_OFFLINE": "1", "RESEARCH_LIB_DATA": str(tmp_path / "store"),
           "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "1"]


# --------------------------------------------------------------------------------------------------
# real chains


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])])
def test_a_real_chain_file_recomputes_each_control_like_the_library(name, request, monkeypatch):
    if name == "real":
        path, day = shared_file(QUOTEDATA / "spx_2024-01-07.csv"), "2024-01-05"  # the Sunday download's
    else:
        syn = request.getfixturevalue("synthetic")
        monkeypatch.setenv("RESEARCH_LIB_MARKET_DATA", str(syn.market_dir))
        path, day = syn.files["cboe_csv"], "2024-03-06"
    snap = read_chain(path)
    explorer = GexExplorer("SPX", str(path), convention="perfiliev", rate=0.05)
    assert explorer.dates == (day,)  # the trading date
    assert_levels_match(explorer.levels_dict(),
                        gex.analyze(snap, gex.config_from("perfiliev", rate=0.05)).levels.to_dict())
    explorer.max_dte_select.value = 30
    explorer.exclude_0dte_check.value = True
    explorer.convention_toggle.value = "model"
    expected = snapshot_config(snap, "model", rate=0.05, max_dte=30, exclude_0dte=True)
    assert expected.div_yield > 0.01  # only the rate was given: the yield is the date's
    assert explorer.config == expected
    want = gex.analyze(snap, expected).levels.to_dict()
    assert want["n_filtered"] > 0
    assert_levels_match(explorer.levels_dict(), want)
    assert len(chart_pngs(explorer)) == 3 and len(pngs(explorer.by_strike_out)) == 1


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def test_the_date_dropdown_switches_the_snapshot_of_an_archive(count_loads, name, request):
    if name == "real":
        path, d1, d2 = shared_file(EOD_ARCHIVE), "2026-07-15", "2026-07-16"
    else:
        path, d1, d2 = request.getfixturevalue("synthetic").files["eod_archive"], "2024-03-04", "2024-03-05"
    table = scan(path)
    explorer = GexExplorer("SPX", str(path), date=d1, max_dte=30)
    assert explorer.dates == tuple(sorted({d.isoformat() for d in table.loc[table["status"] == "ok", "date"]}))
    assert d1 in explorer.dates and d2 in explorer.dates
    assert explorer.date_select.value == d1
    first_pngs = chart_pngs(explorer)

    explorer.date_select.value = d2
    assert explorer.snapshot.snapshot_date.isoformat() == d2
    day = read_chain(path, date=d2)
    expected = gex.analyze(day, snapshot_config(day, "model", max_dte=30))
    assert_levels_match(explorer.levels_dict(), expected.levels.to_dict())
    assert explorer.levels_dict()["date"] == d2
    assert len(chart_pngs(explorer)) == 3 and set(chart_pngs(explorer)).isdisjoint(first_pngs)

    explorer.convention_toggle.value = "perfiliev"
    explorer.date_select.value = d1
    assert count_loads == [d1, d2]  # each day read once
    expected = gex.analyze(read_chain(path, date=d1), gex.config_from("perfiliev", max_dte=30))
    assert_levels_match(explorer.levels_dict(), expected.levels.to_dict())


def test_the_panel_is_readable(offline):
    """Issue 9 item 5: no raw floats, dates without a time, plain column names, no cell cut short, and no
    pair of dollar signs for MathJax to read as LaTeX."""
    import re

    explorer = GexExplorer("SPX", "modelled")
    lv = explorer.levels
    shown = html_of(explorer.levels_out) + html_of(explorer.pins_out)
    text = "".join(o["data"]["text/plain"] for out in (explorer.levels_out, explorer.pins_out)
                   for o in out.outputs)
    assert f"{lv.spot:,.2f}" in shown and repr(lv.spot) not in shown
    assert repr(lv.net_gex) not in shown and re.search(r"\d{7,}\.\d", shown) is None  # no raw floats
    assert "00:00:00" not in shown and "00:00:00" not in text
    assert "…" not in shown and "..." not in shown
    assert re.search(r"<th>[a-z]+_[a-z_]+</th>", shown) is None  # no snake_case headers
    assert "max pain" in shown and "pin-risk score" in shown and "net GEX" in shown
    first_expiry = explorer.analysis.pin_risk.index[0].date().isoformat()
    assert f"<th>{first_expiry}</th>" in shown
    assert lv.source in shown  # whole, not cut
    for o in (*explorer.levels_out.outputs, *explorer.pins_out.outputs):
        html = o["data"].get("text/html", "")
        assert html.startswith('<div class="tex2jax_ignore mathjax_ignore">'), html[:80]
    assert explorer.status.value.startswith('<div class="tex2jax_ignore mathjax_ignore">')
    # the heading of the levels carries no "$" at all
    assert "$" not in html_of(explorer.levels_out).split("</b>")[1].split("</div>")[0]
