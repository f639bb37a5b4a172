/* short_long_conv/branches: CHELA's short-long convolution in its training form (chela-spec.md),
 * the three kernels as branches (forms.h has the op):
 *
 *   (1) z_long = K_long * SiLU(k3 * x) -> z, on the long-conv engine (kernels/long_conv/) with
 *       the short conv + SiLU done in its load step, so no pass for u;
 *   (2) one fused pass for both short branches: reads x and z_long, recomputes u over a halo of
 *       k_m + 2 samples, adds k3b * u + km * u (the two short kernels summed tap by tap in
 *       shared memory first, so one loop of max(3, k_m) taps), writes z.
 * The short branches are fused with each other and with the sum, and pass (2) is built to run
 * at the copy rate: the best this form can be built, so that reparam.cu's saving (pass (2): a
 * read of x and of z_long, a write of z, 3 * B*d*T elements, and one launch) is measured
 * against a branches form without handicap.
 *
 * Pass (2) by version (H100, d = 1024, 65536 tokens a point, bf16; it moves 0.40 GB, 0.136 ms
 * at the copy ceiling; run: chela-bench --ops short_long_conv --seq 1k..64k; profiles/NOTES.md,
 * short_long_conv, has the full story):
 *   v1  one output a thread, one tap loop per short kernel.  0.67 ms.
 *   v2  the two short kernels summed tap by tap once a block, 4 outputs a thread, scalar
 *       accesses.  0.44 ms, latency-bound.
 *   v3  (this version) 16-byte loads and stores, all issued before the first barrier, x, z_long
 *       and u in registers, an 8-wide register window over u for the taps; 16 blocks an SM.
 *       branches - reparam = 0.18-0.19 ms at every T (from 0.44). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench_check.h"
#include "common/math.cuh" /* silu */
#include "dtype_device.cuh"
#include "long_conv/fft_engine.h"
#include "short_long_conv/bwd.h"
#include "short_long_conv/forms.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(short_long_conv_branches);
DECLARE_BWD(short_long_conv_branches);
}

/* Pass (2) tiling: a block takes SLC_VPB vectors of 8 consecutive outputs of one (b, c) row
 * (16-byte accesses for bf16/fp16, two for fp32), each thread SLC_VPT of them. */
#define SLC_THREADS 64    /* threads per block in the short-branch pass */
#define SLC_VPT 2         /* vectors a thread, SLC_THREADS apart: a warp's accesses contiguous */
#define SLC_VPB (SLC_THREADS * SLC_VPT) /* vectors a block: a tile of 1024 outputs */
#define SLC_MIN_BLOCKS 16 /* blocks an SM: caps registers at 64 so 16 blocks (1024 threads) fit */
/* Tile index of the tile's first vector element: room before it for a row head (<= 7
 * elements, the row's start up to its first 16-byte boundary) and x's halo (<= SLC_MAX_KM + 1). */
#define SLC_XOFF 40
static_assert(SLC_XOFF >= 7 + SLC_MAX_KM + 1 && SLC_XOFF % 8 == 0, "SLC_XOFF too small");

namespace {

/* 8 consecutive elements: one 16-byte access (two for fp32) when VEC, else 8 scalar ones (the
 * fallback for x and z whose bases differ mod 16 bytes, so one row has no common alignment). */
template <typename S, bool VEC> __device__ __forceinline__ void slc_load8(const S *p, float f[8]) {
    if constexpr (VEC) {
        load8(p, f);
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++) f[k] = to_f32(p[k]);
    }
}
template <typename S, bool VEC> __device__ __forceinline__ void slc_store8(S *p, const float f[8]) {
    if constexpr (VEC) {
        store8(p, f);
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++) p[k] = from_f32<S>(f[k]);
    }
}

/* Shared-memory slot of tile index i (i >= 0): one pad float every 8.  In the vector steps a
 * warp's threads touch tile indices 8 apart (one vector each): unpadded, a scalar access would
 * hit 4 banks 8 ways; padded, the slots are 9 apart and hit all 32 banks once, at any offset. */
