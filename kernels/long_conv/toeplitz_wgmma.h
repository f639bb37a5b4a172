/* long_conv/toeplitz_wgmma.h: the Toeplitz engine's v5, the Toeplitz product on Hopper's warpgroup
 * tensor cores (kernels/long_conv/toeplitz_wgmma.cu), as kernels/long_conv/toeplitz.cu's host
 * code calls it.  C++ only (its one caller is a .cu file). */
#ifndef CHELA_LONG_CONV_TOEPLITZ_WGMMA_H
#define CHELA_LONG_CONV_TOEPLITZ_WGMMA_H

#include <cuda_runtime_api.h>

#include "long_conv/toeplitz_io.cuh"

/* Whether v5 can run on device dev: its translation unit was built for sm_90a and dev is
 * compute capability 9.0.  Never launches anything. */
bool lcw_usable(int dev);

/* The plan of a run: warpgroups a block (w: 1, 2, 4) and fragment sets at one warpgroup
 * (sets: 2, 3).  Made once by lcw_plan at the engine's create, then passed to every call. */
struct lcw_shape {
    int w, sets;
};

/* v5's plan for T tokens: want_w / want_sets force w (1|2|4) / sets at w = 1 (2|3) for the
 * settings lcw_w / lcw_sets; any other value (SETTING_AUTO) leaves it to the rule. */
lcw_shape lcw_plan(int T, int want_w, int want_sets);

/* v5's batch tile (8 rows a block, whatever B) for T tokens under plan sh, or 0 where the
 * block's staged u would not fit an H100's 227 KiB of shared memory (T > ~13k): v5 then does
 * not run. */
int lcw_nt(int B, int T, lcw_shape sh);

/* The tap-row geometry v5 needs for batch tile nt: u staged for tg tokens (T rounded up to whole
 * groups of m-tiles), and the E / O rows' base and length (toeplitz.cu's layout). */
void lcw_geometry(int nt, int T, int *tg, int *base, int *tw);

/* Sets the shared-memory limit of the kernels of plan sh for batch tile nt.  0, or -1 after
 * bench_set_error(). */
int lcw_prepare(int nt, int tw, int tg, lcw_shape sh);

/* Enqueues y = K u for prm (prm.tg, prm.TW and prm.base from lcw_geometry) with plan sh.
 * u_half: x holds fp16 (the prologue's u, or an fp16 run), else bf16; y_bf16: y is bf16, else
 * fp16.  0, or -1 after bench_set_error(). */
int lcw_launch(int nt, lcw_shape sh, bool u_half, bool y_bf16, const lct_params &prm,
               cudaStream_t stream);

#endif
