/* long_conv/fast: CHELA's causal depthwise long convolution,
 *
 *   y[b,c,t] = sum_{j<=t} k[c,j] u[b,c,t-j],   x [B,d,T] (run dtype), k [d,T] fp32, y [B,d,T]
 *
 * This file is the variant: the harness's entry points around the engine.  The rest:
 *   plan.c, plan.h        every choice (path, transform and block sizes, kernel copy, Toeplitz
 *                         version and tile) as one pure host function: what runs for a shape
 *   fft_engine.cu, .h     the engine's API (short_long_conv and chela/fused use it too) and
 *                         the FFT path's host side; fft_kernels.cuh its one fused kernel
 *   toeplitz.cu, .h       the Toeplitz-product path for bf16 / fp16 at short T: mma.sync v3 / v4
 *                         (toeplitz_kernels.cuh), and v5 on Hopper's wgmma (toeplitz_wgmma.cu)
 *
 * ---- version index ----------------------------------------------------------------------------
 * What each version changed, its switch, one number (H100, bf16, d = 1024, 65536 tokens a
 * point, median ms).  Run: chela-bench --ops long_conv --variants fast --seq 1k..64k [--set ...].
 * profiles/NOTES.md (long_conv) has every version's tables, predictions and profiles.
 * FFT path:
 *   v1  one fused kernel: load, radix-16 FFT in shared memory, product with the precomputed
 *       spectrum, inverse; clusters of 2 / 4 / 8 blocks for 16k-64k.  1.613 ms at 1k.
 *   v2  the radix-16 roots as one flat switch (v1's recursive constexpr compiled to real calls
 *       with a stack frame), twiddle powers as a tree.  0.586 ms at 1k.
 *   v3  a 64-register copy (two 512-thread blocks an SM) for blocks of <= 8192 points.
 *       0.510 ms at 1k.
 *   v4  bf16 / fp16 at short T take the Toeplitz product (--set lcf_toeplitz_max_t=0: never).
 *       0.221 ms at 1k.
 *   v5  an odd batch's last row packs two channels a transform (--set lcf_xpair=0 / 1).
 *       64k (B = 1) 2.44 -> 1.67 ms.
 *   v6  the block's radix-R0 digit done on load and store; 8k as a cluster of two 8192-point
 *       blocks (--set lcf_block_points=8192 / 16384).  8k 0.855 -> 0.762 ms.
 *   v7  8192-point blocks on grids of >= 8 waves as three 256-thread blocks an SM
 *       (--set lcf_narrow=0 / 1).  8k 0.766 -> 0.725 ms.
 * Toeplitz path (--set lct_version=3 / 4 keeps an older kernel):
 *   v1  the T x T lower-triangular product on mma.sync, bf16 operands.  0.342 ms at 1k.
 *   v2  fp16 operands after a per-channel power-of-two tap scale, branch-free dense chunks.
 *       0.317 ms at 1k.
 *   v3  the SiLU prologue (short_long_conv) as its own pass, cheaper bf16 -> fp16 staging
 *       (lct_version=3).  0.314 ms at 1k.
 *   v4  u resident in shared memory, staged once a block (lct_version=4).  0.221 ms at 1k.
 *   v5  wgmma m64n64k16, one a lag for 8 m-tiles (sm_90a; --set lcw_w, lcw_sets); the default
 *       up to T = 4096 for B >= 8.  0.190 ms at 1k, 0.418 at 4k.
 * Backward (--pass bwd / fwdbwd; bwd.cu, plan_bwd.h):
 *   b1  dX = the forward engine (whichever path it plans) on dY reversed in time, put back in
 *       order by a reversing copy; dK = sum_b corr(x_b, dY_b): where the FFT is one block
 *       (T <= 4096) one kernel a channel transforms the batch two rows at a time and sums the
 *       products in registers ("dk=fft-chan"); above, the FFT kernel's row spectra (its setup
 *       mode) of x and reversed dY, a product-and-sum kernel over the batch, and the engine's
 *       run with that spectrum on unit impulses ("fft-spectra"; B = 1: the engine's run on x
 *       with dY's spectrum, "fft-run").  Not yet measured.
 */
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "long_conv/bwd.h"
#include "long_conv/fft_engine.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(long_conv_fast_var);
DECLARE_BWD(long_conv_fast_var);
}

