/* test_plan_long_conv.c: the long-convolution engine's planner (kernels/long_conv/plan.c) on
 * a machine without a GPU.
 *
 * The shapes are the ones profiles/NOTES.md measures (d = 1024, B = 65536 / T, T = 1k..64k)
 * with an H100's facts (132 SMs, the wgmma unit running), then B = 1 and odd B, a device where
 * the wgmma unit does not run, each setting forced, and the workspace.  Every expected value
 * follows from the rules as plan.c states them; a change of rule shows up here first. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "long_conv/plan.h"
#include "settings.h"

static const lc_device_t H100 = {132, 1};     /* H100 SXM, sm_90a build: v5 runs        */
static const lc_device_t NO_WGMMA = {132, 0}; /* the same SMs without the wgmma unit    */

static long_conv_fast_opts_t auto_opts(void) {
    long_conv_fast_opts_t o;
    o.toeplitz_max_t = o.xpair = o.block_points = o.narrow = SETTING_AUTO;
    o.toep.version = o.toep.lcw_w = o.toep.lcw_sets = SETTING_AUTO;
    return o;
}

static lc_plan_t plan_of(int B, int d, int T, const lc_device_t *dev,
                         const long_conv_fast_opts_t *o) {
    lc_plan_t p;
    ck_assert_int_eq(lc_plan_make(B, d, T, dev, o, &p), 0);
    return p;
}

/* the config words of a run of dtype (one buffer a dtype, so two can be compared) */
static const char *words(const lc_plan_t *p, dtype_t dtype) {
    static char buf[3][160];
    lc_plan_describe(p, dtype, buf[dtype], sizeof buf[dtype]);
    return buf[dtype];
}

/* the same for a bf16 run of a plan made here */
static const char *bf16_words(int B, int d, int T, const lc_device_t *dev,
                              const long_conv_fast_opts_t *o) {
    const lc_plan_t p = plan_of(B, d, T, dev, o);
    return words(&p, DTYPE_BF16);
}

/* ---- the sweep of NOTES.md: bf16 / fp16 -------------------------------------------------- */

/* 1k-4k: the wgmma Toeplitz kernel (B >= 8), its schedule by T; above: the FFT, 8192-point
 * blocks at 8k (a cluster of two, the narrow copy on its 8192-block grid), 16384 otherwise. */
