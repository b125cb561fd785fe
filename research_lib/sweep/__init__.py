"""Parameter sweeps: a grid of backtest parameters run as one backtest each, locally or on a Dask cluster, with
walk-forward evaluation and the deflated Sharpe ratio of the best configuration.

- :mod:`.grid` — the grid file (TOML), its validation and its expansion into configurations;
- :mod:`.engines` — the shared inputs (read once) and one configuration's run (``chains`` or ``history``);
- :mod:`.store` — the resumable output folder and the results tables;
- :mod:`.runner` — :func:`~research_lib.sweep.runner.run_sweep`: serial, a local process pool, or Dask;
- :mod:`.walkforward` — choose in sample, report out of sample, roll (pure);
- :mod:`.deflated` — the probabilistic and deflated Sharpe ratios (pure).
"""
