"""The paper panel's callbacks, driven headlessly against a real PaperTrader on a temporary data root: press a
button (call its method), then check the ledger (a PaperLedger opened on the same file) and what the panel shows.

The chain source is a two-day EOD archive written from the synthetic chain (tests/fixtures.py), so a fresh clone
tests everything; the real archive of ../shared is used too when present (open on one day, mark on the next).
"""

from __future__ import annotations

import datetime as dt

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE
from paper_quotes import mid_mark

from research_lib.errors import OrderError, PaperConfigError, ResearchLibError
from research_lib.paper import config as paper_config
from research_lib.paper.panel import CSS, NEW_ACCOUNT, PanelReport, PaperPanel, positions_display
from research_lib.records.paper.ledger import PaperLedger

OPEN_DAY, MARK_DAY = dt.date(2024, 3, 5), dt.date(2024, 3, 6)
#: the real archive's days used when it is present (two consecutive sessions)
REAL_DAYS = (dt.date(2026, 7, 15), dt.date(2026, 7, 16))


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory):
    """Full synthetic SPX chains of OPEN_DAY and MARK_DAY in the EOD archive's layout."""
    from fixtures import fixture_chain, write_eod_archive

    path = tmp_path_factory.mktemp("paper_chain") / "spx_eod_two_days.parquet"
    days = {d: (d, "OK") for d in (OPEN_DAY, MARK_DAY)}
    return write_eod_archive(path, {d: fixture_chain(d) for d in days}, days=days)


def _data_root(tmp_path, monkeypatch, source, **knobs):
    root = tmp_path / "data"
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(root))
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    for env in ("RESEARCH_LIB_PAPER_ACCOUNT", "RESEARCH_LIB_PAPER_SOURCE", "RESEARCH_LIB_PAPER_DATE"):
        monkeypatch.delenv(env, raising=False)
    # a fixed strategy and size: the proposal is tradeable whatever the regime of the day
    config = paper_config.PaperConfig(source=str(source), **{"strategy": "bull_put", "contracts": 1, "width": 25.0,
                                                             **knobs})
    paper_config.save_config(config, root / paper_config.CONFIG_FILE)
    return root


@pytest.fixture
def data_root(tmp_path, monkeypatch, chain_file):
    return _data_root(tmp_path, monkeypatch, chain_file)


@pytest.fixture
def panel(data_root):
    p = PaperPanel.from_parameters(date=OPEN_DAY.isoformat())
    yield p
    p.close()


def _ledger(root) -> PaperLedger:
    return PaperLedger(root / "paper.sqlite")


def _text(w: widgets.HTML) -> str:
    return w.value


def _walk(w):
    yield w
    for c in getattr(w, "children", ()):
        yield from _walk(c)


def _place(panel):
    panel.on_place()
    assert panel.error is None, panel.message
    position = panel.on_confirm()
    assert panel.error is None, panel.message
    return position


# --------------------------------------------------------------------------------------------------
# layout


def test_the_panel_shows_the_account_and_a_tradeable_proposal(panel, data_root):
    assert panel.error is None, panel.message
    assert panel.trader.account.name == "paper"
    assert panel.trader.ledger.path == (data_root / "paper.sqlite").absolute()
    assert panel.config_path == data_root / "paper.toml"
    assert panel.source is None and panel.date == OPEN_DAY.isoformat()  # None: the config's source, the file
    p = panel.proposal
    assert p.tradeable and p.strategy == "bull_put" and p.contracts == 1
    assert p.snapshot_date == OPEN_DAY
    assert not panel.place_button.disabled
    shown = _text(panel.proposal_html)
    assert p.regime in shown and "bull_put" in shown and f"{p.entry_price:+.2f}" in shown
    assert all(leg.strike in p.legs_frame()["strike"].tolist() for leg in p.legs)
    assert f"{p.legs[0].strike:g}" in _text(panel.legs_html).replace(",", "")
    summary = _text(panel.summary_html)
    assert "+$100.00K" in summary and "equity" in summary and "open risk" in summary
    assert list(panel.account_select.options) == ["paper", NEW_ACCOUNT]
    assert "no open position" in _text(panel.positions_html)
    assert panel.confirm_box.layout.display == "none"
    assert panel.equity_image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert panel.tabs.titles == ("Trade", "History", "Settings")


def test_every_css_class_is_on_a_widget(panel):
    classes = {c for w in _walk(panel.widget) for c in getattr(w, "_dom_classes", ())}
    missing = sorted(set(CSS.values()) - classes)
    assert not missing, missing
    buttons = {w.description: w for w in _walk(panel.widget) if isinstance(w, widgets.Button)}
    assert "rl-place" in buttons["Place paper trade"]._dom_classes
    assert "rl-mark" in buttons["Mark now"]._dom_classes
    assert "rl-close" in buttons["Close selected"]._dom_classes
    # one input per knob, each with its class
    assert set(panel.knob_inputs) == {k.name for k in paper_config.KNOBS}
    assert all(f"rl-knob-{k.table}-{k.key}" in panel.knob_inputs[k.name]._dom_classes for k in paper_config.KNOBS)


