"""Paired comparisons of two fusion methods scored on the same pairs (the benchmark and the HTML report).

Written here rather than taken from SciPy (``scipy.stats.bootstrap``) to keep SciPy out of the core
requirements for one percentile bootstrap; it is a dozen lines with a fixed seed, so every report repeats.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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

    Pairs are resampled with replacement, keeping each pair's two scores together (both methods saw the same
    image pair), ``n_boot`` times with a fixed ``seed``.

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
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(d.mean()), float(low), float(high)


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
