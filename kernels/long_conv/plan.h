/* long_conv/plan.h: every choice the long-convolution engine makes (kernels/long_conv/), as one
 * pure host function of numbers: the shape, the device's facts and the settings in, a plan out.
 *
 * long_conv_fast_create (fft_engine.cu) gathers the device facts once, calls lc_plan_make and
 * keeps the plan; run() only enqueues what the plan says.  Plain C with no CUDA call (plan.c is
 * built by the host compiler), so tests/test_plan_long_conv.c checks the choices on a machine
 * without a GPU.  The numbers behind the rules (measured on an H100) are in profiles/NOTES.md,
 * long_conv. */
#ifndef CHELA_LONG_CONV_PLAN_H
#define CHELA_LONG_CONV_PLAN_H

#include <stddef.h>

#include "shape.h" /* dtype_t */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits ------------------------------------------------------------------------------- */
/* Largest T the engine supports (the FFT of length 2T must fit one cluster of 8 blocks). */
#define LONG_CONV_FAST_MAX_T 65536
/* Largest T the Toeplitz engine accepts (its work grows as T per output; the FFT is used above). */
#define LONG_CONV_TOEPLITZ_MAX_T 16384
/* Longest T the engine hands v5 (the wgmma kernel) by default, where B >= 8 fills its 8-row
 * blocks; the v3 / v4 kernels' default limit is 2048 (the crossovers with the FFT path). */
#define LONG_CONV_TOEPLITZ_V5_MAX_T 4096
#define LONG_CONV_TOEPLITZ_MMA_MAX_T 2048

/* ---- the FFT path's constants (the kernels in fft_kernels.cuh are built on them) ---------- */
#define LCF_MAX_THREADS 512
#define LCF_BLOCK_POINTS 16384 /* most complex points one block holds (128 KiB + padding) */
#define LCF_TW_LO_BITS 7       /* twiddles W_N^e = hi[e >> 7] * lo[e & 127]               */
#define LCF_TW_LO (1 << LCF_TW_LO_BITS)
/* Single-block transforms of at most this many points (T <= 4k) run a copy of the kernel
 * compiled for 2 resident 512-thread blocks per SM, i.e. at most 64 registers (ptxas spills
 * ~130 bytes): measured 0.59 -> 0.51 ms at 1k, 0.71 -> 0.56 at 2k, 0.93 -> 0.73 at 4k.  At
 * M = 16384 (T = 8k) only one block fits in shared memory anyway and the cap cost 5%. */
#define LCF_SMALL_M 8192
/* v7: 8192-point blocks on a grid of at least LCF_NARROW_MIN_WAVES waves of LCF_NARROW_MINB
 * blocks an SM run a copy of LCF_NARROW_THREADS threads, LCF_NARROW_MINB blocks an SM */
#define LCF_NARROW_THREADS 256
#define LCF_NARROW_MINB 3
#define LCF_NARROW_MIN_WAVES 8
#define LCF_FUSE_Q 16 /* v6: largest combined digit P R0 done on load and store */

/* ---- the Toeplitz path's constants ---------------------------------------------------------- */
#define LCR_TOKENS 32768 /* v4: NT x T a block holds (64 KB of fp16 u, so two blocks fit an SM) */
#define LCW_NT 8         /* v5: batch rows a block, the wgmma's column block                   */
#define LCW_G 8          /* v5: m-tiles a group = column blocks of one wgmma                    */
#define LCW_ZERO (64 * (LCW_G - 1)) /* v5: zero tokens staged before u (tiles not started)      */
#define LCW_SMEM_MAX (227 * 1024)   /* an H100's shared memory a block                          */

/* ---- the settings ----------------------------------------------------------------------------
 * What long_conv/fast's settings choose (harness/variants.c has each one's meaning), resolved
 * at setup; SETTING_AUTO (settings.h) in a field, or a NULL pointer for all of them (what the
 * layers pass), is the engine's own default. */
