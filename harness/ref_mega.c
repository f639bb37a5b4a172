/* ref_mega.c: CPU reference for MEGA's gated attention layer (ops.c, chela-spec.md "The hybrid
 * baseline"), the layer CHELA modifies.
 *
 * Every output row depends on earlier rows (the EMA, the attention within its chunk), so a
 * sample is computed as whole rows t = 0..t_max of each sampled batch:
 *   1. X~ = LayerNorm1(X) for every row;
 *   2. X' = EMA(X~) by its recurrence, channel by channel along the rows (ref_mega_ema_row):
 *      the definition itself, not the convolution the GPU runs (tests check the two agree);
 *   3. in tiles of rows: the fused projection, Q and K, V; the attention of each row over the
 *      keys of its own chunk up to itself (ref_mega_attn_row); the gates and the FFN.
 * K and V are kept for every row (a query reads the keys of its chunk), X~ and X' too; the rest
 * lives one tile at a time.  Layouts as ref_chela.c: weights [in, out] row-major, the fused
 * projection's columns [Zq (z) | G (v) | F (d) | Hz (d)].  All arithmetic in double; no
 * intermediate is rounded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "reference_extra.h"

/* Rows a tile (ref_chela.c says why tiles: each weight row is read once a tile). */
#define ROW_TILE 16

void ref_mega_ema_row(const float *const *in, int c, const double *x, int rows, double *y) {
    const float *al = in[MEGA_IN_ALPHA] + (size_t)c * MEGA_EMA_H;
    const float *de = in[MEGA_IN_DELTA] + (size_t)c * MEGA_EMA_H;
    const float *be = in[MEGA_IN_BETA] + (size_t)c * MEGA_EMA_H;
    const float *et = in[MEGA_IN_ETA] + (size_t)c * MEGA_EMA_H;
    double gain[MEGA_EMA_H], decay[MEGA_EMA_H], h[MEGA_EMA_H];
    for (int j = 0; j < MEGA_EMA_H; j++) {
        const double a = ref_sigmoid(al[j]), g = ref_sigmoid(de[j]);
        gain[j] = a * (double)be[j];
        decay[j] = 1.0 - a * g;
        h[j] = 0.0;
    }
    for (int t = 0; t < rows; t++) {
        double acc = 0.0;
        for (int j = 0; j < MEGA_EMA_H; j++) {
            h[j] = gain[j] * x[t] + decay[j] * h[j];
            acc += (double)et[j] * h[j];
        }
        y[t] = acc;
    }
}

void ref_mega_ema_kernel(const float *const *in, int c, int T, double *k) {
    for (int t = 0; t < T; t++) k[t] = 0.0;
    for (int j = 0; j < MEGA_EMA_H; j++) {
        const size_t i = (size_t)c * MEGA_EMA_H + j;
        const double a = ref_sigmoid(in[MEGA_IN_ALPHA][i]), g = ref_sigmoid(in[MEGA_IN_DELTA][i]);
        const double w = (double)in[MEGA_IN_ETA][i] * a * (double)in[MEGA_IN_BETA][i];
        const double lr = log1p(-a * g); /* (1 - a g)^t = exp(t log(1 - a g)) */
        for (int t = 0; t < T; t++) k[t] += w * exp(t * lr);
    }
}

void ref_mega_attn_row(const double *q, const double *K, const double *V, int s0, int t, int z,
                       int nv, double *p, double *o) {
    const double scale = 1.0 / sqrt((double)z);
    double mx = -INFINITY;
    for (int s = s0; s <= t; s++) {
        double a = 0.0;
        for (int i = 0; i < z; i++) a += q[i] * K[(size_t)s * z + i];
        p[s - s0] = a * scale;
        if (p[s - s0] > mx) mx = p[s - s0];
    }
    double sum = 0.0;
    for (int s = s0; s <= t; s++) sum += (p[s - s0] = exp(p[s - s0] - mx));
    for (int j = 0; j < nv; j++) o[j] = 0.0;
    for (int s = s0; s <= t; s++) {
        const double w = p[s - s0] / sum;
        const double *vs = V + (size_t)s * nv;
        for (int j = 0; j < nv; j++) o[j] += w * vs[j];
    }
}

