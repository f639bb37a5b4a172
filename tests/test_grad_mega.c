/* test_grad_mega.c: the MEGA layer's double backward (ref_grad_mega.h) against finite
 * differences of its own double forward, and that forward against the op's reference
 * ref_mega (ref_mega.c, written independently: EMA by its recurrence, attention row by row).
 *
 * Inputs are the op's own seeded fills (inputs_make: the tensors and magnitudes ops.c
 * describes, gains near 1, EMA parameters with time constants 2 .. 4100 tokens), read as
 * doubles; the upstream gradient dY is seeded uniform in +-[0.05, 1].  The attention chunk
 * is forced small through the mega_chunk setting (as test_reference_mega.c does), so the
 * shapes have several chunks and a partial last one, and also one chunk (auto, c = T).
 * L = sum(dY . y) has dL/dp = what ref_mega_bwd returns for dY, so every element p of every
 * input tensor is compared with the fourth-order central difference
 *   fd = (8 (L(p+h) - L(p-h)) - (L(p+2h) - L(p-2h))) / 12h,  h = FD_STEP = 1e-4,
 * and accepted when |grad - fd| <= FD_ABS + FD_REL |fd| = 1e-8 + 1e-7 |fd|.
 *
 * Four points, as test_grad_chela.c and test_grad_transformer.c found necessary: the
 * two-point difference's truncation h^2/6 |L'''| and rounding eps sum|dY y| / h meet near
 * 1e-7 for any h, too close to a tolerance that still tells a small error from noise.
 * With four points at h = 1e-4 what is left is rounding, eps |L's terms| / h, independent
 * of the gradient's size: observed worst |grad - fd| 4e-12 .. 1.6e-10 (0.4% .. 11% of the
 * tolerance, the most at T = 37 in dema_delta), so FD_ABS is 1e-9, a tenth of chela's:
 * the attention's parameters have small gradients at the op's fills (|dkappa| 2e-6 ..
 * 4e-4: the scores q . k / sqrt(z) vary little), and a floor of 1e-8 would hide a 1e-4
 * relative error in them.  dmu_k is 0 exactly (test_mu_k_has_no_gradient says why) and is
 * compared like the rest, in absolute terms.
 * Mutations of the backward, each made by hand and then undone, each failed every shape
 * that can see it (errors 2.7e-9 .. 8.7): the sign of the decay term in dalpha, dropping
 * delta's sigmoid factor, r^t for r^(t-1) in the kernel's derivative, dbeta without a,
 * the sign of the softmax's row term, dK from k instead of q, sigmoid' for SiLU' in the
 * reset gate, dO without gamma, the sign of LayerNorm's x^ term, dkappa_q scaled by 1.001
 * (the smallest: 2.7e-9 at T = 9), and an attention backward that ignores the chunks
 * (every shape but the one-chunk T = 2); test_fd_detects_errors keeps checking that a
 * gradient element moved by 1e-4 of its tensor's largest |grad| is flagged. */
#include <stdio.h>

#include "ref_grad.h"
#include "ref_grad_mega.h"
#include "ref_test_util.h"
#include "settings.h"

#define FD_STEP 1e-4
#define FD_ABS 1e-9
#define FD_REL 1e-7

/* The inputs' names, for messages (ops.c's names, MEGA_IN_* order). */
static const char *const IN_NAME[MEGA_N_IN] = {
    "x",      "ln1_g",   "ln1_b", "ema_alpha", "ema_delta", "ema_beta", "ema_eta",
    "w_proj", "b_proj",  "kappa_q", "mu_q",    "kappa_k",   "mu_k",     "w_v",
    "b_v",    "u_h",     "b_h",   "ln2_g",     "ln2_b",     "w1",       "w2"};

static const setting_def_t CHUNK_DEF[] = {{"mega_chunk", "auto|64..65536", "test"},
                                          {NULL, NULL, NULL}};

/* ---------------- problems ---------------- */

typedef struct {
    shape_t s;
    settings_t set; /* s.set points here: the chunk */
    size_t n[MEGA_N_IN], n_y;
    double *in[MEGA_N_IN], *grad[MEGA_N_IN];
    double *dY, *y; /* upstream gradient and forward scratch, [B,T,d] */
} problem_t;

static uint64_t xorshift64(uint64_t *state) {
    uint64_t v = *state;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    return *state = v;
}

