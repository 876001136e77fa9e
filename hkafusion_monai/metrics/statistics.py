"""Paired comparisons of two fusion methods scored on the same pairs (the benchmark and the HTML report): SciPy's
paired bootstrap (``scipy.stats.bootstrap(..., paired=True)``) with a fixed seed, so every report repeats.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["LOWER_IS_BETTER", "paired_bootstrap_ci", "paired_comparison"]

#: the metrics where a lower value is better (Qcv: the Chen-Varshney distortion)
LOWER_IS_BETTER = frozenset({"Qcv"})


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The mean paired difference ``mean(a - b)`` and its percentile bootstrap confidence interval.

    ``scipy.stats.bootstrap((a, b), ..., paired=True, method="percentile")``: SciPy draws ``n_boot`` resamples
    of the pair indices with replacement (so each pair's two scores stay together: both methods saw the same
    image pair), takes ``mean(a - b)`` of each and returns the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` percentiles of those means; its generator is ``numpy.random.default_rng(seed)``.
    The checks of the inputs below are ours, for a message that names the function.

    Args:
        a: per-pair scores of one method, shape (N,).
        b: per-pair scores of the other method on the same pairs, shape (N,).
        n_boot: bootstrap resamples.
        confidence: the interval's coverage, e.g. 0.95.
        seed: the resampling seed.

    Returns:
        ``(mean_difference, low, high)``.

    Raises:
        ValueError: different lengths, fewer than two pairs, or non-finite scores.
    """
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired_bootstrap_ci: {a.size} scores against {b.size}; the pairs must match")
    if a.size < 2:
        raise ValueError("paired_bootstrap_ci: needs at least two pairs")
    d = a - b
    if not np.isfinite(d).all():
        raise ValueError("paired_bootstrap_ci: non-finite scores")
    interval = stats.bootstrap(
        (a, b),
        _mean_difference,
        paired=True,
        vectorized=True,
        n_resamples=n_boot,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return float(d.mean()), float(interval.low), float(interval.high)


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    mean: np.ndarray = np.mean(a - b, axis=axis)
    return mean


def paired_comparison(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, metric: str
) -> tuple[float, float, float, int]:
    """:func:`paired_bootstrap_ci` of ``a - b`` plus a verdict for ``metric``: ``1`` when the 95 % interval
    excludes 0 in favour of ``a`` (higher, or lower for :data:`LOWER_IS_BETTER`), ``-1`` against it, ``0``
    when it includes 0."""
    d, low, high = paired_bootstrap_ci(a, b)
    lower = metric in LOWER_IS_BETTER
    if (high < 0) if lower else (low > 0):
        return d, low, high, 1
    if (low > 0) if lower else (high < 0):
        return d, low, high, -1
    return d, low, high, 0