__device__ __forceinline__ int sidx(int i) { return i + (i >> 3); }

/* Pass (2) of the branches form: z[t] += sum_{j < nk} (k3b + km)[j] * u[t - j], u = SiLU(k3 * x),
 * both causal (x and u are 0 before t = 0).  Block (row, bt):
 *   - a row's vectors start at off, its first 16-byte boundary (0..7 elements in; 0 in the
 *     scalar build), nv whole vectors, then a tail of < 8.  A row too short for one whole
 *     vector after off (only when T < 15) gets off = 0, nv = 0 and is all tail.
 *   - tile bt owns vectors [bt*SLC_VPB, +nvb), outputs t in [p, pe); tile 0 also owns the head
 *     [0, off) and the row's last tile the tail [pe, T): outputs [lo, hi) in all, each written
 *     by exactly one thread of one block.
 *   - shared memory holds x over [lo - hx, hi) and u over [lo - hu, hi), tile index
 *     i = t - p + SLC_XOFF.  Each thread keeps its vectors' x, z and u in registers; only what a
 *     neighbour needs goes through shared memory (x's last two elements of each vector, all u).
 *   - the nk-tap sum slides a register window of 8 u's: one shared load a tap per 8 outputs.
 * Global traffic: x and z read once, 16-byte loads all issued before the first barrier; z
 * written once; plus the head, halo and tail of x as scalar loads, hx + < 16 a tile (at
 * k_m = 9, 10-24 of 1024, mostly L2 hits: the neighbouring tile reads them too).  Sums: fp32,
 * taps in order j = 0, 1, ..., one rounding at the end, as in v2. */