/* Values in +-[0.05, 1]: no element is inert. */
static void fill_random(double *a, size_t n, uint64_t seed) {
    uint64_t st = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = xorshift64(&st);
        const double mag = 0.05 + 0.95 * (double)(r >> 11) / 9007199254740992.0; /* 2^53 */
        a[i] = (r & 1) ? -mag : mag;
    }
}

/* A settings block holding mega_chunk = c (SETTING_AUTO: the default, capped at T). */
static settings_t chunk_setting(int c) {
    settings_t st;
    memset(&st, 0, sizeof st);
    st.def = CHUNK_DEF;
    st.n = 1;
    st.val[0] = c;
    return st;
}

static shape_t mega_shape(int B, int T, int d, int z, int v) {
    return (shape_t){.B = B, .T = T, .d = d, .z = z, .v = v, .causal = 1, .dtype = DTYPE_F32};
}

/* The op's inputs for seed at shape s with chunk setting chunk, as doubles; the float
 * images stay in *x when x is not NULL. */
static void problem_make(problem_t *p, shape_t s, int chunk, uint64_t seed, inputs_t *x) {
    memset(p, 0, sizeof *p);
    p->set = chunk_setting(chunk);
    p->s = s;
    p->s.set = &p->set;
    inputs_t own;
    inputs_t *fx = x ? x : &own;
    inputs_make(OP_MEGA, &p->s, seed, fx);
    ck_assert_int_eq(fx->n, MEGA_N_IN);
    for (int i = 0; i < MEGA_N_IN; i++) {
        p->n[i] = ref_mega_in_elems(&p->s, i);
        ck_assert_msg(p->n[i] == fx->desc[i].elems, "%s: %zu elements, ops.c says %zu",
                      IN_NAME[i], p->n[i], fx->desc[i].elems);
        ck_assert_str_eq(fx->desc[i].name, IN_NAME[i]);
        p->in[i] = dalloc(p->n[i]);
        p->grad[i] = dalloc(p->n[i]);
        to_double(fx->t[i], p->n[i], p->in[i]);
    }
    if (!x) inputs_free(&own);
    p->n_y = (size_t)s.B * s.T * s.d;
    p->dY = dalloc(p->n_y);
    p->y = dalloc(p->n_y);
    fill_random(p->dY, p->n_y, seed * 0x9E3779B97F4A7C15ull);
}

static void problem_free(problem_t *p) {
    for (int i = 0; i < MEGA_N_IN; i++) {
        free(p->in[i]);
        free(p->grad[i]);
    }
    free(p->dY);
    free(p->y);
}

static const double *const *ins(const problem_t *p) { return (const double *const *)p->in; }

static void backward(problem_t *p) {
    ck_assert_msg(ref_mega_bwd(&p->s, ins(p), NULL, p->dY, p->grad) == 0, "%s",
                  bench_last_error());
}

static double loss(problem_t *p) {
    ck_assert_msg(ref_mega_fwd_d(&p->s, ins(p), p->y) == 0, "%s", bench_last_error());
    double L = 0.0;
    for (size_t i = 0; i < p->n_y; i++) L += p->dY[i] * p->y[i];
    return L;
}

/* ---------------- finite differences ---------------- */

static double loss_of(void *p) { return loss((problem_t *)p); }

/* Compares grad[ti] with central differences over every element of tensor ti; keeps the
 * worst in *res (without asserting, so a caller can also expect a failure). */
static void fd_tensor(problem_t *p, int ti, const double *grad, fd_result_t *res) {
    fd_compare(p->in[ti], p->n[ti], ti, grad, loss_of, p, FD_STEP, FD_ABS, FD_REL, res);
}

static void fd_assert(const problem_t *p, const fd_result_t *r, const char *what) {
    ck_assert_msg(r->worst <= 1.0,
                  "%s (B %d T %d d %d z %d v %d chunk %d): d%s[%zu] backward %.12g, finite "
                  "difference %.12g: error %.3g > %.1g + %.1g |fd|",
                  what, p->s.B, p->s.T, p->s.d, p->s.z, p->s.v, mega_chunk(&p->s),
                  IN_NAME[r->tensor], r->elem, r->g, r->fd, fabs(r->g - r->fd), FD_ABS, FD_REL);
}

