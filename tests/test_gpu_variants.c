/* test_gpu_variants.c: every GPU variant against the CPU reference, through the
 * harness itself (the same fill / poison / verify path as a real sweep), at
 * shapes chosen to break tiling: T = 1, T smaller than a tile, T not a multiple
 * of any tile, several heads and batches, both head dims, the CHELA head shape,
 * fp16 and fp32, non-causal.  Exit 77 (skipped) when no CUDA device is present. */
#include <check.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "runner_gpu.h"
#include "softmax_attn/cudnn_sdpa.h"

/* The settings (space-separated name=value words, --set each) of the current test step:
 * what CHELA_* environment variables did before settings existed. */
static char g_settings[256];
static void set_settings(const char *words) { snprintf(g_settings, sizeof g_settings, "%s", words); }
/* When set: a word every ok row's config must hold (what the variant resolved, e.g. attn=cudnn). */
static const char *g_config_has;

/* The variants a sweep may record as skipped because this build or machine has no cuDNN
 * (skip:unavailable): softmax_attn/cudnn then, else none, so that with cuDNN its rows must be ok. */
static const char *no_cudnn(void) { return sa_cudnn_unavailable() ? "softmax_attn/cudnn" : ""; }

/* Runs one sweep and checks every row: ok, or a skip whose variant and status prefix
 * are listed in allowed ("variant=status-prefix;...").  How many rows it must write comes
 * from the variant table (variants.c) itself: every selected variant, every combination
 * of its --set values, every length, every --pass, and its stages (forward and backward,
 * by pass) with --breakdown, so that a new variant or setting adds rows here with no edit.
 * Returns the ok rows. */
static int sweep_ok(const char *label, const char *allowed, int argc, const char **argv) {
    options_t o;
    char err[512], path[64], words[256];
    snprintf(path, sizeof path, "gpu_%s.csv", label);
    options_defaults(&o);
    const char *args[64] = {"chela-bench", "--backend", "cuda", "--warmup", "1", "--repeat", "3",
                            "--budget-ms", "0", "--no-ceilings", "-o", path};
    int n = 12;
    for (int i = 0; i < argc; i++) args[n++] = argv[i];
    snprintf(words, sizeof words, "%s", g_settings);
    char *save = NULL;
    for (char *w = strtok_r(words, " ", &save); w && n < 62; w = strtok_r(NULL, " ", &save)) {
        args[n++] = "--set";
        args[n++] = w;
    }
    ck_assert_msg(options_parse(n, (char **)args, &o, err, sizeof err) == 0, "%s", err);
    set_axes_t axes;
    ck_assert_msg(set_axes_parse(&o, variant_selected, &axes, err, sizeof err) == 0, "%s", err);
    int rows_want = 0;
    for (int i = 0; i < N_VARIANTS; i++)
        for (int p = 0; p < o.n_pass; p++)
            if (variant_selected(&o, &VARIANTS[i]))
                rows_want += set_combos(&axes, &VARIANTS[i]) * o.n_seq *
                        (1 + (o.breakdown ? variant_stage_rows(&VARIANTS[i], o.passes[p]) : 0));
    int rc = run_sweep(&o);
    csv_row_t *rows = NULL;
    int nrows = csv_read(path, &rows, err, sizeof err);
    ck_assert_msg(nrows > 0, "%s: %s", label, err);
    ck_assert_msg(nrows == rows_want, "%s: %d rows, the table says %d", label, nrows, rows_want);
    int n_ok = 0;
    for (int i = 0; i < nrows; i++) {
        const csv_row_t *r = &rows[i];
        if (!strcmp(r->status, "ok")) {
            /* the SM clock stamped around the samples (clock_probe.h): a real clock */
            ck_assert_msg(r->sm_clock_mhz > 100 && r->sm_clock_mhz < 10000,
                          "%s: %s T=%g: sm_clock_mhz %g", label, r->variant, r->seq, r->sm_clock_mhz);
            /* every row says what ran (the variant's resolved config) and what it held */
            ck_assert_msg(r->config[0] && r->config[0] != '(', "%s: %s T=%g: config '%s'", label,
                          r->variant, r->seq, r->config);
            ck_assert_msg(r->peak_mem_bytes > 0, "%s: %s: peak_mem_bytes %g", label, r->variant,
                          r->peak_mem_bytes);
            ck_assert_msg(!g_config_has || strstr(r->config, g_config_has), "%s: %s: config '%s' "
                          "lacks %s", label, r->variant, r->config, g_config_has);
            n_ok++;
            continue;
        }
        char want[160];
        snprintf(want, sizeof want, "%s=%.*s", r->variant, (int)strcspn(r->status, ":"), r->status);
        int fine = allowed && strstr(allowed, r->variant) && !strncmp(r->status, "skip", 4);
        ck_assert_msg(fine, "%s: %s T=%g B=%g: %s (%s)", label, r->variant, r->seq, r->batch,
                      r->status, r->note);
    }
    ck_assert_msg(rc == 0, "%s: chela-bench returned %d", label, rc);
    free(rows);
    remove(path);
    return n_ok;
}

