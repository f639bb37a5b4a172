/* long_conv/plan.c: the long-convolution engine's choices (plan.h), pure host C.
 *
 * Every rule here was in the engine's .cu files before (fft_engine.cu's geometry, xpair and
 * narrow rules, toeplitz.cu's version and batch tiles, toeplitz_wgmma.cu's schedule); the
 * formulas and constants are unchanged.  Device facts arrive as numbers (lc_device_t). */
#include "long_conv/plan.h"

#include <stdio.h>
#include <string.h>

#include "settings.h"

/* ---- the FFT path ------------------------------------------------------------------------- */

/* Most points a block holds for a transform of N.  v6: N = 16384 (T = 8k) runs as a cluster of
 * two 8192-point blocks, two blocks an SM (one 139 KiB block before): 0.863 -> 0.831 ms at 8k
 * on the H100; the same cap at 16k and 32k (clusters of 4 and 8) measured 7 % and 1 % slower.
 * --set lcf_block_points=8192 / 16384 forces one cap for every N (experiments).  A cluster
 * stays <= 8 blocks (lcf_plan_geometry). */
static int lcf_block_points(int N, const long_conv_fast_opts_t *o) {
    if (o && (o->block_points == 8192 || o->block_points == 16384)) return o->block_points;
    return N == 16384 ? 8192 : LCF_BLOCK_POINTS;
}

void lcf_plan_geometry(int T, const long_conv_fast_opts_t *o, lcf_plan_t *g) {
    memset(g, 0, sizeof *g);
    int tp = 64;
    while (tp < T) tp <<= 1;
    g->N = 2 * tp;
    int bp = lcf_block_points(g->N, o);
    while (g->N / bp > 8) bp *= 2;
    g->P = g->N > bp ? g->N / bp : 1;
    g->M = g->N / g->P;
    g->log_m = 0;
    while ((1 << g->log_m) < g->M) g->log_m++;
    g->rows = g->P == 1 ? 1 : g->P / 2 + 1;
    g->n_hi = g->N >> LCF_TW_LO_BITS;
    int th = g->M / 16;
    if (th > LCF_MAX_THREADS) th = LCF_MAX_THREADS;
    if (th < 64) th = 64;
    g->threads = th;
    /* buf [M + M/16] float2 (one pad a 16), twiddles hi [n_hi] and lo [LCF_TW_LO] float2 */
    g->smem_bytes = (size_t)(g->M + g->M / 16 + g->n_hi + LCF_TW_LO) * 8;
}

/* v5: with an odd B the last batch row packs two channels into one complex transform;
 * --set lcf_xpair=0 keeps one channel a transform with an empty imaginary half. */
static int lcf_xpair_for(int B, const long_conv_fast_opts_t *o) {
    return (B & 1) && !(o && o->xpair == 0);
}

/* clusters of one run: (channel, batch pair)s, and (xpair) channel pairs for the last row */
static long long lcf_units(int B, int d, int xpair) {
    return xpair ? (long long)d * (B / 2) + (d + 1) / 2 : (long long)d * ((B + 1) / 2);
}

/* v7: whether a grid of nblocks 8192-point blocks runs the narrow copy: only when it is at
 * least LCF_NARROW_MIN_WAVES waves of LCF_NARROW_MINB blocks an SM (a grid of a few waves loses
 * more to the half-size blocks' longer tail than it gains: fp32 B = 1 measured 7-12 % slower);
 * --set lcf_narrow=0 / 1 forces it. */
static int lcf_narrow_for(long long nblocks, int sm_count, const long_conv_fast_opts_t *o) {
    if (o && (o->narrow == 0 || o->narrow == 1)) return o->narrow;
    return nblocks >= (long long)LCF_NARROW_MIN_WAVES * LCF_NARROW_MINB * sm_count;
}

static void lcf_plan_make(int B, int d, int T, const lc_device_t *dev,
                          const long_conv_fast_opts_t *o, lcf_plan_t *f) {
    lcf_plan_geometry(T, o, f);
    f->xpair = lcf_xpair_for(B, o);
    f->npairs = f->xpair ? B / 2 : (B + 1) / 2;
    f->blocks = lcf_units(B, d, f->xpair) * f->P;
    /* the narrow copy exists for 8192-point blocks alone, and clusters of 1 and 2 (T = 4k, 8k)
     * are the ones with such blocks by default (lcf_block_points=8192 gives larger P the
     * 512-thread copy) */
    f->narrow = 0;
    if (f->M == LCF_SMALL_M && f->P <= 2) {
        f->narrow = lcf_narrow_for(f->blocks, dev->sm_count, o);
        if (f->narrow) f->threads = LCF_NARROW_THREADS;
    }
    /* The kernel copy: the block's radix-R0 digit (M = R0 16^q) fused into load and store
     * where the combined digit P R0 is <= LCF_FUSE_Q (larger ones keep the R0 stage: a
     * Q-point DFT a point on load and store; 32 would hold 64 complex values a thread); then
     * 64 registers (two 512-thread blocks an SM) where a block holds <= LCF_SMALL_M points. */
    const int r0 = 1 << (f->log_m & 3);
    f->fused_radix = f->P * r0 <= LCF_FUSE_Q ? r0 : 1;
    f->minb = f->narrow ? LCF_NARROW_MINB : f->M <= LCF_SMALL_M ? 2 : 1;
}

