"""method.py: chela-bench's measuring method in plain Python: the summary statistics
(harness/core/stats.c) and the stop rule with its sample loop (harness/core/measure.c).

The sampler (what one sample is: the L2 sweep, CUDA events around the call) lives in
gpu.py; here a sample is any callable returning milliseconds, so the rule and the
statistics are tested on fake samples without torch.
"""

import math
import time

MAX_SAMPLES = 1000  # MEASURE_MAX_SAMPLES


class Stats:
    """n, median, p10, p90, min, mean, stdrel (sample standard deviation / mean)."""

    __slots__ = ("n", "median", "p10", "p90", "min", "mean", "stdrel")

    def __init__(self, n, median, p10, p90, mn, mean, stdrel):
        self.n, self.median, self.p10, self.p90 = n, median, p10, p90
        self.min, self.mean, self.stdrel = mn, mean, stdrel


def quantile(s, q):
    """Linear-interpolated quantile of the sorted list s, q in [0, 1] (stats_quantile)."""
    n = len(s)
    if n <= 0:
        return math.nan
    pos = q * (n - 1)
    i = math.floor(pos)
    if i >= n - 1:
        return s[n - 1]
    f = pos - i
    return s[i] * (1 - f) + s[i + 1] * f


def compute(samples):
    """stats_compute: the summary of samples (not changed; sorted copy inside)."""
    n = len(samples)
    if n == 0:
        nan = math.nan
        return Stats(0, nan, nan, nan, nan, nan, nan)
    x = sorted(samples)
    total = 0.0
    for v in x:  # summed in sorted order, as stats.c does
        total += v
    mean = total / n
    var = 0.0
    for v in x:
        var += (v - mean) * (v - mean)
    stdrel = math.sqrt(var / (n - 1)) / mean if n > 1 else 0.0
    return Stats(n, quantile(x, 0.5), quantile(x, 0.1), quantile(x, 0.9), x[0], mean, stdrel)


class StopRule:
    """warmup untimed calls, at least min_samples, at most max_samples; past min_samples
    stop once budget_ms of wall time has passed since the first sample or, checked every
    check_every samples, once stdrel < target_stdrel (0: never)."""

    __slots__ = ("warmup", "min_samples", "max_samples", "budget_ms", "target_stdrel", "check_every")

    def __init__(self, warmup, min_samples, max_samples, budget_ms, target_stdrel, check_every):
        self.warmup, self.min_samples, self.max_samples = warmup, min_samples, max_samples
        self.budget_ms, self.target_stdrel, self.check_every = budget_ms, target_stdrel, check_every


def stop_rule_default(warmup, repeat, budget_ms):
    """The harness's rule: warmup, then >= repeat samples, then until stdrel < 0.5 %
    (checked every 10) or budget_ms is spent; never more than 1000."""
    r = StopRule(warmup, max(repeat, 1), MAX_SAMPLES, budget_ms, 0.005, 10)
    if r.min_samples > r.max_samples:
        r.min_samples = r.max_samples
    return r


def stop_rule_fixed(warmup, n):
    """Exactly n samples after warmup calls (the ceilings)."""
    n = min(max(n, 1), MAX_SAMPLES)
    return StopRule(warmup, n, n, 0, 0, 0)


def now_ms():
    return time.monotonic() * 1e3


def _enough(r, samples, start_ms, now):
    n = len(samples)
    if n >= r.max_samples:
        return True
    if n < r.min_samples:
        return False
    if r.min_samples == r.max_samples:
        return True
    if now() - start_ms >= r.budget_ms:
        return True
    if r.target_stdrel > 0 and r.check_every > 0 and n % r.check_every == 0:
        if compute(samples).stdrel < r.target_stdrel:
            return True
    return False


def measure(rule, sample, warm=None, stop=None, now=now_ms):
    """measure_run: warm-up calls (warm(), or a sample whose time is dropped), then
    samples by the rule.  sample() returns milliseconds; stop() true ends the sampling
    early (a signal).  Returns (samples in the order taken, their Stats)."""
    for _ in range(rule.warmup):
        if warm is not None:
            warm()
        else:
            sample()
    start = now()
    samples = []
    while True:
        samples.append(float(sample()))
        if _enough(rule, samples, start, now) or (stop is not None and stop()):
            break
    return samples, compute(samples)