START_TEST(attention_lm_odd_lengths) {
    const char *a[] = {"--ops", "linear_attn,softmax_attn", "--seq", "1,17,64,100,257,1000",
                       "--batch", "2", "--heads", "3", "--head-dim", "64"};
    /* 6 lengths x 5 variants */
    ck_assert_int_ge(sweep_ok("lm_odd", no_cudnn(), 10, a), 1);
}
END_TEST

START_TEST(attention_head_dim_128) {
    const char *a[] = {"--ops", "linear_attn,softmax_attn", "--seq", "33,300,2049", "--batch", "1",
                       "--heads", "2", "--head-dim", "128"};
    ck_assert_int_ge(sweep_ok("hd128", no_cudnn(), 10, a), 1);
}
END_TEST

START_TEST(attention_fp16) {
    const char *a[] = {"--ops", "linear_attn,softmax_attn", "--seq", "5,130,700", "--batch", "2",
                       "--heads", "2", "--head-dim", "64", "--dtype", "fp16"};
    ck_assert_int_ge(sweep_ok("fp16", no_cudnn(), 12, a), 1);
}
END_TEST

START_TEST(attention_fp32) {
    const char *a[] = {"--ops", "linear_attn,softmax_attn", "--seq", "7,300", "--batch", "1",
                       "--heads", "2", "--head-dim", "64", "--dtype", "fp32"};
    /* tensor-core kernels may decline fp32; the naive ones must run */
    ck_assert_int_ge(
        sweep_ok("fp32", "linear_attn/chunked softmax_attn/flash softmax_attn/cudnn", 12, a), 4);
}
END_TEST

START_TEST(chela_head_shape) {
    const char *a[] = {"--ops", "linear_attn", "--seq", "70,513", "--batch", "1", "--heads", "1",
                       "--dk", "128", "--dv", "2048"};
    /* naive_cumsum materialises dk x dv per token and declines dv > 256 */
    ck_assert_int_ge(sweep_ok("chela_head", "linear_attn/naive_cumsum", 12, a), 1);
}
END_TEST

/* v6 (the default on an sm_90a build, cc 9.0) and v3 (precomputed A, fp16 state) run where
 * dv >= 128 and causal: both dk, both 16-bit dtypes, tails, several segments (forced by
 * --set la_seg), and v2 beside them on one shape.  On other GPUs the default runs v3 twice. */
START_TEST(linear_attn_v3_shapes) {
    const char *a[] = {"--ops", "linear_attn", "--variants", "chunked", "--seq", "1,65,1000,9000",
                       "--batch", "2", "--heads", "1", "--dk", "64", "--dv", "128"};
    const char *b[] = {"--ops", "linear_attn", "--variants", "chunked", "--seq", "100,4100",
                       "--batch", "1", "--heads", "2", "--dk", "128", "--dv", "256", "--dtype",
                       "fp16"};
    ck_assert_int_ge(sweep_ok("v6_dk64", NULL, 14, a), 1);
    ck_assert_int_ge(sweep_ok("v6_fp16", NULL, 16, b), 1);
    set_settings("la_version=3");
    ck_assert_int_ge(sweep_ok("v3_dk64", NULL, 14, a), 1);
    ck_assert_int_ge(sweep_ok("v3_fp16", NULL, 16, b), 1);
    set_settings("");
    const char *c[] = {"--ops", "linear_attn", "--variants", "chunked", "--seq", "1000,3001",
                       "--batch", "1", "--heads", "1", "--dk", "128", "--dv", "2048"};
    set_settings("la_seg=256");
    ck_assert_int_ge(sweep_ok("v6_segments", NULL, 14, c), 1);
    set_settings("la_version=3 la_seg=256");
    ck_assert_int_ge(sweep_ok("v3_segments", NULL, 14, c), 1);
    set_settings("la_version=2 la_seg=256");
    ck_assert_int_ge(sweep_ok("v2_segments", NULL, 14, c), 1);
    set_settings("la_version=2 la_seg=256 la_sub=3");
    ck_assert_int_ge(sweep_ok("v2_parts", NULL, 14, c), 1);
    set_settings("la_seg=256 la_sub=3");
    ck_assert_int_ge(sweep_ok("v6_parts", NULL, 14, c), 1);
    set_settings("la_seg=256");
    set_settings("");
}
END_TEST

/* Pass A parts beside segments where the scan's slot arithmetic differs: not causal (every
 * segment's parts summed, the last segment short) and fp32 (v1's pass A). */
START_TEST(linear_attn_state_parts) {
    const char *a[] = {"--ops", "linear_attn", "--variants", "chunked", "--seq", "700,3001",
                       "--batch", "2", "--heads", "1", "--head-dim", "64", "--noncausal"};
    const char *b[] = {"--ops", "linear_attn", "--variants", "chunked", "--seq", "700,3001",
                       "--batch", "1", "--heads", "2", "--head-dim", "64", "--dtype", "fp32"};
    set_settings("la_seg=320");
    set_settings("la_seg=320 la_sub=2");
    ck_assert_int_ge(sweep_ok("parts_noncausal", NULL, 13, a), 1);
    ck_assert_int_ge(sweep_ok("parts_fp32", NULL, 14, b), 1);
    set_settings("la_seg=320 la_sub=5");
    ck_assert_int_ge(sweep_ok("parts5_noncausal", NULL, 13, a), 1);
    set_settings("la_seg=320");
    set_settings("");
}
END_TEST

