/* ref_grad_chela_fwd.c: the CHELA layer's forward in double over whole tensors, keeping
 * every intermediate the backward needs (ref_grad_chela.h).
 *
 * Written from chela-spec.md's "Forward pass" directly, token by token and stage by stage,
 * sharing no code with ref_chela.c (which streams rows of float inputs through tiles):
 * the test compares the two, so a misreading in either shows.  Differences on purpose:
 *   - the long stage is the training form, three branches summed (ref_chela.c merges them
 *     into one kernel first);
 *   - linear attention in its pairwise O(T^2) form (ref_linear_attn_fwd_d; ref_chela.c
 *     walks the z x v state), the backward then uses the state form.
 * Cost is no concern: the shapes are tiny. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad_layer.h"
#include "ref_grad.h"
#include "ref_grad_chela.h"

size_t ref_chela_in_elems(const shape_t *s, int i) {
    const size_t B = (size_t)s->B, T = (size_t)s->T, d = (size_t)s->d, z = (size_t)s->z;
    const size_t v = (size_t)s->v, np = z + v + 2 * d;
    switch (i) {
    case CHELA_IN_X: return B * T * d;
    case CHELA_IN_LN1_G:
    case CHELA_IN_LN1_B:
    case CHELA_IN_BH:
    case CHELA_IN_LN2_G:
    case CHELA_IN_LN2_B: return d;
    case CHELA_IN_K3:
    case CHELA_IN_K3B: return d * 3;
    case CHELA_IN_KLONG: return d * T;
    case CHELA_IN_KM: return d * (size_t)shape_km(s->T);
    case CHELA_IN_WPROJ: return d * np;
    case CHELA_IN_BPROJ: return np;
    case CHELA_IN_KAPPA_Q:
    case CHELA_IN_MU_Q:
    case CHELA_IN_KAPPA_K:
    case CHELA_IN_MU_K: return z;
    case CHELA_IN_WV:
    case CHELA_IN_UH: return d * v;
    case CHELA_IN_BV: return v;
    case CHELA_IN_W1:
    case CHELA_IN_W2: return d * 2 * d;
    default: return 0;
    }
}

static int shape_ok(const shape_t *s) {
    return s && s->B > 0 && s->T > 0 && s->d > 0 && s->z > 0 && s->v > 0;
}

/* ---------------- saved activations ---------------- */

int ref_chela_acts_alloc(const shape_t *s, chela_acts_t *a) {
    memset(a, 0, sizeof *a);
    if (!shape_ok(s)) BENCH_FAIL("chela backward reference: B, T, d, z, v must be positive");
    const size_t n = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = z + v + 2 * d;
    /* Per token: 5 statistics, 12 arrays d wide, proj, 3 z wide, 6 v wide, 2 of 2d. */
    const size_t per_token = 5 + 12 * d + np + 3 * z + 6 * v + 4 * d;
    double *p = calloc(n * per_token, sizeof(double));
    if (!p) BENCH_FAIL("chela backward reference: out of host memory (%zu doubles)", n * per_token);
    *a = (chela_acts_t){.B = s->B, .T = s->T, .d = s->d, .z = s->z, .v = s->v, .np = (int)np,
                        .k_m = shape_km(s->T), .block_ = p};
    double **stat[] = {&a->ln1_mean, &a->ln1_rstd, &a->o_rstd, &a->ln2_mean, &a->ln2_rstd};
    for (size_t i = 0; i < sizeof stat / sizeof stat[0]; i++) *stat[i] = p, p += n;
    double **wd[] = {&a->x_hat, &a->x_ln, &a->pre, &a->u, &a->zc, &a->h_pre,
                     &a->h, &a->gate, &a->y, &a->y_hat, &a->ln2, &a->y_out};
    for (size_t i = 0; i < sizeof wd / sizeof wd[0]; i++) *wd[i] = p, p += n * d;
    a->proj = p, p += n * np;
    a->zq = p, p += n * z;
    a->q = p, p += n * z;
    a->k = p, p += n * z;
    double **wv[] = {&a->v_pre, &a->val, &a->o_raw, &a->o, &a->ga_sig, &a->m};
    for (size_t i = 0; i < sizeof wv / sizeof wv[0]; i++) *wv[i] = p, p += n * v;
    a->f_pre = p, p += n * 2 * d;
    a->f = p;
    return 0;
}

void ref_chela_acts_free(chela_acts_t *a) {
    free(a->block_);
    memset(a, 0, sizeof *a);
}

/* ---------------- row helpers ---------------- */

/* out[b,t,c] = sum_{j < min(len, t+1)} k[c][j] in[b,t-j,c]: the depthwise causal conv of
 * chela-spec.md along the token axis of a [B,T,d] tensor; k is [d, len]. */
static void conv_tokens(const double *in, int B, int T, int d, const double *k, int len,
                        double *out) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < d; c++) {
                double acc = 0.0;
                for (int j = 0; j < len && j <= t; j++)
                    acc += k[(size_t)c * len + j] * in[((size_t)b * T + t - j) * d + c];
                out[((size_t)b * T + t) * d + c] = acc;
            }
}

/* ---------------- the forward ---------------- */

