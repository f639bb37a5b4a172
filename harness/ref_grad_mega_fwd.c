/* ref_grad_mega_fwd.c: the MEGA layer's forward in double over whole tensors, keeping every
 * intermediate the backward needs (ref_grad_mega.h).
 *
 * Written from chela-spec.md's "The hybrid baseline" directly, stage by stage over whole
 * tensors, sharing no code with ref_mega.c (which streams rows of float inputs through
 * tiles): the test compares the two, so a misreading in either shows.  Differences on
 * purpose:
 *   - the EMA is the causal convolution with its kernel k[t] = sum_j eta_j a_j beta_j
 *     (1 - a_j g_j)^t, the powers by repeated multiplication (ref_mega.c runs the recurrence
 *     h_t = a beta x_t + (1 - a g) h_{t-1}; its kernel helper uses exp(t log1p(-a g)));
 *   - the attention is one chunk at a time, its probabilities kept as a [token, chunk]
 *     matrix for the backward (ref_mega.c: one query row at a time, nothing kept).
 * Cost is no concern: the shapes are tiny. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad_layer.h"
#include "ref_grad_mega.h"

size_t ref_mega_in_elems(const shape_t *s, int i) {
    const size_t B = (size_t)s->B, T = (size_t)s->T, d = (size_t)s->d, z = (size_t)s->z;
    const size_t v = (size_t)s->v, np = z + v + 2 * d;
    switch (i) {
    case MEGA_IN_X: return B * T * d;
    case MEGA_IN_LN1_G:
    case MEGA_IN_LN1_B:
    case MEGA_IN_BH:
    case MEGA_IN_LN2_G:
    case MEGA_IN_LN2_B: return d;
    case MEGA_IN_ALPHA:
    case MEGA_IN_DELTA:
    case MEGA_IN_BETA:
    case MEGA_IN_ETA: return d * MEGA_EMA_H;
    case MEGA_IN_WPROJ: return d * np;
    case MEGA_IN_BPROJ: return np;
    case MEGA_IN_KAPPA_Q:
    case MEGA_IN_MU_Q:
    case MEGA_IN_KAPPA_K:
    case MEGA_IN_MU_K: return z;
    case MEGA_IN_WV:
    case MEGA_IN_UH: return d * v;
    case MEGA_IN_BV: return v;
    case MEGA_IN_W1:
    case MEGA_IN_W2: return d * 2 * d;
    default: return 0;
    }
}

static int shape_ok(const shape_t *s) {
    return s && s->B > 0 && s->T > 0 && s->d > 0 && s->z > 0 && s->v > 0;
}

/* ---------------- saved activations ---------------- */

int ref_mega_acts_alloc(const shape_t *s, mega_acts_t *a) {
    memset(a, 0, sizeof *a);
    if (!shape_ok(s)) BENCH_FAIL("mega backward reference: B, T, d, z, v must be positive");
    const size_t n = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = z + v + 2 * d, c = (size_t)mega_chunk(s);
    /* Per token: 4 statistics, 10 arrays d wide, proj, 3 z wide, 5 v wide, 2 of 2d, the
     * probabilities; and the EMA kernel [d,T]. */
    const size_t per_token = 4 + 10 * d + np + 3 * z + 5 * v + 4 * d + c;
    const size_t total = n * per_token + d * (size_t)s->T;
    double *p = calloc(total, sizeof(double));
    if (!p) BENCH_FAIL("mega backward reference: out of host memory (%zu doubles)", total);
    *a = (mega_acts_t){.B = s->B, .T = s->T, .d = s->d, .z = s->z, .v = s->v, .np = (int)np,
                       .chunk = (int)c, .block_ = p};
    double **stat[] = {&a->ln1_mean, &a->ln1_rstd, &a->ln2_mean, &a->ln2_rstd};
    for (size_t i = 0; i < sizeof stat / sizeof stat[0]; i++) *stat[i] = p, p += n;
    double **wd[] = {&a->x_hat, &a->x_ln, &a->xe, &a->h_pre, &a->h, &a->gate,
                     &a->y, &a->y_hat, &a->ln2, &a->y_out};
    for (size_t i = 0; i < sizeof wd / sizeof wd[0]; i++) *wd[i] = p, p += n * d;
    a->proj = p, p += n * np;
    a->zq = p, p += n * z;
    a->q = p, p += n * z;
    a->k = p, p += n * z;
    double **wv[] = {&a->v_pre, &a->val, &a->o, &a->gam, &a->m};
    for (size_t i = 0; i < sizeof wv / sizeof wv[0]; i++) *wv[i] = p, p += n * v;
    a->f_pre = p, p += n * 2 * d;
    a->f = p, p += n * 2 * d;
    a->prob = p, p += n * c;
    a->ema_k = p;
    return 0;
}

