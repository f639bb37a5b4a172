/* test_grad_sampled.c: the sampled gradient references (grad_ref.h), which verify GPU
 * backwards, against the whole-tensor double references (ref_grad_attn.c, ref_grad_conv.c),
 * which test_grad_attn / test_grad_conv check by finite differences.
 *
 * Inputs are the harness's own (tensor_fill_host, bf16 run: what a GPU run sees), dy as the
 * runner makes it.  Every gradient tensor of every op with a backward is computed both ways,
 * on every element (the CPU backend's sample) and on the sample grad_sample_choose takes
 * under a tiny budget (the path a T = 64k run takes, suffix window included), at shapes with
 * T < 3 (short taps that reach no output), odd T, several sequences, causal and not.
 * Tolerance 1e-12 of the tensor's largest element: the two are double sums of the same terms
 * in different orders.  Then the sampler's contract at the default sweep's largest points
 * (costs only: nothing is computed there), and the per-pass FLOPs and bytes rule. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grad_ref.h"
#include "ref_grad.h"
#include "ref_grad_conv.h"
#include "runner.h"

#define SEED 20240612ull

typedef struct {
    shape_t s;
    const op_desc_t *op;
    const grad_ref_t *gr;
    int n_in;
    tensor_desc_t in[OP_MAX_INPUTS], out;
    float *inf[OP_MAX_INPUTS], *dyf;
    double *whole[OP_MAX_INPUTS]; /* the whole-tensor gradients, in the inputs' layouts */
} problem_t;

static double *to_double(const float *f, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof(double));
    ck_assert_ptr_nonnull(d);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    return d;
}

static void problem_make(problem_t *p, op_id op, shape_t s) {
    memset(p, 0, sizeof *p);
    s.dtype = DTYPE_BF16;
    s.pass = PASS_BWD;
    p->s = s;
    p->op = op_get(op);
    p->gr = grad_ref_get(op);
    ck_assert_ptr_nonnull(p->gr);
    p->n_in = p->op->describe(&s, p->in, &p->out);
    double *ind[OP_MAX_INPUTS];
    for (int i = 0; i < p->n_in; i++) {
        p->inf[i] = malloc(p->in[i].elems * sizeof(float));
        ck_assert_ptr_nonnull(p->inf[i]);
        tensor_fill_host(&p->in[i], SEED, (uint32_t)i, s.dtype, p->inf[i]);
        ind[i] = to_double(p->inf[i], p->in[i].elems);
        p->whole[i] = calloc(p->in[i].elems, sizeof(double));
        ck_assert_ptr_nonnull(p->whole[i]);
    }
    const tensor_desc_t dyd = grad_dy_desc(&p->out);
    p->dyf = malloc(dyd.elems * sizeof(float));
    ck_assert_ptr_nonnull(p->dyf);
    tensor_fill_host(&dyd, SEED, GRAD_DY_INDEX, s.dtype, p->dyf);
    double *dyd_ = to_double(p->dyf, dyd.elems);
    int rc = -1;
    switch (op) {
    case OP_LINEAR_ATTN:
        rc = ref_linear_attn_bwd(&s, ind[0], ind[1], ind[2], dyd_, p->whole[0], p->whole[1],
                                 p->whole[2]);
        break;
    case OP_SOFTMAX_ATTN:
        rc = ref_softmax_attn_bwd(&s, ind[0], ind[1], ind[2], dyd_, p->whole[0], p->whole[1],
                                  p->whole[2]);
        break;
    case OP_LONG_CONV:
        rc = ref_long_conv_bwd(s.B, s.d, s.T, ind[0], ind[1], dyd_, p->whole[0], p->whole[1]);
        break;
    case OP_SHORT_LONG_CONV:
        rc = ref_short_long_conv_bwd(s.B, s.d, s.T, ind[0], ind[1], ind[2], ind[3], ind[4], dyd_,
                                     p->whole[0], p->whole[1], p->whole[2], p->whole[3],
                                     p->whole[4]);
        break;
    default: break;
    }
    ck_assert_int_eq(rc, 0);
    for (int i = 0; i < p->n_in; i++) free(ind[i]);
    free(dyd_);
}

static void problem_free(problem_t *p) {
    for (int i = 0; i < p->n_in; i++) {
        free(p->inf[i]);
        free(p->whole[i]);
    }
    free(p->dyf);
}