int ref_chela_fwd_save(const shape_t *s, const double *const *in, chela_acts_t *a) {
    if (!shape_ok(s)) BENCH_FAIL("chela forward (double): B, T, d, z, v must be positive");
    if (a->B != s->B || a->T != s->T || a->d != s->d || a->z != s->z || a->v != s->v)
        BENCH_FAIL("chela forward (double): activations allocated for another shape");
    const int B = s->B, T = s->T, d = s->d, z = s->z, v = s->v, np = a->np, km = a->k_m;
    const size_t n = (size_t)B * T;

    /* X~ = LayerNorm1(X). */
    for (size_t r = 0; r < n; r++)
        rg_layer_norm_row(in[CHELA_IN_X] + r * d, d, in[CHELA_IN_LN1_G], in[CHELA_IN_LN1_B],
                       &a->ln1_mean[r], &a->ln1_rstd[r], a->x_hat + r * d, a->x_ln + r * d);

    /* U = SiLU(k3 * X~);  Z = k_long * U + k3b * U + km * U (three branches). */
    conv_tokens(a->x_ln, B, T, d, in[CHELA_IN_K3], 3, a->pre);
    for (size_t i = 0; i < n * d; i++) a->u[i] = rg_silu(a->pre[i]);
    double *branch = malloc(n * d * sizeof(double));
    if (!branch) BENCH_FAIL("chela forward (double): out of host memory");
    conv_tokens(a->u, B, T, d, in[CHELA_IN_KLONG], T, a->zc);
    conv_tokens(a->u, B, T, d, in[CHELA_IN_K3B], 3, branch);
    for (size_t i = 0; i < n * d; i++) a->zc[i] += branch[i];
    conv_tokens(a->u, B, T, d, in[CHELA_IN_KM], km, branch);
    for (size_t i = 0; i < n * d; i++) a->zc[i] += branch[i];
    free(branch);

    /* The fused projection, then Q and K from the shared SiLU(Zq) (MEGA's form). */
    rg_gemm(a->zc, n, d, in[CHELA_IN_WPROJ], np, in[CHELA_IN_BPROJ], a->proj);
    for (size_t r = 0; r < n; r++)
        for (int i = 0; i < z; i++) {
            const double zq = rg_silu(a->proj[r * np + i]);
            a->zq[r * z + i] = zq;
            a->q[r * z + i] = in[CHELA_IN_KAPPA_Q][i] * zq + in[CHELA_IN_MU_Q][i];
            a->k[r * z + i] = in[CHELA_IN_KAPPA_K][i] * zq + in[CHELA_IN_MU_K][i];
        }
    /* V = SiLU(X~ . Wv + bv). */
    rg_gemm(a->x_ln, n, d, in[CHELA_IN_WV], v, in[CHELA_IN_BV], a->v_pre);
    for (size_t i = 0; i < n * v; i++) a->val[i] = rg_silu(a->v_pre[i]);

    /* Single-head causal linear attention, q scaled by 1/sqrt(z) inside; [B,1,T,w] is
     * exactly our [B,T,w]. */
    const shape_t as = {.B = B, .H = 1, .T = T, .dk = z, .dv = v, .causal = 1};
    if (ref_linear_attn_fwd_d(&as, a->q, a->k, a->val, a->o_raw)) return -1;
    /* O = RMSNorm(o_raw) over v, no gain (ref_chela.c's reading: eps CHELA_RMS_EPS). */
    for (size_t r = 0; r < n; r++) {
        double ms = 0.0;
        for (int j = 0; j < v; j++) ms += a->o_raw[r * v + j] * a->o_raw[r * v + j];
        a->o_rstd[r] = 1.0 / sqrt(ms / v + CHELA_RMS_EPS);
        for (int j = 0; j < v; j++) a->o[r * v + j] = a->o_raw[r * v + j] * a->o_rstd[r];
    }
    /* M = O . sigmoid(Ga)  (eq. 9). */
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < v; j++) {
            const double g = rg_logistic(a->proj[r * np + z + j]);
            a->ga_sig[r * v + j] = g;
            a->m[r * v + j] = a->o[r * v + j] * g;
        }
    /* H^ = SiLU(Hz + M . Uh + bh);  Y = sigmoid(Go) . H^ + (1 - sigmoid(Go)) . X (eq. 14). */
    rg_gemm(a->m, n, v, in[CHELA_IN_UH], d, in[CHELA_IN_BH], a->h_pre);
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++) {
            const size_t e = r * d + j;
            a->h_pre[e] += a->proj[r * np + z + v + d + j];
            a->h[e] = rg_silu(a->h_pre[e]);
            a->gate[e] = rg_logistic(a->proj[r * np + z + v + j]);
            a->y[e] = a->gate[e] * a->h[e] + (1.0 - a->gate[e]) * in[CHELA_IN_X][e];
        }
    /* Y' = Y + SiLU(LayerNorm2(Y) . W1) . W2. */
    for (size_t r = 0; r < n; r++)
        rg_layer_norm_row(a->y + r * d, d, in[CHELA_IN_LN2_G], in[CHELA_IN_LN2_B],
                       &a->ln2_mean[r], &a->ln2_rstd[r], a->y_hat + r * d, a->ln2 + r * d);
    rg_gemm(a->ln2, n, d, in[CHELA_IN_W1], 2 * d, NULL, a->f_pre);
    for (size_t i = 0; i < n * 2 * d; i++) a->f[i] = rg_silu(a->f_pre[i]);
    rg_gemm(a->f, n, 2 * d, in[CHELA_IN_W2], d, NULL, a->y_out);
    for (size_t i = 0; i < n * d; i++) a->y_out[i] += a->y[i];
    return 0;
}

int ref_chela_fwd_d(const shape_t *s, const double *const *in, double *y) {
    chela_acts_t a;
    if (ref_chela_acts_alloc(s, &a)) return -1;
    const int rc = ref_chela_fwd_save(s, in, &a);
    if (rc == 0) memcpy(y, a.y_out, (size_t)s->B * s->T * s->d * sizeof(double));
    ref_chela_acts_free(&a);
    return rc;
}
