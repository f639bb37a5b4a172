/* ref_chela.c: CPU reference for the whole CHELA layer (chela-spec.md).
 *
 * Every output row depends on all earlier rows (long conv, linear attention), so
 * a sample is computed as whole rows t = 0..t_max of each sampled batch, in three
 * passes:
 *   1. X~ = LayerNorm1(X) for every row;
 *   2. per channel, along the rows: U = SiLU(k3 * X~), Z = Kc * U with the
 *      reparameterized kernel (ref_reparam_kernel) and ref_causal_conv_row;
 *   3. in tiles of rows: the fused projection and Q/K/V; then row by row one step
 *      of the linear-attention state (ref_la_state_add/query, the op reference's
 *      own steps) and the norm; then the gates and the FFN.
 * Pass 3 streams: only X~ and Z are kept for all rows, plus the z x v state and
 * one tile, so memory is O(rows * d + z * v) whatever the sample.  The stage API
 * runs the same code with every intermediate kept (chela_stages_t).
 *
 * Layouts: x [B,T,d]; weights [in,out] row-major so Y = X . W; per-channel
 * kernels [d,taps]; the fused projection's columns are [Zq (z) | Ga (v) | Go (d) |
 * Hz (d)].  All arithmetic in double; no intermediate is rounded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "reference_extra.h"

typedef struct {
    const float *const *in;
    int T, b, rows;
    int d, z, v, np, k_m; /* np = z + v + 2d: width of the fused projection */
} chela_ctx_t;

/* Pass 3 works on tiles of ROW_TILE rows so that every weight row is read once
 * per tile rather than once per row: the weights (about 50 MB at d = 1024) do not
 * fit in cache, and a row at a time made the reference memory bound (about 1.6x
 * slower at d = 1024 on one core).  64 output columns (ref_gemm_rows) at a time keep a
 * tile's accumulators in L1 (64 measured as fast as 256, and the tests' small
 * widths still cross a block edge).  Neither changes any output's summation order
 * (bias, then inputs in order), so results are the bits of a row-at-a-time loop. */
#define ROW_TILE 16

/* One tile's rows, each array [L][width] row-major. */
typedef struct {
    double *proj, *q, *k, *val, *o_raw, *o, *y, *y_out; /* the stages the API keeps */
    double *m, *h, *ln, *f, *f2;                          /* [v] [d] [d] [2d] [d] a row */
} chela_tile_t;

/* ---------------- row helpers ---------------- */

/* RMSNorm without gain. */
static void rms_norm(const double *x, int n, double *y) {
    double ms = 0.0;
    for (int i = 0; i < n; i++) ms += x[i] * x[i];
    const double inv = 1.0 / sqrt(ms / n + CHELA_RMS_EPS);
    for (int i = 0; i < n; i++) y[i] = x[i] * inv;
}

/* ---------------- passes ---------------- */

/* Pass 1: X~ for every row.  xbuf is [d] scratch. */
static void pass_layer_norm(const chela_ctx_t *cx, double *x_ln, double *xbuf) {
    const float *X = cx->in[CHELA_IN_X] + (size_t)cx->b * cx->T * cx->d;
    for (int t = 0; t < cx->rows; t++) {
        const float *xt = X + (size_t)t * cx->d;
        for (int i = 0; i < cx->d; i++) xbuf[i] = (double)xt[i];
        ref_layer_norm(xbuf, cx->d, cx->in[CHELA_IN_LN1_G], cx->in[CHELA_IN_LN1_B],
                   x_ln + (size_t)t * cx->d);
    }
}

/* Pass 2: the short and long convolutions, channel by channel.  u_all may be NULL
 * (streaming); col/u/zcol are [rows] scratch, kc is [T]. */
