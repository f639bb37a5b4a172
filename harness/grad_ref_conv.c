/* grad_ref_conv.c: sampled double-precision gradients of long_conv and short_long_conv
 * (grad_ref.h), for verifying GPU backwards at any T.
 *
 * The formulas are ref_grad_conv.h's; here each is computed for the sampled elements only,
 * by direct sums (never an FFT: that is what the GPU code does).  Per channel c, with
 * g = dY (or dZ) and causal taps:
 *
 * long_conv (inputs x [B,d,T], k [d,T]):
 *   dX[b,c,s] = sum_{t>=s} k[c,t-s] g[b,c,t]                (T - s) a sampled element
 *   dK[c,j]   = sum_b sum_{t>=j} x[b,c,t-j] g[b,c,t]         B (T - j) a sampled tap
 *
 * short_long_conv (x, k3 [d,3], k_long [d,T], k3' [d,3], k_m [d,km]); pre = k3 * x,
 * u = SiLU(pre), Kc = k_long + pad(k3') + pad(k_m) (the merged kernel), dU = Kc (*) g
 * (a correlation), dpre = dU SiLU'(pre):
 *   dX[b,c,s]    = sum_{j<3} k3[c,j] dpre[b,c,s+j]           u and pre of the row (6T), dU at
 *                                                            s..s+2: 3 (T - s) a sampled s
 *   dk3[c,j]     = sum_b sum_{t>=j} x[b,c,t-j] dpre[b,c,t]   the whole dU row of every b:
 *                                                            B T (T+1)/2 + 9 B T a channel
 *   dk_long[c,j] = sum_b sum_{t>=j} u[b,c,t-j] g[b,c,t]       B (6T + ...) a channel, then
 *                                                            B (T - j) a sampled tap
 *   dk3'[c,j], dk_m[c,j] = dk_long[c,j] (j < 3, k_m): the branches see the same u
 * dk3 is the one that costs a whole correlation a channel (T^2/2 per batch row): at T = 64k
 * one channel is 2.1e9 multiply-adds, so its sample shrinks to a single channel there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "grad_ref.h"

enum { LC_X = 0, LC_K = 1 };
enum { SLC_X = 0, SLC_K3 = 1, SLC_KLONG = 2, SLC_K3B = 3, SLC_KM = 4 };

static double sample_rsum(const sample_t *m, int T) {
    double a = 0;
    for (int i = 0; i < m->n_t; i++) a += (double)(T - m->t[i]);
    return a;
}

/* x-like gradients [B,d,T]: seq = b, t, col = channel */
static void act_view(const shape_t *s, grad_view_t *v) {
    v->n_seq = s->B;
    v->n_t = s->T;
    v->n_col = s->d;
    v->seq_stride = (size_t)s->d * s->T;
    v->t_stride = 1;
    v->col_stride = (size_t)s->T;
}
/* per-channel kernels [d,len]: one seq, t = tap, col = channel */
static void kernel_view(const shape_t *s, int len, grad_view_t *v) {
    v->n_seq = 1;
    v->n_t = len;
    v->n_col = s->d;
    v->seq_stride = 0;
    v->t_stride = 1;
    v->col_stride = (size_t)len;
}

/* ---------------- long_conv ---------------- */

static void lc_view(const shape_t *s, int tensor, grad_view_t *v) {
    if (tensor == LC_X) act_view(s, v);
    else kernel_view(s, s->T, v);
}

static double lc_cost(const shape_t *s, int tensor, const sample_t *m) {
    const double per = sample_rsum(m, s->T) * m->n_col;
    return tensor == LC_X ? per * m->n_seq : per * s->B;
}

/* sum_{t>=s} a[t-s] g[t] over t < T: the correlation at lag s. */
static double corr_at(const float *a, const float *g, int T, int s) {
    double acc = 0;
    for (int t = s; t < T; t++) acc += (double)a[t - s] * (double)g[t];
    return acc;
}

static int lc_ref(const shape_t *s, const float *const *in, const float *dy, int tensor,
                  const sample_t *smp, double *out) {
    const int T = s->T, d = s->d, nc = smp->n_col;
    for (int si = 0; si < smp->n_seq; si++)
        for (int ti = 0; ti < smp->n_t; ti++)
            for (int ci = 0; ci < nc; ci++) {
                const int c = smp->col[ci], j = smp->t[ti];
                double acc = 0;
                if (tensor == LC_X) {
                    const size_t row = ((size_t)smp->seq[si] * d + c) * T;
                    acc = corr_at(in[1] + (size_t)c * T, dy + row, T, j);
                } else {
                    for (int b = 0; b < s->B; b++) {
                        const size_t row = ((size_t)b * d + c) * T;
                        acc += corr_at(in[0] + row, dy + row, T, j);
                    }
                }
                out[((size_t)si * smp->n_t + ti) * nc + ci] = acc;
            }
    return 0;
}

/* ---------------- short_long_conv ---------------- */

static int slc_len(const shape_t *s, int tensor) {
    switch (tensor) {
    case SLC_K3:
    case SLC_K3B: return 3;
    case SLC_KLONG: return s->T;
    case SLC_KM: return shape_km(s->T);
    default: return s->T;
    }
}

