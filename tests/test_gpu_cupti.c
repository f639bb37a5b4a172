/* test_gpu_cupti.c: HBM byte counts of a known copy, on a real GPU.
 *
 * Copies 2^28 floats (1 GiB each way) after a read-only L2 sweep launched
 * outside the range, and checks that hbm_counters reports 1,073,741,824 B read
 * (within 2 %) and written (within 3 %: part of the output can still sit dirty
 * in L2 when the range closes, so writes come out a little low), and that one
 * session measures twice in a row.
 *
 * Exit 77 (ctest SKIP_RETURN_CODE) without a CUDA device or when counters are
 * unavailable (no admin rights, vGPU, MIG, under nsys/ncu, ...).  Check runs
 * in CK_NOFORK mode: a forked child can't use the CUDA context the parent made.
 * Prints the measured numbers so a run log shows them even on success. */
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "gpu_copy_kernel.h"
#include "hbm_counters.h"

#define N_COPY ((size_t)1 << 28) /* floats: 1 GiB */
static const double COPY_BYTES = 1073741824.0;
static const double READ_TOL = 0.02, WRITE_TOL = 0.03;

static hbm_counters *g_hc;
static float *d_src, *d_dst, *d_sweep, *d_sink;
static size_t g_sweep_n; /* floats in the sweep buffer */

/* One measurement: sweep L2 (outside the range, synchronized), then count
 * exactly one copy kernel. */
static int measure_copy(const char *name, double *rd, double *wr, double *ns) {
    if (test_l2_sweep(d_sweep, g_sweep_n, d_sink, NULL)) return -1;
    CUDA_CHECK(cudaDeviceSynchronize());
    if (hbm_counters_begin(g_hc, name)) return -1;
    if (test_copy_f32(d_dst, d_src, N_COPY, NULL)) {
        hbm_counters_end(g_hc, NULL, NULL, NULL); /* close the range; keep the first error */
        return -1;
    }
    if (hbm_counters_end(g_hc, rd, wr, ns)) return -1;
    printf("%-14s read %.0f B (%+.3f%%)  write %.0f B (%+.3f%%)  gpu %.1f us  %.0f GB/s\n", name,
           *rd, 100.0 * (*rd / COPY_BYTES - 1), *wr, 100.0 * (*wr / COPY_BYTES - 1), *ns * 1e-3,
           *ns > 0 ? (*rd + *wr) / *ns : 0.0);
    fflush(stdout);
    return 0;
}

static void assert_copy_bytes(double rd, double wr, double ns) {
    ck_assert_msg(fabs(rd / COPY_BYTES - 1) <= READ_TOL,
                  "dram__bytes_read.sum = %.0f, want %.0f +- %.0f%%", rd, COPY_BYTES,
                  100 * READ_TOL);
    ck_assert_msg(fabs(wr / COPY_BYTES - 1) <= WRITE_TOL,
                  "dram__bytes_write.sum = %.0f, want %.0f +- %.0f%%", wr, COPY_BYTES,
                  100 * WRITE_TOL);
    ck_assert_msg(ns > 0, "gpu__time_duration.sum = %.0f ns", ns);
}

START_TEST(copy_1gib_bytes) {
    double rd = 0, wr = 0, ns = 0;
    ck_assert_msg(measure_copy("copy/f32 1GiB", &rd, &wr, &ns) == 0, "%s", bench_last_error());
    assert_copy_bytes(rd, wr, ns);

    /* the copy really ran: spot-check the output (outside any range) */
    float h_src[4], h_dst[4];
    size_t at[4] = {0, N_COPY / 3, N_COPY / 2 + 1, N_COPY - 1};
    for (int i = 0; i < 4; i++) {
        ck_assert(cudaMemcpy(&h_src[i], d_src + at[i], sizeof(float), cudaMemcpyDeviceToHost) ==
                  cudaSuccess);
        ck_assert(cudaMemcpy(&h_dst[i], d_dst + at[i], sizeof(float), cudaMemcpyDeviceToHost) ==
                  cudaSuccess);
        ck_assert_msg(memcmp(&h_src[i], &h_dst[i], sizeof(float)) == 0, "dst[%zu] != src[%zu]",
                      at[i], at[i]);
    }
}
END_TEST