static void pass_conv(const chela_ctx_t *cx, const double *x_ln, double *u_all, double *zc,
                      double *col, double *u, double *zcol, double *kc) {
    const float *k3 = cx->in[CHELA_IN_K3];
    const size_t d = (size_t)cx->d, T = (size_t)cx->T;
    for (int c = 0; c < cx->d; c++) {
        for (int t = 0; t < cx->rows; t++) col[t] = x_ln[(size_t)t * d + c];
        const double k3c[3] = {k3[3 * (size_t)c], k3[3 * (size_t)c + 1], k3[3 * (size_t)c + 2]};
        ref_causal_conv_row(col, cx->rows, k3c, 3, u);
        for (int t = 0; t < cx->rows; t++) u[t] = ref_silu(u[t]);
        /* d = 1: merge just this channel's kernels, T doubles instead of d * T. */
        ref_reparam_kernel(1, cx->T, cx->in[CHELA_IN_KLONG] + c * T, cx->in[CHELA_IN_K3B] + 3 * c,
                           cx->in[CHELA_IN_KM] + (size_t)c * cx->k_m, cx->k_m, kc);
        ref_causal_conv_row(u, cx->rows, kc, cx->rows, zcol);
        for (int t = 0; t < cx->rows; t++) {
            zc[(size_t)t * d + c] = zcol[t];
            if (u_all) u_all[(size_t)t * d + c] = u[t];
        }
    }
}

/* Pass 3a, rows t0..t0+L-1: the fused projection, Q, K (MEGA's shared Zq), V. */
static void tile_inputs(const chela_ctx_t *cx, int t0, int L, const double *x_ln,
                        const double *zc, const chela_tile_t *tl) {
    const float *const *in = cx->in;
    const size_t d = (size_t)cx->d, z = (size_t)cx->z, v = (size_t)cx->v;
    ref_gemm_rows(zc + t0 * d, L, cx->d, in[CHELA_IN_WPROJ], cx->np, cx->np, in[CHELA_IN_BPROJ], tl->proj);
    for (int r = 0; r < L; r++) {
        const double *zq_pre = tl->proj + (size_t)r * cx->np;
        for (size_t i = 0; i < z; i++) {
            const double zq = ref_silu(zq_pre[i]);
            tl->q[r * z + i] = (double)in[CHELA_IN_KAPPA_Q][i] * zq + (double)in[CHELA_IN_MU_Q][i];
            tl->k[r * z + i] = (double)in[CHELA_IN_KAPPA_K][i] * zq + (double)in[CHELA_IN_MU_K][i];
        }
    }
    ref_gemm_rows(x_ln + t0 * d, L, cx->d, in[CHELA_IN_WV], cx->v, cx->v, in[CHELA_IN_BV], tl->val);
    for (size_t j = 0; j < (size_t)L * v; j++) tl->val[j] = ref_silu(tl->val[j]);
}

/* Pass 3b, row after row: one step of the z x v state S, then RMSNorm. */
static void tile_attention(const chela_ctx_t *cx, int L, double *S, const chela_tile_t *tl) {
    const size_t z = (size_t)cx->z, v = (size_t)cx->v;
    const double scale = 1.0 / sqrt((double)cx->z);
    for (int r = 0; r < L; r++) {
        ref_la_state_add(S, tl->k + r * z, cx->z, tl->val + r * v, cx->v);
        ref_la_state_query(S, tl->q + r * z, scale, cx->z, cx->v, tl->o_raw + r * v);
        rms_norm(tl->o_raw + r * v, cx->v, tl->o + r * v);
    }
}

/* Pass 3c: gated output (eq. 9 and 14) and the FFN. */
static void tile_outputs(const chela_ctx_t *cx, int t0, int L, const chela_tile_t *tl) {
    const float *const *in = cx->in;
    const int d = cx->d, v = cx->v;
    for (int r = 0; r < L; r++) {
        const double *ga = tl->proj + (size_t)r * cx->np + cx->z;
        for (int j = 0; j < v; j++)
            tl->m[(size_t)r * v + j] = tl->o[(size_t)r * v + j] * ref_sigmoid(ga[j]);
    }
    ref_gemm_rows(tl->m, L, v, in[CHELA_IN_UH], d, d, in[CHELA_IN_BH], tl->h);
    for (int r = 0; r < L; r++) {
        const double *go = tl->proj + (size_t)r * cx->np + cx->z + v, *hz = go + d;
        const float *x = in[CHELA_IN_X] + ((size_t)cx->b * cx->T + t0 + r) * d;
        double *y = tl->y + (size_t)r * d;
        for (int j = 0; j < d; j++) {
            const double h = ref_silu(hz[j] + tl->h[(size_t)r * d + j]);
            const double g = ref_sigmoid(go[j]);
            y[j] = g * h + (1.0 - g) * (double)x[j];
        }
        ref_layer_norm(y, d, in[CHELA_IN_LN2_G], in[CHELA_IN_LN2_B], tl->ln + (size_t)r * d);
    }
    ref_gemm_rows(tl->ln, L, d, in[CHELA_IN_W1], 2 * d, 2 * d, NULL, tl->f);
    for (size_t j = 0; j < (size_t)L * 2 * d; j++) tl->f[j] = ref_silu(tl->f[j]);
    ref_gemm_rows(tl->f, L, 2 * d, in[CHELA_IN_W2], d, d, NULL, tl->f2);
    for (size_t j = 0; j < (size_t)L * d; j++) tl->y_out[j] = tl->y[j] + tl->f2[j];
}

