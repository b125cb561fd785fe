r"""The probabilistic and the deflated Sharpe ratio (Bailey & López de Prado): how much of the best
configuration's Sharpe ratio survives the number of configurations tried, the length of the track record and
the returns' skewness and kurtosis.

References: D. H. Bailey and M. López de Prado, "The Sharpe Ratio Efficient Frontier", *Journal of Risk* 15(2),
2012 (the PSR), and "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and
Non-Normality", *Journal of Portfolio Management* 40(5), 2014, pp. 94-107 (the DSR; its numerical example — an
annualised SR of 2.5 found after N = 100 trials whose Sharpe ratios have an annualised variance of 0.5, T = 1250
daily returns, skewness −3, kurtosis 10, 250 sessions a year — gives :math:`SR_0 \approx 0.1132` per day and
DSR ≈ 0.9004; ``tests/test_sweep.py`` reproduces both).

Every formula works on **per-period** (here daily) Sharpe ratios, mean / standard deviation of the returns with
no annualisation; the outputs also give the annualised figures (× √periods_per_year). Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats as sps

from research_lib.errors import SweepStatisticError

#: Euler-Mascheroni constant (the expected maximum of Gaussian draws).
EULER_GAMMA = 0.5772156649015329


def probabilistic_sharpe_ratio(sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    r"""The probability that the true Sharpe ratio exceeds ``sr_benchmark``, given an observed one.

    .. math::

        \mathrm{PSR}(SR^*) = \Phi\left( \frac{(\widehat{SR} - SR^*)\sqrt{T - 1}}
        {\sqrt{1 - \hat\gamma_3 \widehat{SR} + \frac{\hat\gamma_4 - 1}{4} \widehat{SR}^2}} \right)

    Parameters
    ----------
    sr, sr_benchmark : float
        Observed and benchmark Sharpe ratios, **per period** (not annualised).
    n_obs : int
        T, the number of returns (≥ 2).
    skew : float
        :math:`\hat\gamma_3`, the returns' skewness.
    kurtosis : float
        :math:`\hat\gamma_4`, the returns' kurtosis, **not** excess (3 for Gaussian returns).

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    SweepStatisticError
        ``n_obs`` < 2, a non-finite input, or a non-positive variance term (possible only for extreme skewness
        with a large SR).
    """
    for name, v in (("sr", sr), ("sr_benchmark", sr_benchmark), ("skew", skew), ("kurtosis", kurtosis)):
        if not math.isfinite(float(v)):
            raise SweepStatisticError(f"{name} {v!r}: a finite number")
    if int(n_obs) != n_obs or n_obs < 2:
        raise SweepStatisticError(f"n_obs {n_obs!r}: a whole number of returns >= 2")
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not var > 0:
        raise SweepStatisticError(f"the Sharpe ratio's variance term 1 - skew*SR + (kurtosis-1)/4*SR^2 = {var!r} is not "
                         "positive")
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1.0) / math.sqrt(var)
    return float(sps.norm.cdf(z))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    r"""The expected maximum of ``n_trials`` Sharpe ratios whose true value is 0 (the DSR's benchmark
    :math:`SR_0`), in the units of ``sr_variance``'s square root:

    .. math::

        SR_0 = \sqrt{V[\{\widehat{SR}_n\}]}\left( (1 - \gamma)\,\Phi^{-1}\!\left(1 - \frac{1}{N}\right)
        + \gamma\,\Phi^{-1}\!\left(1 - \frac{1}{N e}\right) \right)

    with :math:`\gamma` the Euler-Mascheroni constant. One trial: 0 (no selection).

    Parameters
    ----------
    n_trials : int
        N ≥ 1, the configurations tried.
    sr_variance : float
        The variance of the trials' Sharpe ratios (≥ 0; per period for a per-period :math:`SR_0`).

    Raises
    ------
    SweepStatisticError
        ``n_trials`` < 1 or a negative or non-finite variance.
    """
    if int(n_trials) != n_trials or n_trials < 1:
        raise SweepStatisticError(f"n_trials {n_trials!r}: a whole number >= 1")
    if not math.isfinite(float(sr_variance)) or sr_variance < 0:
        raise SweepStatisticError(f"sr_variance {sr_variance!r}: a finite number >= 0")
    if n_trials == 1:
        return 0.0
    z1 = sps.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = sps.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


@dataclasses.dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of the best configuration.

    Attributes
    ----------
    dsr : float
        The probability that the best configuration's true Sharpe ratio is above :attr:`sr0_annual`, the
        expected maximum of ``n_trials`` zero-skill trials (≥ 0.95: significant at 5%).
    psr_zero : float
        Its probabilistic Sharpe ratio against 0 (no deflation for the trials).
    sr_annual, sr0_annual : float
        The best's Sharpe ratio and the benchmark, annualised (× √periods_per_year).
    sr_per_period, sr0_per_period : float
    n_trials, n_obs : int
    skew, kurtosis : float
        Of the best's returns (kurtosis not excess).
    sr_variance_annual : float
        The variance of the trials' annualised Sharpe ratios (ddof=1).
    periods_per_year : int
    """

    dsr: float
    psr_zero: float
    sr_annual: float
    sr0_annual: float
    sr_per_period: float
    sr0_per_period: float
    n_trials: int
    n_obs: int
    skew: float
    kurtosis: float
    sr_variance_annual: float
    periods_per_year: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def deflated_sharpe_ratio(returns_of_best, sr_all_trials, *, periods_per_year: int = 252) -> DeflatedSharpe:
    r"""The deflated Sharpe ratio of the best configuration of a sweep:
    :math:`\mathrm{DSR} = \mathrm{PSR}(SR_0)` with :math:`SR_0` = :func:`expected_max_sharpe` of the number of
    trials and the variance of their Sharpe ratios.

    Parameters
    ----------
    returns_of_best : array-like
        The best configuration's per-period (daily) returns, fractions; at least 3 and not constant. Its Sharpe
        ratio :math:`\widehat{SR}` = mean / std (ddof=1), skewness and kurtosis (sample moments, kurtosis not
        excess) come from them.
    sr_all_trials : array-like
        The **annualised** Sharpe ratio of every configuration tried (the best's included), all finite; N is
        their count and :math:`V` their variance (ddof=1; 0 with one trial), converted to per period by
        dividing by ``periods_per_year``.
    periods_per_year : int
        Returns a year [252].

    Returns
    -------
    DeflatedSharpe

    Raises
    ------
    SweepStatisticError
        Fewer than 3 returns, constant or non-finite returns, no trial, or a non-finite trial Sharpe ratio.
    """
    r = np.asarray(returns_of_best, dtype=float)
    if r.ndim != 1 or len(r) < 3:
        raise SweepStatisticError(f"returns_of_best: at least 3 returns, got {r.shape}")
    if not np.isfinite(r).all():
        raise SweepStatisticError(f"returns_of_best: {int((~np.isfinite(r)).sum())} non-finite return(s)")
    sd = float(r.std(ddof=1))
    if sd == 0:
        raise SweepStatisticError("returns_of_best: the returns do not vary (Sharpe ratio undefined)")
    trials = np.asarray(sr_all_trials, dtype=float).ravel()
    if not len(trials):
        raise SweepStatisticError("sr_all_trials: no trial")
    if not np.isfinite(trials).all():
        raise SweepStatisticError(f"sr_all_trials: {int((~np.isfinite(trials)).sum())} non-finite Sharpe ratio(s)")
    sr = float(r.mean() / sd)
    skew = float(sps.skew(r))
    kurt = float(sps.kurtosis(r, fisher=False))
    var_annual = float(trials.var(ddof=1)) if len(trials) > 1 else 0.0
    sr0 = expected_max_sharpe(len(trials), var_annual / periods_per_year)
    root = math.sqrt(periods_per_year)
    return DeflatedSharpe(dsr=probabilistic_sharpe_ratio(sr, sr0, len(r), skew, kurt),
                          psr_zero=probabilistic_sharpe_ratio(sr, 0.0, len(r), skew, kurt),
                          sr_annual=sr * root, sr0_annual=sr0 * root, sr_per_period=sr, sr0_per_period=sr0,
                          n_trials=len(trials), n_obs=len(r), skew=skew, kurtosis=kurt,
                          sr_variance_annual=var_annual, periods_per_year=periods_per_year)


__all__ = ["DeflatedSharpe", "EULER_GAMMA", "deflated_sharpe_ratio", "expected_max_sharpe",
           "probabilistic_sharpe_ratio"]
