/* ref_grad_conv.c: double-precision backward references for long_conv and
 * short_long_conv (see ref_grad_conv.h for the formulas).
 *
 * Direct summation in plain loops, one (b, c) row at a time: these run at small
 * shapes only, so clarity beats speed, and an FFT would share rounding behaviour
 * with the GPU code they are meant to check. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "shape.h"
#include "ref_grad_conv.h"

static int min_int(int a, int b) { return a < b ? a : b; }

/* y[t] = sum_{j < min(len, t+1)} k[j] x[t-j]: one row of a causal conv. */
static void causal_conv_row(const double *x, int T, const double *k, int len, double *y) {
    for (int t = 0; t < T; t++) {
        double acc = 0.0;
        for (int j = 0; j <= t && j < len; j++) acc += k[j] * x[t - j];
        y[t] = acc;
    }
}

/* out[s] = sum_{j < len, s+j < T} k[j] g[s+j]: the transpose of causal_conv_row,
 * i.e. the gradient of sum_t g[t] y[t] with respect to x. */
static void causal_corr_row(const double *g, int T, const double *k, int len, double *out) {
    for (int s = 0; s < T; s++) {
        double acc = 0.0;
        for (int j = 0; j < len && s + j < T; j++) acc += k[j] * g[s + j];
        out[s] = acc;
    }
}

/* dk[j] += sum_{t>=j} x[t-j] g[t] for j < min(len, T): the gradient of
 * sum_t g[t] y[t] with respect to the taps; taps j >= T reach no output, so they
 * are left untouched (0 after the caller's clear). */
static void kernel_grad_row_add(const double *x, const double *g, int T, int len, double *dk) {
    const int taps = min_int(len, T);
    for (int j = 0; j < taps; j++) {
        double acc = 0.0;
        for (int t = j; t < T; t++) acc += x[t - j] * g[t];
        dk[j] += acc;
    }
}

static double logistic(double p) { return 1.0 / (1.0 + exp(-p)); }
static double silu(double p) { return p * logistic(p); }
/* d/dp [p s(p)] = s(p) + p s(p)(1 - s(p)) = s(p)(1 + p(1 - s(p))). */
static double silu_deriv(double p) {
    const double s = logistic(p);
    return s * (1.0 + p * (1.0 - s));
}

static int shape_ok(int B, int d, int T) { return B > 0 && d > 0 && T > 0; }

int ref_long_conv_fwd_d(int B, int d, int T, const double *x, const double *k, double *y) {
    if (!shape_ok(B, d, T)) BENCH_FAIL("long_conv fwd (double): B, d, T must be positive");
    if (!x || !k || !y) BENCH_FAIL("long_conv fwd (double): null tensor");
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++) {
            const size_t row = ((size_t)b * d + c) * (size_t)T;
            causal_conv_row(x + row, T, k + (size_t)c * T, T, y + row);
        }
    return 0;
}

int ref_long_conv_bwd(int B, int d, int T, const double *x, const double *k, const double *dY,
                      double *dX, double *dK) {
    if (!shape_ok(B, d, T)) BENCH_FAIL("long_conv bwd: B, d, T must be positive");
    if (!x || !k || !dY || !dX || !dK) BENCH_FAIL("long_conv bwd: null tensor");
    memset(dK, 0, (size_t)d * T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++) {
            const size_t row = ((size_t)b * d + c) * (size_t)T;
            causal_corr_row(dY + row, T, k + (size_t)c * T, T, dX + row);
            /* The kernel is shared across the batch, so its gradient sums over b. */
            kernel_grad_row_add(x + row, dY + row, T, T, dK + (size_t)c * T);
        }
    return 0;
}

/* pre = k3 * x and u = SiLU(pre) for one row. */
static void short_conv_silu_row(const double *x, int T, const double *k3c, double *pre,
                                double *u) {
    causal_conv_row(x, T, k3c, 3, pre);
    for (int t = 0; t < T; t++) u[t] = silu(pre[t]);
}