extern "C" const char *long_conv_fast_var_supports(const shape_t *s) {
    if (s->dtype != DTYPE_F32 && s->dtype != DTYPE_BF16 && s->dtype != DTYPE_F16)
        return "dtype must be fp32, bf16 or fp16";
    if (s->B < 1 || s->d < 1 || s->T < 1) return "empty shape";
    if (s->T > LONG_CONV_FAST_MAX_T) return "T > 65536 (FFT of 2T beyond one cluster of 8)";
    long_conv_fast_opts_t o;
    long_conv_fast_opts_from(s->set, &o);
    lcf_plan_t g;
    lcf_plan_geometry(s->T, &o, &g);
    if ((long long)s->d * ((s->B + 1) / 2) * g.P > 0x7fffffffLL) return "B*d too large for the grid";
    return NULL;
}

extern "C" size_t long_conv_fast_var_workspace_bytes(const shape_t *s) {
    long_conv_fast_opts_t o;
    long_conv_fast_opts_from(s->set, &o);
    return long_conv_fast_workspace(s->B, s->d, s->T, &o) +
           (s->pass != PASS_FWD ? lc_bwd_workspace(s->B, s->d, s->T, &o, s->dtype) : 0);
}

/* The variant's state: the engine plus the run dtype (the engine itself takes it per run). */
typedef struct {
    long_conv_fast_t *eng;
    lc_bwd_t *bwd; /* the backward's buffers, when setup saw a pass with a backward */
    dtype_t dtype;
} lcf_var_state_t;

extern "C" int long_conv_fast_var_setup(const shape_t *s, const io_t *io, void **state) {
    *state = NULL;
    const char *why = long_conv_fast_var_supports(s);
    if (why) BENCH_FAIL("long_conv/fast: unsupported shape: %s", why);
    lcf_var_state_t *st = (lcf_var_state_t *)calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("long_conv/fast: out of host memory");
    st->dtype = s->dtype;
    long_conv_fast_opts_t o; /* the settings, resolved once: the engine's plan keeps them */
    long_conv_fast_opts_from(s->set, &o);
    if (long_conv_fast_create(s->B, s->d, s->T, (const float *)io->in[1], &o, 0, &st->eng) != 0) {
        free(st);
        return -1;
    }
    *state = st; /* teardown frees what is made from here on */
    if (s->pass != PASS_FWD && lc_bwd_create(st->eng, st->dtype, &st->bwd) != 0) return -1;
    return 0;
}

extern "C" int long_conv_fast_var_run(void *state, const io_t *io, cudaStream_t stream) {
    const lcf_var_state_t *st = (const lcf_var_state_t *)state;
    if (!st) BENCH_FAIL("long_conv/fast: run without setup");
    return long_conv_fast_run(st->eng, io->in[0], io->out, st->dtype, NULL, stream);
}

/* dX = corr(dY, k) (the engine on dY reversed, put back in order), dK = sum_b corr(x_b, dY_b)
 * (bwd.h).  Nothing of the forward is kept: the backward reads x and dY alone. */
extern "C" int long_conv_fast_var_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                                          cudaStream_t stream) {
    lcf_var_state_t *st = (lcf_var_state_t *)state;
    if (!st || !st->bwd) BENCH_FAIL("long_conv/fast: run_bwd without a backward setup");
    if (lc_bwd_reverse_dy(st->bwd, g->dy, stream)) return -1;
    if (lc_bwd_dx_rev(st->bwd, stream)) return -1;
    if (lc_bwd_unreverse(st->bwd, g->grad[0], stream)) return -1;
    return lc_bwd_dk(st->bwd, io->in[0], st->dtype, (float *)g->grad[1], stream);
}

extern "C" void long_conv_fast_var_teardown(void *state) {
    lcf_var_state_t *st = (lcf_var_state_t *)state;
    if (!st) return;
    lc_bwd_destroy(st->bwd);
    long_conv_fast_destroy(st->eng);
    free(st);
}

extern "C" void long_conv_fast_var_config(const void *state, char *buf, size_t len) {
    const lcf_var_state_t *st = (const lcf_var_state_t *)state;
    if (st) {
        long_conv_fast_describe(st->eng, st->dtype, buf, len);
        const size_t used = strlen(buf);
        if (st->bwd && used < len) lc_bwd_describe(st->bwd, buf + used, len - used);
    } else if (len) {
        buf[0] = 0;
    }
}