START_TEST(linear_attn_long_and_noncausal) {
    const char *a[] = {"--ops", "linear_attn", "--variants", "chunked", "--seq", "5000,8k,20000",
                       "--batch", "1", "--heads", "2", "--head-dim", "64"};
    ck_assert_int_ge(sweep_ok("la_long", NULL, 12, a), 1);
    const char *b[] = {"--ops", "linear_attn", "--seq", "1,100,3000", "--batch", "2", "--heads",
                       "2", "--head-dim", "64", "--noncausal"};
    ck_assert_int_ge(sweep_ok("la_noncausal", "linear_attn/naive_cumsum", 11, b), 3);
}
END_TEST

START_TEST(long_conv_odd_lengths) {
    const char *a[] = {"--ops", "long_conv", "--seq", "1,3,100,1000,4097", "--batch", "2",
                       "--dim", "5"};
    ck_assert_int_ge(sweep_ok("long_conv", NULL, 8, a), 1);
    const char *f[] = {"--ops", "long_conv", "--seq", "1,1000,4096", "--batch", "2", "--dim", "3",
                       "--dtype", "fp32"};
    ck_assert_int_ge(sweep_ok("long_conv_fp32", NULL, 10, f), 1);
}
END_TEST

/* long_conv_fast v4 hands 16-bit runs at short T to the Toeplitz product: forced up to 16384
 * here, across its token tiles (128 / 256 / 512 for batch tiles 64 / 32 / 16), partial batch
 * tiles, fp16, and the SiLU prologue (short_long_conv); the same shapes through the older
 * kernels; then the FFT path in bf16 at a T the Toeplitz path would take by default; then
 * the default range of the wgmma kernel. */
START_TEST(long_conv_toeplitz_paths) {
    set_settings("lcf_toeplitz_max_t=16384");
    const char *a[] = {"--ops", "long_conv", "--variants", "fast", "--seq", "1,63,65,300,2100",
                       "--batch", "2", "--dim", "5"};
    ck_assert_int_ge(sweep_ok("lct_b2", NULL, 10, a), 1);
    const char *b[] = {"--ops", "long_conv", "--variants", "fast", "--seq", "129,1000", "--batch",
                       "20", "--dim", "3", "--dtype", "fp16"};
    ck_assert_int_ge(sweep_ok("lct_b20_fp16", NULL, 12, b), 1);
    /* d = 16, not 3: the error is measured against max(|ref|, rms of the d outputs at one
     * (b, t)), and the fp16 taps' rounding is an absolute ~1e-4 of a typical output; at d = 3
     * one (b, t) of 49,000 had all three outputs near 0.003 and read 2.8e-2 (measured). */
    const char *c[] = {"--ops", "long_conv,short_long_conv", "--seq", "64,700", "--batch", "70",
                       "--dim", "16"};
    ck_assert_int_ge(sweep_ok("lct_b70", NULL, 8, c), 1);
    /* v4 and v3 kept by --set lct_version (v5, the wgmma kernel, is the default on sm_90) */
    set_settings("lcf_toeplitz_max_t=16384 lct_version=4");
    ck_assert_int_ge(sweep_ok("lct_v4_b2", NULL, 10, a), 1);
    set_settings("lcf_toeplitz_max_t=16384 lct_version=3");
    ck_assert_int_ge(sweep_ok("lct_v3_b20_fp16", NULL, 12, b), 1);
    set_settings("lcf_toeplitz_max_t=16384");
    set_settings("lcf_toeplitz_max_t=0");
    const char *d[] = {"--ops", "long_conv", "--variants", "fast", "--seq", "1000", "--batch",
                       "2", "--dim", "5"};
    ck_assert_int_ge(sweep_ok("lcf_fft_bf16", NULL, 10, d), 1);
    set_settings("");
    /* the default range: v5 takes B >= 16 up to T = 4096 (batch tile 16, four m-tiles a group,
     * a partial last group at 3000), with and without the prologue; d = 16 for the reason above
     * (at d = 3 one (b, t) of 48,000 read 3.6e-2 at T = 4000, all three outputs near 0.003) */
    const char *e[] = {"--ops", "long_conv,short_long_conv", "--variants", "fast,reparam", "--seq",
                       "3000,4096", "--batch", "16", "--dim", "16"};
    ck_assert_int_ge(sweep_ok("lct_v5_default", NULL, 10, e), 1);
}
END_TEST

/* long_conv_fast v5: B = 1 packs channels c, c+1 into one transform and separates them in the
 * spectrum, which pairs frequency k with N-k: inside the block (P = 1 at M = 128 .. 16384,
 * R0 = 8, 1, 2, 4; cluster rank 0) and across cluster blocks r, P-r (P = 2, 4, 8) including
 * the self-paired rank P/2; odd d (the last channel paired with zero taps); fp32 and bf16;
 * the per-channel SiLU prologue (short_long_conv reparam); then --set lcf_xpair=0. */