START_TEST(bf16_sweep_on_h100) {
    static const struct {
        int T;
        const char *words;
    } want[] = {
        {1024, "toeplitz-wgmma W=1 sets=2"},
        {2048, "toeplitz-wgmma W=1 sets=3"},
        {4096, "toeplitz-wgmma W=2 sets=3"},
        {8192, "fft N=16384 block=8192 P=2 threads=256 narrow=1 xpair=0"},
        {16384, "fft N=32768 block=16384 P=2 threads=512 narrow=0 xpair=0"},
        {32768, "fft N=65536 block=16384 P=4 threads=512 narrow=0 xpair=0"},
        {65536, "fft N=131072 block=16384 P=8 threads=512 narrow=0 xpair=1"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const int T = want[i].T, B = 65536 / T;
        const lc_plan_t p = plan_of(B, 1024, T, &H100, NULL);
        ck_assert_int_eq(p.toeplitz_max_t, B >= 8 ? 4096 : 2048); /* v5 wants 8 rows */
        ck_assert_str_eq(words(&p, DTYPE_BF16), want[i].words);
        ck_assert_str_eq(words(&p, DTYPE_F16), want[i].words);
        ck_assert_int_eq(lc_plan_path(&p, DTYPE_BF16),
                         T <= 4096 ? LC_PATH_TOEPLITZ_WGMMA : LC_PATH_FFT);
        ck_assert_int_eq(p.toeplitz, T <= 4096);
    }
}
END_TEST

/* The Toeplitz plan's numbers: 8 rows a block, u staged in groups of 512 tokens, tap rows of
 * tg + 224 from base tg + 64 (v5's), against v3 / v4's Tp + 96 from Tp + 32. */
START_TEST(toeplitz_wgmma_geometry) {
    const lc_plan_t p = plan_of(64, 1024, 1024, &H100, NULL);
    ck_assert_int_eq(p.toep.version, 5);
    ck_assert_int_eq(p.toep.nt, 8);
    ck_assert_int_eq(p.toep.tg, 1024);
    ck_assert_int_eq(p.toep.base, 1024 + 64);
    ck_assert_int_eq(p.toep.TW, 1024 + 224);
    ck_assert_int_eq(p.toep.Tp, 1024);
    const lc_plan_t q = plan_of(16, 1024, 3000, &H100, NULL); /* a partial last group */
    ck_assert_int_eq(q.toep.tg, 3072);
    ck_assert_int_eq(q.toep.Tp, 3008);
    ck_assert_str_eq(words(&q, DTYPE_BF16), "toeplitz-wgmma W=1 sets=3");
    /* a block of the 4k plan: taps 2 x 4320 fp16, u (448 + 4096) tokens x 8 rows, two y tiles */
    const lc_plan_t r = plan_of(16, 1024, 4096, &H100, NULL);
    ck_assert_uint_eq(lcw_smem_bytes(r.toep.TW, r.toep.tg, r.toep.wg),
                      2 * 4320 * 2 + (448 + 4096) * 8 * 2 + 2 * 64 * 8 * 8 * 2);
}
END_TEST

/* The FFT plans' blocks: points, cluster, threads, the kernel copy and the grid. */
START_TEST(fft_blocks_and_copies) {
    /* 8k: two 8192-point blocks a cluster; 4096 (channel, pair) transforms, 8192 blocks, >= 8
     * waves of three blocks on 132 SMs (3168): the narrow copy, 3 blocks an SM */
    lc_plan_t p = plan_of(8, 1024, 8192, &H100, NULL);
    ck_assert_int_eq(p.fft.M, 8192);
    ck_assert_int_eq(p.fft.log_m, 13);
    ck_assert_int_eq(p.fft.rows, 2);
    ck_assert_int_eq(p.fft.n_hi, 16384 / 128);
    ck_assert_int_eq(p.fft.minb, LCF_NARROW_MINB);
    ck_assert_int_eq(p.fft.fused_radix, 2);
    ck_assert_int_eq(p.fft.npairs, 4);
    ck_assert_int_eq(p.fft.blocks, 8192);
    ck_assert_uint_eq(p.fft.smem_bytes, (8192 + 512 + 128 + 128) * 8);
    /* 16k and 32k: 16384-point blocks, one an SM, the radix-4 digit fused (P R0 = 8, 16) */
    p = plan_of(4, 1024, 16384, &H100, NULL);
    ck_assert_int_eq(p.fft.minb, 1);
    ck_assert_int_eq(p.fft.fused_radix, 4);
    ck_assert_int_eq(p.fft.blocks, 1024 * 2 * 2);
    p = plan_of(2, 1024, 32768, &H100, NULL);
    ck_assert_int_eq(p.fft.fused_radix, 4);
    ck_assert_int_eq(p.fft.rows, 3);
    /* 64k: P R0 = 32 > LCF_FUSE_Q keeps the R0 stage */
    p = plan_of(1, 1024, 65536, &H100, NULL);
    ck_assert_int_eq(p.fft.fused_radix, 1);
    ck_assert_int_eq(p.fft.rows, 5);
    /* small blocks: 64 threads at least, the 64-register copy, R0 = 8 fused at 2048 points */
    p = plan_of(2, 3, 1, &H100, NULL);
    ck_assert_int_eq(p.fft.N, 128);
    ck_assert_int_eq(p.fft.threads, 64);
    ck_assert_int_eq(p.fft.minb, 2);
    p = plan_of(64, 1024, 1024, &H100, NULL);
    ck_assert_int_eq(p.fft.threads, 128);
    ck_assert_int_eq(p.fft.fused_radix, 8);
    ck_assert_int_eq(p.fft.minb, 2);
    p = plan_of(2, 5, 2000, &H100, NULL); /* 4096 points: R0 = 1 */
    ck_assert_int_eq(p.fft.N, 4096);
    ck_assert_int_eq(p.fft.threads, 256);
    ck_assert_int_eq(p.fft.fused_radix, 1);
}
END_TEST

/* ---- fp32: always the FFT ---------------------------------------------------------------- */

START_TEST(fp32_always_fft) {
    for (int T = 1024; T <= 65536; T *= 2) {
        const lc_plan_t p = plan_of(65536 / T, 1024, T, &H100, NULL);
        ck_assert_int_eq(lc_plan_path(&p, DTYPE_F32), LC_PATH_FFT);
        ck_assert(strncmp(words(&p, DTYPE_F32), "fft ", 4) == 0);
    }
    /* the Toeplitz engine is built for the 16-bit runs of the same plan; fp32 keeps the FFT */
    const lc_plan_t p = plan_of(64, 1024, 1024, &H100, NULL);
    ck_assert_int_eq(p.toeplitz, 1);
    ck_assert_str_eq(words(&p, DTYPE_F32), "fft N=2048 block=2048 P=1 threads=128 narrow=0 xpair=0");
    /* 4k in fp32 is the FFT's single 8192-point block: 1024 x 8 blocks, the narrow copy */
    const lc_plan_t q = plan_of(16, 1024, 4096, &H100, NULL);
    ck_assert_str_eq(words(&q, DTYPE_F32), "fft N=8192 block=8192 P=1 threads=256 narrow=1 xpair=0");
}
END_TEST

/* ---- the narrow copy's rule: >= 8 waves of three blocks an SM ------------------------------ */

START_TEST(narrow_copy_threshold) {
    /* 8k, P = 2: 1584 transforms are 3168 blocks = 8 x 3 x 132 */
    lc_plan_t p = plan_of(2, 1584, 8192, &H100, NULL);
    ck_assert_int_eq(p.fft.blocks, 3168);
    ck_assert_int_eq(p.fft.narrow, 1);
    ck_assert_int_eq(p.fft.threads, LCF_NARROW_THREADS);
    p = plan_of(2, 1583, 8192, &H100, NULL);
    ck_assert_int_eq(p.fft.narrow, 0);
    ck_assert_int_eq(p.fft.threads, 512);
    ck_assert_int_eq(p.fft.minb, 2);
    /* 4k, P = 1 */
    ck_assert_int_eq(plan_of(2, 3168, 4096, &H100, NULL).fft.narrow, 1);
    ck_assert_int_eq(plan_of(2, 3167, 4096, &H100, NULL).fft.narrow, 0);
    /* the SM count is the device's: 114 SMs make 2736 blocks enough */
    const lc_device_t h100_pcie = {114, 1};
    ck_assert_int_eq(plan_of(2, 1368, 8192, &h100_pcie, NULL).fft.narrow, 1);
    ck_assert_int_eq(plan_of(2, 1368, 8192, &H100, NULL).fft.narrow, 0);
    /* fp32 B = 1 at 4k / 8k (512 channel pairs): a few waves, the wide copy */
    ck_assert_int_eq(plan_of(1, 1024, 4096, &H100, NULL).fft.narrow, 0);
    ck_assert_int_eq(plan_of(1, 1024, 8192, &H100, NULL).fft.narrow, 0);
    /* no 8192-point blocks, no narrow copy, however wide the grid */
    ck_assert_int_eq(plan_of(64, 4096, 16384, &H100, NULL).fft.narrow, 0);
    ck_assert_int_eq(plan_of(64, 4096, 2048, &H100, NULL).fft.narrow, 0);
}
END_TEST

/* ---- B = 1 and odd B: channel pairs (xpair) ------------------------------------------------- */

START_TEST(odd_batch_channel_pairs) {
    /* B = 1: no same-channel pairs, the one row as (d + 1) / 2 channel pairs */
    lc_plan_t p = plan_of(1, 1024, 65536, &H100, NULL);
    ck_assert_int_eq(p.fft.xpair, 1);
    ck_assert_int_eq(p.fft.npairs, 0);
    ck_assert_int_eq(p.fft.blocks, 512 * 8);
    p = plan_of(1, 5, 3000, &H100, NULL); /* odd d: the last channel paired with zero taps */
    ck_assert_int_eq(p.fft.blocks, 3);
    /* B = 3: rows 0, 1 a same-channel pair, row 2 in channel pairs */
    p = plan_of(3, 5, 9000, &H100, NULL);
    ck_assert_int_eq(p.fft.xpair, 1);
    ck_assert_int_eq(p.fft.npairs, 1);
    ck_assert_int_eq(p.fft.blocks, (5 * 1 + 3) * 2);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "fft N=32768 block=16384 P=2 threads=512 narrow=0 xpair=1");
    /* even B: same-channel pairs only */
    p = plan_of(2, 5, 9000, &H100, NULL);
    ck_assert_int_eq(p.fft.xpair, 0);
    ck_assert_int_eq(p.fft.npairs, 1);
    ck_assert_int_eq(p.fft.blocks, 5 * 2);
    /* B = 1 is below the Toeplitz default's 8 rows: 2048, and v5 at 2k */
    p = plan_of(1, 1024, 2048, &H100, NULL);
    ck_assert_int_eq(p.toeplitz_max_t, 2048);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-wgmma W=1 sets=3");
    p = plan_of(7, 1024, 4096, &H100, NULL);
    ck_assert_int_eq(p.toeplitz, 0);
    ck_assert_int_eq(plan_of(8, 1024, 4096, &H100, NULL).toeplitz, 1);
}
END_TEST

