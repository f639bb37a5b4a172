/* reference_extra.h: the pieces of the CPU references that tests and the
 * whole-layer reference need beyond reference.h.
 *
 *   - the scalar nonlinearities, defined once so every reference agrees;
 *   - the state steps of linear attention (double in, double out), shared by
 *     ref_linear_attn and ref_chela so the layer's attention is the op's;
 *   - a full C model of the chunked GPU algorithm, to test the algorithm itself
 *     (chunk boundaries, the masked intra-chunk term) without a GPU;
 *   - the stage-level API of the CHELA layer: every intermediate of chela-spec.md
 *     for rows 0..rows-1 of one batch, so tests can check each stage against the
 *     op references.
 *
 * Everything is double; nothing here rounds an intermediate. */
#ifndef CHELA_REFERENCE_EXTRA_H
#define CHELA_REFERENCE_EXTRA_H

#include <math.h>

#include "reference.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SiLU(x) = x / (1 + exp(-x)); exp overflow for very negative x gives -0, as it should. */
static inline double ref_silu(double x) { return x / (1.0 + exp(-x)); }
static inline double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
/* y = x . W (+ bias) for L rows: x [L, n_in], y [L, n_out], W's rows ldw apart (ldw = n_out
 * for a whole matrix, more for a column block of a wider one), all row-major, double sums
 * in input order.  64 output columns at a time keep a tile's accumulators in L1; the inner
 * loop walks a stretch of one row of W contiguously (ref_chela.c says what that bought). */
static inline void ref_gemm_rows(const double *x, int L, int n_in, const float *W, int ldw,
                                 int n_out, const float *bias, double *y) {
    enum { COLS = 64 };
    for (int r = 0; r < L; r++)
        for (int j = 0; j < n_out; j++) y[(size_t)r * n_out + j] = bias ? (double)bias[j] : 0.0;
    for (int j0 = 0; j0 < n_out; j0 += COLS) {
        const int jn = n_out - j0 < COLS ? n_out - j0 : COLS;
        for (int i = 0; i < n_in; i++) {
            const float *w = W + (size_t)i * ldw + j0;
            for (int r = 0; r < L; r++) {
                const double xi = x[(size_t)r * n_in + i];
                double *yr = y + (size_t)r * n_out + j0;
                for (int j = 0; j < jn; j++) yr[j] += xi * (double)w[j];
            }
        }
    }
}

/* LayerNorm of one row (the layers' reading: biased variance, eps CHELA_LN_EPS), gain and
 * bias per feature. */
static inline void ref_layer_norm(const double *x, int n, const float *g, const float *bias,
                                  double *y) {
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    const double inv = 1.0 / sqrt(var + CHELA_LN_EPS);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * (double)g[i] + (double)bias[i];
}

/* NULL if the sample is usable for an op whose output has n_seq sequences, T steps
 * and n_col columns: indices in range and t non-decreasing; else a static reason. */
static inline const char *ref_sample_problem(const sample_t *m, int n_seq, int T, int n_col) {
    if (m->n_seq < 0 || m->n_t < 0 || m->n_col < 0) return "negative sample count";
    for (int i = 0; i < m->n_seq; i++)
        if (m->seq[i] < 0 || m->seq[i] >= n_seq) return "sampled sequence out of range";
    for (int i = 0; i < m->n_t; i++) {
        if (m->t[i] < 0 || m->t[i] >= T) return "sampled t out of range";
        if (i > 0 && m->t[i] < m->t[i - 1]) return "sampled t not ascending";
    }
    for (int i = 0; i < m->n_col; i++)
        if (m->col[i] < 0 || m->col[i] >= n_col) return "sampled column out of range";
    return NULL;
}

/* ---- linear attention state steps (S is [dk][n], row-major) -------------- */

/* S += k^T v: one token's outer product, k [dk], v [n]. */
void ref_la_state_add(double *S, const double *k, int dk, const double *v, int n);
/* o = (q * scale) . S: o [n].  scale is 1/sqrt(dk) in every caller. */
void ref_la_state_query(const double *S, const double *q, double scale, int dk, int n,
                        double *o);