START_TEST(long_conv_channel_pairs) {
    const char *a[] = {"--ops", "long_conv", "--variants", "fast", "--seq",
                       "1,37,100,3000,5000,9000,20000,40000", "--batch", "1", "--dim", "5",
                       "--dtype", "fp32"};
    ck_assert_int_ge(sweep_ok("xpair_fp32", NULL, 12, a), 1);
    const char *b[] = {"--ops", "long_conv", "--variants", "fast", "--seq",
                       "3000,5000,16384,20000,65536", "--batch", "1", "--dim", "6"};
    ck_assert_int_ge(sweep_ok("xpair_bf16", NULL, 10, b), 1);
    const char *c[] = {"--ops", "short_long_conv", "--seq", "5000,40000", "--batch", "1",
                       "--dim", "7"};
    ck_assert_int_ge(sweep_ok("xpair_slc", NULL, 8, c), 1);
    /* odd B > 1: rows 0, 1 share a transform, row 2 of channels c, c+1 another */
    const char *e[] = {"--ops", "long_conv", "--variants", "fast", "--seq", "3000,9000,40000",
                       "--batch", "3", "--dim", "5", "--dtype", "fp32"};
    ck_assert_int_ge(sweep_ok("xpair_b3_fp32", NULL, 12, e), 1);
    const char *f[] = {"--ops", "long_conv,short_long_conv", "--seq", "5000,20000", "--batch",
                       "3", "--dim", "6"};
    ck_assert_int_ge(sweep_ok("xpair_b3_bf16", NULL, 8, f), 1);
    set_settings("lcf_xpair=0");
    const char *d[] = {"--ops", "long_conv", "--variants", "fast", "--seq", "5000,40000",
                       "--batch", "1", "--dim", "5"};
    ck_assert_int_ge(sweep_ok("xpair_off", NULL, 10, d), 1);
    set_settings("");
}
END_TEST

/* long_conv_fast v7: the narrow copy of 8192-point blocks (256 threads, three blocks an SM),
 * which the default takes only on grids of many waves, forced on for small ones: single
 * blocks (T = 3000, 4096) and clusters of two (5000, 8192), an odd B (same-channel pairs and
 * channel pairs), the prologue, fp32 and bf16; then forced off at the same bf16 shapes. */
START_TEST(long_conv_narrow_copy) {
    set_settings("lcf_narrow=1");
    const char *a[] = {"--ops", "long_conv,short_long_conv", "--seq", "3000,4096,5000,8192",
                       "--batch", "3", "--dim", "6"};
    ck_assert_int_ge(sweep_ok("narrow_bf16", NULL, 8, a), 1);
    const char *b[] = {"--ops", "long_conv", "--variants", "fast", "--seq", "3000,8192",
                       "--batch", "1", "--dim", "5", "--dtype", "fp32"};
    ck_assert_int_ge(sweep_ok("narrow_fp32_b1", NULL, 12, b), 1);
    set_settings("lcf_narrow=0");
    ck_assert_int_ge(sweep_ok("narrow_off_bf16", NULL, 8, a), 1);
    set_settings("");
}
END_TEST

/* --set lcf_block_points=8192: clusters of 8192-point blocks from T = 4097 (P = 2, 4, 8, and
 * 16384-point blocks where 8 would not reach), the 64-register copy at every P, the radix-2
 * digit fused into load and store at P = 2 and 4 (v6), batch pairs and channel pairs; then
 * =16384, the P = 1 block of 16384 points with its radix-4 digit fused. */
START_TEST(long_conv_block_points) {
    set_settings("lcf_block_points=8192");
    const char *a[] = {"--ops", "long_conv", "--variants", "fast", "--seq",
                       "4097,9000,20000,40000", "--batch", "2", "--dim", "5"};
    ck_assert_int_ge(sweep_ok("bp8k_b2", NULL, 10, a), 1);
    /* not long_conv/fft: cuFFT's fp32 error at t = 0 of T = 40000 is 5.7e-5 of rows whose d = 5
     * outputs are all ~1e-5 (measured), over the fp32 tolerance for a reason not tested here */
    const char *b[] = {"--ops", "long_conv,short_long_conv", "--variants", "fast,branches,reparam",
                       "--seq", "9000,40000", "--batch", "1", "--dim", "5", "--dtype", "fp32"};
    ck_assert_int_ge(sweep_ok("bp8k_b1_fp32", NULL, 12, b), 1);
    set_settings("lcf_block_points=16384");
    const char *c[] = {"--ops", "long_conv", "--variants", "fast", "--seq", "4097,8192",
                       "--batch", "3", "--dim", "5"};
    ck_assert_int_ge(sweep_ok("bp16k_b3", NULL, 10, c), 1);
    set_settings("");
}
END_TEST

/* Both forms of the short-long conv against the reference (branches form) and so
 * against each other; T below the short kernels' reach and across block edges. */