template <typename S, bool VEC>
__global__ void __launch_bounds__(SLC_THREADS, SLC_MIN_BLOCKS)
short_branches_kernel(const S *__restrict__ x, const float *__restrict__ k3,
                      const float *__restrict__ k3b, const float *__restrict__ km, int k_m, int d,
                      int T, int slots, S *__restrict__ z) {
    extern __shared__ float slc_smem[]; /* xs then us, `slots` floats each */
    __shared__ float ks[SLC_MAX_KM];
    float *xs = slc_smem, *us = slc_smem + slots;
    /* rows on grid.x: B*d can pass 65535 */
    const int row = blockIdx.x, c = row % d, bt = blockIdx.y, tid = threadIdx.x;
    const S *xr = x + (size_t)row * T;
    S *zr = z + (size_t)row * T;
    int off = VEC ? (int)(((16u - ((unsigned)reinterpret_cast<uintptr_t>(xr) & 15u)) & 15u) /
                          (unsigned)sizeof(S))
                  : 0;
    const int nv = T > off ? (T - off) / 8 : 0;
    if (nv == 0) off = 0; /* too short for a whole vector: the row is all tail */
    const int last = nv > 0 ? (nv - 1) / SLC_VPB : 0;
    if (bt > last) return; /* grid.y is sized for the row with the most vectors */
    const int nvb = min(nv - bt * SLC_VPB, SLC_VPB);
    const int p = off + 8 * SLC_VPB * bt, pe = p + 8 * nvb;
    const int lo = bt == 0 ? 0 : p, hi = bt == last ? T : pe;
    const int base = p - SLC_XOFF; /* tile index i holds t = base + i */
    /* halos: u over the longest short kernel (3 or k_m taps), x 2 more for the k3 conv */
    const int nk = k_m > 3 ? k_m : 3, hu = nk - 1, hx = hu + 2;
    /* the two short branches are one kernel of nk taps (their sum, tap by tap) */
    for (int j = tid; j < nk; j += SLC_THREADS)
        ks[j] = (j < 3 ? k3b[3 * c + j] : 0.0f) + (j < k_m ? km[(size_t)c * k_m + j] : 0.0f);

    const float a0 = k3[3 * c], a1 = k3[3 * c + 1], a2 = k3[3 * c + 2]; /* before the barrier */

    /* 1: x and z_long of this thread's vectors, all loads issued before any is used */
    float xf[SLC_VPT][8], zf[SLC_VPT][8];
#pragma unroll
    for (int q = 0; q < SLC_VPT; q++) {
        const int v = tid + q * SLC_THREADS;
        if (v < nvb) {
            slc_load8<S, VEC>(xr + p + 8 * v, xf[q]);
            slc_load8<S, VEC>(zr + p + 8 * v, zf[q]);
        }
    }
#pragma unroll
    for (int q = 0; q < SLC_VPT; q++) {
        const int v = tid + q * SLC_THREADS, i = SLC_XOFF + 8 * v;
        if (v < nvb) {
            xs[sidx(i + 6)] = xf[q][6];
            xs[sidx(i + 7)] = xf[q][7];
        }
    }
    /* x over the head and halo [lo - hx, p) and the tail [pe, hi), scalar */
    const int nxh = p - lo + hx, nt = hi - pe;
    for (int k = tid; k < nxh + nt; k += SLC_THREADS) {
        const int t = k < nxh ? lo - hx + k : pe + (k - nxh);
        xs[sidx(t - base)] = t >= 0 ? to_f32(xr[t]) : 0.0f;
    }
    __syncthreads();

    /* 2: u = SiLU(k3 * x): the vectors' from registers (x[t-2], x[t-1] of the first from shared),
     * then the head + halo [lo - hu, p) and the tail, scalar */
    float uf[SLC_VPT][8];
#pragma unroll
    for (int q = 0; q < SLC_VPT; q++) {
        const int v = tid + q * SLC_THREADS, i = SLC_XOFF + 8 * v;
        if (v < nvb) {
            float w[10];
            w[0] = xs[sidx(i - 2)];
            w[1] = xs[sidx(i - 1)];
#pragma unroll
            for (int k = 0; k < 8; k++) w[k + 2] = xf[q][k];
#pragma unroll
            for (int k = 0; k < 8; k++) {
                uf[q][k] = silu(a0 * w[k + 2] + a1 * w[k + 1] + a2 * w[k]);
                us[sidx(i + k)] = uf[q][k];
            }
        }
    }
    const int nuh = p - lo + hu;
    for (int k = tid; k < nuh + nt; k += SLC_THREADS) {
        const int t = k < nuh ? lo - hu + k : pe + (k - nuh), i = t - base;
        us[sidx(i)] =
            t >= 0 ? silu(a0 * xs[sidx(i)] + a1 * xs[sidx(i - 1)] + a2 * xs[sidx(i - 2)]) : 0.0f;
    }
    __syncthreads();

    /* 3: the taps.  w[k] = u[t + k - j] for tap j: start at j = 0 from registers, shift one
     * u in from shared per tap. */
#pragma unroll
    for (int q = 0; q < SLC_VPT; q++) {
        const int v = tid + q * SLC_THREADS, i = SLC_XOFF + 8 * v;
        if (v < nvb) {
            float w[8], s[8];
            const float kj0 = ks[0];
#pragma unroll
            for (int k = 0; k < 8; k++) {
                w[k] = uf[q][k];
                s[k] = 0.0f;
                s[k] += kj0 * w[k];
            }
            for (int j = 1; j < nk; j++) {
#pragma unroll
                for (int k = 7; k > 0; k--) w[k] = w[k - 1];
                w[0] = us[sidx(i - j)];
                const float kj = ks[j];
#pragma unroll
                for (int k = 0; k < 8; k++) s[k] += kj * w[k];
            }
#pragma unroll
            for (int k = 0; k < 8; k++) s[k] = zf[q][k] + s[k];
            slc_store8<S, VEC>(zr + p + 8 * v, s);
        }
    }
    /* the head [lo, p) and the tail [pe, hi), scalar */
    const int noh = p - lo;
    for (int k = tid; k < noh + nt; k += SLC_THREADS) {
        const int t = k < noh ? lo + k : pe + (k - noh), i = t - base;
        float s = 0.0f;
        for (int j = 0; j < nk; j++) s += ks[j] * us[sidx(i - j)];
        zr[t] = from_f32<S>(to_f32(zr[t]) + s);
    }
}

