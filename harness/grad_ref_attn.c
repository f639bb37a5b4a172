/* grad_ref_attn.c: sampled double-precision gradients of linear_attn and softmax_attn
 * (grad_ref.h), for verifying GPU backwards at any T.
 *
 * The formulas are ref_grad_attn.c's (its header comment derives them); here each one is
 * computed only for the sampled elements, over as few tokens as they need, so the cost
 * follows the sample.  Per sequence, q' = q / sqrt(dk):
 *
 * linear attention (S_t = sum_{s in A(t)} k_s^T v_s, R_s = sum_{t : s in A(t)} q'_t^T dO_t):
 *   dQ_t[i] = (1/sqrt(dk)) S_t[i,:] . dO_t   rows i of S only, scanned up to the last
 *                                            sampled t: tmax * n_col * dv (+ n_t n_col dv)
 *   dK_s[i] = R_s[i,:] . v_s                 rows i of R, scanned down from T-1 to the first
 *                                            sampled s: (T - smin) * n_col * dv
 *   dV_s[c] = k_s . R_s[:,c]                 columns c of R: (T - smin) * dk * n_col
 *   (non-causal: S and R are the full sums, T * n_col * width)
 *
 * softmax attention (D = dk = dv; P_ts = exp(a_ts - m_t) / l_t, a_ts = q'_t . k_s; the causal
 * forms below, non-causal: every u in place of u <= t and every t in place of t >= s, so dK
 * and dV need the statistics of all T rows):
 *   row statistics of a row t: m_t, l_t and delta_t = dO_t . o_t = sum_u P_tu (dO_t . v_u):
 *                                            3 (t+1) D (the scores twice: max, then sum)
 *   dQ_t[c] = sum_{u<=t} dA_tu k_u[c] / sqrt(D), dA_tu = P_tu (dO_t . v_u - delta_t):
 *                                            per sampled t, the statistics and (t+1)(2D + n_col)
 *   dV_s[c] = sum_{t>=s} P_ts dO_t[c],  dK_s[c] = sum_{t>=s} dA_ts q_t[c] / sqrt(D):
 *                                            the statistics of every row t >= smin once, then
 *                                            per sampled s, (T - s)(2D + n_col)
 *   so dK / dV cost O((T - smin) T D) a sequence: at T = 64k the whole sequence is out of
 *   reach, and their sample falls back to the last rows (verify_grad.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "grad_ref.h"

static double sample_tmax(const sample_t *m) { return m->n_t ? (double)m->t[m->n_t - 1] + 1 : 0; }
static double sample_tmin(const sample_t *m) { return m->n_t ? (double)m->t[0] : 0; }
static double sample_tsum(const sample_t *m) {
    double a = 0;
    for (int i = 0; i < m->n_t; i++) a += (double)m->t[i] + 1;
    return a;
}
/* sum over sampled s of (T - s) */
static double sample_rsum(const sample_t *m, int T) {
    double a = 0;
    for (int i = 0; i < m->n_t; i++) a += (double)(T - m->t[i]);
    return a;
}

enum { G_Q = 0, G_K = 1, G_V = 2 };

static void attn_view(const shape_t *s, int tensor, int width, grad_view_t *v) {
    v->n_seq = s->B * s->H;
    v->n_t = s->T;
    v->n_col = width;
    v->seq_stride = (size_t)s->T * width;
    v->t_stride = (size_t)width;
    v->col_stride = 1;
    (void)tensor;
}

static double dotf(const float *a, const float *b, int n) {
    double acc = 0;
    for (int i = 0; i < n; i++) acc += (double)a[i] * (double)b[i];
    return acc;
}

/* ---------------- linear attention ---------------- */

static void la_view(const shape_t *s, int tensor, grad_view_t *v) {
    attn_view(s, tensor, tensor == G_V ? s->dv : s->dk, v);
}

static double la_cost(const shape_t *s, int tensor, const sample_t *m) {
    const double T = s->T, width = tensor == G_V ? s->dk : s->dv; /* the other side of R */
    double span;
    if (!s->causal) span = T;
    else if (tensor == G_Q) span = sample_tmax(m);
    else span = T - sample_tmin(m);
    return m->n_seq * (span + m->n_t) * m->n_col * width;
}

/* One sequence's tensors and the accumulated part of S (dQ) or R (dK, dV) for the sampled
 * columns: rows i of S / R (dQ, dK: acc[ci][c], n_col x dv) or columns c of R (dV: acc[i][ci],
 * dk x n_col). */
typedef struct {
    const shape_t *s;
    const sample_t *smp;
    int tensor;
    double scale;
    const float *q, *k, *v, *g;
    double *acc;
} la_seq_t;

