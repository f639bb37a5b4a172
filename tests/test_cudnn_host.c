/* test_cudnn_host.c: softmax_attn/cudnn's host side, on a machine without a GPU (label cpu):
 * the row carries available() and run_bwd, supports() answers per pass without touching
 * cuDNN, workspace_bytes() counts the backward's buffers only when training, and in a build
 * without cuDNN available() says so (the rows' skip:unavailable reason) while setup fails
 * with the same reason instead of crashing. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "softmax_attn/cudnn_sdpa.h"
#include "variant.h"

static const variant_t *cudnn(void) {
    for (int i = 0; i < N_VARIANTS; i++)
        if (!strcmp(VARIANTS[i].name, "softmax_attn/cudnn")) return &VARIANTS[i];
    return NULL;
}

static shape_t shape(int T, int D, dtype_t dt, int causal, pass_t pass) {
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = 2;
    s.H = 3;
    s.T = T;
    s.dk = s.dv = D;
    s.causal = causal;
    s.dtype = dt;
    s.pass = pass;
    return s;
}

START_TEST(row_is_optional_and_train) {
    const variant_t *v = cudnn();
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(v->available);
    ck_assert_ptr_nonnull(v->run_bwd);
    ck_assert_str_eq(v->role, "baseline");
}
END_TEST

START_TEST(supports_per_pass) {
    const variant_t *v = cudnn();
    for (int p = PASS_FWD; p <= PASS_FWDBWD; p++) {
        shape_t s = shape(1000, 64, DTYPE_BF16, 1, (pass_t)p);
        ck_assert_ptr_null(v->supports(&s));
        s = shape(1, 128, DTYPE_F16, 1, (pass_t)p);
        ck_assert_ptr_null(v->supports(&s));
        s = shape(100, 96, DTYPE_BF16, 1, (pass_t)p); /* cuDNN's planner decides at setup */
        ck_assert_ptr_null(v->supports(&s));
        s = shape(100, 64, DTYPE_F32, 1, (pass_t)p);
        ck_assert_ptr_nonnull(v->supports(&s));
        s = shape(100, 100, DTYPE_BF16, 1, (pass_t)p); /* not a multiple of 8 */
        ck_assert_ptr_nonnull(v->supports(&s));
        s = shape(100, 512, DTYPE_BF16, 1, (pass_t)p);
        ck_assert_ptr_nonnull(v->supports(&s));
        s = shape(100, 64, DTYPE_BF16, 0, (pass_t)p); /* bidirectional: the forward only */
        ck_assert(p == PASS_FWD ? v->supports(&s) == NULL : v->supports(&s) != NULL);
    }
}
END_TEST

START_TEST(workspace_when_training) {
    const variant_t *v = cudnn();
    shape_t s = shape(1000, 64, DTYPE_BF16, 1, PASS_FWD);
    ck_assert_uint_eq(v->workspace_bytes(&s), 0);
    s.pass = PASS_BWD;
    /* stats, row sums and dQ's fp32 accumulator: (2 + D) fp32 values a row */
    ck_assert_uint_eq(v->workspace_bytes(&s), (size_t)2 * 3 * 1000 * 4 * (2 + 64));
}
END_TEST

START_TEST(unavailable_without_cudnn) {
    const variant_t *v = cudnn();
    const char *why = v->available();
#ifdef CHELA_HAVE_CUDNN
    /* built with it: on this machine it may run (a GPU) or not (cudnnCreate fails): either
     * way the answer is stable and, when not NULL, says what failed */
    ck_assert(why == v->available());
    if (why) ck_assert_ptr_nonnull(strstr(why, "cuDNN"));
#else
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_nonnull(strstr(why, "built without cuDNN"));
    ck_assert_ptr_nonnull(strstr(why, "CUDNN_ROOT"));
#endif
    if (!why) return;
    /* a plan where cuDNN cannot run fails with the reason, never crashes */
    const sa_layout_t l = {3 * 100 * 64, 100 * 64, 64};
    const sa_cudnn_problem_t p = {.B = 2, .H = 3, .T = 100, .D = 64, .causal = 1,
                                  .dt = DTYPE_BF16, .q = l, .k = l, .v = l, .o = l};
    sa_cudnn_plan *plan = (sa_cudnn_plan *)1;
    ck_assert_int_eq(sa_cudnn_plan_create(&p, &plan), -1);
    ck_assert_ptr_null(plan);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), why));
}
END_TEST

int main(void) {
    Suite *su = suite_create("cudnn_host");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, row_is_optional_and_train);
    tcase_add_test(tc, supports_per_pass);
    tcase_add_test(tc, workspace_when_training);
    tcase_add_test(tc, unavailable_without_cudnn);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