typedef struct {
    int version; /* lct_version: 3 or 4 keep an older mma.sync kernel (v4 where its resident tile
                  * fits, else v3); 5 / auto: the newest this device runs                       */
    int lcw_w;   /* lcw_w: v5 warpgroups a block, 1|2|4 (auto: 4 from 16 groups, 2 from 8, else 1) */
    int lcw_sets;/* lcw_sets: v5 fragment sets at one warpgroup, 2|3 (auto: 3 from 4 groups)      */
} long_conv_toeplitz_opts_t;

typedef struct {
    int toeplitz_max_t; /* lcf_toeplitz_max_t: largest T of the Toeplitz path (16-bit runs) */
    int xpair;          /* lcf_xpair: 0 keeps an odd batch's last row one channel a transform */
    int block_points;   /* lcf_block_points: 8192 | 16384 points a block for every N          */
    int narrow;         /* lcf_narrow: 0 | 1, the 256-thread copy of 8192-point blocks        */
    long_conv_toeplitz_opts_t toep; /* lct_version, lcw_w, lcw_sets                            */
} long_conv_fast_opts_t;

/* ---- the device ------------------------------------------------------------------------------
 * What the plan needs to know of the device, as plain numbers (fft_engine.cu's
 * lc_device_gather asks the CUDA runtime; a test states them). */
typedef struct {
    int sm_count;     /* multiprocessors (132 on an H100 SXM)                                  */
    int wgmma_usable; /* the wgmma unit was built for sm_90a and the device is cc 9.0: v5 runs  */
} lc_device_t;

/* ---- the plan ----------------------------------------------------------------------------- */
/* v5's schedule: warpgroups a block (w: 1, 2, 4) and fragment sets at one warpgroup (sets: 2, 3). */
typedef struct lcw_shape {
    int w, sets;
} lcw_shape;

/* The Toeplitz engine's plan (toeplitz.cu, toeplitz_wgmma.cu). */
typedef struct {
    int B, d, T;
    int version;  /* the kernel that runs: 5 (wgmma), 4 (mma.sync, u resident), 3 (mma.sync, tiled) */
    int nt;       /* its batch tile: 8 (v5); 64 | 32 | 16 (v4: the widest with NT x T <= LCR_TOKENS,
                   * narrower for a small B; v3: by B)                                          */
    int Tp;       /* T rounded up to 64                                                         */
    int TW, base; /* tap rows: E[i] = k[base - i], TW elements of E (and of O); v5's when it runs */
    int tg;       /* v5: tokens of u a block stages (T in whole groups of m-tiles); else 0      */
    lcw_shape wg; /* v5's schedule (made whichever kernel runs; only v5 uses it)                */
} lct_plan_t;

/* The FFT path's plan (fft_engine.cu, fft_kernels.cuh). */
typedef struct {
    int N;            /* transform length 2 T', T' = max(64, the power of two >= T)            */
    int P;            /* blocks a cluster: 1, 2, 4, 8                                           */
    int M, log_m;     /* complex points a block (N / P), log2 M                                 */
    int rows;         /* spectrum rows stored a channel: 1, or P / 2 + 1                        */
    int n_hi;         /* twiddle table sizes: hi N / 128, lo LCF_TW_LO                          */
    int threads;      /* threads a block                                                        */
    size_t smem_bytes;/* dynamic shared memory a block                                          */
    int xpair;        /* v5: odd B, the last row two channels a transform                       */
    int narrow;       /* v7: the LCF_NARROW_THREADS copy of 8192-point blocks                   */
    int minb;         /* the kernel copy's blocks an SM (__launch_bounds__): 1, 2 (blocks of <=
                       * LCF_SMALL_M points), LCF_NARROW_MINB (narrow)                          */
    int fused_radix;  /* v6: the block's radix-R0 digit done on load and store (R0), or 1       */
    int npairs;       /* same-channel batch pairs a channel: (B + 1) / 2, xpair B / 2           */
    long long blocks; /* grid of a run: clusters (transforms) x P                              */
} lcf_plan_t;

/* The engine's plan: which path a run takes, and each path's own. */
typedef struct {
    int B, d, T;
    int toeplitz_max_t; /* largest T of the Toeplitz path, resolved                           */
    int toeplitz;       /* T <= toeplitz_max_t: create builds the Toeplitz engine, and bf16 /
                         * fp16 runs take it (fp32 runs always take the FFT)                    */
    lcf_plan_t fft;     /* always made: fp32 runs take it, and create makes the spectrum       */
    lct_plan_t toep;    /* when toeplitz; zeros otherwise                                       */
} lc_plan_t;

