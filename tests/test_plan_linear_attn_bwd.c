/* test_plan_linear_attn_bwd.c: the host planner of linear_attn/chunked's backward
 * (kernels/linear_attn/bwd_plan.c) without a GPU: the plans at the LM shape (H 16, dk = dv = 64,
 * B*T = 65536) and CHELA's head (H 1, dk 128, dv 2048), what la_bwd_seg forces, what is refused,
 * and that no plan outgrows the workspace bound the variant reports before setup.
 *
 * Device facts: the H100's 132 SMs; the walkers' resident blocks an SM are ASSUMED from their
 * shared memory (bwd_mma.cu's header: the dK dV walker 110,592 B at dk 64 -> 2, 161,792 B at
 * dk 128 -> 1; registers 127-144 / 248-255 a thread at 128 threads allow as many); the CUDA side
 * asks cudaOccupancyMaxActiveBlocksPerMultiprocessor instead. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "bench_check.h"
#include "linear_attn/bwd_plan.h"
#include "settings.h"

static lab_device_facts h100(int dk) {
    const lab_device_facts f = {132, dk == 64 ? 2 : 1};
    return f;
}

static lab_plan plan_of(int B, int H, int T, int dk, int dv, dtype_t dt, int seg) {
    const lac_problem pr = {B, H, T, dk, dv, 1, dt};
    const lab_device_facts f = h100(dk);
    lab_plan p;
    ck_assert_msg(lab_plan_make(&pr, seg, &f, &p) == 0, "%s", bench_last_error());
    /* invariants of every plan */
    ck_assert_int_eq(p.nslices, dv / 64);
    ck_assert_int_eq(p.nchunks, (T + 63) / 64);
    ck_assert_int_ge(p.seg_chunks, 1);
    ck_assert_int_le(p.seg_chunks, p.nchunks);
    ck_assert_int_eq(p.nseg, (p.nchunks + p.seg_chunks - 1) / p.seg_chunks);
    ck_assert_int_eq(p.reduce, dv > 64);
    ck_assert(p.state_bytes == (p.nseg > 1 ? (size_t)B * H * p.nseg * dk * dv * 4 : 0));
    ck_assert(p.acc_bytes == (dv > 64 ? (size_t)B * H * T * dk * 4 : 0));
    ck_assert(lab_ws_layout(&p, NULL, NULL) <= lab_workspace_bound(&pr, seg));
    return p;
}

START_TEST(lm_shape) {
    /* B*H*1 blocks: 1024 at 1k fill the GPU (one segment); 128 at 8k -> 2; 16 at 64k -> 16 */
    const int Ts[3] = {1024, 8192, 65536}, nseg[3] = {1, 2, 16};
    for (int i = 0; i < 3; i++) {
        const lab_plan p = plan_of(65536 / Ts[i], 16, Ts[i], 64, 64, DTYPE_BF16, SETTING_AUTO);
        ck_assert_int_eq(p.nseg, nseg[i]);
        ck_assert_int_eq(p.reduce, 0);
    }
}
END_TEST

START_TEST(chela_head) {
    /* 32 slices a sequence; at 64k 32 blocks -> 4 segments of 16384 tokens */
    lab_plan p = plan_of(1, 1, 65536, 128, 2048, DTYPE_BF16, SETTING_AUTO);
    ck_assert_int_eq(p.nseg, 4);
    ck_assert_int_eq(p.seg_chunks * 64, 16384);
    ck_assert_int_eq(p.reduce, 1);
    char words[128];
    lab_plan_words(&p, words, sizeof words);
    ck_assert_str_eq(words, "bwd=recompute bwd_seg=16384 bwd_red=atomic");
    /* B = 64 at 1k: 2048 blocks, one segment */
    p = plan_of(64, 1, 1024, 128, 2048, DTYPE_BF16, SETTING_AUTO);
    ck_assert_int_eq(p.nseg, 1);
    ck_assert(p.state_bytes == 0);
}
END_TEST