START_TEST(short_long_conv_forms) {
    const char *a[] = {"--ops", "short_long_conv", "--seq", "1,2,9,100,1000,4097,20000",
                       "--batch", "2", "--dim", "5"};
    ck_assert_int_ge(sweep_ok("slc", NULL, 8, a), 1);
}
END_TEST

/* The whole layer at small widths: the fp32 GPU oracle is checked against the CPU
 * reference, chela/fused against the oracle; --breakdown adds one ok row a stage. */
START_TEST(chela_layer_small) {
    const char *a[] = {"--ops", "chela", "--seq", "1,37,300,1000", "--batch", "2", "--dim", "64",
                       "--z", "64", "--v", "128", "--breakdown"};
    int n = sweep_ok("chela", NULL, 13, a);
    ck_assert_int_ge(n, 1);
    /* v = 64: one attention slice, whose norm is otherwise fused in the output kernel; the
     * gate forces the separate (gated) norm pass */
    const char *g[] = {"--ops", "chela", "--seq", "100,700", "--batch", "1", "--dim", "64",
                       "--z", "64", "--v", "64"};
    ck_assert_int_ge(sweep_ok("chela_v64", NULL, 12, g), 1);
    const char *f[] = {"--ops", "chela", "--seq", "5,200", "--batch", "1", "--dim", "128",
                       "--z", "128", "--v", "256", "--dtype", "fp32"};
    ck_assert_int_ge(sweep_ok("chela_fp32", NULL, 14, f), 1);
    const char *h[] = {"--ops", "chela", "--seq", "70,1000", "--batch", "1", "--dim", "128",
                       "--z", "128", "--v", "256"};
    ck_assert_int_ge(sweep_ok("chela_z128", NULL, 12, h), 1);
    set_settings("lt_tune=0");
    ck_assert_int_ge(sweep_ok("chela_z128_untuned", NULL, 12, h), 1);
    set_settings("");
}
END_TEST

/* The layer's attention with segments and pass A parts forced, so that V's SiLU (applied as
 * the attention reads V') runs in pass A as well as pass C: bf16 v = 128 (v3 pass C, v2 pass
 * A), v = 64 (v2 pass C), fp32 (v1). */
START_TEST(chela_layer_segments) {
    const char *a[] = {"--ops", "chela", "--seq", "300,1000", "--batch", "2", "--dim", "64",
                       "--z", "64", "--v", "128"};
    const char *g[] = {"--ops", "chela", "--seq", "700", "--batch", "1", "--dim", "64", "--z",
                       "64", "--v", "64"};
    const char *f[] = {"--ops", "chela", "--seq", "200", "--batch", "1", "--dim", "128", "--z",
                       "128", "--v", "256", "--dtype", "fp32"};
    set_settings("la_seg=128");
    set_settings("la_seg=128 la_sub=2");
    ck_assert_int_ge(sweep_ok("chela_seg", NULL, 12, a), 1);
    ck_assert_int_ge(sweep_ok("chela_seg_v64", NULL, 12, g), 1);
    ck_assert_int_ge(sweep_ok("chela_seg_fp32", NULL, 14, f), 1);
    const char *h[] = {"--ops", "chela", "--seq", "1000", "--batch", "2", "--dim", "128", "--z",
                       "128", "--v", "256"};
    ck_assert_int_ge(sweep_ok("chela_seg_z128", NULL, 12, h), 1);
    set_settings("la_seg=128");
    set_settings("");
}
END_TEST

/* MEGA's layer at small widths: the fp32 oracle checked against the CPU reference, mega/layer
 * against the oracle; --breakdown adds one ok row a stage.  Chunks that divide T and that do not
 * (B = 3: three sequences' full chunks and their partial ones), a sweep of the chunk (each value
 * against an oracle made for it), fp16 and fp32, the default widths' z = 128 and v = 2d. */
START_TEST(mega_layer_small) {
    const char *a[] = {"--ops", "mega", "--seq", "1,37,300,1000", "--batch", "2", "--dim", "64",
                       "--z", "64", "--v", "128", "--breakdown"};
    ck_assert_int_ge(sweep_ok("mega", NULL, 13, a), 1);
    const char *b[] = {"--ops", "mega", "--seq", "256,700,2100", "--batch", "3", "--dim", "128",
                       "--z", "128", "--v", "256"};
    set_settings("mega_chunk=64,256,auto");
    ck_assert_int_ge(sweep_ok("mega_chunks", NULL, 12, b), 1);
    set_settings("");
    const char *f[] = {"--ops", "mega", "--seq", "5,200", "--batch", "1", "--dim", "128", "--z",
                       "128", "--v", "256", "--dtype", "fp32"};
    ck_assert_int_ge(sweep_ok("mega_fp32", NULL, 14, f), 1);
    const char *h[] = {"--ops", "mega", "--seq", "100,1000", "--batch", "2", "--dim", "64", "--z",
                       "64", "--v", "128", "--dtype", "fp16"};
    ck_assert_int_ge(sweep_ok("mega_fp16", NULL, 14, h), 1);
    set_settings("lt_tune=0 mega_chunk=128");
    ck_assert_int_ge(sweep_ok("mega_untuned", NULL, 12, b), 1);
    set_settings("");
}
END_TEST

