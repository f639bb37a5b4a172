/* test_plan_long_conv_bwd.c: the long convolution's backward plan (kernels/long_conv/plan_bwd.c)
 * on a machine without a GPU: the spectrum rows, the batch chunks under the budget and the grid
 * limit, and the buffers' bytes, at the benchmark's shapes (d = 1024, B = 65536 / T) and at
 * edges.  Every expected value follows from plan_bwd.h's rules. */
#include <check.h>
#include <stdlib.h>

#include "long_conv/plan.h"
#include "long_conv/plan_bwd.h"

static lcf_plan_t geometry(int T) {
    lcf_plan_t g;
    lcf_plan_geometry(T, NULL, &g);
    return g;
}

static lcb_plan_t plan_of(int B, int d, int T, size_t es, size_t budget) {
    const lcf_plan_t g = geometry(T);
    lcb_plan_t p;
    ck_assert_int_eq(lcb_plan_make(B, d, T, &g, es, budget, &p), 0);
    return p;
}

/* The sweep: a row's spectrum is rows x M (P = 1: the whole N; clusters: N/2 + M), the chunk
 * the most batch rows whose two spectra fit 512 MiB, every chunk but the last full. */
START_TEST(benchmark_sweep) {
    static const struct {
        int T;
        size_t spec_row;
        int chunk, nchunks;
    } want[] = {
        /* T = 1k: N = 2048, 16 KiB a row's spectrum, 32 MiB a batch row's two: 16 a chunk */
        {1024, 2048, 16, 4},
        /* 8k: N = 16384, P = 2 of 8192 (auto at 8k): rows 2, 16384 points; 256 MiB a batch row: 2 */
        {8192, 16384, 2, 4},
        /* 16k: N = 32768, P = 2 of 16384: rows 2, 32768 points; 512 MiB a batch row: 1 */
        {16384, 32768, 1, 4},
        /* 64k: N = 131072, P = 8: rows 5 x 16384 = 81920; over budget, still one row */
        {65536, 81920, 1, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const int T = want[i].T, B = 65536 / T;
        const lcb_plan_t p = plan_of(B, 1024, T, 2, 0);
        ck_assert_uint_eq(p.spec_row, want[i].spec_row);
        ck_assert_int_eq(p.chunk, want[i].chunk);
        ck_assert_int_eq(p.nchunks, want[i].nchunks);
        ck_assert_uint_eq(p.rev_bytes, (size_t)65536 * 1024 * 2);
        ck_assert_uint_eq(p.spec_bytes, (size_t)p.chunk * 1024 * p.spec_row * 8);
        ck_assert_uint_eq(p.acc_bytes, (size_t)1024 * p.spec_row * 8);
        ck_assert_uint_eq(p.imp_bytes, (size_t)1024 * T * 4);
        ck_assert_uint_eq(lcb_plan_workspace(&p),
                          2 * p.rev_bytes + 2 * p.spec_bytes + p.acc_bytes + p.imp_bytes);
    }
}
END_TEST

/* A small budget chunks the batch; a last chunk may be partial; a chunk never exceeds B. */
START_TEST(chunks_and_budget) {
    /* T = 100: N = 256, 2 x 4 x 256 x 8 = 16 KiB a batch row; 40 KiB: 2 a chunk, 17 -> 9 */
    lcb_plan_t p = plan_of(17, 4, 100, 4, 40 << 10);
    ck_assert_int_eq(p.chunk, 2);
    ck_assert_int_eq(p.nchunks, 9);
    /* a budget below one batch row still takes one */
    p = plan_of(3, 4, 100, 4, 1);
    ck_assert_int_eq(p.chunk, 1);
    ck_assert_int_eq(p.nchunks, 3);
    /* the default budget and a small problem: one chunk of all B */
    p = plan_of(17, 8, 37, 2, 0);
    ck_assert_int_eq(p.chunk, 17);
    ck_assert_int_eq(p.nchunks, 1);
    ck_assert_uint_eq(p.spec_row, 128); /* T' = 64: N = 128 in one block */
    /* T = 1: the shortest transform, 64 points padded to 128 */
    p = plan_of(65536, 1024, 1, 2, 0);
    ck_assert_uint_eq(p.spec_row, 128);
    ck_assert_int_eq(p.chunk, 256); /* 512 MiB / (2 x 1024 x 128 x 8) */
    ck_assert_int_eq(p.nchunks, 256);
}
END_TEST

/* The spectrum grid (chunk x d x P blocks) stays below 2^31 whatever the budget. */
START_TEST(grid_limit) {
    const lcf_plan_t g = geometry(1);
    lcb_plan_t p;
    ck_assert_int_eq(lcb_plan_make(1 << 20, 1 << 12, 1, &g, 2, (size_t)1 << 62, &p), 0);
    ck_assert((long long)p.chunk * (1 << 12) * g.P <= 0x7fffffffLL);
    ck_assert_int_ge(p.chunk, 1);
    ck_assert_int_eq(p.nchunks, ((1 << 20) + p.chunk - 1) / p.chunk);
}
END_TEST

START_TEST(rejects_empty) {
    const lcf_plan_t g = geometry(64);
    lcb_plan_t p;
    ck_assert_int_eq(lcb_plan_make(0, 4, 64, &g, 2, 0, &p), -1);
    ck_assert_int_eq(lcb_plan_make(1, 0, 64, &g, 2, 0, &p), -1);
    ck_assert_int_eq(lcb_plan_make(1, 4, 0, &g, 2, 0, &p), -1);
    ck_assert_int_eq(lcb_plan_make(1, 4, 64, NULL, 2, 0, &p), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("plan_long_conv_bwd");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, benchmark_sweep);
    tcase_add_test(tc, chunks_and_budget);
    tcase_add_test(tc, grid_limit);
    tcase_add_test(tc, rejects_empty);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