int ref_mega_chunk_attention(const double *q, const double *k, const double *v, int rows, int z,
                             int nv, int chunk, double *o) {
    if (rows < 1 || z < 1 || nv < 1 || chunk < 1) BENCH_FAIL("mega attention: bad sizes");
    double *p = malloc((size_t)(chunk < rows ? chunk : rows) * sizeof(double));
    if (!p) BENCH_FAIL("mega attention: out of host memory");
    for (int t = 0; t < rows; t++)
        ref_mega_attn_row(q + (size_t)t * z, k, v, t / chunk * chunk, t, z, nv, p,
                          o + (size_t)t * nv);
    free(p);
    return 0;
}

typedef struct {
    const float *const *in;
    int T, b, rows, chunk;
    int d, z, v, np;
} mega_ctx_t;

/* One tile's scratch, each [ROW_TILE][width]. */
typedef struct {
    double *proj, *q, *o, *h, *y, *ln, *f, *f2;
} mega_tile_t;

/* Rows t0..t0+L-1: projection, Q (tile), K and V (kept for all rows), attention, gates, FFN;
 * the output rows go to yout [L, d]. */
static void mega_tile(const mega_ctx_t *cx, int t0, int L, const double *x_ln, const double *xe,
                      double *K, double *V, double *p, const mega_tile_t *tl, double *yout) {
    const float *const *in = cx->in;
    const int d = cx->d, z = cx->z, v = cx->v, np = cx->np;
    ref_gemm_rows(xe + (size_t)t0 * d, L, d, in[MEGA_IN_WPROJ], np, np, in[MEGA_IN_BPROJ],
                  tl->proj);
    for (int r = 0; r < L; r++) {
        const double *zq_pre = tl->proj + (size_t)r * np;
        double *kr = K + (size_t)(t0 + r) * z;
        for (int i = 0; i < z; i++) {
            const double zq = ref_silu(zq_pre[i]);
            tl->q[(size_t)r * z + i] = (double)in[MEGA_IN_KAPPA_Q][i] * zq + (double)in[MEGA_IN_MU_Q][i];
            kr[i] = (double)in[MEGA_IN_KAPPA_K][i] * zq + (double)in[MEGA_IN_MU_K][i];
        }
    }
    double *Vt = V + (size_t)t0 * v;
    ref_gemm_rows(x_ln + (size_t)t0 * d, L, d, in[MEGA_IN_WV], v, v, in[MEGA_IN_BV], Vt);
    for (size_t j = 0; j < (size_t)L * v; j++) Vt[j] = ref_silu(Vt[j]);
    for (int r = 0; r < L; r++) {
        const int t = t0 + r;
        double *o = tl->o + (size_t)r * v;
        ref_mega_attn_row(tl->q + (size_t)r * z, K, V, t / cx->chunk * cx->chunk, t, z, v, p, o);
        const double *g = tl->proj + (size_t)r * np + z; /* reset gate, pre-SiLU */
        for (int j = 0; j < v; j++) o[j] *= ref_silu(g[j]);
    }
    ref_gemm_rows(tl->o, L, v, in[MEGA_IN_UH], d, d, in[MEGA_IN_BH], tl->h);
    for (int r = 0; r < L; r++) {
        const double *f = tl->proj + (size_t)r * np + z + v, *hz = f + d;
        const float *x = in[MEGA_IN_X] + ((size_t)cx->b * cx->T + t0 + r) * d;
        double *y = tl->y + (size_t)r * d;
        for (int j = 0; j < d; j++) {
            const double hh = ref_silu(hz[j] + tl->h[(size_t)r * d + j]);
            const double phi = ref_sigmoid(f[j]);
            y[j] = phi * hh + (1.0 - phi) * (double)x[j];
        }
        ref_layer_norm(y, d, in[MEGA_IN_LN2_G], in[MEGA_IN_LN2_B], tl->ln + (size_t)r * d);
    }
    ref_gemm_rows(tl->ln, L, d, in[MEGA_IN_W1], 2 * d, 2 * d, NULL, tl->f);
    for (size_t j = 0; j < (size_t)L * 2 * d; j++) tl->f[j] = ref_silu(tl->f[j]);
    ref_gemm_rows(tl->f, L, 2 * d, in[MEGA_IN_W2], d, d, NULL, tl->f2);
    for (size_t j = 0; j < (size_t)L * d; j++) yout[j] = tl->y[j] + tl->f2[j];
}

