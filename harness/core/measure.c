/* measure.c: the sample loop and the stop rule (measure.h). */
#define _XOPEN_SOURCE 700 /* CLOCK_THREAD_CPUTIME_ID */
#include "measure.h"

#include <math.h>
#include <string.h>
#include <time.h>

stop_rule_t stop_rule_default(int warmup, int repeat, double budget_ms) {
    stop_rule_t r = {warmup, repeat < 1 ? 1 : repeat, MEASURE_MAX_SAMPLES, budget_ms, 0.005, 10};
    if (r.min_samples > r.max_samples) r.min_samples = r.max_samples;
    return r;
}

stop_rule_t stop_rule_fixed(int warmup, int n) {
    if (n < 1) n = 1;
    if (n > MEASURE_MAX_SAMPLES) n = MEASURE_MAX_SAMPLES;
    stop_rule_t r = {warmup, n, n, 0, 0, 0};
    return r;
}

double measure_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double measure_thread_cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int warm_up(const stop_rule_t *r, const sampler_t *s) {
    for (int i = 0; i < r->warmup; i++) {
        double ms, mhz;
        if (s->warm ? s->warm(s->ctx) : s->sample(s->ctx, &ms, &mhz)) return -1;
    }
    return 0;
}

static int take(const sampler_t *s, measurement_t *m) {
    double ms = NAN, mhz = NAN;
    if (s->sample(s->ctx, &ms, &mhz)) return -1;
    m->ms[m->n++] = ms;
    if (mhz == mhz) m->mhz[m->n_mhz++] = mhz;
    return 0;
}

/* Whether m has enough samples by r, started at start_ms. */
static int enough(const stop_rule_t *r, const measurement_t *m, double start_ms) {
    if (m->n >= r->max_samples) return 1;
    if (m->n < r->min_samples) return 0;
    if (r->min_samples == r->max_samples) return 1;
    if (measure_now_ms() - start_ms >= r->budget_ms) return 1;
    if (r->target_stdrel > 0 && r->check_every > 0 && m->n % r->check_every == 0) {
        double sorted[MEASURE_MAX_SAMPLES];
        memcpy(sorted, m->ms, sizeof(double) * (size_t)m->n);
        if (stats_compute(sorted, m->n).stdrel < r->target_stdrel) return 1;
    }
    return 0;
}

static void summarise(measurement_t *m) {
    double sorted[MEASURE_MAX_SAMPLES];
    memcpy(sorted, m->ms, sizeof(double) * (size_t)m->n);
    m->time = stats_compute(sorted, m->n);
    memset(&m->clock, 0, sizeof m->clock);
    m->mhz_lo = m->mhz_hi = NAN;
    if (m->n_mhz > 0) {
        memcpy(sorted, m->mhz, sizeof(double) * (size_t)m->n_mhz);
        m->clock = stats_compute(sorted, m->n_mhz);
        m->mhz_lo = sorted[0];
        m->mhz_hi = sorted[m->n_mhz - 1];
    }
}

int measure_run(const stop_rule_t *r, const sampler_t *s, measurement_t *m) {
    m->n = m->n_mhz = 0;
    if (warm_up(r, s)) return -1;
    const double start = measure_now_ms();
    do {
        if (take(s, m)) return -1;
    } while (!enough(r, m, start) && !(s->stop && s->stop(s->ctx)));
    summarise(m);
    return 0;
}

int measure_interleaved(const stop_rule_t *r, const sampler_t *s, int n, measurement_t *m, int *ok) {
    int live = 0;
    for (int i = 0; i < n; i++) {
        m[i].n = m[i].n_mhz = 0;
        ok[i] = warm_up(r, &s[i]) == 0;
        live += ok[i];
    }
    for (int round = 0; round < r->min_samples && live > 0; round++)
        for (int i = 0; i < n; i++)
            if (ok[i] && take(&s[i], &m[i])) {
                ok[i] = 0;
                live--;
            }
    for (int i = 0; i < n; i++)
        if (ok[i]) summarise(&m[i]);
    return live;
}
