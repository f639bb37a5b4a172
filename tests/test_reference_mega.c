/* test_reference_mega.c: the mega reference (ref_mega.c) checked against independent
 * computations: the EMA's recurrence against its convolution kernel (what the GPU runs), the
 * chunked attention's boundaries (a query never sees an earlier chunk's keys) and its one-chunk
 * case against the softmax_attn reference, the chunk setting's resolution, and the whole layer
 * against a plainly written whole-tensor computation at tiny shapes, chunked and not. */
#include "ref_test_util.h"

#include "mega/attn_plan.h"
#include "settings.h"

static const setting_def_t CHUNK_DEF[] = {{"mega_chunk", "auto|64..65536", "test"},
                                          {NULL, NULL, NULL}};

/* A settings block holding mega_chunk = c (any value: settings_get does not check ranges). */
static settings_t chunk_setting(int c) {
    settings_t st;
    memset(&st, 0, sizeof st);
    st.def = CHUNK_DEF;
    st.n = 1;
    st.val[0] = c;
    return st;
}

/* Values in [-1, 1) from a small LCG (no zeros in practice; exact zeros would not matter). */
static void fill(double *a, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        a[i] = ((double)(seed >> 8) / (double)(1u << 24)) * 2.0 - 1.0;
    }
}

START_TEST(test_mega_chunk_setting) {
    shape_t s = {.B = 1, .T = 5000, .d = 8, .z = 4, .v = 16};
    ck_assert_int_eq(mega_chunk(&s), MEGA_CHUNK_DEFAULT); /* no settings: auto */
    settings_t st = chunk_setting(SETTING_AUTO);
    s.set = &st;
    ck_assert_int_eq(mega_chunk(&s), 1024);
    st.val[0] = 256;
    ck_assert_int_eq(mega_chunk(&s), 256);
    s.T = 100; /* at most T */
    ck_assert_int_eq(mega_chunk(&s), 100);
    s.set = NULL;
    ck_assert_int_eq(mega_chunk(&s), 100);
    /* the attention's FLOPs follow the chunk: T c (z + v) a sequence when c divides T,
     * plus the remainder's square */
    const op_desc_t *op = op_get(OP_MEGA);
    s.T = 4096;
    s.B = 1;
    s.set = &st;
    st.val[0] = 1024;
    const double f1024 = op->flops(&s);
    st.val[0] = 512;
    ck_assert(fabs((f1024 - op->flops(&s)) - 4096.0 * 512 * (4 + 16)) < 1e-6 * f1024);
    st.val[0] = 1000; /* 4 chunks of 1000 and one of 96 */
    const double f1000 = op->flops(&s);
    st.val[0] = 1024;
    ck_assert(fabs((f1024 - f1000) - (4096.0 * 1024 - (4 * 1e6 + 96.0 * 96)) * 20) < 1e-6 * f1024);
}
END_TEST

/* mega/layer's attention GEMMs do the halves of each chunk's queries (attn_chunk.cu): the first
 * half against the first half of the keys, the second against all; its stage costs count that. */
START_TEST(test_mega_attn_gemm_elems) {
    ck_assert(mega_attn_gemm_elems(1, 4096, 1024) == 4 * (1024.0 * 1024 - 512.0 * 512));
    /* odd lengths: L = 7 is 3 x 3 + 4 x 7 = 37 of 49; a partial chunk of 1000 - 3 * 333 = 1 */
    ck_assert(mega_attn_gemm_elems(2, 7, 7) == 2 * 37.0);
    ck_assert(mega_attn_gemm_elems(1, 1000, 333) == 3 * (333.0 * 333 - 166.0 * 167) + 1);
    ck_assert(mega_attn_gemm_elems(3, 1, 1) == 3.0);
}
END_TEST

/* One strided-batched GEMM call as cuBLAS defines it (column-major, C = alpha op(A) B), in
 * double, over the operands' whole arrays (offsets are the plan's). */