# --------------------------------------------------------------------------------------------------
# place, cancel, mark, close


def test_place_asks_for_confirmation_then_places_once(panel, data_root):
    panel.on_place()
    assert panel.error is None and panel.confirm_box.layout.display == "flex"
    assert "Confirm?" in panel.confirm_html.value and "bull_put" in panel.confirm_html.value
    with _ledger(data_root) as ledger:
        assert ledger.open_positions("paper") == []  # nothing placed before "Confirm"
    position = panel.on_confirm()
    assert panel.error is None, panel.message
    assert panel.confirm_box.layout.display == "none"
    assert f"placed paper position #{position.position_id}" in panel.message
    with _ledger(data_root) as ledger:
        (held,) = ledger.open_positions("paper")
        assert held.position_id == position.position_id and held.strategy == "bull_put" and held.contracts == 1
        assert [(leg.strike, leg.right, leg.quantity) for leg in held.legs] == \
            [(leg.strike, leg.right, leg.quantity) for leg in panel.proposal.legs]
        assert ledger.account("paper").cash == pytest.approx(
            100_000.0 + held.entry_price * 100 - held.commissions)
    table = panel.trader.positions_table()
    assert table["id"].tolist() == [position.position_id]
    assert f">{position.position_id}<" in _text(panel.positions_html)
    assert panel.close_select.options == ((f"#{position.position_id} bull_put ×1 exp "
                                           f"{held.expiration:%Y-%m-%d}", position.position_id),)
    # the same proposal again: the ledger keeps one position (the client order id is the proposal's)
    again = _place(panel)
    assert again.position_id == position.position_id
    with _ledger(data_root) as ledger:
        assert len(ledger.open_positions("paper")) == 1
        assert len(ledger.orders("paper")) == 1


def test_cancel_places_nothing(panel, data_root):
    panel.on_place()
    panel.on_cancel()
    assert panel.error is None and panel.pending is None
    assert panel.confirm_box.layout.display == "none" and "nothing placed" in panel.message
    panel.on_confirm()  # nothing awaits confirmation any more
    assert isinstance(panel.error, OrderError) and "Place paper trade" in panel.message
    with _ledger(data_root) as ledger:
        assert ledger.open_positions("paper") == [] and len(ledger.orders("paper")) == 0


