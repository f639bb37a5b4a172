/* bwd_rows.cuh: the row and column passes a layer's backward needs around its GEMMs, shared by
 * the layers' backwards (baselines/transformer/layer_bwd.cu, kernels/chela/bwd*.cu):
 *
 *   colsum_partial + sum_chunks   a bias's (or any per-column parameter's) gradient: the
 *                                 column sums of a [M,N] gradient, fp32, deterministic
 *   ln_bwd_rows + sum_chunks      LayerNorm's backward with the residual gradient added in
 *                                 the same pass, and its gain's and bias's gradients
 * and their host launchers (bwd_colsum, bwd_layer_norm, bwd_ln_grid).
 *
 * Deterministic by construction (no float atomics): every sum is a fixed tree, partial sums
 * per block then one ordered pass over the blocks, so a backward gives the same bits each
 * run (the harness calls run_bwd repeatedly and compares nothing between calls, but a user
 * bisecting a regression needs it).
 *
 * Build hook: with CHELA_EMULATE the file compiles as host C++ under tests/emu/ (its CUDA
 * stand-ins), so tests/test_emu_bwd_rows.cpp runs these kernels on the CPU against double
 * sums; the dynamic shared memory is then the emulation's buffer. */
#ifndef CHELA_COMMON_BWD_ROWS_CUH
#define CHELA_COMMON_BWD_ROWS_CUH

#ifndef CHELA_EMULATE
#include "bench_check.h" /* the host launchers' CUDA_CHECK, BENCH_FAIL */
#endif
#include "common/math.cuh" /* warp_sum */
#include "dtype_device.cuh"
#include "op_inputs.h"      /* CHELA_LN_EPS */

#ifdef CHELA_EMULATE
#define BWD_DYNAMIC_SMEM(T, name) T *name = reinterpret_cast<T *>(emu_smem)
#else
#define BWD_DYNAMIC_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

constexpr int BWD_CS_COLS = 256;  /* columns a column-sum block covers: 32 lanes x 8          */
constexpr int BWD_CS_WARPS = 8;   /* warps a column-sum block (they interleave rows)           */
constexpr int BWD_LN_WARPS = 8;   /* rows in flight a LayerNorm-backward block (a warp a row)  */

/* internal linkage: each including file has its own copy (as stages.cuh's kernels) */
namespace {

/* part[chunk][c] = sum of z[r][c] over the rows of chunk blockIdx.y, fp32; z row-major [M,N]
 * in any storage type, N a multiple of 8 (16-byte rows), blockIdx.x = the 256-column group
 * (gridDim.x = ceil(N / 256); the last group's lanes past N idle).  Each lane
 * loads 8 consecutive columns of a row (16 bytes for 16-bit types: a warp reads 512
 * contiguous bytes); the warps take interleaved rows and their sums are added in warp order
 * through shared memory.  Block: 256 threads, no dynamic shared memory. */
template <typename T>
__global__ void __launch_bounds__(BWD_CS_WARPS * 32)
colsum_partial(const T *__restrict__ z, long long M, int N, float *__restrict__ part) {
    __shared__ float sm[BWD_CS_WARPS][BWD_CS_COLS];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int c0 = blockIdx.x * BWD_CS_COLS + lane * 8;
    const long long per = (M + gridDim.y - 1) / gridDim.y;
    const long long r0 = (long long)blockIdx.y * per, r1 = r0 + per < M ? r0 + per : M;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (long long r = r0 + w; c0 < N && r < r1; r += BWD_CS_WARPS) {
        float e[8];
        load8(z + r * N + c0, e);
#pragma unroll
        for (int k = 0; k < 8; k++) acc[k] += e[k];
    }
#pragma unroll
    for (int k = 0; k < 8; k++) sm[w][lane * 8 + k] = acc[k];
    __syncthreads();
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < BWD_CS_WARPS; j++) s += sm[j][threadIdx.x];
    const int col = blockIdx.x * BWD_CS_COLS + threadIdx.x;
    if (col < N) part[(size_t)blockIdx.y * N + col] = s;
}

