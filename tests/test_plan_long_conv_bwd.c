/* test_plan_long_conv_bwd.c: the long convolution's backward plan (kernels/long_conv/plan_bwd.c)
 * on a machine without a GPU: which dK method runs, the spectrum rows, the batch chunks under
 * the budget and the grid limit, and the buffers' bytes, at the benchmark's shapes (d = 1024,
 * B = 65536 / T) and at edges.  Every expected value follows from plan_bwd.h's rules. */
#include <check.h>
#include <stdlib.h>

#include "long_conv/plan.h"
#include "long_conv/plan_bwd.h"
#include "settings.h"

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

/* The sweep at d = 1024, B = 65536 / T.  Up to 4k the FFT is one block (N <= 8192): the fused
 * per-channel kernel, M / 16 threads, no spectra.  From 8k (clusters) the spectra: a row's is
 * rows x M (N/2 + M), the chunk the most batch rows whose two spectra fit 512 MiB. */
START_TEST(benchmark_sweep) {
    static const struct {
        int T;
        int fused, threads;
        size_t spec_row;
        int chunk, nchunks;
    } want[] = {
        /* 1k: N = 2048 in one block: 128 threads */
        {1024, 1, 128, 0, 64, 1},
        /* 4k: N = 8192 in one block: 512 threads */
        {4096, 1, 512, 0, 16, 1},
        /* 8k: N = 16384, P = 2 of 8192 (auto at 8k): rows 2, 16384 points; 256 MiB a batch
         * row: 2 a chunk */
        {8192, 0, 0, 16384, 2, 4},
        /* 16k: N = 32768, P = 2 of 16384: rows 2, 32768 points; 512 MiB a batch row: 1 */
        {16384, 0, 0, 32768, 1, 4},
        /* 64k: N = 131072, P = 8: rows 5 x 16384 = 81920; over budget, still one row */
        {65536, 0, 0, 81920, 1, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const int T = want[i].T, B = 65536 / T;
        const lcb_plan_t p = plan_of(B, 1024, T, 2, 0);
        ck_assert_int_eq(p.fused_dk, want[i].fused);
        ck_assert_int_eq(p.dk_threads, want[i].threads);
        ck_assert_uint_eq(p.spec_row, want[i].spec_row);
        ck_assert_int_eq(p.chunk, want[i].chunk);
        ck_assert_int_eq(p.nchunks, want[i].nchunks);
        ck_assert_uint_eq(p.rev_bytes, (size_t)65536 * 1024 * 2);
        if (p.fused_dk) {
            ck_assert_uint_eq(p.dk_smem, geometry(T).smem_bytes);
            ck_assert_uint_eq(p.spec_bytes + p.acc_bytes + p.imp_bytes, 0);
        } else {
            ck_assert_uint_eq(p.spec_bytes, (size_t)p.chunk * 1024 * p.spec_row * 8);
            /* B = 1 (64k): dY''s spectra alone, no product sum */
            ck_assert_uint_eq(p.acc_bytes, B == 1 ? 0 : (size_t)1024 * p.spec_row * 8);
            ck_assert_uint_eq(p.imp_bytes, (size_t)1024 * T * 4);
        }
        ck_assert_uint_eq(lcb_plan_workspace(&p), 2 * p.rev_bytes + (B == 1 ? 1 : 2) * p.spec_bytes +
                                                      p.acc_bytes + p.imp_bytes);
    }
}
END_TEST

/* The fused kernel's edges: T = 1 (N = 128: 8 groups, 64 threads), T = 4096 (the last one
 * block), and a forced block size that puts 8k in one block of 16384 points (beyond the fused
 * kernel: spectra). */
START_TEST(fused_edges) {
    lcb_plan_t p = plan_of(3, 4, 1, 2, 0);
    ck_assert_int_eq(p.fused_dk, 1);
    ck_assert_int_eq(p.dk_threads, 64);
    p = plan_of(3, 4, 4097, 2, 0);
    ck_assert_int_eq(p.fused_dk, 0);
    long_conv_fast_opts_t o;
    o.toeplitz_max_t = o.xpair = o.narrow = SETTING_AUTO;
    o.toep.version = o.toep.lcw_w = o.toep.lcw_sets = SETTING_AUTO;
    o.block_points = 16384;
    lcf_plan_t g;
    lcf_plan_geometry(8192, &o, &g);
    ck_assert_int_eq(g.P, 1);
    ck_assert_int_eq(lcb_plan_make(8, 4, 8192, &g, 2, 0, &p), 0);
    ck_assert_int_eq(p.fused_dk, 0);
    ck_assert_uint_eq(p.spec_row, 16384);
}
END_TEST

/* A small budget chunks the batch; a last chunk may be partial; a chunk never exceeds B. */
START_TEST(chunks_and_budget) {
    /* T = 5000: N = 16384, P = 2 of 8192: rows 2, 16384 points; 2 x 4 x 16384 x 8 = 1 MiB a
     * batch row; 2.5 MiB: 2 a chunk, 17 -> 9 */
    lcb_plan_t p = plan_of(17, 4, 5000, 4, (size_t)5 << 19);
    ck_assert_int_eq(p.fused_dk, 0);
    ck_assert_int_eq(p.chunk, 2);
    ck_assert_int_eq(p.nchunks, 9);
    /* a budget below one batch row still takes one */
    p = plan_of(3, 4, 5000, 4, 1);
    ck_assert_int_eq(p.chunk, 1);
    ck_assert_int_eq(p.nchunks, 3);
    /* the default budget and a small problem: one chunk of all B */
    p = plan_of(17, 8, 9000, 2, 0);
    ck_assert_int_eq(p.chunk, 17);
    ck_assert_int_eq(p.nchunks, 1);
    ck_assert_uint_eq(p.spec_row, 16384 + 16384); /* N = 32768, P = 2 of 16384: rows 2 */
}
END_TEST

/* The spectrum grid (chunk x d x P blocks) stays below 2^31 whatever the budget. */
START_TEST(grid_limit) {
    const lcf_plan_t g = geometry(5000);
    lcb_plan_t p;
    ck_assert_int_eq(lcb_plan_make(1 << 20, 1 << 12, 5000, &g, 2, (size_t)1 << 62, &p), 0);
    ck_assert_int_eq(p.fused_dk, 0);
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
    tcase_add_test(tc, fused_edges);
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
