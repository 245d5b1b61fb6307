"""Small statistics helpers: percentiles, medians over repetitions, and their JSON form."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["median", "percentile", "spread", "summary"]


def percentile(values: Sequence[float], pct: float) -> float:
    """The *pct*-th percentile by linear interpolation between closest ranks.

    :param values: the samples (any order; at least one).
    :param pct: 0 to 100.
    :returns: the percentile.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Iterable[float]) -> float:
    """The median (NaN for no values, so that a skipped part never crashes a report)."""
    items = list(values)
    return statistics.median(items) if items else math.nan


def spread(values: Iterable[float]) -> tuple[float, float]:
    """``(min, max)``, NaNs for no values."""
    items = list(values)
    return (min(items), max(items)) if items else (math.nan, math.nan)


def summary(per_rep: Sequence[float]) -> dict[str, Any]:
    """The JSON form of one figure: the median over repetitions, its range and the values."""
    low, high = spread(per_rep)
    return {"median": median(per_rep), "min": low, "max": high, "reps": list(per_rep)}