/* ---- a device without the wgmma unit: v4 / v3 and the 2048 limit -------------------------- */

START_TEST(no_wgmma_device) {
    lc_plan_t p = plan_of(64, 1024, 1024, &NO_WGMMA, NULL);
    ck_assert_int_eq(p.toeplitz_max_t, 2048);
    ck_assert_int_eq(lc_plan_path(&p, DTYPE_BF16), LC_PATH_TOEPLITZ_MMA);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-mma v4 NT=32");
    ck_assert_int_eq(p.toep.tg, 0);
    ck_assert_int_eq(p.toep.TW, 1024 + 96);
    ck_assert_int_eq(p.toep.base, 1024 + 32);
    p = plan_of(32, 1024, 2048, &NO_WGMMA, NULL);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-mma v4 NT=16");
    p = plan_of(2, 5, 1000, &NO_WGMMA, NULL); /* narrower for a small B */
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-mma v4 NT=16");
    p = plan_of(20, 3, 1000, &NO_WGMMA, NULL);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-mma v4 NT=32");
    p = plan_of(16, 1024, 4096, &NO_WGMMA, NULL);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "fft N=8192 block=8192 P=1 threads=256 narrow=1 xpair=0");
}
END_TEST

/* ---- forced settings give what they say ---------------------------------------------------- */

