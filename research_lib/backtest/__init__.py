"""Backtests on real option chains: replay stored days, trade the rules, mark every position.

- :mod:`.feed` — the as-of iterator over one underlying's daily snapshots (a store or a multi-day archive), with
  the trading days the data lacks;
- :mod:`.params` — :class:`~research_lib.backtest.params.BacktestParams`, every knob and its validation in one place;
- :mod:`.fills` — fill prices (mid, natural, mid + a fraction of the half-spread), commissions, tick rounding;
- :mod:`.settlement` — settlement prices of expiring legs (PM: the session close; AM: the opening print);
- :mod:`.engine` — the daily loop: marks, exits, entries (fixed strategies or the regime pipeline's ``decide_on``),
  sizing;
- :mod:`.indexwrite` — the Cboe PutWrite (PUT) and BuyWrite (BXM) methodologies;
- :mod:`.results` — :class:`~research_lib.backtest.results.BacktestResult` (trades, legs, equity tables) and
  :mod:`.stats` its statistics.

Every price a backtest uses is a quote of a chain (``bid``/``ask`` of that leg on that day, named in the legs
table) or a documented settlement value; nothing on day D reads data dated after D.
"""