int ref_short_long_conv_fwd_d(int B, int d, int T, const double *x, const double *k3,
                              const double *klong, const double *k3b, const double *km,
                              double *z) {
    if (!shape_ok(B, d, T)) BENCH_FAIL("short_long_conv fwd (double): B, d, T must be positive");
    if (!x || !k3 || !klong || !k3b || !km || !z)
        BENCH_FAIL("short_long_conv fwd (double): null tensor");
    const int k_m = shape_km(T);
    double *buf = malloc(4 * (size_t)T * sizeof(double));
    if (!buf) BENCH_FAIL("short_long_conv fwd (double): out of host memory (T = %d)", T);
    double *pre = buf, *u = buf + T, *z3 = buf + 2 * (size_t)T, *zm = buf + 3 * (size_t)T;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++) {
            const size_t row = ((size_t)b * d + c) * (size_t)T;
            short_conv_silu_row(x + row, T, k3 + (size_t)c * 3, pre, u);
            /* Branches kept separate (the training form), so the merge in the
             * backward is tested against it rather than assumed. */
            causal_conv_row(u, T, klong + (size_t)c * T, T, z + row);
            causal_conv_row(u, T, k3b + (size_t)c * 3, 3, z3);
            causal_conv_row(u, T, km + (size_t)c * k_m, k_m, zm);
            for (int t = 0; t < T; t++) z[row + t] += z3[t] + zm[t];
        }
    free(buf);
    return 0;
}

int ref_short_long_conv_bwd(int B, int d, int T, const double *x, const double *k3,
                            const double *klong, const double *k3b, const double *km,
                            const double *dZ, double *dX, double *dk3, double *dklong,
                            double *dk3b, double *dkm) {
    if (!shape_ok(B, d, T)) BENCH_FAIL("short_long_conv bwd: B, d, T must be positive");
    if (!x || !k3 || !klong || !k3b || !km || !dZ || !dX || !dk3 || !dklong || !dk3b || !dkm)
        BENCH_FAIL("short_long_conv bwd: null tensor");
    const int k_m = shape_km(T);
    double *buf = malloc(5 * (size_t)T * sizeof(double));
    if (!buf) BENCH_FAIL("short_long_conv bwd: out of host memory (T = %d)", T);
    double *pre = buf, *u = buf + T, *kc = buf + 2 * (size_t)T, *dU = buf + 3 * (size_t)T,
           *dpre = buf + 4 * (size_t)T;

    memset(dk3, 0, (size_t)d * 3 * sizeof(double));
    /* dklong is dKc itself (the long kernel covers every tap), so it is the
     * accumulator and the two short branches are sliced from it at the end. */
    memset(dklong, 0, (size_t)d * T * sizeof(double));
    for (int c = 0; c < d; c++) {
        /* Merged kernel of this channel; taps of k3b / km beyond T reach no output. */
        for (int j = 0; j < T; j++) kc[j] = klong[(size_t)c * T + j];
        for (int j = 0; j < min_int(3, T); j++) kc[j] += k3b[(size_t)c * 3 + j];
        for (int j = 0; j < min_int(k_m, T); j++) kc[j] += km[(size_t)c * k_m + j];
        for (int b = 0; b < B; b++) {
            const size_t row = ((size_t)b * d + c) * (size_t)T;
            short_conv_silu_row(x + row, T, k3 + (size_t)c * 3, pre, u);
            causal_corr_row(dZ + row, T, kc, T, dU);
            kernel_grad_row_add(u, dZ + row, T, T, dklong + (size_t)c * T);
            for (int t = 0; t < T; t++) dpre[t] = dU[t] * silu_deriv(pre[t]);
            causal_corr_row(dpre, T, k3 + (size_t)c * 3, 3, dX + row);
            kernel_grad_row_add(x + row, dpre, T, 3, dk3 + (size_t)c * 3);
        }
    }
    for (int c = 0; c < d; c++) {
        const double *dkc = dklong + (size_t)c * T;
        for (int j = 0; j < 3; j++) dk3b[(size_t)c * 3 + j] = j < T ? dkc[j] : 0.0;
        for (int j = 0; j < k_m; j++) dkm[(size_t)c * k_m + j] = j < T ? dkc[j] : 0.0;
    }
    free(buf);
    return 0;
}
