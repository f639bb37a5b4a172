/* ref_transformer.c: CPU reference for the transformer op, the pre-LN Transformer layer
 * that is CHELA's layer-level baseline (ops.c has the definition).
 *
 *   X~ = LN1(X);  [Q|K|V] = X~ Wqkv + bqkv;  A_h = softmax_causal(Q_h K_h^T / sqrt(D)) V_h
 *   Y = X + A Wo + bo;  Y' = Y + GELU(LN2(Y) W1 + b1) W2 + b2
 *
 * Only the attention mixes rows, and only through K and V, so a sample costs far less
 * than the layer:
 *   1. K and V for every row t <= t_max of a sampled batch (LN1, then 2d of the 3d QKV
 *      columns), in tiles of rows;
 *   2. for the sampled rows alone: LN1 again, Q, the attention of every head, the
 *      output projection, LN2, the FFN's hidden layer, and W2 for the sampled columns
 *      only (Y needs all d columns of A for LN2, but Y' column c needs W2's column c).
 * Memory is K, V for t_max + 1 rows (2 d doubles a row) plus one tile.
 *
 * Every output's arithmetic is the same whether its row is sampled alone or with all
 * the others (bias first, then the inputs in order; tiles never change an order), so
 * a sample equals the matching entries of a full run bit for bit (test_reference).
 * All arithmetic in double; no intermediate is rounded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "reference_extra.h"

/* Rows a tile: each weight row is read once per tile, not once per row (the weights,
 * 12 d^2 floats = 50 MB at d = 1024, do not fit in cache); 64 output columns (ref_gemm_rows)
 * at a time keep a tile's accumulators in L1.  The values ref_chela.c measured. */
#define ROW_TILE 16


typedef struct {
    const float *const *in;
    const float *x; /* this batch's rows, [T, d] */
    int d, H, D;
} tf_ctx_t;

/* One tile's scratch, each [ROW_TILE][width] row-major. */
typedef struct {
    double *xln, *q, *a, *y, *ln, *hid, *out; /* widths d, d, d, d, d, 4d, n_col */
} tf_tile_t;

/* ---------------- row helpers ---------------- */

/* The exact GELU, x Phi(x), not the tanh approximation. */
static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* a . b with four partial sums: one accumulator's add latency bounds the plain loop (the
 * attention is the largest part of a long sample); the order change only moves last bits. */
static double dot4(const double *a, const double *b, int n) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += a[i] * b[i];
        a1 += a[i + 1] * b[i + 1];
        a2 += a[i + 2] * b[i + 2];
        a3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) a0 += a[i] * b[i];
    return (a0 + a1) + (a2 + a3);
}

/* X~ for row t. */
static void ln1_row(const tf_ctx_t *cx, int t, double *xbuf, double *y) {
    const float *xt = cx->x + (size_t)t * cx->d;
    for (int i = 0; i < cx->d; i++) xbuf[i] = (double)xt[i];
    ref_layer_norm(xbuf, cx->d, cx->in[TRANSFORMER_IN_LN1_G], cx->in[TRANSFORMER_IN_LN1_B], y);
}

/* One row's attention, all heads: a [d] from q [d] (already scaled by 1/sqrt(D)) and
 * the rows 0..t of kv ([rows][2d]: K then V).  Row maximum subtracted before exp, as
 * in ref_softmax_attn.  p is [t+1] scratch. */
static void attend_row(const tf_ctx_t *cx, const double *q, const double *kv, int t, double *p,
                       double *a) {
    const size_t d = (size_t)cx->d, D = (size_t)cx->D;
    for (int h = 0; h < cx->H; h++) {
        const double *qh = q + h * D;
        double mx = -INFINITY;
        for (int s = 0; s <= t; s++) {
            p[s] = dot4(qh, kv + (size_t)s * 2 * d + h * D, cx->D);
            if (p[s] > mx) mx = p[s];
        }
        double sum = 0.0;
        for (int s = 0; s <= t; s++) {
            p[s] = exp(p[s] - mx);
            sum += p[s];
        }
        double *ah = a + h * D;
        for (size_t c = 0; c < D; c++) ah[c] = 0.0;
        for (int s = 0; s <= t; s++) {
            const double *v = kv + (size_t)s * 2 * d + d + h * D;
            for (size_t c = 0; c < D; c++) ah[c] += p[s] * v[c];
        }
        for (size_t c = 0; c < D; c++) ah[c] /= sum;
    }
}

/* ---------------- passes ---------------- */

/* Pass 1: K | V for rows 0..rows-1 into kv [rows][2d]. */
static void pass_kv(const tf_ctx_t *cx, int rows, double *kv, const tf_tile_t *tl,
                    double *xbuf) {
    const int d = cx->d;
    const float *W = cx->in[TRANSFORMER_IN_WQKV], *b = cx->in[TRANSFORMER_IN_BQKV];
    for (int t0 = 0; t0 < rows; t0 += ROW_TILE) {
        const int L = rows - t0 < ROW_TILE ? rows - t0 : ROW_TILE;
        for (int r = 0; r < L; r++) ln1_row(cx, t0 + r, xbuf, tl->xln + (size_t)r * d);
        ref_gemm_rows(tl->xln, L, d, W + d, 3 * d, 2 * d, b + d, kv + (size_t)t0 * 2 * d);
    }
}