START_TEST(transformer_layer_small) {
    /* d = 256: four heads of 64 (the layer's LayerNorm wants d a multiple of 256) */
    const char *a[] = {"--ops", "transformer", "--seq", "1,37,300,1000", "--batch", "2", "--dim",
                       "256"};
    const int have_cudnn = sa_cudnn_unavailable() == NULL;
    /* attn=auto takes cuDNN where there is one */
    g_config_has = have_cudnn ? "attn=cudnn" : "attn=fa2";
    ck_assert_int_ge(sweep_ok("transformer", NULL, 8, a), 1);
    set_settings("lt_tune=0");
    ck_assert_int_ge(sweep_ok("transformer_untuned", NULL, 8, a), 1);
    set_settings("attn=flash");
    g_config_has = "attn=fa2";
    ck_assert_int_eq(sweep_ok("transformer_flash", NULL, 8, a), 4);
    /* forced: ok where cuDNN is, else a skip with the reason */
    set_settings("attn=cudnn");
    g_config_has = "attn=cudnn";
    ck_assert_int_eq(sweep_ok("transformer_cudnn", have_cudnn ? NULL : "transformer/layer", 8, a),
                     have_cudnn ? 4 : 0);
    g_config_has = NULL;
    set_settings("");
}
END_TEST

/* softmax_attn/cudnn where the build and the machine have cuDNN: every row ok at the head dims
 * it must serve (64, 128), causal and not, bf16 and fp16, lengths 1 to past a tile, several
 * heads, and its config names the plan (engine=).  Without cuDNN every row is a skip
 * (skip:unavailable).  Beside it, flash and naive decline --noncausal (skip:unsupported). */
START_TEST(softmax_attn_cudnn_paths) {
    const int have = sa_cudnn_unavailable() == NULL;
    const char *skip = have ? NULL : "softmax_attn/cudnn";
    const char *a[] = {"--ops", "softmax_attn", "--variants", "cudnn", "--seq", "1,17,100,1000,4097",
                       "--batch", "2", "--heads", "3", "--head-dim", "64", "--noncausal",
                       "--dtype", "fp16"};
    g_config_has = have ? "engine=" : NULL;
    ck_assert_int_eq(sweep_ok("cudnn_d64", skip, 12, a), have ? 5 : 0);
    ck_assert_int_eq(sweep_ok("cudnn_d64_noncausal", skip, 13, a), have ? 5 : 0);
    a[11] = "128";
    ck_assert_int_eq(sweep_ok("cudnn_d128_fp16_noncausal", skip, 15, a), have ? 5 : 0);
    const char *b[] = {"--ops", "softmax_attn", "--variants", "cudnn", "--seq", "33,2049",
                       "--batch", "1", "--heads", "2", "--head-dim", "128", "--dtype", "fp16"};
    ck_assert_int_eq(sweep_ok("cudnn_d128_fp16", skip, 14, b), have ? 2 : 0);
    g_config_has = NULL;
    /* every softmax variant at --noncausal: the reference is bidirectional, cuDNN follows it */
    const char *c[] = {"--ops", "softmax_attn", "--seq", "5,300", "--batch", "2", "--heads", "2",
                       "--head-dim", "64", "--noncausal"};
    char allowed[96];
    snprintf(allowed, sizeof allowed, "softmax_attn/flash softmax_attn/naive %s", no_cudnn());
    ck_assert_int_eq(sweep_ok("sa_noncausal", allowed, 11, c), have ? 2 : 0);
}
END_TEST

/* ---- the matrix the variant table generates ------------------------------------------ */

/* Edge shapes of each op (one sweep's shape arguments each): T = 1, T below one tile, T not
 * a multiple of any tile, B*H small and large; CHELA's head shape for linear attention. */
