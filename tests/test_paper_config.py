"""The paper bot's settings (research_lib.paper.config): defaults, round trips, every knob's bounds (from KNOBS),
bad types, unknown keys, invalid TOML with its line, the atomic write, and a fuzz of values and of file text."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib

import pytest
from hypothesis import example, given, strategies as st

import research_lib.fs as fs
from research_lib.core.exits import ExitRules
from research_lib.core.sizing import SizingParams
from research_lib.core.strategy.params import StrategyParams
from research_lib.errors import PaperConfigError, PaperError
from research_lib.paper.config import (
    KNOBS,
    KNOBS_BY_FIELD,
    KNOBS_BY_NAME,
    STRATEGIES,
    TABLES,
    PaperConfig,
    config_path,
    load_config,
    save_config,
    toml_value,
)

NUMERIC = [k for k in KNOBS if k.kind in ("float", "int")]
OFF = [k for k in KNOBS if k.off]
RELATED = {"long_delta", "short_delta", "bootstrap_risk", "max_risk_per_trade", "max_total_open_risk"}


def _file(tmp_path, text: str):
    p = tmp_path / "paper.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _one(knob, value) -> dict:
    return {knob.table: {knob.key: value}}


def _step(knob) -> float:
    """A step beyond a bound that is still clearly outside (1 for whole numbers)."""
    return 1 if knob.kind == "int" else max(abs(knob.hi or 1.0), 1.0) * 1e-6


# --------------------------------------------------------------------------------------------------
# the table and the defaults


def test_knobs_table_is_the_config():
    fields = [f.name for f in dataclasses.fields(PaperConfig)]
    assert fields == [k.field for k in KNOBS]
    assert len(KNOBS_BY_NAME) == len(KNOBS) == len(KNOBS_BY_FIELD)
    assert list(TABLES) == ["account", "market", "strategy", "sizing", "fills", "exits", "schedule"]
    for k in KNOBS:
        assert k.help.endswith(".") and len(k.help) > 20, k.name
        assert k.allowed, k.name
        assert k.check(k.default) == k.default, k.name   # every default is valid
    c = PaperConfig()
    assert all(getattr(c, k.field) == k.default for k in KNOBS)
    assert c.fixed_strategy is None


def test_defaults_are_the_issue_s(tmp_path):
    c = PaperConfig()
    assert (c.account, c.cash, c.symbols, c.source) == ("paper", 100_000.0, ("SPX",), "auto")
    assert (c.strategy, c.dte, c.dte_tolerance, c.short_delta, c.long_delta, c.width) == ("auto", 45, 15, 0.30,
                                                                                         0.15, 0.0)
    assert (c.min_open_interest, c.max_spread_pct) == (5, 0.10)
    assert (c.kelly_fraction, c.max_risk_per_trade, c.max_total_open_risk, c.bootstrap_risk) == (0.5, 0.05, 0.2,
                                                                                                 0.01)
    assert (c.min_trades_for_kelly, c.max_open_positions, c.contracts) == (30, 5, 0)
    assert (c.fill_model, c.slippage, c.commission) == ("mid", 0.25, 0.65)
    assert (c.profit_target, c.stop_loss, c.exit_dte, c.mark_every_minutes) == (0.5, 2.0, 7, 5)
    assert STRATEGIES == ("auto", "short_put", "bull_put", "bear_call", "iron_condor", "bull_call", "bear_put",
                          "strangle")


def test_missing_file_is_defaults_and_config_path_follows_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "root"))
    assert config_path() == tmp_path / "root" / "paper.toml"
    assert load_config() == PaperConfig()
    assert load_config(tmp_path / "nowhere.toml") == PaperConfig()
    written = save_config(PaperConfig(cash=5000))
    assert written == config_path() and load_config().cash == 5000.0
    assert _file(tmp_path, "").exists() and load_config(tmp_path / "paper.toml") == PaperConfig()


# --------------------------------------------------------------------------------------------------
# round trips

CUSTOM = PaperConfig(account="desk-2.test", cash=25_000, symbols=("SPX", "SPY", "QQQ"), source="/data/chains/x.csv",
                     strategy="iron_condor", dte=30, dte_tolerance=0, short_delta=0.2, long_delta=0.1, width=25,
                     min_open_interest=0, max_spread_pct=1, kelly_fraction=1, max_risk_per_trade=0.1,
                     max_total_open_risk=0.1, bootstrap_risk=0.0, min_trades_for_kelly=0, max_open_positions=1,
                     contracts=3, fill_model="slippage", slippage=0.0, commission=0, profit_target=None,
                     stop_loss=100, exit_dte=None, mark_every_minutes=390)


@pytest.mark.parametrize("config", [PaperConfig(), CUSTOM], ids=["defaults", "custom"])
def test_round_trips(tmp_path, config):
    p = save_config(config, tmp_path / "p.toml")
    assert load_config(p) == config
    assert PaperConfig.from_mapping(config.to_mapping()) == config
    assert PaperConfig.from_mapping(tomllib.loads(p.read_text())) == config
    d = config.to_dict()
    assert PaperConfig.from_mapping(json.loads(json.dumps(d, allow_nan=False))) == config
    # every key is written, each after a comment giving its range
    lines = p.read_text().splitlines()
    assert lines[0].startswith("# research_lib paper-trading settings")
    for k in KNOBS:
        i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{k.key} = ")
                 and lines[:i] and _table_of(lines, i) == k.table)
        assert lines[i - 1].startswith("# ") and f"Allowed: {k.allowed}." in lines[i - 1]


def _table_of(lines, i):
    return next(ln.strip("[]") for ln in reversed(lines[:i]) if ln.startswith("["))


def test_off_rules_are_false_in_toml_and_null_in_json(tmp_path):
    c = PaperConfig(profit_target=None, stop_loss=None, exit_dte=None)
    assert c.to_mapping()["exits"] == {"profit_target": False, "stop_loss": False, "exit_dte": False}
    assert c.to_dict()["exits"] == {"profit_target": None, "stop_loss": None, "exit_dte": None}
    assert "profit_target = false" in save_config(c, tmp_path / "p.toml").read_text()
    assert c.exit_rules() == ExitRules(None, None, None)
    on = load_config(_file(tmp_path, "[exits]\nprofit_target = 0.75\nexit_dte = 0\n"))
    assert on.exit_rules() == ExitRules(profit_target=0.75, stop_loss=2.0, exit_dte=0)


def test_types_are_normalised():
    c = PaperConfig.from_mapping({"account": {"cash": 100000}, "strategy": {"dte": 30.0, "width": 10},
                                  "market": {"symbols": ["SPY"]}})
    assert type(c.cash) is float and type(c.dte) is int and c.dte == 30 and type(c.width) is float
    assert c.symbols == ("SPY",)
    assert c.replace(symbols=["QQQ", "IWM"]).symbols == ("QQQ", "IWM")


def test_replace_validates_and_names_unknown_fields():
    assert PaperConfig().replace(dte=60).dte == 60
    with pytest.raises(PaperConfigError, match="`strategy.dte` = 0: must be a whole number in \\[1, 365\\]"):
        PaperConfig().replace(dte=0)
    with pytest.raises(PaperConfigError, match="unknown setting 'profit' .*profit_target") as e:
        PaperConfig().replace(profit=1)
    assert e.value.key == "profit"


def test_the_parameter_objects():
    c = CUSTOM
    assert c.fixed_strategy == "iron_condor"
    assert c.sizing_params() == SizingParams(kelly_fraction=1.0, max_risk_per_trade=0.1, max_total_open_risk=0.1,
                                             bootstrap_risk=0.0, min_trades_for_kelly=0)
    sp = c.strategy_params()
    assert isinstance(sp, StrategyParams) and sp.width_points == 25.0 and sp.by_width
    assert (sp.target_dte, sp.dte_tolerance, sp.short_delta, sp.long_delta) == (30, 0, 0.2, 0.1)
    assert (sp.min_open_interest, sp.max_spread_pct, sp.debit_long_delta) == (0.0, 1.0, 0.5)
    assert PaperConfig().strategy_params().width_points is None
    hi = PaperConfig(short_delta=0.9, long_delta=0.5).strategy_params(rate=0.04)
    assert hi.debit_long_delta == pytest.approx(0.95) and hi.rate == 0.04
    assert PaperConfig(exit_dte=3).exit_rules() == ExitRules(0.5, 2.0, 3)


# --------------------------------------------------------------------------------------------------
# every knob's bounds, both sides, from KNOBS


@pytest.mark.parametrize("knob", NUMERIC, ids=lambda k: k.name)
def test_bounds_from_the_table(knob, tmp_path):
    for bound, is_open, outward in ((knob.lo, knob.lo_open, -1), (knob.hi, knob.hi_open, +1)):
        assert bound is not None, f"{knob.name} has no bound on one side"
        inside = bound - outward * _step(knob) if is_open else bound
        assert knob.check(inside) == inside
        refused = [bound + outward * _step(knob)] + ([bound] if is_open else [])
        for value in refused:
            with pytest.raises(PaperConfigError) as e:
                knob.check(value)
            assert (e.value.key, e.value.value, e.value.allowed) == (knob.name, value, knob.allowed)
            assert str(e.value) == f"`{knob.name}` = {toml_value(value)}: must be {knob.allowed}"
            # the same refusal from a file names the file
            p = _file(tmp_path, f"[{knob.table}]\n{knob.key} = {toml_value(value)}\n")
            with pytest.raises(PaperConfigError, match=f"^{p}: `{knob.name}` = ") as e:
                load_config(p)
            assert e.value.key == knob.name and e.value.path == p
        if knob.field not in RELATED:  # the related ones are checked with their partner below
            assert getattr(PaperConfig(**{knob.field: inside}), knob.field) == inside


def test_the_example_message():
    with pytest.raises(PaperConfigError) as e:
        PaperConfig.from_mapping({"exits": {"profit_target": 0}})
    assert str(e.value) == "`exits.profit_target` = 0: must be in (0, 10] or false"
    assert (e.value.key, e.value.value, e.value.allowed) == ("exits.profit_target", 0, "in (0, 10] or false")


@pytest.mark.parametrize("changes, key, other", [
    ({"long_delta": 0.3}, "strategy.long_delta", "strategy.short_delta"),
    ({"short_delta": 0.1}, "strategy.long_delta", "strategy.short_delta"),
    ({"bootstrap_risk": 0.06}, "sizing.bootstrap_risk", "sizing.max_risk_per_trade"),
    ({"max_risk_per_trade": 0.25}, "sizing.max_risk_per_trade", "sizing.max_total_open_risk"),
    ({"max_total_open_risk": 0.04}, "sizing.max_risk_per_trade", "sizing.max_total_open_risk"),
])
def test_cross_knob_rules_name_both_keys(changes, key, other):
    with pytest.raises(PaperConfigError) as e:
        PaperConfig(**changes)
    assert e.value.key == key and f"`{key}`" in str(e.value) and f"`{other}`" in str(e.value)


def test_cross_knob_edges_accepted():
    assert PaperConfig(short_delta=0.9, long_delta=0.89).long_delta == 0.89
    c = PaperConfig(bootstrap_risk=1, max_risk_per_trade=1, max_total_open_risk=1)
    assert (c.bootstrap_risk, c.max_risk_per_trade, c.max_total_open_risk) == (1.0, 1.0, 1.0)
    with pytest.raises(PaperConfigError, match="must be below `strategy.short_delta`"):
        PaperConfig(short_delta=0.9, long_delta=0.9)


# --------------------------------------------------------------------------------------------------
# bad types and bad strings

NOT_NUMBERS = ["5", True, False, [1], {"a": 1}, math.nan, math.inf, -math.inf, None]


@pytest.mark.parametrize("knob", NUMERIC, ids=lambda k: k.name)
@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_numbers_refuse_other_types(knob, value):
    if knob.off and (value is False or value is None):
        assert knob.check(value) is None
        return
    with pytest.raises(PaperConfigError) as e:
        knob.check(value)
    assert e.value.key == knob.name and "number" in str(e.value)


def test_whole_numbers_refuse_fractions_and_off_rules_refuse_true():
    for k in (k for k in NUMERIC if k.kind == "int"):
        with pytest.raises(PaperConfigError, match="must be a whole number"):
            k.check((k.lo or 0) + 0.5)
    for k in OFF:
        with pytest.raises(PaperConfigError, match="or false"):
            k.check(True)
    with pytest.raises(PaperConfigError, match="`strategy.dte` = false"):
        PaperConfig.from_mapping({"strategy": {"dte": False}})


@pytest.mark.parametrize("name, value", [
    ("account.name", ""), ("account.name", "a" * 65), ("account.name", "my account"), ("account.name", "ü"),
    ("account.name", 5), ("market.symbols", "SPX"), ("market.symbols", []), ("market.symbols", ["SPX", "SPX"]),
    ("market.symbols", ["spx"]), ("market.symbols", ["TOOLONG"]), ("market.symbols", ["SP5"]),
    ("market.symbols", [f"S{chr(65 + i)}" for i in range(11)]), ("market.symbols", [1]),
    ("market.source", "cbeo"), ("market.source", ""), ("market.source", " ./x.csv"), ("market.source", "a/\tb"),
    ("market.source", ["auto"]), ("strategy.name", "condor"), ("strategy.name", "AUTO"), ("fills.model", "last"),
    ("fills.model", None),
])
def test_strings_and_lists_refused(name, value):
    knob = KNOBS_BY_NAME[name]
    with pytest.raises(PaperConfigError) as e:
        PaperConfig.from_mapping(_one(knob, value))
    assert e.value.key == name and e.value.allowed == knob.allowed and str(e.value).startswith(f"`{name}` = ")


@pytest.mark.parametrize("name, value", [
    ("account.name", "a" * 64), ("account.name", "A-z_0.9"), ("market.symbols", ["A", "ABCDEF"]),
    ("market.symbols", [f"S{chr(65 + i)}" for i in range(10)]), ("market.source", "./chains/spx.csv"),
    ("market.source", "/abs/dir"), *[("market.source", s) for s in ("auto", "store", "modelled", "cboe", "tradier",
                                                                    "polygon")],
    *[("strategy.name", s) for s in STRATEGIES], *[("fills.model", m) for m in ("mid", "natural", "slippage")],
])
def test_strings_and_lists_accepted(name, value, tmp_path):
    knob = KNOBS_BY_NAME[name]
    c = PaperConfig.from_mapping(_one(knob, value))
    got = getattr(c, knob.field)
    assert got == (tuple(value) if isinstance(value, list) else value)
    assert load_config(save_config(c, tmp_path / "p.toml")) == c


# --------------------------------------------------------------------------------------------------
# unknown tables and keys, invalid files


def test_unknown_table_key_and_non_tables(tmp_path):
    p = _file(tmp_path, "[exit]\nprofit_target = 0.5\n")
    with pytest.raises(PaperConfigError, match=r"unknown table \[exit\] .*\[exits\]") as e:
        load_config(p)
    assert str(e.value).startswith(str(p)) and e.value.path == p
    p = _file(tmp_path, "[exits]\nprofit = 0.5\n")
    with pytest.raises(PaperConfigError, match="unknown key `exits.profit` .*profit_target, stop_loss, exit_dte"):
        load_config(p)
    p = _file(tmp_path, "exits = 5\n")
    with pytest.raises(PaperConfigError, match="`exits` = 5: must be a table"):
        load_config(p)
    with pytest.raises(PaperConfigError, match="tables of keys"):
        PaperConfig.from_mapping(["exits"])  # type: ignore[arg-type]


@pytest.mark.parametrize("text, line", [
    ("[exits]\nprofit_target = 0.5\nstop_loss = = 2\n", 3),
    ("[account\nname = 'x'\n", 1),
    ("[market]\nsymbols = ['SPX'\n\n[fills]\n", 4),
    ("# ok\n\n[strategy]\ndte = 45\ndte = 46\n", 5),
    ("[sizing]\ncontracts = 1\n[sizing]\n", 3),
    ("[account]\nname = \"unterminated\n", 2),
])
def test_invalid_toml_names_the_file_and_line(tmp_path, text, line):
    p = _file(tmp_path, text)
    with pytest.raises(PaperConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: not valid TOML at line {line}"), msg
    assert repr(text.splitlines()[line - 1].strip()) in msg
    assert e.value.path == p and isinstance(e.value, PaperError)


def test_unreadable_and_not_utf8(tmp_path):
    with pytest.raises(PaperConfigError, match="cannot read the paper settings"):
        load_config(tmp_path)   # a directory
    p = tmp_path / "paper.toml"
    p.write_bytes(b"[account]\nname = \"\xff\"\n")
    with pytest.raises(PaperConfigError, match="line 2: not UTF-8"):
        load_config(p)


# --------------------------------------------------------------------------------------------------
# the write


def test_a_failing_write_leaves_the_old_file(tmp_path, monkeypatch):
    p = save_config(PaperConfig(cash=5000), tmp_path / "paper.toml")
    before = p.read_bytes()

    def crash(temp, final):
        assert temp.exists() and final == p
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(fs, "_after_temp_write", crash)
    with pytest.raises(OSError, match="simulated"):
        save_config(PaperConfig(cash=9000), p)
    assert p.read_bytes() == before and load_config(p).cash == 5000.0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["paper.toml"]   # no temp file left


def test_save_refuses_an_invalid_config_and_leaves_the_file(tmp_path):
    p = save_config(PaperConfig(), tmp_path / "paper.toml")
    before = p.read_bytes()
    bad = PaperConfig()
    object.__setattr__(bad, "dte", 0)   # patched past its checks
    with pytest.raises(PaperConfigError, match="`strategy.dte` = 0"):
        save_config(bad, p)
    with pytest.raises(PaperConfigError, match="needs a PaperConfig"):
        save_config({"strategy": {}}, p)  # type: ignore[arg-type]
    assert p.read_bytes() == before


# --------------------------------------------------------------------------------------------------
# fuzz: any value for any knob is accepted (and then round-trips) or refused by name; any file text loads or
# is refused with PaperConfigError, never another exception

ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-10**7, 10**10), st.floats(allow_nan=True),
                      st.text(max_size=12), st.lists(st.text(max_size=8), max_size=12),
                      st.lists(st.sampled_from(["SPX", "SPY", "QQQ", "spx", "X1"]), max_size=12))


@given(name=st.sampled_from(sorted(KNOBS_BY_NAME)), value=ANY_VALUE)
@example(name="exits.profit_target", value=0)
@example(name="exits.profit_target", value=False)
@example(name="exits.exit_dte", value=0)
@example(name="account.cash", value=999.999)
@example(name="account.cash", value=10**9)
@example(name="strategy.dte", value=45.0)
@example(name="strategy.long_delta", value=0.3)
@example(name="sizing.bootstrap_risk", value=0.05)
@example(name="market.symbols", value=["SPX", "SPX"])
@example(name="market.source", value="./x.csv")
@example(name="market.source", value="a/\ud800")
@example(name="account.name", value="paper\n")
def test_fuzz_one_value(tmp_path_factory, name, value):
    knob = KNOBS_BY_NAME[name]
    try:
        c = PaperConfig.from_mapping(_one(knob, value))
    except PaperConfigError as exc:
        assert exc.key in KNOBS_BY_NAME and str(exc).startswith("`")
        if exc.key != name:   # only a cross-knob rule may name another key, and then it names this one too
            assert knob.field in RELATED and f"`{name}`" in str(exc)
        return
    got = getattr(c, knob.field)
    assert got == knob.check(value)
    p = save_config(c, tmp_path_factory.mktemp("fuzz") / "p.toml")
    assert load_config(p) == c


TOKENS = [*"[]=\"'#.,\n _-01235aeprstxz", "exits", "profit_target", "dte", "strategy", "true", "false", "1e3", "inf"]


@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
@example("[exits]\nprofit_target = 0.5\n")
@example("[strategy]\ndte = 1e3\n")
@example("[[exits]]\n")
@example('exits.profit_target = "0.5"\n')
def test_fuzz_file_text(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("fuzztext") / "paper.toml"
    p.write_text(text, encoding="utf-8")
    try:
        c = load_config(p)
    except PaperConfigError as exc:
        assert str(exc).startswith(str(p))
        return
    assert isinstance(c, PaperConfig)


@given(st.text(max_size=30))
@example('a "quoted" \\ back\tslash\x00\x7f\U0001f600\u2028')
def test_toml_value_round_trips_text(text):
    assert tomllib.loads(f"v = {toml_value(text)}")["v"] == text