static void gemm_call(const mega_gemm_call_t *g, double alpha, const double *A, const double *B,
                      double *C) {
    for (int it = 0; it < g->count; it++) {
        const double *a = A + g->a + it * g->sa, *b = B + g->b + it * g->sb;
        double *c = C + g->c + it * g->sc;
        for (int j = 0; j < g->n; j++)
            for (int r = 0; r < g->m; r++) {
                double acc = 0.0;
                for (int kk = 0; kk < g->k; kk++)
                    acc += (g->transa ? a[kk + (size_t)r * g->lda] : a[r + (size_t)kk * g->lda]) *
                           b[kk + (size_t)j * g->ldb];
                c[r + (size_t)j * g->ldc] = alpha * acc;
            }
    }
}

/* mega/layer's attention plan run on the CPU: its GEMM calls through gemm_call, the row softmax
 * as chunk_softmax computes it (keys j <= i of each slab row, zeros after), against the
 * reference's chunked attention.  S, P and O start as NaN, so a score the softmax reads but no
 * call wrote, or an output no call wrote, shows.  Chunks that divide T, that do not (B groups of
 * full chunks + one of partial ones), odd lengths (halves h = L / 2 of odd L), L = 1, c = T. */
START_TEST(test_mega_attn_plan) {
    static const int cases[][5] = {/* B, T, z, nv, chunk */
                                   {2, 37, 5, 7, 8}, {3, 64, 4, 6, 16}, {2, 45, 3, 5, 45},
                                   {1, 1, 4, 4, 1},  {3, 50, 4, 3, 7},  {2, 9, 2, 3, 2},
                                   {4, 3, 2, 2, 1}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int B = cases[ci][0], T = cases[ci][1], z = cases[ci][2], nv = cases[ci][3];
        const int chunk = cases[ci][4];
        mega_attn_plan_t p;
        ck_assert_int_eq(mega_attn_plan_make(B, T, z, nv, chunk, &p), 0);
        const size_t N = (size_t)B * T, slab = mega_attn_slab_elems(B, T, chunk);
        double *q = dalloc(N * z), *k = dalloc(N * z), *v = dalloc(N * nv), *o = dalloc(N * nv);
        double *S = dalloc(slab), *P = dalloc(slab), *want = dalloc((size_t)T * nv);
        fill(q, N * z, 11 + (unsigned)ci);
        fill(k, N * z, 21 + (unsigned)ci);
        fill(v, N * nv, 31 + (unsigned)ci);
        for (size_t i = 0; i < slab; i++) S[i] = P[i] = NAN;
        for (size_t i = 0; i < N * nv; i++) o[i] = NAN;
        size_t covered = 0;
        for (int gi = 0; gi < p.ng; gi++) {
            const mega_attn_group_t *g = &p.g[gi];
            covered += (size_t)g->count * g->L;
            mega_gemm_call_t c[2];
            for (int j = 0, n = mega_attn_scores_calls(&p, gi, c); j < n; j++) {
                ck_assert(c[j].c + (long long)(c[j].count - 1) * c[j].sc +
                              (long long)(c[j].n - 1) * c[j].ldc + c[j].m <= (long long)slab);
                gemm_call(&c[j], 1.0 / sqrt((double)z), k, q, S);
            }
            for (long long r = 0; r < (long long)g->count * g->L; r++) {
                const int i = (int)(r % g->L);
                const double *sr = S + g->s_off + (size_t)r * g->L;
                double *pr = P + g->s_off + (size_t)r * g->L, mx = -INFINITY, sum = 0.0;
                for (int j = 0; j <= i; j++) mx = fmax(mx, sr[j]);
                for (int j = 0; j <= i; j++) sum += exp(sr[j] - mx);
                for (int j = 0; j < g->L; j++) pr[j] = j <= i ? exp(sr[j] - mx) / sum : 0.0;
            }
            for (int j = 0, n = mega_attn_pv_calls(&p, gi, c); j < n; j++) gemm_call(&c[j], 1.0, v, P, o);
        }
        ck_assert_uint_eq(covered, N); /* every row in exactly one chunk of one group */
        for (int b = 0; b < B; b++) {
            const size_t r0 = (size_t)b * T;
            ck_assert_int_eq(ref_mega_chunk_attention(q + r0 * z, k + r0 * z, v + r0 * nv, T, z,
                                                      nv, chunk, want), 0);
            assert_finite(o + r0 * nv, (size_t)T * nv, "plan's O");
            assert_close(o + r0 * nv, want, (size_t)T * nv, 1e-12, "attention plan vs reference");
        }
        double *all[] = {q, k, v, o, S, P, want};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
        mega_attn_plan_free(&p);
    }
}
END_TEST