/* The sampled reference of every tensor on sample gs, against the whole tensor. */
static void check_sample(const problem_t *p, int tensor, const grad_sample_t *gs) {
    const sample_t *m = &gs->b.s;
    grad_view_t v;
    p->gr->view(&p->s, tensor, &v);
    double scale = 0;
    for (size_t i = 0; i < p->in[tensor].elems; i++)
        scale = fmax(scale, fabs(p->whole[tensor][i]));
    /* (all zero is right where it happens: dQ of softmax attention at T = 1, one key) */
    if (scale == 0) scale = 1e-300;
    double *got = malloc((sample_count(m) ? sample_count(m) : 1) * sizeof(double));
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(p->gr->reference(&p->s, (const float *const *)p->inf, p->dyf, tensor, m, got),
                     0);
    for (int si = 0; si < m->n_seq; si++)
        for (int ti = 0; ti < m->n_t; ti++)
            for (int ci = 0; ci < m->n_col; ci++) {
                const size_t at = grad_view_index(&v, m->seq[si], m->t[ti], m->col[ci]);
                const double want = p->whole[tensor][at];
                const double g = got[((size_t)si * m->n_t + ti) * m->n_col + ci];
                ck_assert_msg(fabs(g - want) <= 1e-12 * scale,
                              "%s T=%d d%s seq %d t %d col %d: sampled %.17g, whole %.17g",
                              p->op->name, p->s.T, p->in[tensor].name, m->seq[si], m->t[ti],
                              m->col[ci], g, want);
            }
    free(got);
}

static void check_problem(op_id op, shape_t s) {
    problem_t p;
    problem_make(&p, op, s);
    for (int i = 0; i < p.n_in; i++) {
        grad_sample_t gs = {0};
        ck_assert_int_eq(grad_sample_full(p.gr, &p.s, i, &gs), 0);
        check_sample(&p, i, &gs);
        grad_sample_free(&gs);
        /* a budget this small forces the smallest samples and, where they are still over
         * it, the suffix window */
        ck_assert_int_eq(grad_sample_choose(p.gr, &p.s, i, SEED, 50.0, &gs), 0);
        ck_assert_int_gt((int)sample_count(&gs.b.s), 0);
        check_sample(&p, i, &gs);
        grad_sample_free(&gs);
    }
    problem_free(&p);
}

START_TEST(linear_attn_sampled) {
    shape_t s = {.B = 2, .H = 2, .T = 37, .dk = 8, .dv = 12, .causal = 1};
    check_problem(OP_LINEAR_ATTN, s);
    s.causal = 0;
    check_problem(OP_LINEAR_ATTN, s);
    shape_t t1 = {.B = 1, .H = 1, .T = 1, .dk = 4, .dv = 4, .causal = 1};
    check_problem(OP_LINEAR_ATTN, t1);
}
END_TEST

START_TEST(softmax_attn_sampled) {
    shape_t s = {.B = 1, .H = 3, .T = 29, .dk = 8, .dv = 8, .causal = 1};
    check_problem(OP_SOFTMAX_ATTN, s);
    s.causal = 0; /* --noncausal: every key of every row */
    check_problem(OP_SOFTMAX_ATTN, s);
    shape_t t1 = {.B = 2, .H = 1, .T = 1, .dk = 4, .dv = 4, .causal = 1};
    check_problem(OP_SOFTMAX_ATTN, t1);
}
END_TEST

START_TEST(long_conv_sampled) {
    shape_t s = {.B = 3, .d = 4, .T = 33};
    check_problem(OP_LONG_CONV, s);
    shape_t t1 = {.B = 1, .d = 2, .T = 1};
    check_problem(OP_LONG_CONV, t1);
}
END_TEST

START_TEST(short_long_conv_sampled) {
    shape_t s = {.B = 2, .d = 3, .T = 40}; /* k_m = 3 */
    check_problem(OP_SHORT_LONG_CONV, s);
    shape_t t2 = {.B = 2, .d = 2, .T = 2}; /* taps 2.. of k3, k3' reach no output */
    check_problem(OP_SHORT_LONG_CONV, t2);
    shape_t t130 = {.B = 1, .d = 2, .T = 130}; /* k_m = 5 */
    check_problem(OP_SHORT_LONG_CONV, t130);
}
END_TEST

/* At the default sweep's largest points (65536 tokens) every tensor gets a sample within the
 * runner's cap (20x the budget), first and last positions in it unless a suffix window is
 * taken, which must still hold the last position. */
