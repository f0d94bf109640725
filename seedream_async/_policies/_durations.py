"""Distributions of prediction durations, as the poll schedules' dynamic programming needs them.

From a parametric lognormal (:meth:`Durations.lognormal`) or from observed samples
(:meth:`Durations.empirical`, optionally smoothed by a log-normal kernel whose bandwidth is
Silverman's rule of thumb, :func:`silverman`, so a few hundred samples do not teach the
schedule to poll exactly where past samples happened to land). Pure arithmetic, no I/O.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Durations", "silverman"]

_SQRT2 = math.sqrt(2.0)
# Spreads past which a kernel component counts as wholly below or above a point (Phi(8.5)
# rounds to 1 in double precision; Phi(-8.5) is about 1e-17).
_CUTOFF = 8.5


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


@dataclass(frozen=True, eq=False)
class Durations:
    """A distribution of prediction durations, in seconds, as the DP needs it.

    Build one with :meth:`lognormal` or :meth:`empirical`.

    Args:
        cdf: ``P(T <= t)``.
        partial_mean: ``E[T * 1{T <= t}]``.
        mean: ``E[T]``.
        quantile: the inverse of ``cdf``.
        key: a hashable description, for caching solved schedules.
    """

    cdf: Callable[[float], float]
    partial_mean: Callable[[float], float]
    mean: float
    quantile: Callable[[float], float]
    key: tuple[object, ...]

    # Equal descriptions are equal distributions, so solved tables are shared (lru_cache).
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Durations) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    @classmethod
    def lognormal(cls, median: float, sigma: float) -> Durations:
        """Durations ``T = median * exp(sigma * Z)`` with ``Z`` standard normal.

        Args:
            median: the median duration, seconds (> 0).
            sigma: the spread of ``log T`` (>= 0; 0 is a fixed duration).
        """
        if median <= 0 or sigma < 0:
            raise ValueError("a lognormal needs median > 0 and sigma >= 0")
        if sigma == 0:
            return cls.empirical([median])
        mu = math.log(median)
        mean = math.exp(mu + sigma * sigma / 2)

        def cdf(t: float) -> float:
            return 0.0 if t <= 0 else _phi((math.log(t) - mu) / sigma)

        def partial_mean(t: float) -> float:
            # E[T 1{T<=t}] = E[T] * Phi((ln t - mu - sigma^2) / sigma) for a lognormal.
            return 0.0 if t <= 0 else mean * _phi((math.log(t) - mu - sigma * sigma) / sigma)

        def quantile(p: float) -> float:
            return math.exp(mu + sigma * _SQRT2 * _erfinv(2.0 * p - 1.0))

        return cls(cdf, partial_mean, mean, quantile, ("lognormal", median, sigma))

    @classmethod
    def empirical(cls, samples: Sequence[float], *, smoothing: float = 0.0) -> Durations:
        """The distribution of observed ``samples`` (seconds, > 0).

        Args:
            samples: observed durations.
            smoothing: the bandwidth, in ``log`` seconds, of a log-normal kernel around
                each sample (0 keeps the raw step function). :func:`silverman` gives a
                sensible value for a sample.
        """
        values = sorted(float(v) for v in samples if v > 0)
        if not values:
            raise ValueError("empirical durations need at least one positive sample")
        count = len(values)
        if smoothing > 0:
            return _kernel(values, smoothing)
        prefix = [0.0]
        for value in values:
            prefix.append(prefix[-1] + value)

        def cdf(t: float) -> float:
            return bisect.bisect_right(values, t) / count

        def partial_mean(t: float) -> float:
            return prefix[bisect.bisect_right(values, t)] / count

        def quantile(p: float) -> float:
            return values[min(count - 1, max(0, math.ceil(p * count) - 1))]

        return cls(cdf, partial_mean, prefix[-1] / count, quantile, ("empirical", *values))


def silverman(samples: Sequence[float]) -> float:
    """Silverman's rule-of-thumb bandwidth for a kernel over ``log`` of ``samples``."""
    logs = [math.log(v) for v in samples if v > 0]
    if len(logs) < 2:
        return 0.0
    mean = sum(logs) / len(logs)
    spread = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    return 1.06 * spread * math.pow(len(logs), -0.2)