/* A cuBLAS call takes at most MEGA_ATTN_MAX_BATCH chunks: B T / c beyond it is cut into calls. */
START_TEST(test_mega_attn_plan_batches) {
    mega_attn_plan_t p;
    ck_assert_int_eq(mega_attn_plan_make(65536 * 2 + 7, 1, 8, 8, 1, &p), 0);
    int total = 0;
    for (int gi = 0; gi < p.ng; gi++) {
        ck_assert_int_le(p.g[gi].count, MEGA_ATTN_MAX_BATCH);
        ck_assert_int_eq(p.g[gi].row0, total);
        total += p.g[gi].count;
    }
    ck_assert_int_eq(total, 65536 * 2 + 7);
    ck_assert_int_eq(p.ng, 3);
    mega_attn_plan_free(&p);
    ck_assert_int_eq(mega_attn_plan_make(2, 10, 8, 8, 11, &p), -1); /* chunk > T */
}
END_TEST

/* The recurrence and the closed-form kernel convolved directly: the same numbers. */
START_TEST(test_mega_ema_recurrence_is_conv) {
    shape_t s = {.B = 1, .T = 700, .d = 6, .z = 4, .v = 8, .causal = 1, .dtype = DTYPE_F32};
    inputs_t x;
    inputs_make(OP_MEGA, &s, SEED + 90, &x);
    const int T = s.T;
    double *u = dalloc(T), *rec = dalloc(T), *k = dalloc(T), *conv = dalloc(T);
    for (int c = 0; c < s.d; c++) {
        for (int t = 0; t < T; t++) u[t] = x.t[MEGA_IN_X][(size_t)t * s.d + c];
        ref_mega_ema_row(cin(&x), c, u, T, rec);
        ref_mega_ema_kernel(cin(&x), c, T, k);
        ref_causal_conv_row(u, T, k, T, conv);
        assert_close(rec, conv, (size_t)T, 1e-12, "EMA recurrence vs kernel");
        /* long: the slowest of the channel's decays keeps more than 1e-3 of its weight at
         * t = 700 somewhere among the 6 channels' 96 dims (time constants up to ~4100) */
    }
    double slowest = 1.0;
    for (size_t i = 0; i < (size_t)s.d * MEGA_EMA_H; i++) {
        const double a = 1 / (1 + exp(-(double)x.t[MEGA_IN_ALPHA][i]));
        const double g = 1 / (1 + exp(-(double)x.t[MEGA_IN_DELTA][i]));
        slowest = fmin(slowest, a * g);
    }
    ck_assert_msg(slowest < 1.0 / 700, "slowest decay %g: the EMA kernel is not long", slowest);
    free(u);
    free(rec);
    free(k);
    free(conv);
    inputs_free(&x);
}
END_TEST

/* A query's output depends on the keys and values of its own chunk only: perturbing row p's
 * k and v changes rows p..end of p's chunk and nothing else (partial last chunk included). */