START_TEST(forced_toeplitz_limit) {
    long_conv_fast_opts_t o = auto_opts();
    o.toeplitz_max_t = 0; /* never the Toeplitz path */
    lc_plan_t p = plan_of(64, 1024, 1024, &H100, &o);
    ck_assert_int_eq(p.toeplitz, 0);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "fft N=2048 block=2048 P=1 threads=128 narrow=0 xpair=0");
    o.toeplitz_max_t = 65536; /* capped at the Toeplitz engine's 16384 */
    p = plan_of(8, 1024, 8192, &H100, &o);
    ck_assert_int_eq(p.toeplitz_max_t, LONG_CONV_TOEPLITZ_MAX_T);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-wgmma W=4 sets=3");
    /* v5's block fits 227 KiB up to T = 9216 at four warpgroups; beyond, v4's tile does not fit
     * either (T > 2048): v3 */
    ck_assert_str_eq(bf16_words(8, 64, 9216, &H100, &o),
                     "toeplitz-wgmma W=4 sets=3");
    p = plan_of(8, 64, 9217, &H100, &o);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-mma v3 NT=16");
    p = plan_of(4, 1024, 16384, &H100, &o);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-mma v3 NT=16");
    ck_assert_int_eq(plan_of(4, 1024, 16385, &H100, &o).toeplitz, 0);
}
END_TEST

START_TEST(forced_toeplitz_version) {
    long_conv_fast_opts_t o = auto_opts();
    o.toep.version = 4; /* the mma.sync kernels, and their 2048 default limit */
    lc_plan_t p = plan_of(64, 1024, 1024, &H100, &o);
    ck_assert_int_eq(p.toeplitz_max_t, 2048);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-mma v4 NT=32");
    ck_assert_int_eq(plan_of(16, 1024, 4096, &H100, &o).toeplitz, 0);
    o.toeplitz_max_t = 16384; /* v4's resident tile does not fit 4k: v3 */
    p = plan_of(16, 1024, 4096, &H100, &o);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "toeplitz-mma v3 NT=16");
    o = auto_opts();
    o.toep.version = 3; /* v3 at every T, its tile by B */
    ck_assert_str_eq(bf16_words(64, 1024, 1024, &H100, &o),
                     "toeplitz-mma v3 NT=64");
    ck_assert_str_eq(bf16_words(20, 16, 1000, &H100, &o),
                     "toeplitz-mma v3 NT=32");
    ck_assert_str_eq(bf16_words(2, 5, 300, &H100, &o),
                     "toeplitz-mma v3 NT=16");
    o.toep.version = 5; /* = auto */
    ck_assert_str_eq(bf16_words(64, 1024, 1024, &H100, &o),
                     "toeplitz-wgmma W=1 sets=2");
    ck_assert_str_eq(bf16_words(64, 1024, 1024, &NO_WGMMA, &o),
                     "toeplitz-mma v4 NT=32");
}
END_TEST

