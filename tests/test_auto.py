"""source="auto": live provider → local store (stale) → modelled default, and the caller learns which."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import QUOTEDATA, SHARED_DATA, shared_file
from http_server import LoopbackServer, Reply, closed_port_url

from research_lib.data.sources.auto import NoChainAvailableError, get_chain
from research_lib.data.store import ChainStore

SPY_JSON = SHARED_DATA / "api" / "cboe" / "2025-06-08_SPY_options.json.gz"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("RESEARCH_LIB_OFFLINE", "RESEARCH_LIB_PROVIDERS", "TRADIER_TOKEN", "POLYGON_API_KEY",
                "RESEARCH_LIB_CBOE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
    return tmp_path


def _real(path):
    return ["real"] if path.exists() else []


@pytest.mark.parametrize("name", ["synthetic", *_real(SPY_JSON)])
def test_live_cboe_serves_and_is_stored(clean_env, monkeypatch, name, request):
    if name == "real":  # a recorded response
        symbol, route, n = "SPY", "SPY", 9072
        body = json.loads(gzip.decompress(shared_file(SPY_JSON).read_bytes()))
    else:  # the synthetic chain as Cboe would answer
        from fixtures import cboe_json_payload

        chain = request.getfixturevalue("synthetic").chain
        symbol, route, n, body = "SPX", "_SPX", len(chain.contracts), cboe_json_payload(chain)
    with LoopbackServer() as srv:
        srv.route(f"/api/global/delayed_quotes/options/{route}.json", Reply(body=body))
        monkeypatch.setenv("RESEARCH_LIB_CBOE_URL", srv.url)
        served = get_chain(symbol, "auto")
    assert served.served_by == "cboe" and not served.stale and not served.modelled
    assert len(served.snapshot.contracts) == n
    assert "tradier" not in served.describe()  # it served first, nothing was skipped before it
    stored = ChainStore().list(symbol)
    assert len(stored) == 1 and stored["rows"].iloc[0] == n


@pytest.mark.parametrize("name", ["synthetic", *_real(QUOTEDATA / "spx_2024-01-07.csv")])
def test_dead_provider_falls_back_to_the_store_marked_stale(clean_env, monkeypatch, name, request):
    store = ChainStore()
    if name == "real":
        snap = __import__("research_lib.sources", fromlist=["read_chain"]).read_chain(
            shared_file(QUOTEDATA / "spx_2024-01-07.csv"))
        now = pd.Timestamp("2024-01-08 09:00", tz="America/New_York")
    else:
        snap = request.getfixturevalue("synthetic_chain")
        now = snap.quote_time + pd.Timedelta(hours=22, minutes=6)
    store.put(snap)
    monkeypatch.setenv("RESEARCH_LIB_CBOE_URL", closed_port_url())
    served = get_chain("SPX", "auto", now=now)
    assert served.served_by == "store" and served.stale
    assert served.age == now - snap.quote_time
    sources = [a.source for a in served.attempts]
    assert sources[:3] == ["cboe", "tradier", "polygon"]
    assert "Connection" in served.attempts[0].outcome or "connection" in served.attempts[0].outcome
    assert "TRADIER_TOKEN is not set" in served.attempts[1].outcome
    text = served.describe()
    assert "STALE" in text and "22.1 h" in text and "cboe:" in text


@pytest.mark.parametrize("name", ["synthetic", *_real(QUOTEDATA / "spy_2023-09-14.csv")])
def test_explicit_sources(clean_env, name, request):
    if name == "real":
        path, symbol, day = shared_file(QUOTEDATA / "spy_2023-09-14.csv"), "SPY", "2023-09-14"
    else:
        path, symbol, day = request.getfixturevalue("synthetic").files["cboe_csv"], "SPX", "2024-03-06"
    served = get_chain(symbol, str(path))
    assert served.served_by == "file" and served.snapshot.underlying == symbol
    with pytest.raises(NoChainAvailableError, match=f"no {symbol} snapshot in the store"):
        get_chain(symbol, "store")
    ChainStore().put(served.snapshot)
    again = get_chain(symbol, "store", date=day)
    assert again.served_by == "store" and not again.stale
    pd.testing.assert_frame_equal(again.snapshot.contracts, served.snapshot.contracts)


def test_offline_flag_skips_the_network_and_non_spx_has_no_model(clean_env, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    with pytest.raises(NoChainAvailableError) as info:
        get_chain("QQQ", "auto")
    msg = str(info.value)
    assert "RESEARCH_LIB_OFFLINE" in msg and "SPX only" in msg


def test_offline_default_is_the_modelled_chain(clean_env, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    served = get_chain("SPX", "auto")
    assert served.served_by == "modelled" and served.modelled
    assert "MODELLED DATA" in served.describe()
    assert served.snapshot.underlying == "SPX" and len(served.snapshot.contracts) > 5000


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and util-linux unshare to run without a network")
def test_fresh_clone_with_no_network_and_no_shared_data_still_computes_levels(tmp_path):
    """The main job on a machine with no network at all (a new network namespace: no interfaces up)
    and no ../shared: the CLI gets SPX from source=auto, falls through to the modelled chain, and
    says so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESEARCH_LIB", "TRADIER", "POLYGON"))}
    env.update(RESEARCH_LIB_DATA=str(tmp_path / "store"), RESEARCH_LIB_SHARED_DATA=str(tmp_path / "no-shared"),
               RESEARCH_LIB_MARKET_DATA=str(tmp_path / "no-market"))
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare --net is not permitted here: {probe.stderr.decode().strip()}")
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m", "research_lib", "gex", "--source", "auto",
                           "--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["modelled"] is True and record["underlying"] == "SPX"
    assert record["zero_gamma"] is None or record["zero_gamma"] > 0
    assert "MODELLED DATA" in proc.stderr and "cboe:" in proc.stderr  # the failed live attempt is reported