/* ---- the Toeplitz path ------------------------------------------------------------------------ */

/* The setting lct_version: 3 or 4 keeps an older kernel (v4 where its resident tile fits, else
 * v3); anything else (auto): the newest this device runs. */
static int lct_version(const long_conv_toeplitz_opts_t *o) {
    return o && (o->version == 3 || o->version == 4) ? o->version : 5;
}

/* v4's batch tile for T: the widest of 64 / 32 / 16 with NT x T <= LCR_TOKENS, narrower when B
 * is smaller; 0 when even 16 rows do not fit (T > 2048): v3 runs. */
static int lcr_nt(int B, int T) {
    const int Tp = (T + 63) / 64 * 64;
    int nt = 64;
    while (nt >= 16 && nt * Tp > LCR_TOKENS) nt /= 2;
    if (nt < 16) return 0;
    while (nt > 16 && nt / 2 >= B) nt /= 2;
    return nt;
}

/* v5's schedule under o (lcw_w, lcw_sets; auto where o is NULL). */
static lcw_shape lct_v5_plan(int T, const long_conv_toeplitz_opts_t *o) {
    return lcw_plan(T, o ? o->lcw_w : SETTING_AUTO, o ? o->lcw_sets : SETTING_AUTO);
}

void lct_plan_make(int B, int d, int T, const lc_device_t *dev, const long_conv_toeplitz_opts_t *o,
                   lct_plan_t *p) {
    memset(p, 0, sizeof *p);
    p->B = B;
    p->d = d;
    p->T = T;
    p->Tp = (T + 63) / 64 * 64;
    p->base = p->Tp + 32; /* m from -32 (below the diagonal) to T + 14 maps to 18 <= i <= base + 32 */
    p->TW = p->Tp + 96;   /* >= base + 33 (O's last read) and 32 (mod 64): banks of O = E's + 16 */
    const int ver = lct_version(o);
    p->wg = lct_v5_plan(T, o);
    /* v5 needs the sm_90a build and a compute capability 9.0 device */
    const int nt5 = ver >= 5 && dev->wgmma_usable ? lcw_nt(B, T, p->wg) : 0;
    const int nt4 = lcr_nt(B, T);
    if (nt5) {
        p->version = 5;
        p->nt = nt5;
        lcw_geometry(nt5, T, &p->tg, &p->base, &p->TW);
    } else if (ver >= 4 && nt4 != 0) {
        p->version = 4;
        p->nt = nt4;
    } else { /* v3: the batch tile as wide as B allows (wider tiles reuse each A fragment more) */
        p->version = 3;
        p->nt = B <= 16 ? 16 : B <= 32 ? 32 : 64;
    }
}

size_t lct_plan_workspace(int B, int d, int T, const long_conv_toeplitz_opts_t *o) {
    if (B < 1 || d < 1 || T < 1 || T > LONG_CONV_TOEPLITZ_MAX_T) return 0;
    int tw = (T + 63) / 64 * 64 + 96; /* lct_plan_make's TW */
    const int nt5 = lcw_nt(B, T, lct_v5_plan(T, o));
    if (nt5) { /* v5's rows are longer; counted whether or not this device runs it */
        int tg, base, tw5;
        lcw_geometry(nt5, T, &tg, &base, &tw5);
        if (tw5 > tw) tw = tw5;
    }
    /* fp16 rows E | O, fp32 scales, fp16 u */
    return (size_t)d * 2 * tw * 2 + (size_t)d * 4 + (size_t)B * d * T * 2;
}

void lcw_geometry(int nt, int T, int *tg, int *base, int *tw) {
    (void)nt;
    const int span = 64 * LCW_G;
    *tg = (T + span - 1) / span * span;
    /* lags read: tm0 + 64 (G - 1) + 48 + 15 at most (below Tg: i >= 65), down to -48 - 14 - 8
     * and one clamped step past it (i <= base + 62; O reads i + 1); TW = 32 (mod 64) as v4's */
    *base = *tg + 64;
    *tw = *tg + 224;
}

size_t lcw_smem_bytes(int tw, int tg, lcw_shape sh) {
    const size_t upieces = (size_t)(LCW_ZERO + tg) * LCW_NT * 2, ytile = (size_t)64 * LCW_G * LCW_NT * 2;
    return (size_t)2 * tw * 2 + upieces + (sh.w > 1 ? sh.w * ytile : 0);
}