/* Token u's term: S += k_u^T v_u (dQ) or R += q'_u^T dO_u (dK, dV), sampled part only. */
static void la_add(const la_seq_t *x, int u) {
    const int dk = x->s->dk, dv = x->s->dv, nc = x->smp->n_col;
    if (x->tensor == G_V) {
        for (int i = 0; i < dk; i++) {
            const double a = x->scale * x->q[(size_t)u * dk + i];
            for (int ci = 0; ci < nc; ci++)
                x->acc[(size_t)i * nc + ci] += a * x->g[(size_t)u * dv + x->smp->col[ci]];
        }
        return;
    }
    const float *left = x->tensor == G_Q ? x->k : x->q, *right = x->tensor == G_Q ? x->v : x->g;
    const double sc = x->tensor == G_Q ? 1.0 : x->scale;
    for (int ci = 0; ci < nc; ci++) {
        const double a = sc * left[(size_t)u * dk + x->smp->col[ci]];
        for (int c = 0; c < dv; c++) x->acc[(size_t)ci * dv + c] += a * right[(size_t)u * dv + c];
    }
}

/* The sampled position ti (token u) from the accumulated part: dQ_u = S_u dO_u / sqrt(dk),
 * dK_u = R_u v_u, dV_u = k_u R_u. */
static void la_out(const la_seq_t *x, int si, int ti, int u, double *out) {
    const int dk = x->s->dk, dv = x->s->dv, nc = x->smp->n_col;
    double *o = out + ((size_t)si * x->smp->n_t + ti) * nc;
    for (int ci = 0; ci < nc; ci++) {
        double a = 0;
        if (x->tensor == G_V) {
            for (int i = 0; i < dk; i++)
                a += (double)x->k[(size_t)u * dk + i] * x->acc[(size_t)i * nc + ci];
        } else {
            const float *w = x->tensor == G_Q ? x->g : x->v;
            for (int c = 0; c < dv; c++) a += x->acc[(size_t)ci * dv + c] * w[(size_t)u * dv + c];
            if (x->tensor == G_Q) a *= x->scale;
        }
        o[ci] = a;
    }
}

static int la_ref(const shape_t *s, const float *const *in, const float *dy, int tensor,
                  const sample_t *smp, double *out) {
    const int T = s->T, dk = s->dk, dv = s->dv;
    const size_t n_acc = (size_t)smp->n_col * (tensor == G_V ? dk : dv);
    la_seq_t x = {s, smp, tensor, 1.0 / sqrt((double)dk), NULL, NULL, NULL, NULL, NULL};
    if (!(x.acc = malloc((n_acc ? n_acc : 1) * sizeof(double))))
        BENCH_FAIL("linear_attn gradient reference: out of host memory");
    for (int si = 0; si < smp->n_seq; si++) {
        const size_t seq = (size_t)smp->seq[si];
        x.q = in[0] + seq * T * dk;
        x.k = in[1] + seq * T * dk;
        x.v = in[2] + seq * T * dv;
        x.g = dy + seq * T * dv;
        memset(x.acc, 0, n_acc * sizeof(double));
        if (!s->causal) { /* S and R are the full sums for every token */
            for (int u = 0; u < T; u++) la_add(&x, u);
            for (int ti = 0; ti < smp->n_t; ti++) la_out(&x, si, ti, smp->t[ti], out);
        } else if (tensor == G_Q) { /* forward scan: S_t includes token t */
            int u = 0;
            for (int ti = 0; ti < smp->n_t; ti++) {
                for (; u <= smp->t[ti]; u++) la_add(&x, u);
                la_out(&x, si, ti, smp->t[ti], out);
            }
        } else { /* backward scan: R_s includes token s */
            int u = T - 1;
            for (int ti = smp->n_t - 1; ti >= 0; ti--) {
                for (; u >= smp->t[ti]; u--) la_add(&x, u);
                la_out(&x, si, ti, smp->t[ti], out);
            }
        }
    }
    free(x.acc);
    return 0;
}

/* ---------------- softmax attention ---------------- */

static void sa_view(const shape_t *s, int tensor, grad_view_t *v) {
    attn_view(s, tensor, s->dk, v);
}

static double sa_cost(const shape_t *s, int tensor, const sample_t *m) {
    const double D = s->dk, T = s->T;
    if (!s->causal) { /* every row sees all T keys */
        if (tensor == G_Q) return m->n_seq * m->n_t * T * (5.0 * D + m->n_col);
        return m->n_seq * (3.0 * D * T * T + m->n_t * T * (2.0 * D + m->n_col));
    }
    /* a row's statistics are 3 (t+1) D (sa_row_stats: the scores twice, dO_t . v_u once) */
    if (tensor == G_Q) return m->n_seq * sample_tsum(m) * (5.0 * D + m->n_col);
    /* statistics of rows smin..T-1, then per sampled s its later rows */
    const double tmin = sample_tmin(m);
    const double stats = 3.0 * D * ((T * (T + 1) - tmin * (tmin + 1)) / 2);
    return m->n_seq * (stats + sample_rsum(m, s->T) * (2.0 * D + m->n_col));
}