/* The chunked algorithm of chela-spec.md, every output: in = q, k [B,H,T,dk], v [B,H,T,dv];
 * out_full [B,H,T,dv].  Per chunk of `chunk` tokens (the last may be shorter):
 *   O_[i] = Q_[i] S_{i-1} + ((Q_[i] K_[i]^T) . mask_causal) V_[i];  S_i = S_{i-1} + K_[i]^T V_[i]
 * with Q pre-scaled by 1/sqrt(dk) and double accumulation.  Non-causal shapes use the
 * whole-sequence state for every row.  Returns 0, or -1 after bench_set_error. */
int ref_linear_attn_chunked(const shape_t *s, const float *const *in, int chunk,
                            double *out_full);

/* ---- the CHELA layer, stage by stage -------------------------------------- */

/* Intermediates of the layer for rows t = 0..rows-1 of one batch b, each row-major
 * with the row (token) index outermost.  Widths are the shape's d, z, v and
 * np = z + v + 2d.  ref_chela_stages allocates every array; ref_chela_stages_free
 * releases them. */
typedef struct {
    int rows, d, z, v, np;
    double *x_ln;  /* [rows, d]  X~ = LayerNorm1(X)                                  */
    double *u;     /* [rows, d]  U  = SiLU(k3 * X~)            (conv along rows)     */
    double *zc;    /* [rows, d]  Z  = Kc * U                   (reparameterized)     */
    double *proj;  /* [rows, np] Z . W_proj + b_proj: columns [Zq pre-SiLU | Ga | Go | Hz] */
    double *q;     /* [rows, z]  Q = kappa_q . SiLU(Zq) + mu_q                        */
    double *k;     /* [rows, z]  K = kappa_k . SiLU(Zq) + mu_k                        */
    double *val;   /* [rows, v]  V = SiLU(X~ . W_v + b_v)                             */
    double *o_raw; /* [rows, v]  causal linear attention of (Q/sqrt(z), K, V), no norm */
    double *o;     /* [rows, v]  O = RMSNorm(o_raw), no gain                          */
    double *y;     /* [rows, d]  Y = sigmoid(Go) . H^ + (1 - sigmoid(Go)) . X         */
    double *y_out; /* [rows, d]  Y' = Y + SiLU(LayerNorm2(Y) . W1) . W2: the output  */
} chela_stages_t;

/* Fills *st for batch b, rows 0..rows-1 (1 <= rows <= T).  in: CHELA_IN_* inputs.
 * Returns 0, or -1 after bench_set_error (st is then left empty). */
int ref_chela_stages(const shape_t *s, const float *const *in, int b, int rows,
                     chela_stages_t *st);
void ref_chela_stages_free(chela_stages_t *st);

/* ---- the MEGA layer's pieces (ref_mega.c) ----------------------------------- */

/* The EMA of one channel c by its recurrence (the definition): in = MEGA_IN_* inputs,
 * x, y [rows];  h_t = a beta x_t + (1 - a g) h_{t-1},  y_t = sum_j eta_j h_{t,j}, with
 * a = sigmoid(alpha), g = sigmoid(delta) of channel c's MEGA_EMA_H dims. */
void ref_mega_ema_row(const float *const *in, int c, const double *x, int rows, double *y);
/* The same EMA as a causal convolution kernel of channel c: k[t] = sum_j eta_j a_j beta_j
 * (1 - a_j g_j)^t, t < T (what the GPU variant convolves with). */
void ref_mega_ema_kernel(const float *const *in, int c, int T, double *k);
/* One query row t of the chunked attention: softmax over keys s0..t (s0 = the first row of
 * t's chunk) of q . K_s / sqrt(z), times V.  K [.., z], V [.., nv] indexed by absolute row;
 * p is [t - s0 + 1] scratch; o [nv]. */
void ref_mega_attn_row(const double *q, const double *K, const double *V, int s0, int t, int z,
                       int nv, double *p, double *o);
/* Every row 0..rows-1 of the attention with chunks [kc, kc + chunk): q, k [rows, z],
 * v and o [rows, nv].  Returns 0, or -1 after bench_set_error. */
int ref_mega_chunk_attention(const double *q, const double *k, const double *v, int rows, int z,
                             int nv, int chunk, double *o);

#ifdef __cplusplus
}
#endif
#endif