START_TEST(forced_wgmma_schedule) {
    static const struct {
        int T, w, sets;
        const char *words;
    } want[] = {
        {1024, 4, SETTING_AUTO, "toeplitz-wgmma W=4 sets=3"}, /* more warpgroups: 3 sets   */
        {1024, 2, 2, "toeplitz-wgmma W=2 sets=3"},            /* ... whatever lcw_sets says */
        {1024, SETTING_AUTO, 3, "toeplitz-wgmma W=1 sets=3"},
        {2048, SETTING_AUTO, 2, "toeplitz-wgmma W=1 sets=2"},
        {4096, 1, SETTING_AUTO, "toeplitz-wgmma W=1 sets=3"},
        {4096, 1, 2, "toeplitz-wgmma W=1 sets=2"},
        {4096, 3, 4, "toeplitz-wgmma W=2 sets=3"}, /* values outside the sets: auto */
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        long_conv_fast_opts_t o = auto_opts();
        o.toep.lcw_w = want[i].w;
        o.toep.lcw_sets = want[i].sets;
        const lc_plan_t p = plan_of(65536 / want[i].T, 1024, want[i].T, &H100, &o);
        ck_assert_str_eq(words(&p, DTYPE_BF16), want[i].words);
    }
    /* one warpgroup keeps v5 past the four-warpgroup limit (a smaller block) */
    long_conv_fast_opts_t o = auto_opts();
    o.toeplitz_max_t = 16384;
    o.toep.lcw_w = 1;
    ck_assert_str_eq(bf16_words(8, 64, 9728, &H100, &o),
                     "toeplitz-wgmma W=1 sets=3");
}
END_TEST

START_TEST(forced_block_points) {
    long_conv_fast_opts_t o = auto_opts();
    o.block_points = 8192; /* 8192-point blocks for every N, the cluster at most 8 */
    lc_plan_t p = plan_of(4, 1024, 16384, &H100, &o);
    ck_assert_int_eq(p.fft.P, 4);
    ck_assert_int_eq(p.fft.M, 8192);
    ck_assert_int_eq(p.fft.narrow, 0); /* clusters of 4 keep the 512-thread copy */
    ck_assert_int_eq(p.fft.threads, 512);
    ck_assert_int_eq(p.fft.minb, 2);
    ck_assert_int_eq(p.fft.fused_radix, 2);
    p = plan_of(1, 1024, 65536, &H100, &o); /* 16 x 8192 would pass 8 blocks */
    ck_assert_int_eq(p.fft.P, 8);
    ck_assert_int_eq(p.fft.M, 16384);
    p = plan_of(2, 5, 4097, &H100, &o);
    ck_assert_int_eq(p.fft.P, 2);
    ck_assert_int_eq(p.fft.M, 8192);
    o.block_points = 16384; /* 8k as one block */
    p = plan_of(8, 1024, 8192, &H100, &o);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "fft N=16384 block=16384 P=1 threads=512 narrow=0 xpair=0");
    ck_assert_int_eq(p.fft.minb, 1);
    ck_assert_int_eq(p.fft.fused_radix, 4);
}
END_TEST

START_TEST(forced_narrow_and_xpair) {
    long_conv_fast_opts_t o = auto_opts();
    o.narrow = 0;
    lc_plan_t p = plan_of(8, 1024, 8192, &H100, &o);
    ck_assert_str_eq(words(&p, DTYPE_BF16), "fft N=16384 block=8192 P=2 threads=512 narrow=0 xpair=0");
    ck_assert_int_eq(p.fft.minb, 2);
    o.narrow = 1;
    p = plan_of(1, 5, 3000, &H100, &o); /* a tiny grid, forced */
    ck_assert_str_eq(words(&p, DTYPE_F32), "fft N=8192 block=8192 P=1 threads=256 narrow=1 xpair=1");
    ck_assert_int_eq(p.fft.minb, LCF_NARROW_MINB);
    p = plan_of(4, 1024, 16384, &H100, &o); /* no 8192-point blocks: nothing to narrow */
    ck_assert_int_eq(p.fft.narrow, 0);
    o = auto_opts();
    o.xpair = 0; /* B = 1 as one channel a transform, its imaginary half empty */
    p = plan_of(1, 1024, 65536, &H100, &o);
    ck_assert_int_eq(p.fft.xpair, 0);
    ck_assert_int_eq(p.fft.npairs, 1);
    ck_assert_int_eq(p.fft.blocks, 1024 * 8);
    o.xpair = 1; /* only an odd B has a last row to pair */
    ck_assert_int_eq(plan_of(2, 1024, 65536, &H100, &o).fft.xpair, 0);
}
END_TEST

