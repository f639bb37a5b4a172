/* test_flash_host.c: softmax_attn/flash's host side for the backward, on a machine without a
 * GPU: the variant row carries run_bwd, supports() answers per pass (the backward's limits,
 * v2 only), workspace_bytes() counts L and delta only when training, and the config words name
 * both passes' tiles.  No CUDA call is made: these functions plan, they do not launch. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "softmax_attn/flash.h"
#include "softmax_attn/flash_bwd.h"
#include "variant.h"

static const variant_t *flash(void) {
    for (int i = 0; i < N_VARIANTS; i++)
        if (!strcmp(VARIANTS[i].name, "softmax_attn/flash")) return &VARIANTS[i];
    return NULL;
}

static shape_t shape(int B, int H, int T, int D, dtype_t dt, pass_t pass) {
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = B;
    s.H = H;
    s.T = T;
    s.dk = s.dv = D;
    s.causal = 1;
    s.dtype = dt;
    s.pass = pass;
    return s;
}

START_TEST(row_is_train) {
    const variant_t *v = flash();
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(v->run_bwd);
}
END_TEST

START_TEST(supports_per_pass) {
    const variant_t *v = flash();
    for (int p = PASS_FWD; p <= PASS_FWDBWD; p++) {
        shape_t s = shape(2, 16, 4096, 64, DTYPE_BF16, (pass_t)p);
        ck_assert_ptr_null(v->supports(&s));
        s = shape(1, 2, 1, 128, DTYPE_F16, (pass_t)p);
        ck_assert_ptr_null(v->supports(&s));
        s = shape(1, 2, 100, 96, DTYPE_BF16, (pass_t)p);
        ck_assert_ptr_nonnull(v->supports(&s));
        s = shape(1, 2, 100, 64, DTYPE_F32, (pass_t)p);
        ck_assert_ptr_nonnull(v->supports(&s));
    }
    /* grid.y of the backward is T / 64 (the forward's T / 128): a T only the forward takes */
    shape_t s = shape(1, 1, 65535 * 64 + 1, 64, DTYPE_BF16, PASS_FWD);
    ck_assert_ptr_null(v->supports(&s));
    s.pass = PASS_BWD;
    ck_assert_ptr_nonnull(v->supports(&s));
}
END_TEST

START_TEST(workspace_when_training) {
    const variant_t *v = flash();
    shape_t s = shape(3, 5, 1000, 64, DTYPE_BF16, PASS_FWD);
    ck_assert_uint_eq(v->workspace_bytes(&s), 0);
    s.pass = PASS_BWD;
    ck_assert_uint_eq(v->workspace_bytes(&s), 2u * 3 * 5 * 1000 * sizeof(float));
    s.pass = PASS_FWDBWD;
    ck_assert_uint_eq(v->workspace_bytes(&s), 2u * 3 * 5 * 1000 * sizeof(float));
}
END_TEST

START_TEST(config_words) {
    char buf[96];
    softmax_attn_flash_bwd_describe(64, buf, sizeof buf);
    ck_assert_str_eq(buf, "bwd=fa2 Bc=64 Br=64 dq=separate");
    softmax_attn_flash_bwd_describe(128, buf, sizeof buf);
    ck_assert_str_eq(buf, "bwd=fa2 Bc=64 Br=64 dq=separate");
    const variant_t *v = flash();
    v->config(NULL, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(bwd_problem) {
    ck_assert_ptr_null(softmax_attn_flash_bwd_problem(1, 1, 1, 64, DTYPE_BF16));
    ck_assert_ptr_null(softmax_attn_flash_bwd_problem(4, 16, 65536, 128, DTYPE_F16));
    ck_assert_ptr_nonnull(softmax_attn_flash_bwd_problem(1, 1, 0, 64, DTYPE_BF16));
    ck_assert_ptr_nonnull(softmax_attn_flash_bwd_problem(1, 1, 10, 32, DTYPE_BF16));
    ck_assert_ptr_nonnull(softmax_attn_flash_bwd_problem(1, 1, 10, 64, DTYPE_F32));
}
END_TEST

int main(void) {
    Suite *su = suite_create("flash_host");
    TCase *tc = tcase_create("host");
    tcase_add_test(tc, row_is_train);
    tcase_add_test(tc, supports_per_pass);
    tcase_add_test(tc, workspace_when_training);
    tcase_add_test(tc, config_words);
    tcase_add_test(tc, bwd_problem);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