START_TEST(test_mega_chunk_boundary) {
    const int rows = 45, z = 5, nv = 7, chunk = 16; /* chunks [0,16) [16,32) [32,45) */
    double *q = dalloc((size_t)rows * z), *k = dalloc((size_t)rows * z);
    double *v = dalloc((size_t)rows * nv), *o1 = dalloc((size_t)rows * nv);
    double *o2 = dalloc((size_t)rows * nv);
    fill(q, (size_t)rows * z, 1);
    fill(k, (size_t)rows * z, 2);
    fill(v, (size_t)rows * nv, 3);
    ck_assert_int_eq(ref_mega_chunk_attention(q, k, v, rows, z, nv, chunk, o1), 0);
    const int perturbed[] = {0, 9, 15, 16, 31, 33, 44};
    for (size_t pi = 0; pi < sizeof perturbed / sizeof perturbed[0]; pi++) {
        const int p = perturbed[pi];
        k[(size_t)p * z] += 0.5;
        v[(size_t)p * nv + 2] -= 0.5;
        ck_assert_int_eq(ref_mega_chunk_attention(q, k, v, rows, z, nv, chunk, o2), 0);
        const int c0 = p / chunk * chunk, c1 = c0 + chunk < rows ? c0 + chunk : rows;
        for (int t = 0; t < rows; t++) {
            double diff = 0;
            for (int j = 0; j < nv; j++) diff += fabs(o2[(size_t)t * nv + j] - o1[(size_t)t * nv + j]);
            if (t >= p && t < c1)
                ck_assert_msg(diff > 1e-6, "row %d of the chunk of %d did not change", t, p);
            else
                ck_assert_msg(diff == 0.0, "row %d changed with row %d's key (chunk %d..%d)", t,
                              p, c0, c1 - 1);
        }
        k[(size_t)p * z] -= 0.5;
        v[(size_t)p * nv + 2] += 0.5;
    }
    free(q);
    free(k);
    free(v);
    free(o1);
    free(o2);
}
END_TEST

/* One chunk as long as the sequence is plain causal softmax attention: the softmax_attn
 * reference (dk = dv, one head) computes it from the same inputs. */
START_TEST(test_mega_one_chunk_is_softmax_attn) {
    shape_t s = {.B = 1, .H = 1, .T = 33, .dk = 6, .dv = 6, .causal = 1, .dtype = DTYPE_F32};
    inputs_t x;
    inputs_make(OP_SOFTMAX_ATTN, &s, SEED + 91, &x);
    double *want = run_full(OP_SOFTMAX_ATTN, &s, &x);
    const size_t n = (size_t)s.T * s.dk;
    double *q = dalloc(n), *k = dalloc(n), *v = dalloc(n), *o = dalloc(n);
    to_double(x.t[0], n, q);
    to_double(x.t[1], n, k);
    to_double(x.t[2], n, v);
    ck_assert_int_eq(ref_mega_chunk_attention(q, k, v, s.T, s.dk, s.dk, s.T, o), 0);
    assert_close(o, want, n, 1e-13, "one chunk vs softmax_attn");
    free(q);
    free(k);
    free(v);
    free(o);
    free(want);
    inputs_free(&x);
}
END_TEST

/* ---------------- the whole layer, written plainly ---------------- */

static double sig(double a) { return 1.0 / (1.0 + exp(-a)); }
static double silu(double a) { return a * sig(a); }

/* out[r][j] = sum_i a[r][i] w[i][j] (+ bias[j]) over whole matrices. */
static void matmul(const double *a, int rows, int n_in, const float *w, int ld, int col0,
                   int n_out, const float *bias, double *out) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n_out; j++) {
            double acc = bias ? bias[col0 + j] : 0.0;
            for (int i = 0; i < n_in; i++) acc += a[(size_t)r * n_in + i] * w[(size_t)i * ld + col0 + j];
            out[(size_t)r * n_out + j] = acc;
        }
}

static void layer_norm_rows(const double *x, int rows, int d, const float *g, const float *b,
                            double *y) {
    for (int r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int i = 0; i < d; i++) mean += x[(size_t)r * d + i] / d;
        for (int i = 0; i < d; i++) var += pow(x[(size_t)r * d + i] - mean, 2) / d;
        for (int i = 0; i < d; i++)
            y[(size_t)r * d + i] = (x[(size_t)r * d + i] - mean) / sqrt(var + CHELA_LN_EPS) * g[i] + b[i];
    }
}

/* The layer of ops.c for batch b, every row, as whole tensors: the EMA as the sum over
 * s <= t of its kernel (pow), the attention as a T x T score matrix masked to s <= t in t's
 * chunk. */