/* NULL options are all auto. */
START_TEST(null_options_are_auto) {
    const long_conv_fast_opts_t o = auto_opts();
    static const int shapes[][3] = {{64, 1024, 1024}, {8, 1024, 8192}, {1, 1024, 65536}, {3, 5, 37}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int B = shapes[i][0], d = shapes[i][1], T = shapes[i][2];
        const lc_plan_t a = plan_of(B, d, T, &H100, NULL), b = plan_of(B, d, T, &H100, &o);
        ck_assert_str_eq(words(&a, DTYPE_BF16), words(&b, DTYPE_F16));
        ck_assert_str_eq(words(&a, DTYPE_F32), words(&b, DTYPE_F32));
        ck_assert_uint_eq(lc_plan_workspace(B, d, T, &H100, NULL), lc_plan_workspace(B, d, T, &H100, &o));
    }
}
END_TEST

/* ---- workspace and shapes outside the engine ------------------------------------------------ */

START_TEST(workspace_bytes) {
    /* 1k, B = 64: the spectrum [1024][1][2048] and twiddles [16 + 128] as float2, plus the
     * Toeplitz engine's rows (v5's 1248 a row, E and O, fp16), scales and fp16 u */
    const size_t fft = (size_t)1024 * 2048 * 8 + (16 + 128) * 8;
    const size_t toep = (size_t)1024 * 2 * 1248 * 2 + 1024 * 4 + (size_t)64 * 1024 * 1024 * 2;
    ck_assert_uint_eq(lc_plan_workspace(64, 1024, 1024, &H100, NULL), fft + toep);
    /* v5's longer rows are counted where the device does not run it */
    ck_assert_uint_eq(lc_plan_workspace(64, 1024, 1024, &NO_WGMMA, NULL), fft + toep);
    long_conv_fast_opts_t o = auto_opts();
    o.toeplitz_max_t = 0;
    ck_assert_uint_eq(lc_plan_workspace(64, 1024, 1024, &H100, &o), fft);
    /* 64k: rows 0..P/2 of the spectrum, 5 x 16384 points a channel */
    ck_assert_uint_eq(lc_plan_workspace(1, 1024, 65536, &H100, NULL),
                      (size_t)1024 * 5 * 16384 * 8 + (1024 + 128) * 8);
    ck_assert_uint_eq(lc_plan_workspace(1, 1024, 0, &H100, NULL), 0);
    ck_assert_uint_eq(lc_plan_workspace(1, 1024, 65537, &H100, NULL), 0);
    ck_assert_uint_eq(lc_plan_workspace(1, 0, 1024, &H100, NULL), 0);
}
END_TEST

START_TEST(shapes_outside_the_engine) {
    lc_plan_t p;
    ck_assert_int_eq(lc_plan_make(0, 1024, 1024, &H100, NULL, &p), -1);
    ck_assert_int_eq(lc_plan_make(1, 0, 1024, &H100, NULL, &p), -1);
    ck_assert_int_eq(lc_plan_make(1, 1024, 0, &H100, NULL, &p), -1);
    ck_assert_int_eq(lc_plan_make(1, 1024, LONG_CONV_FAST_MAX_T + 1, &H100, NULL, &p), -1);
    ck_assert_int_eq(lc_plan_make(1, 1024, LONG_CONV_FAST_MAX_T, &H100, NULL, &p), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("plan_long_conv");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, bf16_sweep_on_h100);
    tcase_add_test(tc, toeplitz_wgmma_geometry);
    tcase_add_test(tc, fft_blocks_and_copies);
    tcase_add_test(tc, fp32_always_fft);
    tcase_add_test(tc, narrow_copy_threshold);
    tcase_add_test(tc, odd_batch_channel_pairs);
    tcase_add_test(tc, no_wgmma_device);
    tcase_add_test(tc, forced_toeplitz_limit);
    tcase_add_test(tc, forced_toeplitz_version);
    tcase_add_test(tc, forced_wgmma_schedule);
    tcase_add_test(tc, forced_block_points);
    tcase_add_test(tc, forced_narrow_and_xpair);
    tcase_add_test(tc, null_options_are_auto);
    tcase_add_test(tc, workspace_bytes);
    tcase_add_test(tc, shapes_outside_the_engine);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