static void slc_view(const shape_t *s, int tensor, grad_view_t *v) {
    if (tensor == SLC_X) act_view(s, v);
    else kernel_view(s, slc_len(s, tensor), v);
}

static double slc_cost(const shape_t *s, int tensor, const sample_t *m) {
    const double T = s->T, B = s->B, row = 6.0 * T; /* pre and u of a row */
    switch (tensor) {
    case SLC_X: return m->n_seq * m->n_col * (row + 3.0 * sample_rsum(m, s->T) + 3.0 * m->n_t);
    case SLC_K3: return m->n_col * B * (row + T * (T + 1) / 2 + 9.0 * T);
    default: return m->n_col * B * (row + sample_rsum(m, s->T));
    }
}

static double logistic(double p) { return 1.0 / (1.0 + exp(-p)); }

/* pre = k3 * x and u = SiLU(pre) of one row (causal, 3 taps). */
static void slc_row_u(const float *x, const float *k3c, int T, double *pre, double *u) {
    for (int t = 0; t < T; t++) {
        double a = 0;
        for (int j = 0; j < 3 && j <= t; j++) a += (double)k3c[j] * (double)x[t - j];
        pre[t] = a;
        u[t] = a * logistic(a);
    }
}

/* dpre[s] = dU[s] SiLU'(pre[s]), dU[s] = sum_{t>=s} kc[t-s] g[t]. */
static double slc_dpre(const double *kc, const float *g, const double *pre, int T, int s) {
    double du = 0;
    for (int t = s; t < T; t++) du += kc[t - s] * (double)g[t];
    const double sg = logistic(pre[s]);
    return du * sg * (1.0 + pre[s] * (1.0 - sg));
}

static int slc_ref(const shape_t *s, const float *const *in, const float *dy, int tensor,
                   const sample_t *smp, double *out) {
    const int T = s->T, d = s->d, km = shape_km(T), nc = smp->n_col;
    double *buf = malloc(4 * (size_t)T * sizeof(double));
    if (!buf) BENCH_FAIL("short_long_conv gradient reference: out of host memory (T = %d)", T);
    double *pre = buf, *u = buf + T, *kc = buf + 2 * (size_t)T, *dpre = buf + 3 * (size_t)T;
    for (int ci = 0; ci < nc; ci++) {
        const int c = smp->col[ci];
        const float *k3c = in[1] + (size_t)c * 3;
        /* the merged kernel of this channel; taps of k3' / k_m beyond T reach no output */
        for (int j = 0; j < T; j++) kc[j] = in[2][(size_t)c * T + j];
        for (int j = 0; j < 3 && j < T; j++) kc[j] += in[3][(size_t)c * 3 + j];
        for (int j = 0; j < km && j < T; j++) kc[j] += in[4][(size_t)c * km + j];
        if (tensor == SLC_X) {
            for (int si = 0; si < smp->n_seq; si++) {
                const size_t row = ((size_t)smp->seq[si] * d + c) * T;
                slc_row_u(in[0] + row, k3c, T, pre, u);
                for (int ti = 0; ti < smp->n_t; ti++) {
                    const int p = smp->t[ti];
                    double acc = 0;
                    for (int j = 0; j < 3 && p + j < T; j++)
                        acc += (double)k3c[j] * slc_dpre(kc, dy + row, pre, T, p + j);
                    out[((size_t)si * smp->n_t + ti) * nc + ci] = acc;
                }
            }
            continue;
        }
        /* kernel gradients: one seq, summed over the batch */
        for (int ti = 0; ti < smp->n_t; ti++) out[(size_t)ti * nc + ci] = 0;
        for (int b = 0; b < s->B; b++) {
            const size_t row = ((size_t)b * d + c) * T;
            const float *x = in[0] + row, *g = dy + row;
            slc_row_u(x, k3c, T, pre, u);
            if (tensor == SLC_K3) {
                for (int t = 0; t < T; t++) dpre[t] = slc_dpre(kc, g, pre, T, t);
                for (int ti = 0; ti < smp->n_t; ti++) {
                    const int j = smp->t[ti];
                    double acc = 0;
                    for (int t = j; t < T; t++) acc += (double)x[t - j] * dpre[t];
                    out[(size_t)ti * nc + ci] += acc;
                }
            } else { /* k_long, k3', k_m: the merged kernel's gradient at these taps */
                for (int ti = 0; ti < smp->n_t; ti++) {
                    const int j = smp->t[ti];
                    double acc = 0;
                    for (int t = j; t < T; t++) acc += u[t - j] * (double)g[t];
                    out[(size_t)ti * nc + ci] += acc;
                }
            }
        }
    }
    free(buf);
    return 0;
}

const grad_ref_t GRAD_REF_LONG_CONV = {OP_LONG_CONV, lc_view, lc_cost, lc_ref, NULL};
const grad_ref_t GRAD_REF_SHORT_LONG_CONV = {OP_SHORT_LONG_CONV, slc_view, slc_cost, slc_ref, NULL};
