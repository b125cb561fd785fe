"""Core: pure computation — no file, network or database access.

Chain model and validation (:mod:`.chain`, :mod:`.plausibility`), Black-Scholes-Merton pricing
(:mod:`.pricing`), exposures and key levels (:mod:`.gex`), indicators (:mod:`.indicators`), the market
regime (:mod:`.regime`), strategy selection and legs (:mod:`.strategy`), position sizing (:mod:`.sizing`),
alerts (:mod:`.alerts`), volume profiles of intraday bars (:mod:`.volume_profile`) and the YES/NO edges of binary
prediction markets (:mod:`.binary`). Imports only the foundation modules and other core modules.
"""
