/* test_plan_linear_attn.c: the host planner of linear_attn/chunked (kernels/linear_attn/plan.c)
 * on the H100's numbers, without a GPU: the plans profiles/NOTES.md discusses (the LM shape,
 * the CHELA head, B = 1), what each setting forces, and that no plan outgrows the workspace its
 * callers were told to allocate (the planner's bounds and chunked.h's).
 *
 * The device facts are the H100 SXM's: 132 SMs, v6 usable (an sm_90a build on cc 9.0), and the
 * resident blocks an SM of each version's pass C and pass A kernels below.  Pass C's 3 (dk 64,
 * v2) and 2 (dk 128) are the kernels' comments' and NOTES.md's.  The rest are ASSUMED: derived
 * from the register counts ptxas reports for these kernels (CUDA 13.0, sm_90 / sm_90a) and their
 * shared memory, by the H100's limits (65536 registers an SM allocated per warp in units of 256,
 * 228 KB of shared memory an SM with 1 KB reserved a block, 64 warps, 32 blocks); the CUDA side
 * asks cudaOccupancyMaxActiveBlocksPerMultiprocessor instead, and a compiler that allocates
 * registers differently can change them. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "bench_check.h"
#include "linear_attn/chunked.h"
#include "linear_attn/plan.h"
#include "settings.h"

enum { H100_SMS = 132 };

/* Resident blocks an SM on the H100: {pass C, pass A}, by version and dk. */
static void h100_occupancy(int version, int dk, int *bps_c, int *bps_a) {
    switch (version) {
    case 1: /* 64 threads; regs 128 / 168 (pass C), 96 / 204 (pass A) */
        *bps_c = dk == 64 ? 8 : 6;
        *bps_a = dk == 64 ? 10 : 4;
        return;
    case 2: /* pass C 161-168 regs (dk 64) / 231-244 (dk 128); pass A 96 / 166 regs */
        *bps_c = dk == 64 ? 3 : 2;
        *bps_a = dk == 64 ? 5 : 3;
        return;
    case 3: /* pass C 187-198 / 242 regs, __launch_bounds__(128, 2); pass A is v2's */
        *bps_c = 2;
        *bps_a = dk == 64 ? 5 : 3;
        return;
    default: /* v6: pass C 181 / 230 regs; pass A 69,664 / 102,432 B of shared memory */
        *bps_c = 2;
        *bps_a = dk == 64 ? 3 : 2;
        return;
    }
}

/* The facts launch.cu would gather on an H100 for pr under o. */
static lac_device_facts h100_facts(const lac_problem *pr, const lac_opts *o, int v6_usable) {
    lac_device_facts f;
    memset(&f, 0, sizeof f);
    f.sms = H100_SMS;
    f.v6_usable = v6_usable;
    f.version = lac_plan_version(pr, o, v6_usable);
    h100_occupancy(f.version, pr->dk, &f.bps_c, &f.bps_a);
    return f;
}

static lac_plan plan_opts(int B, int H, int T, int dk, int dv, int causal, dtype_t dt,
                          lac_opts o) {
    const lac_problem pr = {B, H, T, dk, dv, causal, dt};
    const lac_device_facts f = h100_facts(&pr, &o, 1);
    lac_plan p;
    ck_assert_msg(lac_plan_make(&pr, &o, &f, &p) == 0, "plan B%d H%d T%d: %s", B, H, T,
                  bench_last_error());
    return p;
}
static lac_plan plan_auto(int B, int H, int T, int dk, int dv) {
    return plan_opts(B, H, T, dk, dv, 1, DTYPE_BF16, lac_opts_auto());
}
static lac_opts opts(int version, int seg, int sub, int pdl) {
    const lac_opts o = {version, seg, sub, pdl};
    return o;
}