/* ---------------- driver ---------------- */

/* The tile at row t0: kept stages point into the stage arrays when there are
 * any, else into the tile scratch. */
static chela_tile_t tile_at(const chela_ctx_t *cx, const chela_tile_t *scratch,
                            const chela_stages_t *st, int t0) {
    chela_tile_t tl = *scratch;
    if (!st) return tl;
    const size_t t = (size_t)t0;
    tl.proj = st->proj + t * cx->np;
    tl.q = st->q + t * cx->z;
    tl.k = st->k + t * cx->z;
    tl.val = st->val + t * cx->v;
    tl.o_raw = st->o_raw + t * cx->v;
    tl.o = st->o + t * cx->v;
    tl.y = st->y + t * cx->d;
    tl.y_out = st->y_out + t * cx->d;
    return tl;
}

/* Carves a tile's scratch out of p; the kept stages only when streaming. */
static double *tile_carve(const chela_ctx_t *cx, int keep, double *p, chela_tile_t *tl) {
    const size_t R = ROW_TILE, d = (size_t)cx->d, z = (size_t)cx->z, v = (size_t)cx->v;
    tl->m = p, p += R * v;
    tl->h = p, p += R * d;
    tl->ln = p, p += R * d;
    tl->f = p, p += R * 2 * d;
    tl->f2 = p, p += R * d;
    if (!keep) return p;
    tl->proj = p, p += R * (size_t)cx->np;
    tl->q = p, p += R * z;
    tl->k = p, p += R * z;
    tl->val = p, p += R * v;
    tl->o_raw = p, p += R * v;
    tl->o = p, p += R * v;
    tl->y = p, p += R * d;
    tl->y_out = p, p += R * d;
    return p;
}

/* Runs the layer on rows 0..rows-1 of batch b.  With st, keeps every stage there
 * (its arrays already allocated); otherwise emits the sampled columns of Y' at
 * the sampled t's (m, out_seq: n_t x n_col). */
static int chela_run(const chela_ctx_t *cx, chela_stages_t *st, const sample_t *m,
                     double *out_seq) {
    const size_t d = (size_t)cx->d, z = (size_t)cx->z, v = (size_t)cx->v;
    const size_t rows = (size_t)cx->rows, np = (size_t)cx->np, R = ROW_TILE;
    /* One block: [state z*v][pass 2: 3 rows + T][x row d][tile scratch] and, when
     * streaming, [X~, Z: rows * d each][the tile's kept stages]. */
    size_t n = z * v + 3 * rows + (size_t)cx->T + d + R * (v + 5 * d);
    if (!st) n += 2 * rows * d + R * (np + 2 * z + 3 * v + 2 * d);
    double *blk = calloc(n, sizeof(double));
    if (!blk) BENCH_FAIL("chela reference: out of host memory (%zu doubles)", n);
    double *p = blk, *S = p;
    p += z * v;
    double *col = p, *u = p + rows, *zcol = p + 2 * rows, *kc = p + 3 * rows;
    p += 3 * rows + (size_t)cx->T;
    double *xbuf = p;
    p += d;
    chela_tile_t scratch;
    p = tile_carve(cx, !st, p, &scratch);
    double *x_ln = st ? st->x_ln : p, *zc = st ? st->zc : p + rows * d;

    pass_layer_norm(cx, x_ln, xbuf);
    pass_conv(cx, x_ln, st ? st->u : NULL, zc, col, u, zcol, kc);
    int ti = 0;
    for (int t0 = 0; t0 < cx->rows; t0 += ROW_TILE) {
        const int L = cx->rows - t0 < ROW_TILE ? cx->rows - t0 : ROW_TILE;
        chela_tile_t tl = tile_at(cx, &scratch, st, t0);
        tile_inputs(cx, t0, L, x_ln, zc, &tl);
        tile_attention(cx, L, S, &tl);
        tile_outputs(cx, t0, L, &tl);
        for (; m && ti < m->n_t && m->t[ti] < t0 + L; ti++) {
            const double *y = tl.y_out + (size_t)(m->t[ti] - t0) * d;
            double *o = out_seq + (size_t)ti * m->n_col;
            for (int ci = 0; ci < m->n_col; ci++) o[ci] = y[m->col[ci]];
        }
    }
    free(blk);
    return 0;
}

