"""The exit rules (research_lib.core.exits) on hand-built mark sequences whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from research_lib.core.exits import EXIT_REASONS, ExitRules, exit_reasons, rule_distances
from research_lib.errors import PaperConfigError


def _first_exit(entry, marks, dtes, rules):
    """The first day (index) a rule fires along a path, and which: the monitor's loop, one day at a time."""
    for i, (m, d) in enumerate(zip(marks, dtes, strict=True)):
        r = exit_reasons([entry], [m], [d], rules)[0]
        if r is not None:
            return i, r
    return None, None


# A bull put opened for a 2.00 credit with 30 days to go; each path's answer is worked out by hand:
#  profit: the mark falls 2.00 -> 1.50 -> 1.10 -> 1.00 (50% of 2.00 earned on day 3)
#  stop:   the mark rises 2.00 -> 3.00 -> 5.00 -> 6.00 (a 4.00 loss = 200% of the credit on day 3)
#  dte:    the mark drifts, days to expiry 30, 20, 10, 7 (7 <= 7 on day 3)
#  expiry: exit_dte off, the mark drifts, days to expiry 2, 1, 0 (expiry on day 2)
PATHS = {
    "profit_target": ([2.00, 1.50, 1.10, 1.00, 0.90], [30, 29, 28, 27, 26], 3),
    "stop_loss": ([2.00, 3.00, 5.00, 6.00, 7.00], [30, 29, 28, 27, 26], 3),
    "exit_dte": ([2.00, 1.90, 1.80, 1.70, 1.60], [30, 20, 10, 7, 6], 3),
}


@pytest.mark.parametrize("rule", list(PATHS))
def test_each_rule_fires_on_the_day_worked_out_by_hand(rule):
    marks, dtes, day = PATHS[rule]
    assert _first_exit(2.00, marks, dtes, ExitRules()) == (day, rule)


def test_expiry_fires_when_the_dte_rule_is_off_and_settles_first():
    rules = ExitRules(exit_dte=None)
    assert _first_exit(2.00, [1.9, 1.8, 1.7], [2, 1, 0], rules) == (2, "expiry")
    # expiry beats every other rule on the same day (a position expiring today at its profit target settles)
    assert exit_reasons([2.0], [0.5], [0], ExitRules())[0] == "expiry"


def test_order_profit_before_stop_before_dte():
    r = ExitRules()
    # at the target and inside the DTE window: the target is named
    assert exit_reasons([2.0], [1.0], [5], r)[0] == "profit_target"
    assert exit_reasons([2.0], [6.0], [5], r)[0] == "stop_loss"
    assert exit_reasons([2.0], [1.5], [5], r)[0] == "exit_dte"


def test_rules_switched_off_never_fire():
    off = ExitRules(profit_target=None, stop_loss=None, exit_dte=None)
    assert list(exit_reasons([2.0, 2.0, 2.0], [0.0, 99.0, 1.0], [30, 30, 1], off)) == [None, None, None]


def test_a_missing_mark_fires_no_price_rule_but_the_calendar_rules_still_fire():
    nan = float("nan")
    assert list(exit_reasons([2.0, 2.0, 2.0], [nan, nan, nan], [30, 5, 0], ExitRules())) == [None, "exit_dte",
                                                                                          "expiry"]


def test_debit_positions_use_the_magnitude_of_the_debit():
    # a debit spread bought for 3.00 (price -3.00): worth 4.50 (mark -4.50) is a 1.50 gain = 50% -> target
    assert exit_reasons([-3.0], [-4.5], [30], ExitRules())[0] == "profit_target"
    # worth 0 (mark 0): lost 3.00 = 100% < 200%: no stop; with a 0.9 stop it fires
    assert exit_reasons([-3.0], [0.0], [30], ExitRules())[0] is None
    assert exit_reasons([-3.0], [0.0], [30], ExitRules(stop_loss=0.9))[0] == "stop_loss"


def test_rule_distances_by_hand():
    d = rule_distances([2.0], [1.5], [20], ExitRules()).iloc[0]
    assert d["to_profit_target"] == pytest.approx(0.5)       # the mark must fall 0.50 more (to 1.00)
    assert d["to_stop_loss"] == pytest.approx(4.5)           # or rise 4.50 (to 6.00)
    assert d["to_exit_dte"] == 13
    assert d["progress_profit"] == pytest.approx(0.5)        # 0.50 of the 1.00 gain
    assert d["progress_stop"] == pytest.approx(-0.125)
    assert d["exit_reason"] is None


def test_rule_distances_nan_when_off_or_unknown():
    d = rule_distances([2.0, 2.0], [float("nan"), 1.0], [20, 20], ExitRules(profit_target=None))
    assert math.isnan(d["to_profit_target"].iloc[1]) and math.isnan(d["to_stop_loss"].iloc[0])
    assert d["to_stop_loss"].iloc[1] == pytest.approx(5.0)


@pytest.mark.parametrize("field,value", [("profit_target", 0), ("profit_target", -0.1), ("profit_target", 11),
                                         ("stop_loss", 0), ("stop_loss", float("nan")), ("exit_dte", -1),
                                         ("exit_dte", 366), ("exit_dte", 2.5), ("profit_target", "half")])
def test_bad_rules_name_the_key_and_range(field, value):
    with pytest.raises(PaperConfigError) as info:
        ExitRules(**{field: value})
    assert info.value.key == f"exits.{field}" and field in str(info.value)
    assert info.value.allowed


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="one shape"):
        exit_reasons([1.0, 2.0], [1.0], [3, 4])


@given(entry=st.floats(-50, 50).filter(lambda x: abs(x) > 1e-3), mark=st.floats(-100, 100), dte=st.integers(-5, 400),
       pt=st.floats(0.01, 10), sl=st.floats(0.01, 100), ed=st.integers(0, 365))
@example(entry=2.0, mark=1.0, dte=30, pt=0.5, sl=2.0, ed=7)
@example(entry=-3.0, mark=3.0, dte=8, pt=0.5, sl=2.0, ed=7)
def test_the_reason_matches_a_scalar_reference(entry, mark, dte, pt, sl, ed):
    """A slow scalar reference of the documented rules, beside the vectorised one."""
    rules = ExitRules(profit_target=pt, stop_loss=sl, exit_dte=ed)
    basis, pnl = abs(entry), entry - mark
    if dte <= 0:
        want = "expiry"
    elif pnl >= pt * basis - 1e-9:
        want = "profit_target"
    elif -pnl >= sl * basis - 1e-9:
        want = "stop_loss"
    elif dte <= ed:
        want = "exit_dte"
    else:
        want = None
    assert exit_reasons(np.array([entry]), np.array([mark]), np.array([dte]), rules)[0] == want
    assert want is None or want in EXIT_REASONS