/* Pass 2 for the sampled rows t[0..L-1]: everything after K and V.  out [L][n_col]. */
static void tile_rows(const tf_ctx_t *cx, const int *t, int L, const sample_t *m,
                      const double *kv, const tf_tile_t *tl, double *xbuf, double *p) {
    const float *const *in = cx->in;
    const int d = cx->d;
    const size_t dd = (size_t)d;
    for (int r = 0; r < L; r++) ln1_row(cx, t[r], xbuf, tl->xln + r * dd);
    ref_gemm_rows(tl->xln, L, d, in[TRANSFORMER_IN_WQKV], 3 * d, d, in[TRANSFORMER_IN_BQKV], tl->q);
    const double scale = 1.0 / sqrt((double)cx->D);
    for (size_t j = 0; j < (size_t)L * dd; j++) tl->q[j] *= scale;
    for (int r = 0; r < L; r++) attend_row(cx, tl->q + r * dd, kv, t[r], p, tl->a + r * dd);

    /* Y = X + (bo + A Wo), then LN2. */
    ref_gemm_rows(tl->a, L, d, in[TRANSFORMER_IN_WO], d, d, in[TRANSFORMER_IN_BO], tl->y);
    for (int r = 0; r < L; r++) {
        const float *x = cx->x + (size_t)t[r] * dd;
        double *y = tl->y + r * dd;
        for (int j = 0; j < d; j++) y[j] += (double)x[j];
        ref_layer_norm(y, d, in[TRANSFORMER_IN_LN2_G], in[TRANSFORMER_IN_LN2_B], tl->ln + r * dd);
    }
    ref_gemm_rows(tl->ln, L, d, in[TRANSFORMER_IN_W1], 4 * d, 4 * d, in[TRANSFORMER_IN_B1], tl->hid);
    for (size_t j = 0; j < (size_t)L * 4 * dd; j++) tl->hid[j] = gelu(tl->hid[j]);

    /* Y'[c] = Y[c] + (b2[c] + sum_j hid[j] W2[j][c]) for the sampled c only, j outermost
     * so W2 is read a row at a time. */
    const float *W2 = in[TRANSFORMER_IN_W2], *b2 = in[TRANSFORMER_IN_B2];
    const int nc = m->n_col;
    for (int r = 0; r < L; r++)
        for (int ci = 0; ci < nc; ci++) tl->out[(size_t)r * nc + ci] = (double)b2[m->col[ci]];
    for (size_t j = 0; j < 4 * dd; j++) {
        const float *w = W2 + j * dd;
        for (int r = 0; r < L; r++) {
            const double hj = tl->hid[(size_t)r * 4 * dd + j];
            double *o = tl->out + (size_t)r * nc;
            for (int ci = 0; ci < nc; ci++) o[ci] += hj * (double)w[m->col[ci]];
        }
    }
    for (int r = 0; r < L; r++)
        for (int ci = 0; ci < nc; ci++)
            tl->out[(size_t)r * nc + ci] += tl->y[r * dd + (size_t)m->col[ci]];
}

/* ---------------- driver ---------------- */

int ref_transformer(const shape_t *s, const float *const *in, const sample_t *smp, double *out) {
    if (s->B <= 0 || s->T <= 0 || s->d <= 0 || s->H <= 0 || s->dk <= 0)
        BENCH_FAIL("transformer: B, T, d, H, dk must be positive");
    if (s->dv != s->dk || (long long)s->H * s->dk != s->d)
        BENCH_FAIL("transformer: needs dk == dv and H * dk == d (got H %d, dk %d, dv %d, d %d)",
                   s->H, s->dk, s->dv, s->d);
    const char *bad = ref_sample_problem(smp, s->B, s->T, s->d);
    if (bad) BENCH_FAIL("transformer: %s", bad);
    if (smp->n_seq == 0 || smp->n_t == 0 || smp->n_col == 0) return 0;

    const size_t d = (size_t)s->d, R = ROW_TILE, nc = (size_t)smp->n_col;
    const int rows = smp->t[smp->n_t - 1] + 1;
    /* One block: kv [rows][2d], p [rows], x row [d], tile: 5 x [R][d], [R][4d], [R][n_col]. */
    const size_t n = (size_t)rows * 2 * d + (size_t)rows + d + R * (9 * d + nc);
    double *blk = malloc(n * sizeof(double));
    if (!blk) BENCH_FAIL("transformer reference: out of host memory (%zu doubles)", n);
    double *kv = blk, *p = kv + (size_t)rows * 2 * d, *xbuf = p + rows, *q = xbuf + d;
    tf_tile_t tl;
    tl.xln = q, q += R * d;
    tl.q = q, q += R * d;
    tl.a = q, q += R * d;
    tl.y = q, q += R * d;
    tl.ln = q, q += R * d;
    tl.hid = q, q += R * 4 * d;
    tl.out = q;

    for (int si = 0; si < smp->n_seq; si++) {
        const tf_ctx_t cx = {.in = in,
                             .x = in[TRANSFORMER_IN_X] + (size_t)smp->seq[si] * s->T * d,
                             .d = s->d, .H = s->H, .D = s->dk};
        pass_kv(&cx, rows, kv, &tl, xbuf);
        double *out_seq = out + (size_t)si * smp->n_t * nc;
        for (int t0 = 0; t0 < smp->n_t; t0 += ROW_TILE) {
            const int L = smp->n_t - t0 < ROW_TILE ? smp->n_t - t0 : ROW_TILE;
            tile_rows(&cx, smp->t + t0, L, smp, kv, &tl, xbuf, p);
            memcpy(out_seq + (size_t)t0 * nc, tl.out, (size_t)L * nc * sizeof(double));
        }
    }
    free(blk);
    return 0;
}