/* out[c] = sum over k < chunks of part[k * stride + c], k ascending; c < n, one thread each. */
__global__ void sum_chunks(const float *__restrict__ part, int chunks, size_t stride, int n,
                           float *__restrict__ out) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n) return;
    float s = 0.f;
    for (int k = 0; k < chunks; k++) s += part[(size_t)k * stride + c];
    out[c] = s;
}

/* LayerNorm's backward, y = g (x - mean) rstd + b over rows of D = VPL * 256 features:
 *   xhat = (x - mean) rstd,   gy = g * dy
 *   dx   = dres + rstd (gy - mean(gy) - xhat mean(gy xhat))        (dres NULL: 0)
 * one warp per row, rows strided over the grid, the row held in registers as the forward
 * holds it (lane owns the 8-element groups lane + 32 j).  mean and rstd are recomputed from
 * x (the pass reads x anyway): centered variance, biased, eps CHELA_LN_EPS, as the forwards.
 * Each warp sums dy * xhat (dg) and dy (db) over its rows in registers; the block adds its
 * warps' in warp order in shared memory ([2][D] floats, dynamic) and writes
 * part[blockIdx.x][2][D]; sum_chunks over the blocks (stride 2 D) gives dg, then db. */
template <typename T, int VPL>
__global__ void __launch_bounds__(BWD_LN_WARPS * 32)
ln_bwd_rows(const T *__restrict__ x, const T *__restrict__ dy, const T *__restrict__ dres,
            const float *__restrict__ g, T *__restrict__ dx, float *__restrict__ part,
            long long rows) {
    constexpr int D = VPL * 256;
    BWD_DYNAMIC_SMEM(float, red); /* [2][D] */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float ag[VPL][8], ab[VPL][8];
#pragma unroll
    for (int j = 0; j < VPL; j++)
#pragma unroll
        for (int k = 0; k < 8; k++) ag[j][k] = ab[j][k] = 0.f;
    for (long long row = (long long)blockIdx.x * BWD_LN_WARPS + warp; row < rows;
         row += (long long)gridDim.x * BWD_LN_WARPS) {
        float v[VPL][8], gy[VPL][8];
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < VPL; j++) {
            load8(x + row * D + (lane + 32 * j) * 8, v[j]);
#pragma unroll
            for (int k = 0; k < 8; k++) sum += v[j][k];
        }
        const float mean = warp_sum(sum) * (1.0f / D);
        float sq = 0.f;
#pragma unroll
        for (int j = 0; j < VPL; j++)
#pragma unroll
            for (int k = 0; k < 8; k++) {
                v[j][k] -= mean;
                sq += v[j][k] * v[j][k];
            }
        const float rstd = rsqrtf(warp_sum(sq) * (1.0f / D) + (float)CHELA_LN_EPS);
        float s1 = 0.f, s2 = 0.f;
#pragma unroll
        for (int j = 0; j < VPL; j++) {
            const int c0 = (lane + 32 * j) * 8;
            float d[8];
            load8(dy + row * D + c0, d);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                const float xh = v[j][k] * rstd;
                v[j][k] = xh;
                gy[j][k] = g[c0 + k] * d[k];
                ag[j][k] += d[k] * xh;
                ab[j][k] += d[k];
                s1 += gy[j][k];
                s2 += gy[j][k] * xh;
            }
        }
        const float m1 = warp_sum(s1) * (1.0f / D), m2 = warp_sum(s2) * (1.0f / D);
#pragma unroll
        for (int j = 0; j < VPL; j++) {
            const int c0 = (lane + 32 * j) * 8;
            float r[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            if (dres) load8(dres + row * D + c0, r);
#pragma unroll
            for (int k = 0; k < 8; k++) r[k] += rstd * (gy[j][k] - m1 - v[j][k] * m2);
            store8(dx + row * D + c0, r);
        }
    }
    for (int w = 0; w < BWD_LN_WARPS; w++) {
        if (warp == w) {
#pragma unroll
            for (int j = 0; j < VPL; j++)
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const int c = (lane + 32 * j) * 8 + k;
                    red[c] = (w ? red[c] : 0.f) + ag[j][k];
                    red[D + c] = (w ? red[D + c] : 0.f) + ab[j][k];
                }
        }
        __syncthreads();
    }
    for (int i = threadIdx.x; i < 2 * D; i += BWD_LN_WARPS * 32)
        part[(size_t)blockIdx.x * 2 * D + i] = red[i];
}