@pytest.mark.parametrize("archive", ["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def test_mark_then_close_selected(archive, tmp_path, monkeypatch, chain_file):
    source, (day1, day2) = (chain_file, (OPEN_DAY, MARK_DAY)) if archive == "synthetic" else \
        (EOD_ARCHIVE, REAL_DAYS)
    root = _data_root(tmp_path, monkeypatch, source)
    panel = PaperPanel.from_parameters(date=day1.isoformat())
    position = _place(panel)
    panel.date = day2.isoformat()
    report = panel.on_mark()
    assert panel.error is None, panel.message
    assert report is panel.last_mark and len(report.marks) == 1 and not report.problems
    expected = mid_mark(source, day2, position)  # the file's quotes, read with pandas alone
    with _ledger(root) as ledger:
        marks = ledger.marks("paper", position.position_id)
        assert len(marks) == 1
        assert marks["mark"].iloc[0] == pytest.approx(expected, abs=1e-9)
        assert pd.Timestamp(marks["marked_at"].iloc[0]).date() == day2
    row = panel.trader.positions_table().iloc[0]
    assert row["mark"] == pytest.approx(expected, abs=1e-9)
    assert row["unrealized_pnl"] == pytest.approx((position.entry_price - expected) * 100, abs=1e-6)
    shown = positions_display(panel.trader.positions_table())
    assert shown["mark (per share)"].iloc[0] == f"{expected:+.2f}"
    assert shown["to profit target (per share)"].iloc[0] != "n/a"  # the distances are shown once marked
    assert f"{expected:+.2f}" in _text(panel.positions_html)

    panel.close_select.value = (position.position_id,)
    closed = panel.on_close_selected()
    assert panel.error is None, panel.message
    (trade,) = closed
    assert trade.position_id == position.position_id and trade.exit_reason == "manual"
    with _ledger(root) as ledger:
        assert ledger.open_positions("paper") == []
        assert ledger.closed_trades("paper")["position_id"].tolist() == [position.position_id]
        assert ledger.check() == []
    assert "no open position" in _text(panel.positions_html)
    assert panel.close_select.options == ()
    assert "manual" in _text(panel.closed_html) and "bull_put" in _text(panel.statistics_html)
    panel.close()


# --------------------------------------------------------------------------------------------------
# accounts


def test_account_switch_and_creation(panel, data_root):
    _place(panel)
    panel.account_select.value = NEW_ACCOUNT  # the observer shows the form, nothing switched
    assert panel.error is None and panel.new_account_box.layout.display == "flex"
    assert panel.trader.account.name == "paper"
    panel.account_name.value = "second"
    panel.account_cash.value = 25_000.0
    panel.on_new_account()
    assert panel.error is None, panel.message
    assert panel.trader.account.name == "second" and panel.account_select.value == "second"
    assert list(panel.account_select.options) == ["paper", "second", NEW_ACCOUNT]
    assert panel.new_account_box.layout.display == "none"
    assert "+$25.00K" in _text(panel.summary_html)
    assert "no open position" in _text(panel.positions_html)
    assert panel.proposal is not None and panel.proposal.client_order_id.startswith("OPEN-second-")
    with _ledger(data_root) as ledger:
        assert {a.name: a.starting_cash for a in ledger.accounts()} == {"paper": 100_000.0, "second": 25_000.0}
    panel.account_select.value = "paper"  # back through the selector
    assert panel.error is None and panel.trader.account.name == "paper"
    assert len(panel.trader.positions_table()) == 1
    # a bad name is refused, shown, and the panel keeps its account
    panel.account_select.value = NEW_ACCOUNT
    panel.account_name.value = ""
    panel.on_new_account()
    assert isinstance(panel.error, ResearchLibError) and "create account failed" in panel.message
    assert panel.trader.account.name == "paper"


# --------------------------------------------------------------------------------------------------
# settings


def test_settings_form_saves_a_good_config_and_refuses_a_bad_one(panel, data_root):
    path = data_root / "paper.toml"
    assert panel.knob_inputs["strategy.name"].value == "bull_put"
    assert panel.knob_inputs["market.symbols"].value == "SPX"
    panel.knob_inputs["exits.profit_target"].value = 0.6
    panel.knob_switches["exits.stop_loss"].value = False  # switch the stop off
    panel.knob_inputs["fills.commission"].value = 1.0
    saved = panel.on_save_config()
    assert panel.error is None, panel.message
    assert "settings saved" in panel.message
    on_disk = paper_config.load_config(path)
    assert on_disk == saved
    assert (on_disk.profit_target, on_disk.stop_loss, on_disk.commission) == (0.6, None, 1.0)
    assert panel.trader.config == on_disk  # applied: the next trade uses them
    assert panel.trader.config.exit_rules().stop_loss is None
    position = _place(panel)
    assert position.commissions == pytest.approx(1.0 * len(position.legs))  # $1 per contract and leg now

    before = path.read_bytes()
    panel.knob_inputs["exits.profit_target"].value = 0.0  # out of (0, 10]
    assert panel.on_save_config() is None
    assert isinstance(panel.error, PaperConfigError) and panel.error.key == "exits.profit_target"
    assert "save settings failed" in panel.message and "`exits.profit_target` = 0" in panel.message
    assert "exits.profit_target" in panel.status.value
    assert path.read_bytes() == before  # the file is untouched
    assert panel.trader.config.profit_target == 0.6
    # a cross-knob rule names both keys
    panel.knob_inputs["exits.profit_target"].value = 0.5
    panel.knob_inputs["strategy.long_delta"].value = 0.4
    panel.on_save_config()
    assert isinstance(panel.error, PaperConfigError)
    assert "strategy.long_delta" in panel.message and "strategy.short_delta" in panel.message
    # and the next action works
    panel.knob_inputs["strategy.long_delta"].value = 0.15
    assert panel.on_save_config() is not None and panel.error is None


# --------------------------------------------------------------------------------------------------
# errors: shown, then the next action works


def test_an_error_is_shown_and_the_next_action_recovers(panel):
    position = _place(panel)
    panel.date = "2024-03-08"  # not a day of the archive
    assert panel.on_mark() is None
    assert isinstance(panel.error, ResearchLibError | OSError)
    assert panel.message.startswith("mark failed") and "color:#b00020" in panel.status.value
    assert len(panel.trader.positions_table()) == 1  # nothing changed
    panel.on_close_selected()  # nothing picked
    assert isinstance(panel.error, OrderError) and "no position picked" in panel.message
    panel.date = MARK_DAY.isoformat()
    report = panel.on_mark()
    assert panel.error is None and len(report.marks) == 1
    assert panel.message.startswith("marked")
    # closing a position twice: the second is refused, the panel still closes the others
    panel.close_select.value = (position.position_id,)
    assert len(panel.on_close_selected()) == 1
    panel.close_select.options = ((f"#{position.position_id}", position.position_id),)
    panel.close_select.value = (position.position_id,)
    assert panel.on_close_selected() == []
    assert isinstance(panel.error, ResearchLibError) and "could not close" in panel.message
    panel.refresh()
    assert panel.error is None and panel.close_select.options == ()


def test_a_proposal_that_cannot_be_made_is_shown_and_the_panel_still_works(panel):
    panel.date = "2023-01-03"
    panel.on_propose()
    assert panel.proposal is None and isinstance(panel.error, ResearchLibError | OSError)
    assert "No proposal" in _text(panel.proposal_html) and panel.place_button.disabled
    panel.on_place()
    assert isinstance(panel.error, OrderError) and "no proposal to place" in panel.message
    panel.date = OPEN_DAY.isoformat()
    panel.on_propose()
    assert panel.error is None and panel.proposal.tradeable and not panel.place_button.disabled


def test_a_proposal_that_is_not_tradeable_cannot_be_placed(tmp_path, monkeypatch, chain_file):
    _data_root(tmp_path, monkeypatch, chain_file, max_open_positions=1)
    panel = PaperPanel.from_parameters(date=OPEN_DAY.isoformat())
    _place(panel)
    panel.date = MARK_DAY.isoformat()
    panel.on_propose()  # one position open: the maximum
    assert panel.proposal is not None and not panel.proposal.tradeable
    assert "max_open_positions" in panel.proposal.why_not and panel.place_button.disabled
    assert "no: " in _text(panel.proposal_html)
    panel.on_place()
    assert isinstance(panel.error, OrderError) and "not tradeable" in panel.message
    assert panel.confirm_box.layout.display == "none"
    panel.close()


# --------------------------------------------------------------------------------------------------
# parameters and the static report


def test_parameters_fall_back_to_the_environment(data_root, chain_file, monkeypatch, tmp_path):
    monkeypatch.setenv("RESEARCH_LIB_PAPER_ACCOUNT", "from-env")
    monkeypatch.setenv("RESEARCH_LIB_PAPER_SOURCE", str(chain_file))
    monkeypatch.setenv("RESEARCH_LIB_PAPER_DATE", MARK_DAY.isoformat())
    panel = PaperPanel.from_parameters()
    assert (panel.trader.account.name, panel.source, panel.date) == ("from-env", str(chain_file),
                                                                      MARK_DAY.isoformat())
    assert panel.proposal.snapshot_date == MARK_DAY
    panel.close()
    # given parameters win; data_dir moves every file
    other = tmp_path / "other"
    panel = PaperPanel.from_parameters(account="given", date=OPEN_DAY.isoformat(), data_dir=str(other))
    assert panel.trader.account.name == "given" and panel.date == OPEN_DAY.isoformat()
    assert panel.trader.ledger.path == (other / "paper.sqlite").absolute()
    assert panel.config_path == other / "paper.toml"
    panel.close()


def test_static_report(panel):
    position = _place(panel)
    panel.date = MARK_DAY.isoformat()
    panel.on_mark()
    report = panel.static_report()
    assert isinstance(report, PanelReport)
    assert report.positions["id"].tolist() == [str(position.position_id)]
    assert report.proposal is not None and "regime" in report.proposal.index
    assert len(report.legs) == len(panel.proposal.legs)
    assert len(report.closed) == 0 and len(report.statistics) == 0
    text = report._repr_html_()
    for title in ("Account", "Today's proposal", "Open positions", "Closed trades", "Statistics by strategy"):
        assert f"<h3>{title}</h3>" in text
    assert "<table" in text and "no closed trade yet" in text
    curve = panel.trader.equity_curve()
    (equity_line,) = [line for line in report.equity.axes[0].get_lines() if line.get_label() == "equity"]
    np.testing.assert_allclose(equity_line.get_ydata(), curve["equity"].to_numpy(dtype=float))


def test_mark_now_waits_for_no_other_marker(panel, data_root):
    """While ``research-lib paper mark`` (or the nightly run) holds the ledger's mark lock, "Mark now" says who
    holds it and marks nothing; once it is free the mark goes through."""
    from research_lib.errors import LockBusyError
    from research_lib.fs import file_lock

    position = _place(panel)
    panel.date = MARK_DAY.isoformat()
    with file_lock(panel.trader.mark_lock_path, wait=False, note="paper mark of paper (cron)"):
        assert panel.on_mark() is None
        assert isinstance(panel.error, LockBusyError) and "paper mark of paper (cron)" in panel.message
    with _ledger(data_root) as ledger:
        assert len(ledger.marks("paper", position.position_id)) == 0
    assert len(panel.on_mark().marks) == 1 and panel.error is None
