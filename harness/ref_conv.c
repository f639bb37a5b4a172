/* ref_conv.c: CPU references for the causal depthwise convolutions.
 *
 * Direct summation, never an FFT: the FFT is what the GPU baselines use, so the
 * oracle must not share its rounding behaviour.  Each sampled output of the long
 * convolution costs t+1 multiply-adds (ops.c's lc_cost); the short-long conv
 * first computes u = SiLU(k3 * x) for the sampled channel up to the last sampled
 * t, then sums its three branches (the training form), so comparing it with the
 * reparameterized kernel (ref_reparam_kernel) tests the merge. */
#include <stdlib.h>

#include "bench_check.h"
#include "reference_extra.h"

void ref_causal_conv_row(const double *x, int T, const double *k, int len, double *y) {
    /* Tap-major (an axpy per tap) so both inner streams are contiguous; y[t] still
     * accumulates its taps in order j = 0, 1, ..., the same order as a per-t sum. */
    for (int t = 0; t < T; t++) y[t] = 0.0;
    const int taps = len < T ? len : T;
    for (int j = 0; j < taps; j++) {
        const double kj = k[j];
        for (int t = j; t < T; t++) y[t] += kj * x[t - j];
    }
}

void ref_reparam_kernel(int d, int T, const float *k_long, const float *k3b, const float *km,
                        int k_m, double *kc) {
    for (int c = 0; c < d; c++) {
        const float *kl = k_long + (size_t)c * T;
        double *out = kc + (size_t)c * T;
        for (int j = 0; j < T; j++) out[j] = (double)kl[j];
        /* Taps beyond T are never reached by a length-T causal conv: drop them. */
        for (int j = 0; j < 3 && j < T; j++) out[j] += (double)k3b[(size_t)c * 3 + j];
        for (int j = 0; j < k_m && j < T; j++) out[j] += (double)km[(size_t)c * k_m + j];
    }
}

/* sum_{j<n} k[j] x_t[-j]: one output of a causal conv, x_t pointing at x[t].
 * Four partial sums because a single accumulator's add latency, not the
 * multiplies, bounds the plain loop (2-2.7x slower at T = 2k, -O2); only the
 * rounding order changes, and it stays double. */
#define REVERSE_DOT_BODY                                                             \
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;                                   \
    int j = 0;                                                                       \
    for (; j + 4 <= n; j += 4) {                                                     \
        a0 += (double)k[j] * (double)x_t[-j];                                        \
        a1 += (double)k[j + 1] * (double)x_t[-j - 1];                                \
        a2 += (double)k[j + 2] * (double)x_t[-j - 2];                                \
        a3 += (double)k[j + 3] * (double)x_t[-j - 3];                                \
    }                                                                                \
    for (; j < n; j++) a0 += (double)k[j] * (double)x_t[-j];                         \
    return (a0 + a1) + (a2 + a3)

static double reverse_dot_f(const float *k, const float *x_t, int n) { REVERSE_DOT_BODY; }
static double reverse_dot_d(const float *k, const double *x_t, int n) { REVERSE_DOT_BODY; }

/* sum_{j < min(len, t+1)} k[j] u[t-j], float taps on a double signal. */
static double tap_sum(const float *k, int len, const double *u, int t) {
    return reverse_dot_d(k, u + t, len < t + 1 ? len : t + 1);
}

static int conv_shape_ok(const shape_t *s) { return s->B > 0 && s->T > 0 && s->d > 0; }

int ref_long_conv(const shape_t *s, const float *const *in, const sample_t *smp, double *out) {
    if (!conv_shape_ok(s)) BENCH_FAIL("long_conv: B, T, d must be positive");
    const char *bad = ref_sample_problem(smp, s->B, s->T, s->d);
    if (bad) BENCH_FAIL("long_conv: %s", bad);

    const size_t T = (size_t)s->T, n = (size_t)smp->n_col;
    for (int si = 0; si < smp->n_seq; si++) {
        for (int ci = 0; ci < smp->n_col; ci++) {
            const int c = smp->col[ci];
            const float *x = in[0] + ((size_t)smp->seq[si] * s->d + c) * T;
            const float *k = in[1] + (size_t)c * T;
            for (int ti = 0; ti < smp->n_t; ti++) {
                const int t = smp->t[ti];
                out[((size_t)si * smp->n_t + ti) * n + ci] = reverse_dot_f(k, x + t, t + 1);
            }
        }
    }
    return 0;
}

int ref_short_long_conv(const shape_t *s, const float *const *in, const sample_t *smp,
                        double *out) {
    if (!conv_shape_ok(s)) BENCH_FAIL("short_long_conv: B, T, d must be positive");
    const char *bad = ref_sample_problem(smp, s->B, s->T, s->d);
    if (bad) BENCH_FAIL("short_long_conv: %s", bad);
    if (smp->n_seq == 0 || smp->n_t == 0 || smp->n_col == 0) return 0;

    const int k_m = shape_km(s->T);
    const int rows = smp->t[smp->n_t - 1] + 1; /* u is needed up to the last sampled t */
    double *buf = malloc(2 * (size_t)rows * sizeof(double));
    if (!buf) BENCH_FAIL("short_long_conv reference: out of host memory (%d doubles)", 2 * rows);
    double *xd = buf, *u = buf + rows;

    const size_t T = (size_t)s->T, n = (size_t)smp->n_col;
    const float *k3 = in[1], *k_long = in[2], *k3b = in[3], *km = in[4];
    for (int si = 0; si < smp->n_seq; si++) {
        for (int ci = 0; ci < smp->n_col; ci++) {
            const int c = smp->col[ci];
            const float *x = in[0] + ((size_t)smp->seq[si] * s->d + c) * T;
            const double k3c[3] = {k3[3 * (size_t)c], k3[3 * (size_t)c + 1], k3[3 * (size_t)c + 2]};
            for (int t = 0; t < rows; t++) xd[t] = (double)x[t];
            ref_causal_conv_row(xd, rows, k3c, 3, u);
            for (int t = 0; t < rows; t++) u[t] = ref_silu(u[t]);
            for (int ti = 0; ti < smp->n_t; ti++) {
                const int t = smp->t[ti];
                const double z_long = tap_sum(k_long + (size_t)c * T, s->T, u, t);
                const double z_3 = tap_sum(k3b + (size_t)c * 3, 3, u, t);
                const double z_m = tap_sum(km + (size_t)c * k_m, k_m, u, t);
                out[((size_t)si * smp->n_t + ti) * n + ci] = z_long + z_3 + z_m;
            }
        }
    }
    free(buf);
    return 0;
}
