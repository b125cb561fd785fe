"""Each plot function returns a Figure with the levels drawn, and renders to PNG: on the synthetic SPX chain
always, and on the real spx_2024-01-07.csv too when ../shared is present (conftest.spx_chain)."""

from __future__ import annotations

import io

import pytest
from matplotlib.figure import Figure

from research_lib.core import gex
from research_lib.ui import plots


@pytest.fixture(scope="module")
def analysis(spx_chain):
    return gex.analyze(spx_chain)


@pytest.mark.parametrize("fn", [plots.gex_by_strike, plots.gamma_profile, plots.gex_heatmap])
def test_plot_returns_a_renderable_figure(analysis, fn):
    fig = fn(analysis)
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buf.getvalue()) > 5000
    assert "SPX" in fig.axes[0].get_title()


def test_levels_are_marked(analysis):
    ax = plots.gex_by_strike(analysis).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    lv = analysis.levels
    assert f"zero gamma {lv.zero_gamma:,.0f}" in labels
    assert f"call wall {lv.call_wall:,.0f}" in labels and f"put wall {lv.put_wall:,.0f}" in labels
    assert any(label.startswith("spot") for label in labels)
    vlines = {round(line.get_xdata()[0], 6) for line in ax.get_lines() if len(set(line.get_xdata())) == 1}
    assert round(lv.zero_gamma, 6) in vlines


def test_profile_plot_draws_the_profile(analysis):
    ax = plots.gamma_profile(analysis).axes[0]
    net = next(line for line in ax.get_lines() if line.get_label() == "net GEX")
    assert len(net.get_xdata()) == len(analysis.profile.levels)
    assert net.get_ydata()[0] == pytest.approx(analysis.profile.net_gex[0] / 1e9)


def test_plot_on_given_axes_and_modelled_label(analysis):
    import dataclasses

    fig = Figure()
    ax = fig.add_subplot()
    assert plots.gamma_profile(analysis, ax=ax) is fig
    modelled = dataclasses.replace(analysis, levels=dataclasses.replace(analysis.levels, modelled=True))
    assert "MODELLED" in plots.gex_heatmap(modelled).axes[0].get_title()


@pytest.mark.parametrize("value", ["gex", "vanna_exposure", "charm_exposure"])
def test_heatmap_values_and_windows(analysis, value):
    fig = plots.gex_heatmap(analysis, value=value, window_pct=2.0, max_expiries=5)
    assert isinstance(fig, Figure) and fig.axes[0].images
    assert len(fig.axes[0].get_xticklabels()) == 5
    with pytest.raises(KeyError, match="not an exposure column"):
        plots.gex_heatmap(analysis, value="nonsense")
    empty = plots.gex_heatmap(analysis, window_pct=1e-9)  # no strike that close to spot
    assert "no strikes in the window" in [t.get_text() for t in empty.axes[0].texts]
    narrow = plots.gex_by_strike(analysis, window_pct=1.0).axes[0]
    lo, hi = narrow.get_xlim()
    assert lo >= analysis.levels.spot * 0.98 and hi <= analysis.levels.spot * 1.02


def test_sweep_heatmap_cells_are_the_aggregated_statistic():
    import numpy as np
    import pandas as pd

    from research_lib.errors import SweepStatisticError

    table = pd.DataFrame({"short_delta": [0.2, 0.2, 0.3, 0.3, 0.2, 0.3],
                          "profit_target": [0.5, None, 0.5, None, 0.5, 0.5],
                          "dte": [30, 30, 30, 30, 45, 45],
                          "sharpe": [1.0, 0.5, np.nan, 2.0, 1.5, -0.25]})
    fig = plots.sweep_heatmap(table, "short_delta", "profit_target", "sharpe")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.2", "0.3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.5", "none"]   # a rule off last
    cells = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}
    # (x, y) -> the best over dte; the NaN row left out
    assert cells == {(0, 0): "1.50", (1, 0): "-0.25", (0, 1): "0.50", (1, 1): "2.00"}
    mean = plots.sweep_heatmap(table, "short_delta", "profit_target", "sharpe", agg="mean").axes[0]
    assert {t.get_text() for t in mean.texts} == {"1.25", "-0.25", "0.50", "2.00"}
    only_nan = table.assign(sharpe=[np.nan, 0.5, np.nan, 2.0, np.nan, np.nan])
    texts = [t.get_text() for t in plots.sweep_heatmap(only_nan, "short_delta", "profit_target").axes[0].texts]
    assert texts.count("n/a") == 2
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    for kwargs, words in (({"x": "nope", "y": "dte"}, "no column"), ({"x": "dte", "y": "dte"}, "both"),
                          ({"x": "dte", "y": "short_delta", "agg": "sum"}, "agg")):
        with pytest.raises(SweepStatisticError, match=words):
            plots.sweep_heatmap(table, **kwargs)


def _paper_curve(n: int = 4):
    import pandas as pd

    at = pd.date_range("2024-03-04 16:15", periods=n, freq="D", tz="America/New_York")
    cash = [100_000.0 + 240.0] * n
    unrealized = [0.0, 60.0, -30.0, 120.0][:n]
    return pd.DataFrame({"at": at, "cash": cash, "positions_value": [-240.0 + u for u in unrealized],
                         "equity": [c - 240.0 + u for c, u in zip(cash, unrealized, strict=True)],
                         "open_risk": [1760.0] * n, "realized_pnl": [0.0] * n, "unrealized_pnl": unrealized})


def test_paper_equity_draws_the_snapshots():
    import numpy as np

    curve = _paper_curve()
    fig = plots.paper_equity(curve, starting_cash=100_000.0)
    ax_eq, ax_pnl, ax_risk = fig.axes  # the open risk on a twin of the P&L axes, its own scale
    assert ax_risk.get_ylim()[1] == pytest.approx(1760.0 * 1.1)
    assert [c.get_label() for c in ax_risk.collections] == ["open risk (right)"]
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    np.testing.assert_allclose(lines["equity"].get_ydata(), curve["equity"])
    np.testing.assert_allclose(lines["cash"].get_ydata(), curve["cash"])
    np.testing.assert_allclose(lines["unrealised P&L"].get_ydata(), curve["unrealized_pnl"])
    assert lines["starting cash 100,000"].get_ydata()[0] == 100_000.0
    # New York wall-clock times on the axis (the snapshot at 16:15 New York is drawn at 16:15)
    first = lines["equity"].get_xdata()[0]
    assert str(first).startswith("2024-03-04T16:15")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paper_equity_empty_and_bad_curves():
    from research_lib.errors import PaperDisplayError

    fig = plots.paper_equity(_paper_curve().iloc[:0])
    assert "no equity snapshot yet" in " ".join(t.get_text() for t in fig.axes[0].texts)
    with pytest.raises(PaperDisplayError, match=r"lacks the columns \['equity'\]"):
        plots.paper_equity(_paper_curve().drop(columns="equity"))