typedef struct {
    op_id op;
    const char *label;
    int argc;
    const char *argv[12];
} edge_t;
static const edge_t EDGES[] = {
    {OP_LINEAR_ATTN, "la_lm", 8, {"--seq", "1,17,64,100,257,1000", "--batch", "2", "--heads", "3",
                                  "--head-dim", "64"}},
    {OP_LINEAR_ATTN, "la_hd128", 8, {"--seq", "33,300,2049", "--batch", "1", "--heads", "2",
                                     "--head-dim", "128"}},
    {OP_LINEAR_ATTN, "la_head", 10, {"--seq", "70,513,4100", "--batch", "1", "--heads", "1", "--dk",
                                     "128", "--dv", "2048"}},
    {OP_LINEAR_ATTN, "la_many", 8, {"--seq", "3000", "--batch", "8", "--heads", "16", "--head-dim",
                                    "64"}},
    {OP_LONG_CONV, "lc_small", 6, {"--seq", "1,3,100,1000,4097", "--batch", "2", "--dim", "5"}},
    {OP_LONG_CONV, "lc_many", 6, {"--seq", "64,700,3000", "--batch", "70", "--dim", "16"}},
    {OP_SHORT_LONG_CONV, "slc_small", 6, {"--seq", "1,2,9,100,1000,4097", "--batch", "2", "--dim",
                                          "5"}},
    {OP_SHORT_LONG_CONV, "slc_many", 6, {"--seq", "64,700,3000", "--batch", "70", "--dim", "16"}},
    {OP_SOFTMAX_ATTN, "sa_lm", 8, {"--seq", "1,17,64,100,257,1000", "--batch", "2", "--heads", "3",
                                   "--head-dim", "64"}},
    {OP_SOFTMAX_ATTN, "sa_hd128", 8, {"--seq", "33,300,2049", "--batch", "1", "--heads", "2",
                                      "--head-dim", "128"}},
    {OP_SOFTMAX_ATTN, "sa_noncausal", 9, {"--seq", "1,100,1000", "--batch", "2", "--heads", "3",
                                          "--head-dim", "64", "--noncausal"}},
    {OP_CHELA, "chela", 10, {"--seq", "1,37,300,1000", "--batch", "2", "--dim", "64", "--z", "64",
                             "--v", "128"}},
    {OP_TRANSFORMER, "tf", 6, {"--seq", "1,37,300,1000", "--batch", "2", "--dim", "256"}},
    /* the CHELA layer where its backward runs (d a multiple of 256): the training edges */
    {OP_CHELA, "chela_train", 10, {"--seq", "1,37,300", "--batch", "2", "--dim", "256", "--z",
                                   "64", "--v", "128"}},
    /* T below the chunk (one chunk of T), and 1500 = 1024 + a partial chunk of 476 (three GEMM
     * groups at B = 2); table_matrix's mega_chunk = 64 and 192 cut 300 and 1500 into several
     * chunks with partial last ones */
    {OP_MEGA, "mega", 10, {"--seq", "1,37,300,1500", "--batch", "2", "--dim", "64", "--z", "64",
                           "--v", "128"}},
};

/* The values a setting is tested at: every integer its definition lists, and for a range
 * lo..hi its low end and one value inside (3 lo, or 2048 from 0). */
static int setting_test_values(const setting_def_t *d, char vals[][24], int max) {
    int n = 0;
    const char *p = d->values;
    while (*p && n < max) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        char tok[32];
        snprintf(tok, sizeof tok, "%.*s", (int)(len < 31 ? len : 31), p);
        char *dots = strstr(tok, "..");
        if (dots) {
            *dots = 0;
            long lo = strtol(tok, NULL, 10), hi = strtol(dots + 2, NULL, 10);
            long in = lo == 0 ? 2048 : 3 * lo;
            snprintf(vals[n++], 24, "%ld", lo);
            if (in < hi && n < max) snprintf(vals[n++], 24, "%ld", in);
        } else if (strcmp(tok, "auto") != 0) {
            snprintf(vals[n++], 24, "%.23s", tok);
        }
        if (!bar) break;
        p = bar + 1;
    }
    return n;
}

/* Every variant of the table at its op's edge shapes, with every setting at its default
 * and at each of its test values; a variant may skip a shape it declines (supports()). */
START_TEST(table_matrix) {
    int sweeps = 0;
    for (int v = 0; v < N_VARIANTS; v++) {
        const variant_t *var = &VARIANTS[v];
        if (!strcmp(var->role, "oracle")) continue;
        for (size_t e = 0; e < sizeof EDGES / sizeof EDGES[0]; e++) {
            if (EDGES[e].op != var->op) continue;
            const char *a[16];
            int n = 0;
            for (int k = 0; k < EDGES[e].argc; k++) a[n++] = EDGES[e].argv[k];
            a[n++] = "--variants";
            a[n++] = var->name;
            char label[96];
            snprintf(label, sizeof label, "tbl_%s_%d", EDGES[e].label, v);
            set_settings("");
            sweep_ok(label, var->name, n, a);
            sweeps++;
            for (int d = 0; var->settings && var->settings[d].name; d++) {
                char vals[16][24], word[72];
                const int nv = setting_test_values(&var->settings[d], vals, 16);
                for (int k = 0; k < nv; k++) {
                    snprintf(word, sizeof word, "%.40s=%.23s", var->settings[d].name, vals[k]);
                    set_settings(word);
                    sweep_ok(label, var->name, n, a);
                    sweeps++;
                }
            }
        }
    }
    set_settings("");
    printf("table_matrix: %d sweeps from %d variants\n", sweeps, N_VARIANTS);
}
END_TEST

/* ---- the backward (--pass bwd|fwdbwd) ------------------------------------------------ */

/* Every variant with a backward at its op's edge shapes, in bf16, fp16 and fp32, both
 * training passes: the forward then run_bwd once, every gradient tensor checked against
 * the sampled double references (grad_ref.h), then timed.  A variant may decline a shape or
 * dtype (skip:unsupported); forward-only variants are not selected here (their rows would
 * be skip:unsupported, "no backward"). */