void ref_mega_acts_free(mega_acts_t *a) {
    free(a->block_);
    memset(a, 0, sizeof *a);
}

/* ---------------- the EMA as a convolution ---------------- */

/* k[c][t] = sum_j w_j r_j^t with w = eta a beta and r = 1 - a g, for t < T. */
static void ema_kernel(const double *const *in, int d, int T, double *k) {
    for (int c = 0; c < d; c++) {
        double *kc = k + (size_t)c * T;
        for (int t = 0; t < T; t++) kc[t] = 0.0;
        for (int j = 0; j < MEGA_EMA_H; j++) {
            const size_t i = (size_t)c * MEGA_EMA_H + j;
            const double a = rg_logistic(in[MEGA_IN_ALPHA][i]);
            const double g = rg_logistic(in[MEGA_IN_DELTA][i]);
            const double w = in[MEGA_IN_ETA][i] * a * in[MEGA_IN_BETA][i], r = 1.0 - a * g;
            double pw = 1.0; /* r^t */
            for (int t = 0; t < T; t++, pw *= r) kc[t] += w * pw;
        }
    }
}

/* out[b,t,c] = sum_{s<=t} k[c][t-s] in[b,s,c] along the token axis of a [B,T,d] tensor. */
static void causal_conv_tokens(const double *in, int B, int T, int d, const double *k,
                               double *out) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < d; c++) {
                double acc = 0.0;
                for (int s = 0; s <= t; s++)
                    acc += k[(size_t)c * T + t - s] * in[((size_t)b * T + s) * d + c];
                out[((size_t)b * T + t) * d + c] = acc;
            }
}

/* ---------------- chunked softmax attention ---------------- */

/* For each sequence and chunk [s0, s0 + L): P = softmax over s in [s0, t] of
 * q_t . k_s / sqrt(z) (row max subtracted), kept in prob[(b T + t) chunk + s - s0];
 * o_t = sum_s P_ts v_s. */
static void chunk_attention(const mega_acts_t *a, double *prob, double *o) {
    const int T = a->T, z = a->z, v = a->v, c = a->chunk;
    const double scale = 1.0 / sqrt((double)z);
    for (int b = 0; b < a->B; b++)
        for (int s0 = 0; s0 < T; s0 += c) {
            const int L = T - s0 < c ? T - s0 : c;
            for (int i = 0; i < L; i++) {
                const size_t rt = (size_t)b * T + s0 + i;
                double *p = prob + rt * c, mx = -INFINITY, sum = 0.0;
                for (int u = 0; u <= i; u++) {
                    const double *ks = a->k + ((size_t)b * T + s0 + u) * z;
                    double dot = 0.0;
                    for (int e = 0; e < z; e++) dot += a->q[rt * z + e] * ks[e];
                    p[u] = dot * scale;
                    mx = fmax(mx, p[u]);
                }
                for (int u = 0; u <= i; u++) sum += (p[u] = exp(p[u] - mx));
                for (int u = 0; u <= i; u++) p[u] /= sum;
                for (int u = i + 1; u < c; u++) p[u] = 0.0;
                for (int j = 0; j < v; j++) {
                    double acc = 0.0;
                    for (int u = 0; u <= i; u++)
                        acc += p[u] * a->val[((size_t)b * T + s0 + u) * v + j];
                    o[rt * v + j] = acc;
                }
            }
        }
}

/* ---------------- the forward ---------------- */