/* The layer on rows 0..rows-1 of batch cx->b; the sampled columns of Y' at the sampled t's go
 * to out_seq (n_t x n_col). */
static int mega_run(const mega_ctx_t *cx, const sample_t *m, double *out_seq) {
    const size_t d = (size_t)cx->d, z = (size_t)cx->z, v = (size_t)cx->v, np = (size_t)cx->np;
    const size_t rows = (size_t)cx->rows, R = ROW_TILE;
    /* [X~, X' rows*d each][K rows*z][V rows*v][p rows][col, ecol rows each][tile] */
    const size_t n = rows * (2 * d + z + v + 3) + R * (np + z + v + 6 * d);
    double *blk = calloc(n, sizeof(double));
    if (!blk) BENCH_FAIL("mega reference: out of host memory (%zu doubles)", n);
    double *x_ln = blk, *xe = x_ln + rows * d, *K = xe + rows * d, *V = K + rows * z;
    double *p = V + rows * v, *col = p + rows, *ecol = col + rows, *q = ecol + rows;
    mega_tile_t tl;
    tl.proj = q, q += R * np;
    tl.q = q, q += R * z;
    tl.o = q, q += R * v;
    tl.h = q, q += R * d;
    tl.y = q, q += R * d;
    tl.ln = q, q += R * d;
    tl.f = q, q += R * 2 * d;
    tl.f2 = q, q += R * d;
    double *yout = tl.f2; /* the FFN's output row is read once, into yout in place */

    const float *X = cx->in[MEGA_IN_X] + (size_t)cx->b * cx->T * d;
    for (size_t t = 0; t < rows; t++) {
        for (size_t i = 0; i < d; i++) tl.y[i] = (double)X[t * d + i];
        ref_layer_norm(tl.y, cx->d, cx->in[MEGA_IN_LN1_G], cx->in[MEGA_IN_LN1_B], x_ln + t * d);
    }
    for (int c = 0; c < cx->d; c++) {
        for (size_t t = 0; t < rows; t++) col[t] = x_ln[t * d + c];
        ref_mega_ema_row(cx->in, c, col, cx->rows, ecol);
        for (size_t t = 0; t < rows; t++) xe[t * d + c] = ecol[t];
    }
    int ti = 0;
    for (int t0 = 0; t0 < cx->rows; t0 += ROW_TILE) {
        const int L = cx->rows - t0 < ROW_TILE ? cx->rows - t0 : ROW_TILE;
        mega_tile(cx, t0, L, x_ln, xe, K, V, p, &tl, yout);
        for (; ti < m->n_t && m->t[ti] < t0 + L; ti++) {
            const double *y = yout + (size_t)(m->t[ti] - t0) * d;
            double *o = out_seq + (size_t)ti * m->n_col;
            for (int ci = 0; ci < m->n_col; ci++) o[ci] = y[m->col[ci]];
        }
    }
    free(blk);
    return 0;
}

int ref_mega(const shape_t *s, const float *const *in, const sample_t *smp, double *out) {
    if (s->B <= 0 || s->T <= 0 || s->d <= 0 || s->z <= 0 || s->v <= 0)
        BENCH_FAIL("mega: B, T, d, z, v must be positive");
    const char *bad = ref_sample_problem(smp, s->B, s->T, s->d);
    if (bad) BENCH_FAIL("mega: %s", bad);
    if (smp->n_seq == 0 || smp->n_t == 0 || smp->n_col == 0) return 0;
    for (int si = 0; si < smp->n_seq; si++) {
        const mega_ctx_t cx = {.in = in, .T = s->T, .b = smp->seq[si],
                               .rows = smp->t[smp->n_t - 1] + 1, .chunk = mega_chunk(s),
                               .d = s->d, .z = s->z, .v = s->v, .np = s->z + s->v + 2 * s->d};
        if (mega_run(&cx, smp, out + (size_t)si * smp->n_t * smp->n_col)) return -1;
    }
    return 0;
}