/* {B, T, d, z, v, chunk}, B <= 2, T <= 16, d <= 8: T = 16 in chunks 5, 5, 5, 1 (a partial
 * last chunk of one token); T = 7 in 3, 3, 1 with v != 2d; T = 9 in 4, 4, 1 with z == v;
 * T = 2 as one chunk (auto, capped at T). */
static const int SHAPES[][6] = {
    {2, 16, 8, 4, 8, 5}, {1, 7, 4, 2, 6, 3}, {1, 9, 4, 3, 3, 4}, {2, 2, 3, 3, 5, SETTING_AUTO},
    {2, 37, 12, 4, 10, 8}};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static shape_t shape_at(int i) {
    return mega_shape(SHAPES[i][0], SHAPES[i][1], SHAPES[i][2], SHAPES[i][3], SHAPES[i][4]);
}

START_TEST(test_fd_every_input) {
    problem_t p;
    problem_make(&p, shape_at(_i), SHAPES[_i][5], SEED + 100 + (uint64_t)_i, NULL);
    backward(&p);
    fd_result_t all = {0};
    double scale = 0.0;
    for (int ti = 0; ti < MEGA_N_IN; ti++) {
        fd_result_t r = {0};
        fd_tensor(&p, ti, p.grad[ti], &r);
        fd_assert(&p, &r, "finite differences");
        if (ti != MEGA_IN_MU_K) /* 0 in exact arithmetic: test_mu_k_has_no_gradient */
            ck_assert_msg(max_abs(p.grad[ti], p.n[ti]) > 0.0, "d%s is all zero", IN_NAME[ti]);
        scale = fmax(scale, max_abs(p.grad[ti], p.n[ti]));
        if (r.worst > all.worst) all = r;
        all.worst_abs = fmax(all.worst_abs, r.worst_abs);
    }
    printf("mega bwd B %d T %d d %d z %d v %d chunk %d: worst |grad - fd| %.3g (%.3g of the "
           "tolerance, at d%s), largest |grad| %.3g\n",
           p.s.B, p.s.T, p.s.d, p.s.z, p.s.v, mega_chunk(&p.s), all.worst_abs, all.worst,
           IN_NAME[all.tensor], scale);
    problem_free(&p);
}
END_TEST

/* The comparison is sharp enough to see a small error: one element of each gradient,
 * changed by 1e-4 of the largest |grad| of its tensor, must fail it. */
START_TEST(test_fd_detects_errors) {
    problem_t p;
    problem_make(&p, shape_at(1), SHAPES[1][5], SEED + 200, NULL);
    backward(&p);
    for (int ti = 0; ti < MEGA_N_IN; ti++) {
        if (ti == MEGA_IN_MU_K) continue; /* its gradient is 0: nothing relative to move */
        const size_t j = p.n[ti] / 2;
        double *bad = dalloc(p.n[ti]);
        memcpy(bad, p.grad[ti], p.n[ti] * sizeof(double));
        bad[j] += 1e-4 * max_abs(p.grad[ti], p.n[ti]);
        fd_result_t r = {0};
        fd_tensor(&p, ti, bad, &r);
        ck_assert_msg(r.worst > 1.0 && r.elem == j,
                      "d%s[%zu] off by 1e-4 relative passed (worst %.3g at %zu)", IN_NAME[ti], j,
                      r.worst, r.elem);
        free(bad);
    }
    problem_free(&p);
}
END_TEST

/* ---------------- the forward against ref_mega ---------------- */

/* ref_mega (float inputs, EMA by recurrence, attention row by row in tiles) and the double
 * forward (EMA by its kernel, attention a chunk at a time) on the same values: both are
 * double throughout, so they differ only by rounding order. */
START_TEST(test_forward_matches_ref_mega) {
    static const int extra[6] = {1, 64, 16, 8, 32, 16}; /* wider, four full chunks */
    const int *dims = _i < N_SHAPES ? SHAPES[_i] : extra;
    problem_t p;
    inputs_t x;
    problem_make(&p, mega_shape(dims[0], dims[1], dims[2], dims[3], dims[4]), dims[5],
                 SEED + 300 + (uint64_t)_i, &x);
    const shape_t *s = &p.s;
    double *want = run_full(OP_MEGA, s, &x);
    ck_assert_int_eq(ref_mega_fwd_d(s, ins(&p), p.y), 0);
    assert_close(p.y, want, p.n_y, 1e-12, "double forward vs ref_mega");
    double diff = 0.0;
    for (size_t i = 0; i < p.n_y; i++) diff = fmax(diff, fabs(p.y[i] - want[i]));
    printf("mega fwd B %d T %d d %d chunk %d: max |y - ref_mega| %.3g (max |y| %.3g)\n", s->B,
           s->T, s->d, mega_chunk(s), diff, max_abs(want, p.n_y));
    free(want);
    inputs_free(&x);
    problem_free(&p);
}
END_TEST

