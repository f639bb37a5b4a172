/* measure.h: the one way chela-bench takes timed samples.
 *
 * A sampler says how to take one sample (the caller's work around it: a cold-L2 sweep,
 * CUDA events, the SM clock stamps, or a CPU clock); the stop rule says how many: at least
 * min_samples, then more until the spread is small or the budget is spent, never more than
 * max_samples.  The runner (GPU and CPU backends), the ceiling measurement and the GEMM
 * tuner all measure through here, so a change of method happens once.  Pure C: no CUDA. */
#ifndef CHELA_MEASURE_H
#define CHELA_MEASURE_H

#include "stats.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MEASURE_MAX_SAMPLES 1000

typedef struct {
    int warmup;           /* untimed calls before the first sample                       */
    int min_samples;      /* at least this many (1 <= min_samples)                        */
    int max_samples;      /* at most this many (<= MEASURE_MAX_SAMPLES)                   */
    double budget_ms;     /* past min_samples: stop once this much wall time has passed
                           * since the first sample ...                                   */
    double target_stdrel; /* ... or once the relative spread is under this (checked every
                           * check_every samples; 0: never)                               */
    int check_every;
} stop_rule_t;

/* The harness's rule: warmup, then at least `repeat` samples, then until the spread is
 * under 0.5 % (checked every 10) or budget_ms is spent. */
stop_rule_t stop_rule_default(int warmup, int repeat, double budget_ms);
/* Exactly n samples after one warm-up (the ceilings, the tuner's rounds). */
stop_rule_t stop_rule_fixed(int warmup, int n);

typedef struct {
    /* One timed sample: 0 with *ms (and *mhz, NaN when the sampler reads no clock), or -1
     * (an error; its reason is the caller's, e.g. bench_set_error). */
    int (*sample)(void *ctx, double *ms, double *mhz);
    /* One untimed call (warm-up); NULL: a sample whose time is dropped. */
    int (*warm)(void *ctx);
    /* Nonzero when the sampling should stop now (a stop signal); NULL: never. */
    int (*stop)(void *ctx);
    void *ctx;
} sampler_t;

typedef struct {
    int n, n_mhz;
    double ms[MEASURE_MAX_SAMPLES];
    double mhz[MEASURE_MAX_SAMPLES];
    stats_t time;  /* of ms (sorted copy: ms keeps sample order) */
    stats_t clock; /* of mhz, n = 0 when no sample read a clock */
    double mhz_lo, mhz_hi;
} measurement_t;

/* Samples s by rule r into m.  Returns 0 (m->n >= 1; fewer than min_samples only when
 * s->stop asked), or -1 when a call failed. */
int measure_run(const stop_rule_t *r, const sampler_t *s, measurement_t *m);

/* Several samplers measured in turn, one sample each a round (so that a clock ramp or a
 * neighbour's burst favours none of them), each by rule r with fixed counts (its budget and
 * spread check are not used).  A sampler whose call fails is dropped (ok[i] = 0) and the
 * others go on; m[i] for the rest.  Returns the number still ok. */
int measure_interleaved(const stop_rule_t *r, const sampler_t *s, int n, measurement_t *m, int *ok);

/* Wall-clock milliseconds (CLOCK_MONOTONIC). */
double measure_now_ms(void);
/* The calling thread's CPU time in milliseconds: the single-threaded CPU reference's cost
 * without the time it spent preempted. */
double measure_thread_cpu_ms(void);

#ifdef __cplusplus
}
#endif
#endif
