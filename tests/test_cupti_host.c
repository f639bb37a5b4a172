/* test_cupti_host.c: what can be checked about GPU counters without a GPU.
 *
 * The CUPTI host API knows every supported chip's metrics offline, so CI can
 * catch a misspelt or renamed metric (a CUDA update does rename some) and a
 * metric set that stopped fitting in one pass, long before anyone profiles
 * on a real H100.  Also: opening a session on a machine without a GPU must
 * come back as HBM_UNAVAILABLE with a reason, not as an error or a crash; and
 * the NVTX helpers must be harmless without a tool attached. */
#include <check.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "hbm_counters.h"
#include "nvtx_ranges.h"

START_TEST(gh100_metrics_valid_one_pass) {
    char why[512] = "";
    int passes = -1;
    int rc = hbm_counters_check_metrics_offline("GH100", &passes, why, sizeof why);
    ck_assert_msg(rc == 0, "offline check for GH100 returned %d: %s", rc, why);
    ck_assert_int_eq(passes, 1);
}
END_TEST

START_TEST(misspelt_metric_rejected) {
    const char *const bad[] = {"dram__bytes_read.sum", "dram__bytes_raed.sum"};
    char why[512] = "";
    int passes = -1;
    int rc = hbm_counters_check_metric_list("GH100", bad, 2, &passes, why, sizeof why);
    ck_assert_msg(rc == -1, "a misspelt metric was accepted (rc %d, %d passes)", rc, passes);
    ck_assert_msg(strstr(why, "dram__bytes_raed.sum") != NULL,
                  "the reason should name the bad metric: '%s'", why);
    ck_assert_int_eq(passes, -1); /* untouched on failure */
}
END_TEST

START_TEST(unknown_chip_rejected) {
    char why[512] = "";
    int passes = -1;
    int rc = hbm_counters_check_metrics_offline("GX999", &passes, why, sizeof why);
    ck_assert_msg(rc == -1, "an unknown chip was accepted (rc %d)", rc);
    ck_assert_msg(strstr(why, "GX999") != NULL, "the reason should name the chip: '%s'", why);
}
END_TEST

/* Only meaningful where there is no GPU (the CI box); on the GPU machine the
 * GPU test covers open(), and opening a second session here could make it
 * find the counters busy if ctest runs both at once. */
START_TEST(open_without_gpu_is_unavailable) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n > 0) return;
    hbm_counters *hc = (hbm_counters *)0x1;
    char why[512] = "";
    int rc = hbm_counters_open(0, &hc, why, sizeof why);
    ck_assert_msg(rc == HBM_UNAVAILABLE, "rc %d, why '%s', last error '%s'", rc, why,
                  bench_last_error());
    ck_assert_ptr_null(hc);
    ck_assert_msg(why[0] != 0, "HBM_UNAVAILABLE must come with a reason");
    printf("open without a GPU: %s\n", why);
}
END_TEST

START_TEST(nvtx_no_tool_is_harmless) {
    nvtx_push("linear_attn/chunked T=4096 B=16");
    nvtx_push("linear_attn/naive_cumsum T=4096 B=16");
    nvtx_pop();
    nvtx_pop();
    nvtx_push(NULL);
    nvtx_pop();
    /* one colour per op family, opaque */
    uint32_t a = nvtx_family_color("linear_attn/chunked T=4096 B=16");
    ck_assert_uint_eq(a, nvtx_family_color("linear_attn/naive_cumsum T=1024 B=64"));
    ck_assert_uint_eq(a, nvtx_family_color("linear_attn"));
    ck_assert_uint_eq(a >> 24, 0xFFu);
    ck_assert_uint_eq(nvtx_family_color("softmax_attn/flash") >> 24, 0xFFu);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("cupti_host");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 60); /* loading libnvperf_host (~30 MB) can exceed the 4 s default */
    tcase_add_test(tc, gh100_metrics_valid_one_pass);
    tcase_add_test(tc, misspelt_metric_rejected);
    tcase_add_test(tc, unknown_chip_rejected);
    tcase_add_test(tc, open_without_gpu_is_unavailable);
    suite_add_tcase(s, tc);
    TCase *tn = tcase_create("nvtx");
    tcase_add_test(tn, nvtx_no_tool_is_harmless);
    suite_add_tcase(s, tn);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