def _kernel(values: list[float], bandwidth: float) -> Durations:
    """A mixture of lognormals of spread ``bandwidth``, one centred on each sample.

    The samples are first binned in ``log`` space (bins a third of the bandwidth wide,
    which moves no kernel by more than a sixth of its spread), then the mixture is
    tabulated once on a fine grid (cdf and partial mean, interpolated linearly): building
    it costs O(bins x table) whatever the sample size, reading it O(log table)."""
    width = bandwidth / 3
    bins: dict[int, int] = {}
    for value in values:
        index = round(math.log(value) / width)
        bins[index] = bins.get(index, 0) + 1
    centres = [(index * width, count / len(values)) for index, count in sorted(bins.items())]
    low = math.exp(centres[0][0] - 5 * bandwidth)
    high = math.exp(centres[-1][0] + 5 * bandwidth)
    size = 240
    step = math.log(high / low) / (size - 1)
    points = [0.0] + [low * math.exp(step * i) for i in range(size)]
    cdfs, partials = _tabulate(points[1:], centres, bandwidth)
    cdfs.insert(0, 0.0)
    partials.insert(0, 0.0)
    shift = math.exp(bandwidth * bandwidth / 2)
    mean = sum(weight * math.exp(log_x) for log_x, weight in centres) * shift

    def interpolate(table: list[float], t: float) -> float:
        if t >= points[-1]:
            return 1.0 if table is cdfs else mean
        index = bisect.bisect_right(points, t)
        if index <= 0:
            return 0.0
        t0, t1 = points[index - 1], points[index]
        v0, v1 = table[index - 1], table[index]
        return float(v0 + (v1 - v0) * (t - t0) / (t1 - t0))

    def quantile(p: float) -> float:
        index = bisect.bisect_left(cdfs, p)
        if index >= len(points):
            return points[-1]
        if index == 0:
            return 0.0
        c0, c1 = cdfs[index - 1], cdfs[index]
        t0, t1 = points[index - 1], points[index]
        return float(t0 + (t1 - t0) * ((p - c0) / (c1 - c0) if c1 > c0 else 1.0))

    return Durations(
        lambda t: interpolate(cdfs, t),
        lambda t: interpolate(partials, t),
        mean,
        quantile,
        ("kernel", bandwidth, *values),
    )


def _tabulate(
    points: Sequence[float], centres: Sequence[tuple[float, float]], bandwidth: float
) -> tuple[list[float], list[float]]:
    """The cdf and partial mean, at each of ``points`` (> 0, increasing), of a mixture of
    lognormals of spread ``bandwidth`` centred on ``centres`` (``(log x, weight)``, in
    increasing ``log x``).

    A component more than ``_CUTOFF`` spreads away from a point adds exactly its whole
    weight (its ``Phi`` rounds to 1) or next to nothing (under 1e-17 of its weight) there,
    so only the window of components within reach is evaluated (two pointers, as the
    points increase), the ones below it taken whole from prefix sums: the same values as
    summing every component, to rounding, for a fraction of the ``erf`` calls."""
    logs = [log_x for log_x, _ in centres]
    weights = [weight for _, weight in centres]
    shift = math.exp(bandwidth * bandwidth / 2)
    masses = [weight * math.exp(log_x) * shift for log_x, weight in centres]
    below_weight = list(itertools.accumulate(weights, initial=0.0))
    below_mass = list(itertools.accumulate(masses, initial=0.0))
    scale = 1.0 / (bandwidth * _SQRT2)  # Phi(z) = (1 + erf(z / sqrt 2)) / 2
    lag = bandwidth / _SQRT2  # the partial mean's Phi is at z - bandwidth
    # Below: Phi(z - bandwidth) >= Phi(_CUTOFF) (so both round to 1); above: Phi(z) <= 1e-17.
    whole, reach = bandwidth * (_CUTOFF + bandwidth), bandwidth * _CUTOFF
    cdfs: list[float] = []
    partials: list[float] = []
    lo = hi = 0
    erf, mul = math.erf, operator.mul
    for t in points:
        lt = math.log(t)
        while lo < len(logs) and logs[lo] <= lt - whole:
            lo += 1
        while hi < len(logs) and logs[hi] < lt + reach:
            hi += 1
        args = [(lt - log_x) * scale for log_x in logs[lo:hi]]
        window_weight = below_weight[hi] - below_weight[lo]
        window_mass = below_mass[hi] - below_mass[lo]
        cdf = window_weight + sum(map(mul, weights[lo:hi], map(erf, args)))
        partial = window_mass + sum(map(mul, masses[lo:hi], map(erf, [a - lag for a in args])))
        cdfs.append(below_weight[lo] + 0.5 * cdf)
        partials.append(below_mass[lo] + 0.5 * partial)
    return cdfs, partials


def _erfinv(y: float) -> float:
    """The inverse error function, by Newton steps from Giles' single-precision start."""
    if y <= -1.0:
        return -math.inf
    if y >= 1.0:
        return math.inf
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w -= 2.5
        x = 2.81022636e-08
        for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                  -0.00125372503, -0.00417768164, 0.246640727, 1.50140941):  # fmt: skip
            x = c + x * w
    else:
        w = math.sqrt(w) - 3.0
        x = -0.000200214257
        for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                  -0.0076224613, 0.00943887047, 1.00167406, 2.83297682):  # fmt: skip
            x = c + x * w
    x *= y
    for _ in range(2):
        x -= (math.erf(x) - y) / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
    return x