/* Row t's statistics over keys 0..last (t causal, T - 1 not): max m, sum l of exp(a - m), and
 * delta = dO_t . o_t. */
static void sa_row_stats(const float *q, const float *k, const float *v, const float *g, int D,
                         int t, int last, double scale, double *m_out, double *l_out,
                         double *delta_out) {
    const float *qt = q + (size_t)t * D, *gt = g + (size_t)t * D;
    double m = -INFINITY;
    for (int u = 0; u <= last; u++) {
        const double a = scale * dotf(qt, k + (size_t)u * D, D);
        if (a > m) m = a;
    }
    double l = 0, dsum = 0;
    for (int u = 0; u <= last; u++) {
        const double e = exp(scale * dotf(qt, k + (size_t)u * D, D) - m);
        l += e;
        dsum += e * dotf(gt, v + (size_t)u * D, D);
    }
    *m_out = m;
    *l_out = l;
    *delta_out = dsum / l;
}

static int sa_ref(const shape_t *s, const float *const *in, const float *dy, int tensor,
                  const sample_t *smp, double *out) {
    const int T = s->T, D = s->dk, nc = smp->n_col, causal = s->causal;
    const double scale = 1.0 / sqrt((double)D);
    /* the first query row whose statistics dK, dV need: the first sampled key's, or row 0 */
    const int tmin = causal && smp->n_t ? smp->t[0] : 0;
    /* m, l, delta of rows tmin..T-1 (dK, dV only) */
    double *st = NULL;
    if (tensor != G_Q && !(st = malloc(3 * (size_t)(T - tmin) * sizeof(double))))
        BENCH_FAIL("softmax_attn gradient reference: out of host memory (T = %d)", T);
    for (int si = 0; si < smp->n_seq; si++) {
        const size_t off = (size_t)smp->seq[si] * T * D;
        const float *q = in[0] + off, *k = in[1] + off, *v = in[2] + off, *g = dy + off;
        if (tensor == G_Q) {
            for (int ti = 0; ti < smp->n_t; ti++) {
                const int t = smp->t[ti], last = causal ? t : T - 1;
                double m, l, delta;
                sa_row_stats(q, k, v, g, D, t, last, scale, &m, &l, &delta);
                double *o = out + ((size_t)si * smp->n_t + ti) * nc;
                for (int ci = 0; ci < nc; ci++) o[ci] = 0;
                for (int u = 0; u <= last; u++) {
                    const double a = scale * dotf(q + (size_t)t * D, k + (size_t)u * D, D);
                    const double p = exp(a - m) / l;
                    const double dA = p * (dotf(g + (size_t)t * D, v + (size_t)u * D, D) - delta);
                    for (int ci = 0; ci < nc; ci++)
                        o[ci] += scale * dA * k[(size_t)u * D + smp->col[ci]];
                }
            }
            continue;
        }
        for (int t = tmin; t < T; t++) {
            double *r = st + 3 * (size_t)(t - tmin);
            sa_row_stats(q, k, v, g, D, t, causal ? t : T - 1, scale, &r[0], &r[1], &r[2]);
        }
        for (int ti = 0; ti < smp->n_t; ti++) {
            const int u = smp->t[ti]; /* the key position */
            double *o = out + ((size_t)si * smp->n_t + ti) * nc;
            for (int ci = 0; ci < nc; ci++) o[ci] = 0;
            for (int t = causal ? u : 0; t < T; t++) {
                const double *r = st + 3 * (size_t)(t - tmin);
                const double a = scale * dotf(q + (size_t)t * D, k + (size_t)u * D, D);
                const double p = exp(a - r[0]) / r[1];
                if (tensor == G_V) {
                    for (int ci = 0; ci < nc; ci++) o[ci] += p * g[(size_t)t * D + smp->col[ci]];
                } else {
                    const double dA = p * (dotf(g + (size_t)t * D, v + (size_t)u * D, D) - r[2]);
                    for (int ci = 0; ci < nc; ci++)
                        o[ci] += scale * dA * q[(size_t)t * D + smp->col[ci]];
                }
            }
        }
    }
    free(st);
    return 0;
}

const grad_ref_t GRAD_REF_LINEAR_ATTN = {OP_LINEAR_ATTN, la_view, la_cost, la_ref, NULL};
const grad_ref_t GRAD_REF_SOFTMAX_ATTN = {OP_SOFTMAX_ATTN, sa_view, sa_cost, sa_ref, NULL};