START_TEST(forced_segments) {
    /* la_bwd_seg rounds up to a chunk and is clamped to the sequence */
    lab_plan p = plan_of(1, 1, 1000, 64, 64, DTYPE_F16, 100); /* 2 chunks a segment */
    ck_assert_int_eq(p.seg_chunks, 2);
    ck_assert_int_eq(p.nseg, 8); /* 16 chunks */
    p = plan_of(1, 1, 37, 128, 256, DTYPE_BF16, 64);
    ck_assert_int_eq(p.nseg, 1);
    p = plan_of(2, 3, 5000, 128, 2048, DTYPE_BF16, 64);
    ck_assert_int_eq(p.nseg, 79);
    char words[128];
    lab_plan_words(&p, words, sizeof words);
    ck_assert_str_eq(words, "bwd=recompute bwd_seg=64 bwd_red=atomic");
    p = plan_of(1, 1, 1, 64, 64, DTYPE_BF16, 4096);
    ck_assert_int_eq(p.nseg, 1);
    lab_plan_words(&p, words, sizeof words);
    ck_assert_str_eq(words, "bwd=recompute bwd_seg=64 bwd_red=none");
}
END_TEST

START_TEST(refused) {
    const lab_device_facts f = h100(64);
    lab_plan p;
    lac_problem pr = {1, 1, 128, 64, 64, 0, DTYPE_BF16};
    ck_assert_ptr_nonnull(lab_shape_reason(&pr)); /* not causal */
    ck_assert_int_eq(lab_plan_make(&pr, SETTING_AUTO, &f, &p), -1);
    ck_assert_int_eq(lab_workspace_bound(&pr, SETTING_AUTO), 0);
    pr.causal = 1;
    pr.dtype = DTYPE_F32;
    ck_assert_ptr_nonnull(lab_shape_reason(&pr));
    pr.dtype = DTYPE_F16;
    ck_assert_ptr_null(lab_shape_reason(&pr));
    pr.dk = 96;
    ck_assert_ptr_nonnull(lab_shape_reason(&pr)); /* the forward's reasons */
    pr.dk = 64;
    const lab_device_facts none = {132, 0};
    ck_assert_int_eq(lab_plan_make(&pr, SETTING_AUTO, &none, &p), -1);
}
END_TEST

START_TEST(layout) {
    const lab_plan p = plan_of(1, 2, 300, 128, 192, DTYPE_BF16, 128);
    ck_assert_int_eq(p.nseg, 3);
    char *base = (char *)(uintptr_t)0x10000; /* never dereferenced */
    lab_ptrs d;
    memset(&d, 0, sizeof d);
    const size_t total = lab_ws_layout(&p, base, &d);
    ck_assert_ptr_eq(d.fstates, base);
    ck_assert((char *)d.bstates - base >= (ptrdiff_t)p.state_bytes);
    ck_assert((char *)d.dq32 - (char *)d.bstates >= (ptrdiff_t)p.state_bytes);
    ck_assert((char *)d.dk32 - (char *)d.dq32 >= (ptrdiff_t)p.acc_bytes);
    ck_assert((size_t)((char *)d.dk32 - base) + p.acc_bytes <= total);
    ck_assert_int_eq(((uintptr_t)d.bstates | (uintptr_t)d.dq32 | (uintptr_t)d.dk32) & 255, 0);
    /* one segment, one slice: no workspace at all */
    const lab_plan q = plan_of(64, 16, 1024, 64, 64, DTYPE_BF16, SETTING_AUTO);
    ck_assert(lab_ws_layout(&q, base, &d) == 0);
    ck_assert_ptr_null(d.fstates);
    ck_assert_ptr_null(d.dq32);
}
END_TEST

int main(void) {
    Suite *s = suite_create("plan_linear_attn_bwd");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, lm_shape);
    tcase_add_test(tc, chela_head);
    tcase_add_test(tc, forced_segments);
    tcase_add_test(tc, refused);
    tcase_add_test(tc, layout);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