static int chela_ctx(const shape_t *s, const float *const *in, int b, int rows,
                     chela_ctx_t *cx) {
    if (s->B <= 0 || s->T <= 0 || s->d <= 0 || s->z <= 0 || s->v <= 0)
        BENCH_FAIL("chela: B, T, d, z, v must be positive");
    if (b < 0 || b >= s->B || rows < 1 || rows > s->T)
        BENCH_FAIL("chela: batch %d / rows %d out of range (B %d, T %d)", b, rows, s->B, s->T);
    *cx = (chela_ctx_t){.in = in, .T = s->T, .b = b, .rows = rows, .d = s->d, .z = s->z,
                        .v = s->v, .np = s->z + s->v + 2 * s->d, .k_m = shape_km(s->T)};
    return 0;
}

int ref_chela(const shape_t *s, const float *const *in, const sample_t *smp, double *out) {
    if (s->B <= 0 || s->T <= 0 || s->d <= 0 || s->z <= 0 || s->v <= 0)
        BENCH_FAIL("chela: B, T, d, z, v must be positive");
    const char *bad = ref_sample_problem(smp, s->B, s->T, s->d);
    if (bad) BENCH_FAIL("chela: %s", bad);
    if (smp->n_seq == 0 || smp->n_t == 0 || smp->n_col == 0) return 0;
    const int rows = smp->t[smp->n_t - 1] + 1;
    for (int si = 0; si < smp->n_seq; si++) {
        chela_ctx_t cx;
        if (chela_ctx(s, in, smp->seq[si], rows, &cx)) return -1;
        double *out_seq = out + (size_t)si * smp->n_t * smp->n_col;
        if (chela_run(&cx, NULL, smp, out_seq)) return -1;
    }
    return 0;
}

void ref_chela_stages_free(chela_stages_t *st) {
    double **f[] = {&st->x_ln, &st->u, &st->zc, &st->proj, &st->q, &st->k,
                    &st->val, &st->o_raw, &st->o, &st->y, &st->y_out};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        free(*f[i]);
        *f[i] = NULL;
    }
}

int ref_chela_stages(const shape_t *s, const float *const *in, int b, int rows,
                     chela_stages_t *st) {
    memset(st, 0, sizeof *st);
    chela_ctx_t cx;
    if (chela_ctx(s, in, b, rows, &cx)) return -1;
    const size_t R = (size_t)rows, d = (size_t)cx.d, z = (size_t)cx.z, v = (size_t)cx.v;
    *st = (chela_stages_t){.rows = rows, .d = cx.d, .z = cx.z, .v = cx.v, .np = cx.np};
    st->x_ln = malloc(R * d * sizeof(double));
    st->u = malloc(R * d * sizeof(double));
    st->zc = malloc(R * d * sizeof(double));
    st->proj = malloc(R * (size_t)cx.np * sizeof(double));
    st->q = malloc(R * z * sizeof(double));
    st->k = malloc(R * z * sizeof(double));
    st->val = malloc(R * v * sizeof(double));
    st->o_raw = malloc(R * v * sizeof(double));
    st->o = malloc(R * v * sizeof(double));
    st->y = malloc(R * d * sizeof(double));
    st->y_out = malloc(R * d * sizeof(double));
    if (!st->x_ln || !st->u || !st->zc || !st->proj || !st->q || !st->k || !st->val ||
        !st->o_raw || !st->o || !st->y || !st->y_out) {
        ref_chela_stages_free(st);
        BENCH_FAIL("chela stages: out of host memory (%d rows)", rows);
    }
    if (chela_run(&cx, st, NULL, NULL)) {
        ref_chela_stages_free(st);
        return -1;
    }
    return 0;
}