#ifndef CHELA_EMULATE
/* ---- host launchers (the layers' backwards call these; bench_check.h's error rules) ---- */

/* The LayerNorm backward's grid for `rows` rows: a block of 8 warps per 8 rows, at most 4
 * blocks an SM of an H100's 132 (the rows loop); part needs grid * 2 d floats. */
static inline int bwd_ln_grid(long long rows) {
    const long long want = (rows + BWD_LN_WARPS - 1) / BWD_LN_WARPS, cap = 4 * 132;
    return (int)(want < cap ? (want > 0 ? want : 1) : cap);
}

/* out[c] = sum over rows of z[r][c] (fp32), z [M,N] with N a multiple of 8, through `chunks`
 * row chunks of partial sums in part (chunks * N floats).  0, or -1 after bench_set_error. */
template <typename T>
int bwd_colsum(const void *z, long long M, int N, int chunks, float *part, float *out,
               cudaStream_t stream) {
    colsum_partial<T><<<dim3((unsigned)((N + BWD_CS_COLS - 1) / BWD_CS_COLS), (unsigned)chunks),
                        BWD_CS_WARPS * 32, 0, stream>>>((const T *)z, M, N, part);
    CUDA_CHECK(cudaGetLastError());
    sum_chunks<<<(unsigned)((N + 255) / 256), 256, 0, stream>>>(part, chunks, (size_t)N, N, out);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

template <typename T, int VPL>
int bwd_ln_v(int grid, float *part, const void *x, const void *dy, const void *dres,
             const float *g, void *dx, long long rows, float *dg, float *db, cudaStream_t stream) {
    constexpr int D = VPL * 256;
    ln_bwd_rows<T, VPL><<<(unsigned)grid, BWD_LN_WARPS * 32, 2 * D * sizeof(float), stream>>>(
        (const T *)x, (const T *)dy, (const T *)dres, g, (T *)dx, part, rows);
    CUDA_CHECK(cudaGetLastError());
    sum_chunks<<<(D + 255) / 256, 256, 0, stream>>>(part, grid, (size_t)2 * D, D, dg);
    CUDA_CHECK(cudaGetLastError());
    sum_chunks<<<(D + 255) / 256, 256, 0, stream>>>(part + D, grid, (size_t)2 * D, D, db);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* dx = dres + LN'(dy; x) over `rows` rows of d features (d a multiple of 256, <= 4096), dg and
 * db the gain's and bias's gradients, on bwd_ln_grid(rows) blocks (part: grid * 2 d floats).
 * dres may be NULL.  0, or -1 after bench_set_error. */
template <typename T>
int bwd_layer_norm(int grid, float *part, const void *x, const void *dy, const void *dres,
                   const float *g, void *dx, long long rows, int d, float *dg, float *db,
                   cudaStream_t stream) {
    switch (d / 256) {
#define BWD_LN_CASE(V) \
    case V: return bwd_ln_v<T, V>(grid, part, x, dy, dres, g, dx, rows, dg, db, stream);
        BWD_LN_CASE(1) BWD_LN_CASE(2) BWD_LN_CASE(3) BWD_LN_CASE(4) BWD_LN_CASE(5)
        BWD_LN_CASE(6) BWD_LN_CASE(7) BWD_LN_CASE(8) BWD_LN_CASE(9) BWD_LN_CASE(10)
        BWD_LN_CASE(11) BWD_LN_CASE(12) BWD_LN_CASE(13) BWD_LN_CASE(14) BWD_LN_CASE(15)
        BWD_LN_CASE(16)
#undef BWD_LN_CASE
    default: BENCH_FAIL("LayerNorm backward: d must be a multiple of 256, <= 4096 (d %d)", d);
    }
}
#endif /* CHELA_EMULATE */

} // namespace

#endif