/* w warpgroups a block (4 from 16 groups, 2 from 8, else 1) and s fragment sets (3 from 4
 * groups, else 2: its 106 registers cost a block an SM at 1k).  For the A/B of NOTES, session
 * 10: want_w = 1|2|4 forces w (--set lcw_w), want_sets = 2|3 the sets at w = 1 (lcw_sets; more
 * warpgroups always take 3); anything else is auto. */
lcw_shape lcw_plan(int T, int want_w, int want_sets) {
    int tg, base, tw;
    lcw_geometry(LCW_NT, T, &tg, &base, &tw);
    const int groups = tg / (64 * LCW_G);
    const int forced_w = want_w == 1 || want_w == 2 || want_w == 4;
    const int w = forced_w ? want_w : groups >= 16 ? 4 : groups >= 8 ? 2 : 1;
    const int forced_s = want_sets == 2 || want_sets == 3;
    const int sets = w > 1 ? 3 : forced_s ? want_sets : groups >= 4 ? 3 : 2;
    const lcw_shape sh = {w, sets};
    return sh;
}

int lcw_nt(int B, int T, lcw_shape sh) {
    (void)B;
    int tg, base, tw;
    lcw_geometry(LCW_NT, T, &tg, &base, &tw);
    return lcw_smem_bytes(tw, tg, sh) <= LCW_SMEM_MAX ? LCW_NT : 0;
}

/* ---- the engine ------------------------------------------------------------------------------ */

/* v4: the largest T whose 16-bit runs take the Toeplitz product instead of the FFT: 4096 where
 * v5 runs (and o leaves it the version) and B >= 8, else 2048 (the crossovers measured on the
 * H100, profiles/NOTES.md); --set lcf_toeplitz_max_t=<tokens> overrides (0: never), for
 * measuring the crossover. */
int lc_toeplitz_max_t(int B, const lc_device_t *dev, const long_conv_fast_opts_t *o) {
    if (!o || o->toeplitz_max_t < 0)
        return lct_version(o ? &o->toep : NULL) >= 5 && dev->wgmma_usable && B >= 8
                   ? LONG_CONV_TOEPLITZ_V5_MAX_T
                   : LONG_CONV_TOEPLITZ_MMA_MAX_T;
    return o->toeplitz_max_t > LONG_CONV_TOEPLITZ_MAX_T ? LONG_CONV_TOEPLITZ_MAX_T
                                                        : o->toeplitz_max_t;
}

int lc_plan_make(int B, int d, int T, const lc_device_t *dev, const long_conv_fast_opts_t *o,
                 lc_plan_t *plan) {
    if (B < 1 || d < 1 || T < 1 || T > LONG_CONV_FAST_MAX_T) return -1;
    memset(plan, 0, sizeof *plan);
    plan->B = B;
    plan->d = d;
    plan->T = T;
    lcf_plan_make(B, d, T, dev, o, &plan->fft);
    plan->toeplitz_max_t = lc_toeplitz_max_t(B, dev, o);
    plan->toeplitz = T <= plan->toeplitz_max_t;
    if (plan->toeplitz) lct_plan_make(B, d, T, dev, o ? &o->toep : NULL, &plan->toep);
    return 0;
}

lc_path_t lc_plan_path(const lc_plan_t *plan, dtype_t dtype) {
    if (!plan->toeplitz || dtype == DTYPE_F32) return LC_PATH_FFT;
    return plan->toep.version == 5 ? LC_PATH_TOEPLITZ_WGMMA : LC_PATH_TOEPLITZ_MMA;
}

void lct_plan_describe(const lct_plan_t *p, char *buf, size_t len) {
    if (!len) return;
    if (p->version == 5)
        snprintf(buf, len, "toeplitz-wgmma W=%d sets=%d", p->wg.w, p->wg.sets);
    else
        snprintf(buf, len, "toeplitz-mma v%d NT=%d", p->version, p->nt);
}

void lc_plan_describe(const lc_plan_t *plan, dtype_t dtype, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    const lcf_plan_t *f = &plan->fft;
    if (lc_plan_path(plan, dtype) != LC_PATH_FFT)
        lct_plan_describe(&plan->toep, buf, len);
    else
        snprintf(buf, len, "fft N=%d block=%d P=%d threads=%d narrow=%d xpair=%d", f->N, f->M,
                 f->P, f->threads, f->narrow, f->xpair);
}

size_t lc_plan_workspace(int B, int d, int T, const lc_device_t *dev,
                         const long_conv_fast_opts_t *o) {
    if (T < 1 || T > LONG_CONV_FAST_MAX_T || d < 1) return 0;
    lcf_plan_t g;
    lcf_plan_geometry(T, o, &g);
    const size_t toep = T <= lc_toeplitz_max_t(B, dev, o) ? lct_plan_workspace(B, d, T, o ? &o->toep : NULL)
                                                         : 0;
    /* the spectrum [d][rows][M] and the twiddles [n_hi + LCF_TW_LO], float2 */
    return (size_t)d * g.rows * g.M * 8 + (size_t)(g.n_hi + LCF_TW_LO) * 8 + toep;
}