/* Its saved EMA and attention against ref_mega.c's pieces, so a disagreement is located:
 * the kernel against ref_mega_ema_kernel (exp/log1p), X' against the recurrence
 * ref_mega_ema_row, O against ref_mega_chunk_attention. */
START_TEST(test_saved_stages_match) {
    problem_t p;
    inputs_t x;
    problem_make(&p, shape_at(0), SHAPES[0][5], SEED + 400, &x);
    const shape_t *s = &p.s;
    mega_acts_t a;
    ck_assert_int_eq(ref_mega_acts_alloc(s, &a), 0);
    ck_assert_int_eq(a.chunk, SHAPES[0][5]);
    ck_assert_int_eq(ref_mega_fwd_save(s, ins(&p), &a), 0);
    const int T = s->T, d = s->d, z = s->z, v = s->v;
    double *k = dalloc((size_t)T), *col = dalloc((size_t)T), *ecol = dalloc((size_t)T);
    double *xe = dalloc((size_t)T * d), *o = dalloc((size_t)T * v);
    for (int b = 0; b < s->B; b++) {
        const size_t r0 = (size_t)b * T;
        for (int c = 0; c < d; c++) {
            ref_mega_ema_kernel(cin(&x), c, T, k);
            assert_close(a.ema_k + (size_t)c * T, k, (size_t)T, 1e-14, "EMA kernel");
            for (int t = 0; t < T; t++) col[t] = a.x_ln[(r0 + t) * d + c];
            ref_mega_ema_row(cin(&x), c, col, T, ecol);
            for (int t = 0; t < T; t++) xe[(size_t)t * d + c] = ecol[t];
        }
        assert_close(a.xe + r0 * d, xe, (size_t)T * d, 1e-13, "X' vs the EMA's recurrence");
        ck_assert_int_eq(ref_mega_chunk_attention(a.q + r0 * z, a.k + r0 * z, a.val + r0 * v, T,
                                                  z, v, a.chunk, o), 0);
        assert_close(a.o + r0 * v, o, (size_t)T * v, 1e-13, "O vs ref_mega_chunk_attention");
    }
    free(k), free(col), free(ecol), free(xe), free(o);
    ref_mega_acts_free(&a);
    inputs_free(&x);
    problem_free(&p);
}
END_TEST

/* ---------------- structure ---------------- */

/* The chunked attention's backward (written out for z != v) against ref_softmax_attn_bwd
 * where that applies, z == v: chunk by chunk, each an independent causal attention. */