static void plain_mega(const shape_t *s, const float *const *in, int b, int chunk, double *yout) {
    const int T = s->T, d = s->d, z = s->z, v = s->v, np = z + v + 2 * d;
    double *x = dalloc((size_t)T * d), *xl = dalloc((size_t)T * d), *xe = dalloc((size_t)T * d);
    double *pr = dalloc((size_t)T * np), *q = dalloc((size_t)T * z), *k = dalloc((size_t)T * z);
    double *vv = dalloc((size_t)T * v), *sc = dalloc((size_t)T * T), *o = dalloc((size_t)T * v);
    double *h = dalloc((size_t)T * d), *y = dalloc((size_t)T * d), *ln = dalloc((size_t)T * d);
    double *f = dalloc((size_t)T * 2 * d), *f2 = dalloc((size_t)T * d);
    for (size_t i = 0; i < (size_t)T * d; i++) x[i] = in[MEGA_IN_X][(size_t)b * T * d + i];
    layer_norm_rows(x, T, d, in[MEGA_IN_LN1_G], in[MEGA_IN_LN1_B], xl);
    for (int c = 0; c < d; c++)
        for (int t = 0; t < T; t++) {
            double acc = 0;
            for (int sidx = 0; sidx <= t; sidx++)
                for (int j = 0; j < MEGA_EMA_H; j++) {
                    const size_t pi = (size_t)c * MEGA_EMA_H + j;
                    const double a = sig(in[MEGA_IN_ALPHA][pi]), g = sig(in[MEGA_IN_DELTA][pi]);
                    acc += in[MEGA_IN_ETA][pi] * a * in[MEGA_IN_BETA][pi] * pow(1 - a * g, t - sidx) *
                           xl[(size_t)sidx * d + c];
                }
            xe[(size_t)t * d + c] = acc;
        }
    matmul(xe, T, d, in[MEGA_IN_WPROJ], np, 0, np, in[MEGA_IN_BPROJ], pr);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < z; i++) {
            const double zq = silu(pr[(size_t)t * np + i]);
            q[(size_t)t * z + i] = in[MEGA_IN_KAPPA_Q][i] * zq + in[MEGA_IN_MU_Q][i];
            k[(size_t)t * z + i] = in[MEGA_IN_KAPPA_K][i] * zq + in[MEGA_IN_MU_K][i];
        }
    matmul(xl, T, d, in[MEGA_IN_WV], v, 0, v, in[MEGA_IN_BV], vv);
    for (size_t i = 0; i < (size_t)T * v; i++) vv[i] = silu(vv[i]);
    for (int t = 0; t < T; t++) {
        double mx = -1e300, sum = 0;
        for (int u = 0; u < T; u++) {
            double a = 0;
            for (int i = 0; i < z; i++) a += q[(size_t)t * z + i] * k[(size_t)u * z + i];
            const int seen = u <= t && u / chunk == t / chunk;
            sc[(size_t)t * T + u] = seen ? a / sqrt((double)z) : -INFINITY;
            if (seen && sc[(size_t)t * T + u] > mx) mx = sc[(size_t)t * T + u];
        }
        for (int u = 0; u < T; u++) sum += (sc[(size_t)t * T + u] = exp(sc[(size_t)t * T + u] - mx));
        for (int j = 0; j < v; j++) {
            double acc = 0;
            for (int u = 0; u < T; u++) acc += sc[(size_t)t * T + u] / sum * vv[(size_t)u * v + j];
            o[(size_t)t * v + j] = acc * silu(pr[(size_t)t * np + z + j]);
        }
    }
    matmul(o, T, v, in[MEGA_IN_UH], d, 0, d, NULL, h);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < d; j++) {
            const double phi = sig(pr[(size_t)t * np + z + v + j]);
            const double hh = silu(pr[(size_t)t * np + z + v + d + j] + h[(size_t)t * d + j] +
                                   in[MEGA_IN_BH][j]);
            y[(size_t)t * d + j] = phi * hh + (1 - phi) * x[(size_t)t * d + j];
        }
    layer_norm_rows(y, T, d, in[MEGA_IN_LN2_G], in[MEGA_IN_LN2_B], ln);
    matmul(ln, T, d, in[MEGA_IN_W1], 2 * d, 0, 2 * d, NULL, f);
    for (size_t i = 0; i < (size_t)T * 2 * d; i++) f[i] = silu(f[i]);
    matmul(f, T, 2 * d, in[MEGA_IN_W2], d, 0, d, NULL, f2);
    for (size_t i = 0; i < (size_t)T * d; i++) yout[i] = y[i] + f2[i];
    double *all[] = {x, xl, xe, pr, q, k, vv, sc, o, h, y, ln, f, f2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* _i: chunk case.  The reference against the plain computation, every output; chunks that
 * divide T, that do not (a partial last chunk), of one token, and auto (one chunk). */
START_TEST(test_mega_layer_plain) {
    static const int chunks[] = {8, 5, 1, SETTING_AUTO};
    shape_t s = {.B = 2, .T = 37, .d = 12, .z = 4, .v = 10, .causal = 1, .dtype = DTYPE_BF16};
    settings_t st = chunk_setting(chunks[_i]);
    s.set = &st;
    inputs_t x;
    inputs_make(OP_MEGA, &s, SEED + 92 + _i, &x);
    double *ref = run_full(OP_MEGA, &s, &x);
    const size_t per = (size_t)s.T * s.d;
    double *want = dalloc(per * s.B);
    for (int b = 0; b < s.B; b++) plain_mega(&s, cin(&x), b, mega_chunk(&s), want + b * per);
    assert_finite(ref, per * s.B, "mega");
    assert_close(ref, want, per * s.B, 1e-11, "mega reference vs plain whole tensors");
    free(ref);
    free(want);
    inputs_free(&x);
}
END_TEST

/* The chunk changes the function (it is a setting the reference reads): with chunks of 8 and
 * of 16, rows 0-7 and rows 16-19 sit in chunks that start at the same row and agree exactly;
 * rows 8-15 do not (their chunk starts at 8 in one, at 0 in the other). */
START_TEST(test_mega_layer_chunk_changes_output) {
    shape_t s = {.B = 1, .T = 20, .d = 8, .z = 4, .v = 8, .causal = 1, .dtype = DTYPE_F32};
    settings_t st = chunk_setting(8);
    s.set = &st;
    inputs_t x;
    inputs_make(OP_MEGA, &s, SEED + 97, &x);
    double *y8 = run_full(OP_MEGA, &s, &x);
    st.val[0] = 16;
    double *y16 = run_full(OP_MEGA, &s, &x);
    for (int t = 0; t < s.T; t++) {
        double diff = 0;
        for (int j = 0; j < s.d; j++) diff += fabs(y8[(size_t)t * s.d + j] - y16[(size_t)t * s.d + j]);
        if (t < 8 || t >= 16) ck_assert_msg(diff == 0.0, "row %d differs in a shared chunk", t);
        else ck_assert_msg(diff > 1e-6, "row %d is the same with chunks 8 and 16", t);
    }
    free(y8);
    free(y16);
    inputs_free(&x);
}
END_TEST

/* Scale sanity at the benchmark's width: X' (the EMA's output) and Y' have rms of order 1. */
START_TEST(test_mega_layer_scale) {
    shape_t s = {.B = 1, .T = 64, .d = 128, .z = 32, .v = 256, .causal = 1, .dtype = DTYPE_BF16};
    inputs_t x;
    inputs_make(OP_MEGA, &s, SEED + 98, &x);
    double *y = run_full(OP_MEGA, &s, &x);
    double ss = 0;
    for (size_t i = 0; i < (size_t)s.T * s.d; i++) ss += y[i] * y[i];
    const double rms = sqrt(ss / ((double)s.T * s.d));
    ck_assert_msg(rms > 0.3 && rms < 5, "rms of Y' %g", rms);
    free(y);
    inputs_free(&x);
}
END_TEST

int main(void) {
    Suite *su = suite_create("reference_mega");
    TCase *tc = tcase_create("mega");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_mega_chunk_setting);
    tcase_add_test(tc, test_mega_attn_gemm_elems);
    tcase_add_test(tc, test_mega_attn_plan);
    tcase_add_test(tc, test_mega_attn_plan_batches);
    tcase_add_test(tc, test_mega_ema_recurrence_is_conv);
    tcase_add_test(tc, test_mega_chunk_boundary);
    tcase_add_test(tc, test_mega_one_chunk_is_softmax_attn);
    tcase_add_loop_test(tc, test_mega_layer_plain, 0, 4);
    tcase_add_test(tc, test_mega_layer_chunk_changes_output);
    tcase_add_test(tc, test_mega_layer_scale);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