typedef enum {
    LC_PATH_FFT = 0,
    LC_PATH_TOEPLITZ_MMA,   /* v3 / v4, toeplitz.cu        */
    LC_PATH_TOEPLITZ_WGMMA, /* v5, toeplitz_wgmma.cu       */
} lc_path_t;

/* ---- the planner ---------------------------------------------------------------------------- */
/* The plan for x [B,d,T] under o (NULL: all auto) on dev.  0, or -1 (plan untouched) for a shape
 * the engine does not take: B or d < 1, T outside 1..LONG_CONV_FAST_MAX_T. */
int lc_plan_make(int B, int d, int T, const lc_device_t *dev, const long_conv_fast_opts_t *o,
                 lc_plan_t *plan);

/* The path a run of dtype takes under plan. */
lc_path_t lc_plan_path(const lc_plan_t *plan, dtype_t dtype);

/* The path a run of dtype takes and its choices, as config words (space-separated name=value
 * after the path): "fft N=16384 block=8192 P=2 threads=256 narrow=1 xpair=0",
 * "toeplitz-wgmma W=2 sets=3", "toeplitz-mma v4 NT=32". */
void lc_plan_describe(const lc_plan_t *plan, dtype_t dtype, char *buf, size_t len);
/* The Toeplitz plan's part of that. */
void lct_plan_describe(const lct_plan_t *plan, char *buf, size_t len);

/* Device bytes the engine needs for (B, d, T) beyond x and y under o on dev: the kernel spectrum
 * and twiddles, plus the Toeplitz engine's where it is planned.  0 for a shape it does not take. */
size_t lc_plan_workspace(int B, int d, int T, const lc_device_t *dev,
                         const long_conv_fast_opts_t *o);

/* The parts, for the engines and the tests. */
/* The FFT path's shape-only part (N, P, M, log_m, rows, n_hi, threads, smem_bytes) for T. */
void lcf_plan_geometry(int T, const long_conv_fast_opts_t *o, lcf_plan_t *fft);
/* The largest T of the Toeplitz path for a batch of B. */
int lc_toeplitz_max_t(int B, const lc_device_t *dev, const long_conv_fast_opts_t *o);
/* The Toeplitz engine's plan (B, d >= 1, 1 <= T <= LONG_CONV_TOEPLITZ_MAX_T). */
void lct_plan_make(int B, int d, int T, const lc_device_t *dev, const long_conv_toeplitz_opts_t *o,
                   lct_plan_t *plan);
/* Device bytes of the Toeplitz engine's tap rows and scales and the prologue's fp16 u [B,d,T];
 * v5's longer rows counted whether or not the device runs it. */
size_t lct_plan_workspace(int B, int d, int T, const long_conv_toeplitz_opts_t *o);

/* v5's schedule for T tokens: want_w / want_sets force w (1|2|4) / sets at w = 1 (2|3) for the
 * settings lcw_w / lcw_sets; any other value (SETTING_AUTO) leaves it to the rule. */
lcw_shape lcw_plan(int T, int want_w, int want_sets);
/* v5's batch tile (LCW_NT rows a block, whatever B) for T under schedule sh, or 0 where the
 * block would not fit LCW_SMEM_MAX (T > 9216 at four warpgroups, the auto schedule there; one
 * warpgroup reaches further): v5 then does not run. */
int lcw_nt(int B, int T, lcw_shape sh);
/* The tap-row geometry v5 needs for batch tile nt: u staged for tg tokens (T rounded up to whole
 * groups of m-tiles), and the E / O rows' base and length. */
void lcw_geometry(int nt, int T, int *tg, int *base, int *tw);
/* v5's dynamic shared memory a block: tap rows of tw, u staged for tg tokens, y tiles. */
size_t lcw_smem_bytes(int tw, int tg, lcw_shape sh);

#ifdef __cplusplus
}
#endif
#endif