START_TEST(test_chunk_attn_bwd_is_softmax_per_chunk) {
    static const int cases[][4] = {/* B, T, D, chunk */
                                   {2, 11, 3, 4}, {1, 8, 5, 8}, {2, 7, 2, 3}, {1, 5, 4, 64}};
    const int B = cases[_i][0], T = cases[_i][1], D = cases[_i][2], c = cases[_i][3];
    const size_t n = (size_t)B * T * D;
    double *q = dalloc(n), *k = dalloc(n), *v = dalloc(n), *g = dalloc(n);
    double *dq = dalloc(n), *dk = dalloc(n), *dv = dalloc(n);
    double *wq = dalloc(n), *wk = dalloc(n), *wv = dalloc(n);
    fill_random(q, n, 11 + (uint64_t)_i);
    fill_random(k, n, 21 + (uint64_t)_i);
    fill_random(v, n, 31 + (uint64_t)_i);
    fill_random(g, n, 41 + (uint64_t)_i);
    ck_assert_int_eq(ref_mega_chunk_attn_bwd(B, T, D, D, c, q, k, v, g, dq, dk, dv), 0);
    for (int b = 0; b < B; b++)
        for (int s0 = 0; s0 < T; s0 += c) {
            const int L = T - s0 < c ? T - s0 : c;
            const size_t o = ((size_t)b * T + s0) * D;
            const shape_t cs = {.B = 1, .H = 1, .T = L, .dk = D, .dv = D, .causal = 1};
            ck_assert_int_eq(ref_softmax_attn_bwd(&cs, q + o, k + o, v + o, g + o, wq + o,
                                                  wk + o, wv + o), 0);
        }
    assert_close(dq, wq, n, 1e-13, "dQ");
    assert_close(dk, wk, n, 1e-13, "dK");
    assert_close(dv, wv, n, 1e-13, "dV");
    double *all[] = {q, k, v, g, dq, dk, dv, wq, wk, wv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}
END_TEST

/* With chunks of one token each query sees only itself: O = V whatever Q and K are, so the
 * gradients of kappa, mu and the Zq columns of the projection are exactly 0. */
START_TEST(test_chunk_one_gives_no_qk_gradient) {
    problem_t p;
    problem_make(&p, shape_at(0), 1, SEED + 450, NULL);
    backward(&p);
    const int z = p.s.z, np = p.s.z + p.s.v + 2 * p.s.d;
    for (int i = 0; i < z; i++) {
        ck_assert_double_eq(p.grad[MEGA_IN_KAPPA_Q][i], 0.0);
        ck_assert_double_eq(p.grad[MEGA_IN_MU_Q][i], 0.0);
        ck_assert_double_eq(p.grad[MEGA_IN_KAPPA_K][i], 0.0);
        ck_assert_double_eq(p.grad[MEGA_IN_MU_K][i], 0.0);
        ck_assert_double_eq(p.grad[MEGA_IN_BPROJ][i], 0.0);
        for (int r = 0; r < p.s.d; r++)
            ck_assert_double_eq(p.grad[MEGA_IN_WPROJ][(size_t)r * np + i], 0.0);
    }
    ck_assert(max_abs(p.grad[MEGA_IN_BPROJ], (size_t)np) > 0.0);
    problem_free(&p);
}
END_TEST

/* mu_k adds q_t . mu_k / sqrt(z) to every score of row t alike, and a softmax does not see
 * a shift of its whole row: dmu_k = sum_t q_t sum_s dS_ts = 0 exactly, in every chunk.  The
 * backward's is rounding only (observed ~1e-18); a GPU backward's will be rounding too and
 * must be compared in absolute terms.  kappa_k, which scales the keys, is not so spared. */
START_TEST(test_mu_k_has_no_gradient) {
    problem_t p;
    problem_make(&p, shape_at(_i), SHAPES[_i][5], SEED + 500 + (uint64_t)_i, NULL);
    backward(&p);
    double scale = 0.0;
    for (int ti = 0; ti < MEGA_N_IN; ti++) scale = fmax(scale, max_abs(p.grad[ti], p.n[ti]));
    ck_assert_msg(max_abs(p.grad[MEGA_IN_MU_K], (size_t)p.s.z) <= 1e-15 * scale,
                  "dmu_k %.3g, not 0 (largest |grad| %.3g)",
                  max_abs(p.grad[MEGA_IN_MU_K], (size_t)p.s.z), scale);
    ck_assert(max_abs(p.grad[MEGA_IN_KAPPA_K], (size_t)p.s.z) > 1e-8);
    problem_free(&p);
}
END_TEST

/* bwd(dY1 + 2 dY2) = bwd(dY1) + 2 bwd(dY2), and saved activations give the same bits as
 * the backward's own forward. */
START_TEST(test_linear_in_dY_and_saved_acts) {
    problem_t p;
    problem_make(&p, shape_at(0), SHAPES[0][5], SEED + 600, NULL);
    double *g1[MEGA_N_IN], *g2[MEGA_N_IN], *dY2 = dalloc(p.n_y), *dYs = dalloc(p.n_y);
    for (int i = 0; i < MEGA_N_IN; i++) g1[i] = dalloc(p.n[i]), g2[i] = dalloc(p.n[i]);
    fill_random(dY2, p.n_y, 0xBADC0DEull);
    for (size_t i = 0; i < p.n_y; i++) dYs[i] = p.dY[i] + 2.0 * dY2[i];
    mega_acts_t a;
    ck_assert_int_eq(ref_mega_acts_alloc(&p.s, &a), 0);
    ck_assert_int_eq(ref_mega_fwd_save(&p.s, ins(&p), &a), 0);
    ck_assert_int_eq(ref_mega_bwd(&p.s, ins(&p), &a, p.dY, g1), 0);
    backward(&p);
    for (int i = 0; i < MEGA_N_IN; i++)
        ck_assert_msg(memcmp(g1[i], p.grad[i], p.n[i] * sizeof(double)) == 0,
                      "d%s differs with saved activations", IN_NAME[i]);
    ck_assert_int_eq(ref_mega_bwd(&p.s, ins(&p), &a, dY2, g2), 0);
    ck_assert_int_eq(ref_mega_bwd(&p.s, ins(&p), &a, dYs, p.grad), 0);
    for (int i = 0; i < MEGA_N_IN; i++) {
        const double scale = max_abs(p.grad[i], p.n[i]);
        for (size_t j = 0; j < p.n[i]; j++) {
            const double want = g1[i][j] + 2.0 * g2[i][j];
            ck_assert_msg(fabs(p.grad[i][j] - want) <= 1e-13 * fmax(scale, 1.0),
                          "d%s[%zu] not linear in dY: %.17g vs %.17g", IN_NAME[i], j,
                          p.grad[i][j], want);
        }
        free(g1[i]);
        free(g2[i]);
    }
    ref_mega_acts_free(&a);
    free(dY2);
    free(dYs);
    problem_free(&p);
}
END_TEST

START_TEST(test_bad_shapes) {
    problem_t p;
    problem_make(&p, shape_at(0), SHAPES[0][5], SEED + 700, NULL);
    shape_t bad = p.s;
    bad.z = 0;
    bench_clear_error();
    ck_assert_int_eq(ref_mega_bwd(&bad, ins(&p), NULL, p.dY, p.grad), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "mega"));
    ck_assert_int_eq(ref_mega_fwd_d(&bad, ins(&p), p.y), -1);
    mega_acts_t a;
    ck_assert_int_eq(ref_mega_acts_alloc(&bad, &a), -1);
    /* Activations of another shape, or saved with another chunk, are refused, not misread. */
    ck_assert_int_eq(ref_mega_acts_alloc(&p.s, &a), 0);
    bad = p.s;
    bad.T = 1;
    ck_assert_int_eq(ref_mega_bwd(&bad, ins(&p), &a, p.dY, p.grad), -1);
    ck_assert_int_eq(ref_mega_fwd_save(&bad, ins(&p), &a), -1);
    settings_t other = chunk_setting(SHAPES[0][5] + 1);
    bad = p.s;
    bad.set = &other;
    ck_assert_int_eq(ref_mega_fwd_save(&bad, ins(&p), &a), -1);
    ck_assert_int_eq(ref_mega_bwd(&bad, ins(&p), &a, p.dY, p.grad), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "chunk"));
    ref_mega_acts_free(&a);
    ck_assert_int_eq(ref_mega_chunk_attn_bwd(1, 4, 2, 2, 0, p.dY, p.dY, p.dY, p.dY, p.y, p.y,
                                             p.y), -1);
    problem_free(&p);
}
END_TEST

