"""Speed of a paper mark: N open positions (50 by default) marked from one fresh full SPX chain.

Opens N verticals and iron condors in a fresh ledger (a temporary folder) from the chain of one day of the real
2026 archive (``../shared/data/chains/spx_eod_2026-06-12_2026-08-21.parquet``; the synthetic modelled chain when it
is absent), then on a later day's chain times, after the chain is loaded:

(a) ``mark_positions`` alone (the pure join of every leg to the chain and the P&L arithmetic);
(b) one monitor pass: reading the open positions, the marks, recording them with the equity snapshot (one
    ledger transaction, WAL, synchronous=FULL), the exit rules (set so none fires: the pass is the marking);
(c) the chain read itself, for scale.

Issue 14's goal: (b) <= 0.5 s for 50 positions after the chain is loaded. Prints figures (best of ``--repeat``);
asserts nothing. Run: ``.venv/bin/python benchmarks/paper.py [--positions 50] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from research_lib.core.exits import ExitRules  # noqa: E402
from research_lib.paper.broker import SimulatedBroker  # noqa: E402
from research_lib.paper.marks import mark_positions  # noqa: E402
from research_lib.paper.monitor import monitor  # noqa: E402
from research_lib.records.paper import LegOrder, OrderRequest  # noqa: E402
from research_lib.records.paper.ledger import PaperLedger  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "data" / "chains" / "spx_eod_2026-06-12_2026-08-21.parquet"


def _chains():
    from research_lib.data.sources.auto import get_chain

    if ARCHIVE.exists():
        t = time.perf_counter()
        first = get_chain("SPX", ARCHIVE, date="2026-06-15", save=False).snapshot
        load = time.perf_counter() - t
        later = get_chain("SPX", ARCHIVE, date="2026-07-01", save=False).snapshot
        return first, later, load, f"real archive {ARCHIVE.name}"
    from research_lib.data.modelled import modelled_chain

    t = time.perf_counter()
    first = modelled_chain("SPX", spot=5000.0, date="2024-03-04", vix=15.0, rate=0.05, div_yield=0.013)
    load = time.perf_counter() - t
    later = modelled_chain("SPX", spot=5030.0, date="2024-03-11", vix=14.0, rate=0.05, div_yield=0.013)
    return first, later, load, "synthetic modelled chains (../shared absent)"


def _open_positions(ledger: PaperLedger, snap, n: int, rng: np.random.Generator) -> None:
    c = snap.contracts
    c = c[(c["bid"] > 0) & (c["ask"] >= c["bid"]) & (c["root"] == "SPXW")]
    exps = sorted(e for e in c["expiration"].unique() if 20 <= (pd.Timestamp(e) - pd.Timestamp(snap.snapshot_date)).days <= 90)
    broker = SimulatedBroker(ledger)
    for i in range(n):
        exp = exps[i % len(exps)]
        sub = c[c["expiration"] == exp]
        legs = []
        for right, lo, hi in (("P", 0.85, 0.97), ("C", 1.03, 1.12))[: 1 + (i % 2)]:
            side = sub[(sub["right"] == right) & (sub["strike"].between(lo * snap.spot, hi * snap.spot))]
            short, wing = side.sample(2, random_state=int(rng.integers(1 << 30))).itertuples()
            if (right == "P") == (wing.strike > short.strike):
                short, wing = wing, short
            for r, q in ((short, -1), (wing, +1)):
                legs.append(LegOrder(r.root, pd.Timestamp(r.expiration).date(), r.settlement, float(r.strike), right, q,
                                     float(r.bid), float(r.ask), snap.quote_time, snap.source))
        req = OrderRequest(account="bench", client_order_id=f"OPEN-bench-{i}", kind="open", strategy="bench",
                           contracts=1, legs=tuple(legs), created_at=snap.quote_time, max_loss=1000.0)
        ledger.submit_order(req)
        ledger.record_fill(req.client_order_id, broker.submit(req))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    first, later, load, what = _chains()
    print(f"chains: {what}; {len(later.contracts):,} contracts in the marking chain; one chain read {load:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        ledger = PaperLedger(Path(tmp) / "paper.sqlite")
        ledger.ensure_account("bench", 10_000_000.0)
        _open_positions(ledger, first, args.positions, np.random.default_rng(0))
        positions = ledger.open_positions("bench")
        n_legs = sum(len(p.legs) for p in positions)
        off = ExitRules(profit_target=None, stop_loss=None, exit_dte=None)
        broker = SimulatedBroker(ledger)
        pure, full = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            marks = mark_positions(positions, later)
            pure.append(time.perf_counter() - t)
            t = time.perf_counter()
            report = monitor(ledger, "bench", later, broker=broker, rules=off)
            full.append(time.perf_counter() - t)
        missing = sum(bool(m.missing) for m in marks)
        print(f"positions: {len(positions)} ({n_legs} legs); missing legs in the later chain: {missing}")
        print(f"(a) mark_positions:         best {min(pure) * 1e3:7.1f} ms   median {np.median(pure) * 1e3:7.1f} ms")
        print(f"(b) monitor pass (+ ledger): best {min(full) * 1e3:7.1f} ms   median {np.median(full) * 1e3:7.1f} ms"
              f"   goal <= 500 ms: ratio {np.median(full) / 0.5:.3f} of the budget")
        print(f"    marks recorded per pass: {len(report.marks)}; ledger rows of marks: {len(ledger.marks('bench'))}")


if __name__ == "__main__":
    main()