START_TEST(two_measurements_one_session) {
    double rd1 = 0, wr1 = 0, ns1 = 0, rd2 = 0, wr2 = 0, ns2 = 0;
    ck_assert_msg(measure_copy("copy/f32 #1", &rd1, &wr1, &ns1) == 0, "%s", bench_last_error());
    ck_assert_msg(measure_copy("copy/f32 #2", &rd2, &wr2, &ns2) == 0, "%s", bench_last_error());
    assert_copy_bytes(rd1, wr1, ns1);
    assert_copy_bytes(rd2, wr2, ns2);
    /* the image is reset per begin: the second value is not the running sum */
    ck_assert_msg(rd2 < 1.5 * COPY_BYTES, "second read %.0f looks accumulated", rd2);
}
END_TEST

START_TEST(misuse_is_an_error_not_a_crash) {
    double rd;
    ck_assert_int_eq(hbm_counters_end(g_hc, &rd, NULL, NULL), -1); /* end without begin */
    ck_assert_int_eq(hbm_counters_begin(g_hc, "outer"), 0);
    ck_assert_int_eq(hbm_counters_begin(g_hc, "nested"), -1); /* one range at a time */
    ck_assert(test_copy_f32(d_dst, d_src, 1 << 20, NULL) == 0);
    ck_assert_msg(hbm_counters_end(g_hc, &rd, NULL, NULL) == 0, "%s", bench_last_error());
    ck_assert_msg(rd >= 0, "read %.0f", rd);
}
END_TEST

static int setup_buffers(void) {
    int dev = 0, l2 = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    /* 4x L2 (>= the 2x TOOLING.md asks for), at least 64 MiB; 200 MiB on H100. */
    size_t sweep_bytes = 4 * (size_t)(l2 > 0 ? l2 : 50 << 20);
    if (sweep_bytes < ((size_t)64 << 20)) sweep_bytes = (size_t)64 << 20;
    g_sweep_n = sweep_bytes / sizeof(float);
    CUDA_CHECK(cudaMalloc((void **)&d_src, N_COPY * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&d_dst, N_COPY * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&d_sweep, sweep_bytes));
    CUDA_CHECK(cudaMalloc((void **)&d_sink, sizeof(float)));
    CUDA_CHECK(cudaMemset(d_src, 0x3f, N_COPY * sizeof(float))); /* 0x3f3f3f3f = 0.747f */
    CUDA_CHECK(cudaMemset(d_dst, 0, N_COPY * sizeof(float)));
    CUDA_CHECK(cudaMemset(d_sweep, 0, sweep_bytes));
    CUDA_CHECK(cudaMemset(d_sink, 0, sizeof(float)));
    CUDA_CHECK(cudaDeviceSynchronize());
    printf("L2 %d B, sweep %zu B, copy %zu B each way\n", l2, sweep_bytes, N_COPY * sizeof(float));
    return 0;
}

static void free_buffers(void) {
    cudaFree(d_src);
    cudaFree(d_dst);
    cudaFree(d_sweep);
    cudaFree(d_sink);
}

int main(void) {
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorName(e) : "0 devices");
        return 77;
    }
    char why[512] = "";
    int rc = hbm_counters_open(0, &g_hc, why, sizeof why);
    if (rc == HBM_UNAVAILABLE) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    if (rc != 0) {
        fprintf(stderr, "hbm_counters_open failed: %s\n", bench_last_error());
        return EXIT_FAILURE;
    }
    if (setup_buffers()) {
        fprintf(stderr, "setup failed: %s\n", bench_last_error());
        hbm_counters_close(g_hc);
        free_buffers();
        return EXIT_FAILURE;
    }

    Suite *s = suite_create("cupti_gpu");
    TCase *tc = tcase_create("hbm_bytes");
    tcase_set_timeout(tc, 120); /* CUDA + CUPTI setup and 1 GiB buffers: far over the 4 s default */
    tcase_add_test(tc, copy_1gib_bytes);
    tcase_add_test(tc, two_measurements_one_session);
    tcase_add_test(tc, misuse_is_an_error_not_a_crash);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* the CUDA context lives in this process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    free_buffers();
    hbm_counters_close(g_hc);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