static Suite *grad_mega_suite(void) {
    Suite *su = suite_create("grad_mega");
    TCase *fd = tcase_create("finite_differences");
    tcase_add_loop_test(fd, test_fd_every_input, 0, N_SHAPES);
    tcase_add_test(fd, test_fd_detects_errors);
    tcase_set_timeout(fd, 120);
    suite_add_tcase(su, fd);

    TCase *fw = tcase_create("forward");
    tcase_add_loop_test(fw, test_forward_matches_ref_mega, 0, N_SHAPES + 1);
    tcase_add_test(fw, test_saved_stages_match);
    suite_add_tcase(su, fw);

    TCase *st = tcase_create("structure");
    tcase_add_loop_test(st, test_chunk_attn_bwd_is_softmax_per_chunk, 0, 4);
    tcase_add_test(st, test_chunk_one_gives_no_qk_gradient);
    tcase_add_loop_test(st, test_mu_k_has_no_gradient, 0, N_SHAPES);
    tcase_add_test(st, test_linear_in_dY_and_saved_acts);
    tcase_add_test(st, test_bad_shapes);
    suite_add_tcase(su, st);
    return su;
}

int main(void) {
    SRunner *sr = srunner_create(grad_mega_suite());
    srunner_run_all(sr, CK_ENV);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