START_TEST(table_matrix_backward) {
    static const char *const dtypes[] = {"bf16", "fp16", "fp32"};
    int sweeps = 0;
    for (int v = 0; v < N_VARIANTS; v++) {
        const variant_t *var = &VARIANTS[v];
        if (!strcmp(var->role, "oracle") || !var->run_bwd) continue;
        for (size_t e = 0; e < sizeof EDGES / sizeof EDGES[0]; e++) {
            if (EDGES[e].op != var->op) continue;
            for (int dt = 0; dt < 3; dt++) {
                const char *a[20];
                int n = 0;
                for (int k = 0; k < EDGES[e].argc; k++) a[n++] = EDGES[e].argv[k];
                a[n++] = "--variants";
                a[n++] = var->name;
                a[n++] = "--pass";
                a[n++] = "bwd,fwdbwd";
                a[n++] = "--dtype";
                a[n++] = dtypes[dt];
                char label[96];
                snprintf(label, sizeof label, "bwd_%s_%d_%s", EDGES[e].label, v, dtypes[dt]);
                set_settings("");
                sweep_ok(label, var->name, n, a);
                sweeps++;
            }
        }
    }
    printf("table_matrix_backward: %d sweeps\n", sweeps);
}
END_TEST

/* The two backwards of this harness change, with --breakdown: their backward stages are
 * rows of their own ("NAME:bwd:STAGE") at bwd and fwdbwd points, none at fwd; one forward
 * check beside them (fwd in the same sweep), several chunks of the naive suffix scan
 * (T > 128), a T whose FFT length is not a power of two. */
START_TEST(backward_breakdown) {
    const char *a[] = {"--ops", "long_conv", "--variants", "fft", "--seq", "100,1000,4097",
                       "--batch", "3", "--dim", "5", "--pass", "fwd,bwd,fwdbwd", "--breakdown"};
    ck_assert_int_ge(sweep_ok("bwd_lc_fft", NULL, 13, a), 9);
    const char *b[] = {"--ops", "linear_attn", "--variants", "naive_cumsum", "--seq", "1,100,1000",
                       "--batch", "2", "--heads", "2", "--head-dim", "64", "--pass",
                       "fwd,bwd,fwdbwd", "--breakdown"};
    ck_assert_int_ge(sweep_ok("bwd_la_naive", NULL, 15, b), 9);
    /* dv = 48: the naive contractions' scalar path (48/4 = 12 does not divide 32) */
    const char *c[] = {"--ops", "linear_attn", "--variants", "naive_cumsum", "--seq", "300",
                       "--batch", "1", "--heads", "2", "--dk", "40", "--dv", "48", "--pass",
                       "bwd"};
    ck_assert_int_ge(sweep_ok("bwd_la_scalar", NULL, 16, c), 1);
    /* the layers' backward stages (15 transformer, 21 chela) beside their forward stages, each
     * stage run alone on what the step left; GEMM tuning off (the stages, not the tuner) */
    const char *tf[] = {"--ops", "transformer", "--seq", "37", "--batch", "2", "--dim", "256",
                        "--pass", "fwd,fwdbwd", "--breakdown", "--set", "lt_tune=0"};
    ck_assert_int_ge(sweep_ok("bwd_tf_stages", NULL, 13, tf), 2);
    const char *ch[] = {"--ops", "chela", "--variants", "fused", "--seq", "37", "--batch", "2",
                        "--dim", "256", "--z", "64", "--v", "128", "--pass", "bwd,fwdbwd",
                        "--breakdown", "--set", "lt_tune=0"};
    ck_assert_int_ge(sweep_ok("bwd_chela_stages", NULL, 19, ch), 2);
}
END_TEST

int main(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    Suite *s = suite_create("gpu_variants");
    TCase *tc = tcase_create("gpu");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, attention_lm_odd_lengths);
    tcase_add_test(tc, attention_head_dim_128);
    tcase_add_test(tc, attention_fp16);
    tcase_add_test(tc, attention_fp32);
    tcase_add_test(tc, chela_head_shape);
    tcase_add_test(tc, linear_attn_v3_shapes);
    tcase_add_test(tc, linear_attn_long_and_noncausal);
    tcase_add_test(tc, linear_attn_state_parts);
    tcase_add_test(tc, long_conv_odd_lengths);
    tcase_add_test(tc, long_conv_toeplitz_paths);
    tcase_add_test(tc, long_conv_channel_pairs);
    tcase_add_test(tc, long_conv_narrow_copy);
    tcase_add_test(tc, long_conv_block_points);
    tcase_add_test(tc, short_long_conv_forms);
    tcase_add_test(tc, chela_layer_small);
    tcase_add_test(tc, chela_layer_segments);
    tcase_add_test(tc, transformer_layer_small);
    tcase_add_test(tc, softmax_attn_cudnn_paths);
    tcase_add_test(tc, table_matrix);
    tcase_add_test(tc, table_matrix_backward);
    tcase_add_test(tc, backward_breakdown);
    suite_add_tcase(s, tc);
    /* its own case, so that CK_RUN_CASE=mega runs MEGA's layer alone (the matrix's mega rows run
     * with the rest in case gpu) */
    TCase *tm = tcase_create("mega");
    tcase_set_timeout(tm, 600);
    tcase_add_test(tm, mega_layer_small);
    suite_add_tcase(s, tm);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* a forked child cannot use CUDA */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