int ref_mega_fwd_save(const shape_t *s, const double *const *in, mega_acts_t *a) {
    if (!shape_ok(s)) BENCH_FAIL("mega forward (double): B, T, d, z, v must be positive");
    if (a->B != s->B || a->T != s->T || a->d != s->d || a->z != s->z || a->v != s->v ||
        a->chunk != mega_chunk(s))
        BENCH_FAIL("mega forward (double): activations allocated for another shape or chunk");
    const int B = s->B, T = s->T, d = s->d, z = s->z, v = s->v, np = a->np;
    const size_t n = (size_t)B * T;

    /* X~ = LayerNorm1(X). */
    for (size_t r = 0; r < n; r++)
        rg_layer_norm_row(in[MEGA_IN_X] + r * d, d, in[MEGA_IN_LN1_G], in[MEGA_IN_LN1_B],
                       &a->ln1_mean[r], &a->ln1_rstd[r], a->x_hat + r * d, a->x_ln + r * d);

    /* X' = EMA(X~), as the causal convolution with the EMA's kernel. */
    ema_kernel(in, d, T, a->ema_k);
    causal_conv_tokens(a->x_ln, B, T, d, a->ema_k, a->xe);

    /* The fused projection of X', then Q and K from the shared SiLU(Zq). */
    rg_gemm(a->xe, n, d, in[MEGA_IN_WPROJ], np, in[MEGA_IN_BPROJ], a->proj);
    for (size_t r = 0; r < n; r++)
        for (int i = 0; i < z; i++) {
            const double zq = rg_silu(a->proj[r * np + i]);
            a->zq[r * z + i] = zq;
            a->q[r * z + i] = in[MEGA_IN_KAPPA_Q][i] * zq + in[MEGA_IN_MU_Q][i];
            a->k[r * z + i] = in[MEGA_IN_KAPPA_K][i] * zq + in[MEGA_IN_MU_K][i];
        }
    /* V = SiLU(X~ . Wv + bv). */
    rg_gemm(a->x_ln, n, d, in[MEGA_IN_WV], v, in[MEGA_IN_BV], a->v_pre);
    for (size_t i = 0; i < n * v; i++) a->val[i] = rg_silu(a->v_pre[i]);

    chunk_attention(a, a->prob, a->o);

    /* M = SiLU(G) . O;  H^ = SiLU(Hz + M . Uh + bh);  Y = phi . H^ + (1 - phi) . X. */
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < v; j++) {
            a->gam[r * v + j] = rg_silu(a->proj[r * np + z + j]);
            a->m[r * v + j] = a->gam[r * v + j] * a->o[r * v + j];
        }
    rg_gemm(a->m, n, v, in[MEGA_IN_UH], d, in[MEGA_IN_BH], a->h_pre);
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++) {
            const size_t e = r * d + j;
            a->h_pre[e] += a->proj[r * np + z + v + d + j];
            a->h[e] = rg_silu(a->h_pre[e]);
            a->gate[e] = rg_logistic(a->proj[r * np + z + v + j]);
            a->y[e] = a->gate[e] * a->h[e] + (1.0 - a->gate[e]) * in[MEGA_IN_X][e];
        }
    /* Y' = Y + SiLU(LayerNorm2(Y) . W1) . W2. */
    for (size_t r = 0; r < n; r++)
        rg_layer_norm_row(a->y + r * d, d, in[MEGA_IN_LN2_G], in[MEGA_IN_LN2_B], &a->ln2_mean[r],
                       &a->ln2_rstd[r], a->y_hat + r * d, a->ln2 + r * d);
    rg_gemm(a->ln2, n, d, in[MEGA_IN_W1], 2 * d, NULL, a->f_pre);
    for (size_t i = 0; i < n * 2 * d; i++) a->f[i] = rg_silu(a->f_pre[i]);
    rg_gemm(a->f, n, 2 * d, in[MEGA_IN_W2], d, NULL, a->y_out);
    for (size_t i = 0; i < n * d; i++) a->y_out[i] += a->y[i];
    return 0;
}

int ref_mega_fwd_d(const shape_t *s, const double *const *in, double *y) {
    mega_acts_t a;
    if (ref_mega_acts_alloc(s, &a)) return -1;
    const int rc = ref_mega_fwd_save(s, in, &a);
    if (rc == 0) memcpy(y, a.y_out, (size_t)s->B * s->T * s->d * sizeof(double));
    ref_mega_acts_free(&a);
    return rc;
}