/* LM shape: H 16, dk = dv = 64, 65536 tokens a point.  v2 runs (dv = 64: v3 does not apply).
 * NOTES.md: one segment at T <= 4k; the v5 plan picks 4096-token segments from 8k (2, 4, 8, 16
 * segments, 256 pass-C blocks: 2 an SM).  Pass A's parts are the rule's on the assumed 5 blocks
 * an SM: 128 / 192 pass-A blocks at 8k / 16k give 5 / 3 parts; 224 / 240 at 32k / 64k give the
 * SMs >= 1.5 each, so 1. */
START_TEST(lm_shape) {
    static const struct { int T, nseg, seg, sub; } want[] = {
        {1024, 1, 1024, 1},  {2048, 1, 2048, 1},  {4096, 1, 4096, 1},  {8192, 2, 4096, 5},
        {16384, 4, 4096, 3}, {32768, 8, 4096, 1}, {65536, 16, 4096, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const int T = want[i].T, B = 65536 / T;
        const lac_plan p = plan_auto(B, 16, T, 64, 64);
        ck_assert_int_eq(p.version, 2);
        ck_assert_int_eq(p.nslices, 1);
        ck_assert_int_eq(p.nseg, want[i].nseg);
        ck_assert_int_eq(p.seg_chunks * LAC_C, want[i].seg);
        ck_assert_int_eq(p.nseg_ws, want[i].nseg - 1);
        ck_assert_int_eq(p.sub, want[i].sub);
        ck_assert_int_eq(p.ws_per_bh, (want[i].nseg - 1) * want[i].sub);
        ck_assert_uint_eq(p.state_bytes, (size_t)B * 16 * p.ws_per_bh * 64 * 64 * 4);
        ck_assert_uint_eq(p.amat_bytes + p.q16_bytes + p.img_bytes, 0);
        ck_assert_int_eq(p.pdl, 1);
        if (want[i].nseg > 1) /* 256 pass-C blocks */
            ck_assert_int_eq(B * 16 * p.nseg, 256);
    }
}
END_TEST

/* CHELA head: H 1, dk 128, dv 2048 (32 slices), 65536 tokens a point.  NOTES.md: T <= 8k one
 * segment (256+ blocks); 16k, 32k, 64k -> 2, 4, 8 segments of 8192 tokens (256 blocks).  Pass A
 * in parts: "CHELA head 16k -> 3 parts, 32k -> 2, elsewhere 1" was measured with v3/v4, whose
 * pass A (v2's) fits 3 blocks an SM; v6's pass A fits 2 (its four 25 KB stages), and the same
 * rule gives 2 and 1. */
START_TEST(chela_head) {
    static const struct { int T, nseg, sub_v6, sub_v3; } want[] = {
        {1024, 1, 1, 1}, {2048, 1, 1, 1},  {4096, 1, 1, 1},  {8192, 1, 1, 1},
        {16384, 2, 2, 3}, {32768, 4, 1, 2}, {65536, 8, 1, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const int T = want[i].T, B = 65536 / T, nseg = want[i].nseg;
        const lac_plan p6 = plan_auto(B, 1, T, 128, 2048);
        const lac_plan p3 = plan_opts(B, 1, T, 128, 2048, 1, DTYPE_BF16, opts(3, -1, -1, -1));
        ck_assert_int_eq(p6.version, 6);
        ck_assert_int_eq(p3.version, 3);
        ck_assert_int_eq(p6.nslices, 32);
        ck_assert_int_eq(p6.nseg, nseg);
        ck_assert_int_eq(p3.nseg, nseg);
        ck_assert_int_eq(p6.seg_chunks * LAC_C, nseg == 1 ? T : 8192);
        ck_assert_int_eq(p6.sub, want[i].sub_v6);
        ck_assert_int_eq(p3.sub, want[i].sub_v3);
        ck_assert_int_eq(p6.ws_per_bh, (nseg - 1) * want[i].sub_v6);
        ck_assert_int_eq(p3.ws_per_bh, (nseg - 1) * want[i].sub_v3);
        ck_assert_uint_eq(p6.state_bytes, (size_t)B * p6.ws_per_bh * 128 * 2048 * 4);
        /* v6's per-chunk images (q16, A, k^T: 40 KB a chunk); v3's A and q16 */
        ck_assert_uint_eq(p6.img_bytes, (size_t)B * (T / 64) * 40960);
        ck_assert_uint_eq(p6.amat_bytes + p6.q16_bytes, 0);
        ck_assert_uint_eq(p3.amat_bytes, (size_t)B * (T / 64) * 8192);
        ck_assert_uint_eq(p3.q16_bytes, (size_t)B * T * 128 * 2);
        ck_assert_uint_eq(p3.img_bytes, 0);
        if (nseg > 1) ck_assert_int_eq(B * 32 * p6.nseg, 256);
    }
    char words[64];
    lac_plan p = plan_auto(4, 1, 16384, 128, 2048);
    lac_plan_words(&p, "la=", words, sizeof words);
    ck_assert_str_eq(words, "la=v6 seg=8192 sub=2 pdl=1");
    p = plan_auto(16, 1, 4096, 128, 2048);
    lac_plan_words(&p, "", words, sizeof words);
    ck_assert_str_eq(words, "v6 seg=4096 sub=1 pdl=1");
}
END_TEST

/* B = 1: one sequence of the LM shape (16 heads) and of the CHELA head.  Segments grow with T
 * from the 1024-token floor (dk = dv = 64) until 2 blocks an SM are reached; the CHELA head at
 * 64k is the 65536-token point above (8 segments of 8192). */
START_TEST(batch_one) {
    static const struct { int T, nseg, seg; } lm[] = {
        {1024, 1, 1024}, {2048, 2, 1024}, {4096, 4, 1024}, {8192, 8, 1024},
        {16384, 16, 1024}, {32768, 16, 2048}, {65536, 16, 4096},
    };
    for (size_t i = 0; i < sizeof lm / sizeof lm[0]; i++) {
        const lac_plan p = plan_auto(1, 16, lm[i].T, 64, 64);
        ck_assert_int_eq(p.version, 2);
        ck_assert_int_eq(p.nseg, lm[i].nseg);
        ck_assert_int_eq(p.seg_chunks * LAC_C, lm[i].seg);
        ck_assert_int_eq(p.sub, 1); /* segments at the workspace floor, or 240 pass-A blocks */
    }
    const lac_plan h = plan_auto(1, 1, 65536, 128, 2048);
    ck_assert_int_eq(h.version, 6);
    ck_assert_int_eq(h.nseg, 8);
    ck_assert_int_eq(h.seg_chunks * LAC_C, 8192);
    ck_assert_int_eq(h.sub, 1);
    ck_assert_int_eq(h.ws_per_bh, 7);
    ck_assert_uint_eq(h.state_bytes, (size_t)7 * 128 * 2048 * 4);
}
END_TEST

/* la_version: where it applies, else the fallbacks, in lac_plan_version's order. */
START_TEST(forced_version) {
    const lac_problem head = {4, 1, 16384, 128, 2048, 1, DTYPE_BF16};
    const lac_problem lm = {4, 16, 16384, 64, 64, 1, DTYPE_BF16};
    const lac_problem bidir = {4, 1, 16384, 128, 2048, 0, DTYPE_BF16};
    const lac_problem f32 = {4, 1, 16384, 128, 2048, 1, DTYPE_F32};
    const lac_problem f16 = {4, 1, 16384, 128, 2048, 1, DTYPE_F16};
    for (int v6 = 0; v6 <= 1; v6++) {
        const lac_opts a = lac_opts_auto();
        ck_assert_int_eq(lac_plan_version(&head, &a, v6), v6 ? 6 : 3);
        ck_assert_int_eq(lac_plan_version(&f16, &a, v6), v6 ? 6 : 3);
        ck_assert_int_eq(lac_plan_version(&lm, &a, v6), 2);    /* dv = 64 */
        ck_assert_int_eq(lac_plan_version(&bidir, &a, v6), 2); /* not causal */
        ck_assert_int_eq(lac_plan_version(&f32, &a, v6), 1);
        for (int v = 1; v <= 6; v++) {
            const lac_opts o = opts(v, -1, -1, -1);
            const int known = v == 1 || v == 2 || v == 3 || v == 6;
            const int want_head = !known ? (v6 ? 6 : 3) : (v == 6 && !v6) ? 3 : v;
            ck_assert_int_eq(lac_plan_version(&head, &o, v6), want_head);
            ck_assert_int_eq(lac_plan_version(&lm, &o, v6), known && v == 1 ? 1 : 2);
            ck_assert_int_eq(lac_plan_version(&f32, &o, v6), 1);
        }
    }
    /* la_version=2 at the CHELA head: v2's own occupancy (pass C 2, pass A 3): 3 parts at 16k */
    const lac_plan p2 = plan_opts(4, 1, 16384, 128, 2048, 1, DTYPE_BF16, opts(2, -1, -1, -1));
    ck_assert_int_eq(p2.version, 2);
    ck_assert_int_eq(p2.nseg, 2);
    ck_assert_int_eq(p2.sub, 3);
    ck_assert_uint_eq(p2.amat_bytes + p2.q16_bytes + p2.img_bytes, 0);
    /* v3 at fp16 keeps q as it is: no q16 buffer */
    const lac_plan p3 = plan_opts(4, 1, 16384, 128, 2048, 1, DTYPE_F16, opts(3, -1, -1, -1));
    ck_assert_int_eq(p3.version, 3);
    ck_assert_uint_eq(p3.q16_bytes, 0);
    ck_assert_uint_gt(p3.amat_bytes, 0);
}
END_TEST

/* la_seg (tokens, rounded up to a chunk, at most T), la_sub (at most a segment's chunks, only
 * where a segment state is needed) and la_pdl. */
START_TEST(forced_seg_sub_pdl) {
    lac_plan p = plan_opts(1, 16, 65536, 64, 64, 1, DTYPE_BF16, opts(-1, 2048, -1, -1));
    ck_assert_int_eq(p.seg_chunks * LAC_C, 2048);
    ck_assert_int_eq(p.nseg, 32);
    ck_assert_int_eq(p.sub, 1); /* 16 x 31 = 496 pass-A blocks */
    ck_assert_int_eq(p.ws_per_bh, 31);
    p = plan_opts(1, 16, 65536, 64, 64, 1, DTYPE_BF16, opts(-1, 100, -1, -1));
    ck_assert_int_eq(p.seg_chunks * LAC_C, 128);
    ck_assert_int_eq(p.nseg, 512);
    p = plan_opts(2, 16, 3000, 64, 64, 1, DTYPE_BF16, opts(-1, 1 << 20, -1, -1));
    ck_assert_int_eq(p.nseg, 1); /* longer than T: one segment of ceil(T / 64) chunks */
    ck_assert_int_eq(p.seg_chunks, 47);
    ck_assert_int_eq(p.ws_per_bh, 0);

    p = plan_opts(4, 1, 16384, 128, 2048, 1, DTYPE_BF16, opts(-1, -1, 3, -1));
    ck_assert_int_eq(p.version, 6);
    ck_assert_int_eq(p.nseg, 2);
    ck_assert_int_eq(p.sub, 3);
    ck_assert_int_eq(p.sub_chunks, 43); /* 128 chunks in parts of 43, 43, 42 */
    ck_assert_int_eq(p.ws_per_bh, 3);
    p = plan_opts(4, 1, 16384, 128, 2048, 1, DTYPE_BF16, opts(-1, 128, 4096, -1));
    ck_assert_int_eq(p.sub, 2); /* parts of at least one chunk: 2 chunks a segment */
    ck_assert_int_eq(p.sub_chunks, 1);
    ck_assert_int_eq(p.ws_per_bh, 127 * 2);
    p = plan_opts(64, 1, 1024, 128, 2048, 1, DTYPE_BF16, opts(-1, -1, 3, -1));
    ck_assert_int_eq(p.nseg, 1); /* no segment state needed: la_sub has nothing to split */
    ck_assert_int_eq(p.sub, 1);
    ck_assert_int_eq(p.ws_per_bh, 0);
    ck_assert_uint_eq(p.state_bytes, 0);
    /* not causal: every segment's state is needed, the last one too */
    p = plan_opts(1, 1, 16384, 128, 256, 0, DTYPE_BF16, opts(-1, 4096, 2, -1));
    ck_assert_int_eq(p.version, 2);
    ck_assert_int_eq(p.nseg, 4);
    ck_assert_int_eq(p.nseg_ws, 4);
    ck_assert_int_eq(p.ws_per_bh, 8);

    ck_assert_int_eq(plan_auto(1, 16, 65536, 64, 64).pdl, 1);
    ck_assert_int_eq(plan_opts(1, 16, 65536, 64, 64, 1, DTYPE_BF16, opts(-1, -1, -1, 0)).pdl, 0);
    ck_assert_int_eq(plan_opts(1, 16, 65536, 64, 64, 1, DTYPE_BF16, opts(-1, -1, -1, 1)).pdl, 1);
    p = plan_opts(1, 16, 65536, 64, 64, 1, DTYPE_BF16, opts(-1, -1, -1, 0));
    char words[64];
    lac_plan_words(&p, "", words, sizeof words);
    ck_assert_str_eq(words, "v2 seg=4096 sub=1 pdl=0");
}
END_TEST

/* Settings arrive through the variant's table; NULL or an undeclared name is auto. */
START_TEST(opts_from_settings) {
    const lac_opts a = lac_opts_from(NULL);
    ck_assert_int_eq(a.version, SETTING_AUTO);
    ck_assert_int_eq(a.seg, SETTING_AUTO);
    ck_assert_int_eq(a.sub, SETTING_AUTO);
    ck_assert_int_eq(a.pdl, SETTING_AUTO);
    static const setting_def_t defs[] = {
        {"la_seg", "auto|64..1048576", ""}, {"la_sub", "auto|1..4096", ""}, {NULL, NULL, NULL}};
    settings_t set;
    memset(&set, 0, sizeof set);
    set.def = defs;
    set.n = 2;
    set.val[0] = 2048;
    set.val[1] = 3;
    const lac_opts o = lac_opts_from(&set);
    ck_assert_int_eq(o.seg, 2048);
    ck_assert_int_eq(o.sub, 3);
    ck_assert_int_eq(o.version, SETTING_AUTO);
    ck_assert_int_eq(o.pdl, SETTING_AUTO);
}
END_TEST

/* The planner refuses facts that do not describe the version it picks, and kernels that cannot
 * be resident; lac_shape_reason names what the kernels do not support. */
START_TEST(refusals) {
    const lac_problem pr = {4, 1, 16384, 128, 2048, 1, DTYPE_BF16};
    const lac_opts o = lac_opts_auto();
    lac_device_facts f = h100_facts(&pr, &o, 1);
    lac_plan p;
    f.version = 3; /* the facts of v3 while v6 would run */
    ck_assert_int_eq(lac_plan_make(&pr, &o, &f, &p), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "v3"));
    f = h100_facts(&pr, &o, 1);
    f.bps_a = 0;
    ck_assert_int_eq(lac_plan_make(&pr, &o, &f, &p), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "cannot be resident"));
    f = h100_facts(&pr, &o, 0); /* no sm_90a: v3 on v3's occupancy */
    ck_assert_int_eq(lac_plan_make(&pr, &o, &f, &p), 0);
    ck_assert_int_eq(p.version, 3);
    ck_assert_int_eq(p.sub, 3);

    static const struct { lac_problem pr; const char *why; } bad[] = {
        {{1, 1, 64, 96, 64, 1, DTYPE_BF16}, "dk must be 64 or 128"},
        {{1, 1, 64, 64, 96, 1, DTYPE_BF16}, "dv must be"},
        {{1, 1, 64, 64, 4096, 1, DTYPE_BF16}, "dv must be"},
        {{0, 1, 64, 64, 64, 1, DTYPE_BF16}, "must be positive"},
        {{1, 1, 0, 64, 64, 1, DTYPE_BF16}, "must be positive"},
        {{1, 1, 64, 64, 64, 1, (dtype_t)7}, "unknown dtype"},
        {{1 << 20, 1024, 65536, 64, 2048, 1, DTYPE_BF16}, "too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = lac_shape_reason(&bad[i].pr);
        ck_assert_ptr_nonnull(why);
        ck_assert_ptr_nonnull(strstr(why, bad[i].why));
    }
    ck_assert_ptr_null(lac_shape_reason(&pr));
}
END_TEST

/* The workspace: the layout's parts, and no plan under any settings larger than the bound its
 * allocator used (the variant's lac_workspace_bound; the launchers' lac_launcher_workspace_bound
 * under the same settings, norm partials included). */
START_TEST(workspace_bounds) {
    const lac_plan p = plan_auto(4, 1, 16384, 128, 2048);
    lac_ptrs d;
    memset(&d, 0, sizeof d);
    char *base = (char *)0x100000;
    const size_t total = lac_ws_layout(&p, 2, base, &d);
    ck_assert_ptr_eq(d.states, base);
    ck_assert_ptr_eq(d.rowpart, base + p.state_bytes); /* 256-aligned already */
    ck_assert_ptr_null(d.amat);
    ck_assert_ptr_null(d.q16);
    ck_assert_ptr_eq(d.images, base + p.state_bytes + p.rowpart_bytes);
    ck_assert_uint_eq(total, p.state_bytes + p.rowpart_bytes + p.img_bytes);
    ck_assert_uint_eq(lac_ws_layout(&p, 3, NULL, NULL), p.state_bytes + p.img_bytes);
    ck_assert_int_eq(lac_norm_mode(&p, 0, 0), 0);
    ck_assert_int_eq(lac_norm_mode(&p, 1, 0), 2); /* 32 slices: the norm pass */
    const lac_plan lm = plan_auto(4, 16, 16384, 64, 64);
    ck_assert_int_eq(lac_norm_mode(&lm, 1, 0), 1); /* one slice: fused in pass C */
    ck_assert_int_eq(lac_norm_mode(&lm, 1, 1), 2); /* the gate rides the norm pass */

    static const int Ts[] = {1, 64, 100, 3000, 8192, 20000, 65536};
    static const int dims[][3] = {{16, 64, 64}, {1, 128, 2048}, {2, 128, 256}, {3, 64, 192}};
    static const int segs[] = {SETTING_AUTO, 64, 100, 1000, 4096, 1 << 20};
    static const int subs[] = {SETTING_AUTO, 1, 2, 3, 7, 4096};
    static const int versions[] = {SETTING_AUTO, 1, 2, 3};
    int checked = 0;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (int causal = 0; causal <= 1; causal++)
                for (size_t si = 0; si < sizeof segs / sizeof segs[0]; si++)
                    for (size_t ui = 0; ui < sizeof subs / sizeof subs[0]; ui++)
                        for (size_t vi = 0; vi < sizeof versions / sizeof versions[0]; vi++) {
                            const int T = Ts[ti], B = 1 + (int)(ti % 3);
                            const lac_problem pr = {B, dims[di][0], T, dims[di][1], dims[di][2],
                                                    causal, DTYPE_BF16};
                            const lac_opts o = opts(versions[vi], segs[si], subs[ui], -1);
                            const lac_device_facts f = h100_facts(&pr, &o, 1);
                            lac_plan q;
                            ck_assert_int_eq(lac_plan_make(&pr, &o, &f, &q), 0);
                            ck_assert_int_eq(q.nseg, (q.nchunks + q.seg_chunks - 1) / q.seg_chunks);
                            ck_assert_int_ge(q.sub * q.sub_chunks, q.seg_chunks);
                            ck_assert_uint_le(lac_ws_layout(&q, 0, NULL, NULL),
                                              lac_workspace_bound(&pr, &o));
                            ck_assert_uint_le(lac_ws_layout(&q, 2, NULL, NULL),
                                              lac_launcher_workspace_bound(pr.B, pr.H, pr.T,
                                                                           pr.dk, pr.dv, &o));
                            checked++;
                        }
    ck_assert_int_eq(checked, 7 * 4 * 2 * 6 * 6 * 4);
    /* all auto, the launchers' bound is what linear_attn_chunked_workspace always returned:
     * the default plan's segment bound, the norm partials and v6's images at the CHELA head */
    const lac_opts a = lac_opts_auto();
    ck_assert_uint_eq(lac_launcher_workspace_bound(1, 1, 65536, 128, 2048, &a),
                      (size_t)17 * 128 * 2048 * 4 + (size_t)32 * 65536 * 4 + (size_t)1024 * 40960);
    /* forcing short segments raises the bound with the states they need */
    const lac_opts s = opts(-1, 128, -1, -1);
    ck_assert_uint_eq(lac_launcher_workspace_bound(1, 1, 65536, 128, 2048, &s),
                      (size_t)512 * 128 * 2048 * 4 + (size_t)32 * 65536 * 4 + (size_t)1024 * 40960);
}
END_TEST

/* The exported bounds (chunked.h) are the planner's: the launchers' (all auto) and the plan
 * API's, which honours the caller's la_seg / la_sub; and the plan API refuses a missing plan. */
START_TEST(exported_workspace) {
    const lac_opts a = lac_opts_auto();
    ck_assert_uint_eq(linear_attn_chunked_workspace(4, 1, 16384, 128, 2048),
                      lac_launcher_workspace_bound(4, 1, 16384, 128, 2048, &a));
    ck_assert_uint_eq(linear_attn_workspace_bound(4, 1, 16384, 128, 2048, NULL),
                      linear_attn_chunked_workspace(4, 1, 16384, 128, 2048));
    static const setting_def_t defs[] = {
        {"lt_tune", "auto|0|1", ""}, {"la_seg", "auto|64..1048576", ""},
        {"la_sub", "auto|1..4096", ""}, {NULL, NULL, NULL}};
    settings_t set;
    memset(&set, 0, sizeof set);
    set.def = defs;
    set.n = 3;
    set.val[0] = 1;
    set.val[1] = 128;
    set.val[2] = 3;
    const lac_opts o = opts(-1, 128, 3, -1);
    ck_assert_uint_eq(linear_attn_workspace_bound(1, 1, 65536, 128, 2048, &set),
                      lac_launcher_workspace_bound(1, 1, 65536, 128, 2048, &o));
    ck_assert_uint_gt(linear_attn_workspace_bound(1, 1, 65536, 128, 2048, &set),
                      linear_attn_chunked_workspace(1, 1, 65536, 128, 2048));
    ck_assert_uint_eq(linear_attn_workspace_bound(1, 1, 64, 96, 64, NULL), 0); /* unsupported */

    char buf[16] = "x";
    ck_assert_int_eq(linear_attn_plan_describe(NULL, "", buf, sizeof buf), -1);
    ck_assert_str_eq(buf, "");
    ck_assert_uint_eq(linear_attn_plan_workspace(NULL, LINEAR_ATTN_OUT_DEFERRED), 0);
    ck_assert_ptr_null(linear_attn_plan_create(1, 1, 64, 96, 64, 1, DTYPE_BF16, NULL));
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "dk must be 64 or 128"));
    linear_attn_plan_destroy(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("plan_linear_attn");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, lm_shape);
    tcase_add_test(tc, chela_head);
    tcase_add_test(tc, batch_one);
    tcase_add_test(tc, forced_version);
    tcase_add_test(tc, forced_seg_sub_pdl);
    tcase_add_test(tc, opts_from_settings);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, workspace_bounds);
    tcase_add_test(tc, exported_workspace);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