template <typename S>
int launch_branches(const io_t *io, cudaStream_t st) {
    const shape_t *s = io->shape;
    const int k_m = shape_km(s->T), T = s->T;
    const S *x = (const S *)io->in[0];
    S *z = (S *)io->out;
    /* a row has at most T/8 vectors (fewer when it starts off a 16-byte boundary) */
    const int nv_max = T / 8, nvb_max = nv_max < SLC_VPB ? nv_max : SLC_VPB;
    const int tiles = nv_max > 0 ? (nv_max + SLC_VPB - 1) / SLC_VPB : 1;
    /* tile indices used: < SLC_XOFF + 8 * nvb + 8 with a vector, < SLC_XOFF + 15 without */
    const int idx = SLC_XOFF + 8 * nvb_max + 16;
    const int slots = (idx + (idx >> 3) + 1 + 3) & ~3; /* > sidx(idx - 1), a multiple of 4 */
    const size_t smem_bytes = 2 * (size_t)slots * sizeof(float);
    dim3 grid((unsigned)(s->B * s->d), (unsigned)tiles);
    /* vectors need x and z rows to share their offset from a 16-byte boundary */
    const bool vec = (((uintptr_t)x ^ (uintptr_t)z) & 15u) == 0;
    if (vec)
        short_branches_kernel<S, true><<<grid, SLC_THREADS, smem_bytes, st>>>(
            x, (const float *)io->in[1], (const float *)io->in[3], (const float *)io->in[4], k_m,
            s->d, T, slots, z);
    else
        short_branches_kernel<S, false><<<grid, SLC_THREADS, smem_bytes, st>>>(
            x, (const float *)io->in[1], (const float *)io->in[3], (const float *)io->in[4], k_m,
            s->d, T, slots, z);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace

extern "C" const char *short_long_conv_branches_supports(const shape_t *s) { return slc_supports(s); }

extern "C" size_t short_long_conv_branches_workspace_bytes(const shape_t *s) {
    const long_conv_fast_opts_t o = slc_opts(s);
    return long_conv_fast_workspace(s->B, s->d, s->T, &o) + slc_bwd_workspace(s);
}

extern "C" int short_long_conv_branches_setup(const shape_t *s, const io_t *io, void **state) {
    *state = NULL;
    slc_state_t *st = (slc_state_t *)calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("short_long_conv/branches: out of host memory");
    st->dtype = s->dtype;
    const long_conv_fast_opts_t o = slc_opts(s);
    int rc = long_conv_fast_create(s->B, s->d, s->T, (const float *)io->in[2], &o, 0, &st->eng);
    *state = st;
    if (!rc) rc = slc_bwd_setup(s, st);
    return rc;
}

extern "C" int short_long_conv_branches_run(void *state, const io_t *io, cudaStream_t st) {
    const shape_t *s = io->shape;
    if (long_conv_fast_run(((const slc_state_t *)state)->eng, io->in[0], io->out, s->dtype,
                           (const float *)io->in[1], st))
        return -1;
    switch (s->dtype) {
    case DTYPE_BF16: return launch_branches<__nv_bfloat16>(io, st);
    case DTYPE_F16: return launch_branches<__half>(io, st);
    default: return launch_branches<float>(io, st);
    }
}

/* bwd.cu: each branch's gradient by its own correlation */
extern "C" int short_long_conv_branches_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                                             cudaStream_t st) {
    return slc_bwd_run((slc_state_t *)state, io, g, 1, st);
}

extern "C" void short_long_conv_branches_teardown(void *state) { slc_teardown(state); }

extern "C" void short_long_conv_branches_config(const void *state, char *buf, size_t len) {
    slc_config(state, buf, len);
}