START_TEST(samples_fit_at_64k) {
    options_t o;
    options_defaults(&o);
    const op_id ops[] = {OP_LINEAR_ATTN, OP_SOFTMAX_ATTN, OP_LONG_CONV, OP_SHORT_LONG_CONV};
    const int Ts[] = {1024, 65536};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        for (int ti = 0; ti < 2; ti++) {
            shape_t s = make_shape(&o, ops[k], Ts[ti], 0);
            s.pass = PASS_BWD;
            const grad_ref_t *g = grad_ref_get(ops[k]);
            tensor_desc_t in[OP_MAX_INPUTS], out;
            const int n = op_get(ops[k])->describe(&s, in, &out);
            for (int i = 0; i < n; i++) {
                grad_sample_t gs = {0};
                ck_assert_int_eq(grad_sample_choose(g, &s, i, SEED, VERIFY_BUDGET_MACS, &gs), 0);
                const sample_t *m = &gs.b.s;
                const double cost = g->cost(&s, i, m);
                grad_view_t v;
                g->view(&s, i, &v);
                ck_assert_msg(cost <= 20 * VERIFY_BUDGET_MACS, "%s T=%d d%s: %g MACs",
                              op_get(ops[k])->name, s.T, in[i].name, cost);
                ck_assert_int_eq(m->t[m->n_t - 1], v.n_t - 1);
                if (!gs.t_lo) ck_assert_int_eq(m->t[0], 0);
                /* only causal softmax attention's dK / dV need the suffix window */
                ck_assert_int_eq(gs.t_lo > 0, ops[k] == OP_SOFTMAX_ATTN && i > 0 && s.T == 65536);
                grad_sample_free(&gs);
            }
        }
}
END_TEST

/* FLOPs per pass as ops.c defines them, and the one bytes rule of op.h. */
START_TEST(pass_flops_and_bytes) {
    shape_t s = {.B = 2, .H = 4, .T = 256, .dk = 64, .dv = 64, .causal = 1, .dtype = DTYPE_BF16};
    const op_desc_t *la = op_get(OP_LINEAR_ATTN), *sa = op_get(OP_SOFTMAX_ATTN);
    const double la_f = la->flops(&s), sa_f = sa->flops(&s), bytes_f = op_ideal_bytes(la, &s);
    s.pass = PASS_BWD;
    ck_assert_double_eq_tol(op_pass_flops(la, &s), 2.0 * la_f, 1);
    ck_assert_double_eq_tol(op_pass_flops(sa, &s), 2.5 * sa_f, 1);
    ck_assert_double_eq_tol(op_ideal_bytes(la, &s), bytes_f / 4 * 7, 1); /* q k v dy, dq dk dv */
    s.pass = PASS_FWDBWD;
    ck_assert_double_eq_tol(op_pass_flops(la, &s), 3.0 * la_f, 1);
    ck_assert_double_eq_tol(op_pass_flops(sa, &s), 3.5 * sa_f, 1);
    ck_assert_double_eq_tol(op_ideal_bytes(la, &s), bytes_f / 4 * 8, 1);
    /* long_conv: x bf16, k fp32; dy bf16, dx bf16, dk fp32 */
    shape_t c = {.B = 2, .d = 8, .T = 100, .dtype = DTYPE_BF16, .pass = PASS_BWD};
    const double want = 2.0 * 8 * 100 * (2 + 2 + 2) + 8 * 100 * (4 + 4);
    ck_assert_double_eq_tol(op_ideal_bytes(op_get(OP_LONG_CONV), &c), want, 1);
    /* the layers: transformer's and chela's backward count their GEMMs twice (data and
     * weight gradients) plus their sequence mixers' backward; mega has none yet */
    shape_t l = {.B = 1, .T = 64, .d = 256, .z = 64, .v = 128, .H = 1, .dk = 64, .dv = 128,
                 .causal = 1, .dtype = DTYPE_BF16, .pass = PASS_BWD};
    ck_assert(isnan(op_pass_flops(op_get(OP_MEGA), &l)));
    const double cb = op_pass_flops(op_get(OP_CHELA), &l);
    l.pass = PASS_FWD;
    const double cf = op_pass_flops(op_get(OP_CHELA), &l);
    ck_assert_msg(cb > 1.9 * cf && cb < 2.3 * cf, "chela bwd %g against fwd %g", cb, cf);
    shape_t t = {.B = 1, .T = 64, .d = 256, .H = 4, .dk = 64, .dv = 64, .causal = 1,
                 .dtype = DTYPE_BF16, .pass = PASS_BWD};
    const double gemm = 64.0 * 2 * 12 * 256 * 256, attn = 2.0 * 4 * 64 * 64 * 64;
    ck_assert_double_eq_tol(op_pass_flops(op_get(OP_TRANSFORMER), &t), 2 * gemm + 2.5 * attn, 1);
}
END_TEST

int main(void) {
    Suite *su = suite_create("grad_sampled");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, linear_attn_sampled);
    tcase_add_test(tc, softmax_attn_sampled);
    tcase_add_test(tc, long_conv_sampled);
    tcase_add_test(tc, short_long_conv_sampled);
    tcase_add_test(tc, samples_fit_at_64k);
    tcase_add_test(tc, pass_flops_and_bytes);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
