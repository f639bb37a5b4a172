/* scan.cu: the passes every version shares: pass B, the scan that turns pass A's part states into
 * each segment's incoming state, and the norm pass (RMSNorm of o from the slices' partial row sums,
 * optionally with the gate) that the launchers' rms_norm runs where pass C cannot fuse it. */
#include "bench_check.h"
#include "common/pdl_launch.cuh"
#include "linear_attn/passes.h"
#include "linear_attn/prims.cuh"

namespace {

/* Pass B: in-place inclusive scan over the ws_per_bh part states of a (b,h); after the last
 * part of segment j the running sum is stored to slot j (slot j <= every part index read so
 * far, so nothing unread is overwritten).  Thread = (bh, float4 of the dv*dk state): 4 loads
 * in flight before the dependent adds.  The sum order is fixed: results are deterministic. */
__global__ void __launch_bounds__(LAC_SCAN_THREADS)
    lac_scan_kernel(float4 *__restrict__ d_states, int64_t vec_per_seg, int64_t total,
                    int ws_per_bh, int sub) {
    lac_grid_dep_wait(); /* pass A's states */
    const int64_t i = (int64_t)blockIdx.x * LAC_SCAN_THREADS + threadIdx.x;
    if (i >= total) return;
    const int64_t bh = i / vec_per_seg, e = i % vec_per_seg;
    float4 *p = d_states + bh * ws_per_bh * vec_per_seg + e;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s = 0; s < ws_per_bh; s += 4) {
        float4 x[4];
#pragma unroll
        for (int u = 0; u < 4; ++u)
            if (s + u < ws_per_bh) x[u] = p[(int64_t)(s + u) * vec_per_seg];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            if (s + u < ws_per_bh) {
                acc.x += x[u].x;
                acc.y += x[u].y;
                acc.z += x[u].z;
                acc.w += x[u].w;
                if ((s + u + 1) % sub == 0) p[(int64_t)((s + u) / sub) * vec_per_seg] = acc;
            }
        }
    }
}

/* 8 consecutive elements <-> fp32 (16-bit types: one 16-byte access; fp32: two). */
template <int DT>
__device__ __forceinline__ void lac_ld8(const typename lac_io<DT>::s_t *p, float f[8]) {
    if (DT == 0) {
        const float4 a = reinterpret_cast<const float4 *>(p)[0];
        const float4 b = reinterpret_cast<const float4 *>(p)[1];
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z,
        f[7] = b.w;
    } else {
        const uint4 u = *reinterpret_cast<const uint4 *>(p);
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            f[2 * e] = lac_f32<DT == 1>((uint16_t)(w[e] & 0xffffu));
            f[2 * e + 1] = lac_f32<DT == 1>((uint16_t)(w[e] >> 16));
        }
    }
}

template <int DT>
__device__ __forceinline__ void lac_st8(typename lac_io<DT>::s_t *p, const float f[8]) {
    if (DT == 0) {
        reinterpret_cast<float4 *>(p)[0] = make_float4(f[0], f[1], f[2], f[3]);
        reinterpret_cast<float4 *>(p)[1] = make_float4(f[4], f[5], f[6], f[7]);
    } else {
        uint4 u;
        u.x = lac_pack<DT == 1>(f[0], f[1]);
        u.y = lac_pack<DT == 1>(f[2], f[3]);
        u.z = lac_pack<DT == 1>(f[4], f[5]);
        u.w = lac_pack<DT == 1>(f[6], f[7]);
        *reinterpret_cast<uint4 *>(p) = u;
    }
}

/* RMSNorm over each row of o from the per-slice partial sums of squares, and optionally the
 * gate o *= sigmoid(g + g_bias) (CHELA's M = Norm(O) * sigmoid(Ga), fused here so that O is
 * read and written once more, not twice).  One warp per row, 8 elements a lane per access
 * (a warp moves 512 B of 16-bit o per instruction); dv is a multiple of 64. */
template <int DT, bool GATE, bool NORM = true>
__global__ void __launch_bounds__(32 * LAC_NORM_ROWS)
    lac_rmsnorm_kernel(typename lac_io<DT>::s_t *__restrict__ d_o,
                       const float *__restrict__ d_rowpart, int64_t rows, int dv, int nslices,
                       float eps, const typename lac_io<DT>::s_t *__restrict__ d_gate,
                       int64_t gate_ld, const float *__restrict__ gate_bias) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * LAC_NORM_ROWS + (threadIdx.x >> 5);
    if (row >= rows) return; /* whole warps leave together */
    float ss = 0.f;
    if (NORM)
        for (int s = lane; s < nslices; s += 32) ss += d_rowpart[(int64_t)s * rows + row];
#pragma unroll
    for (int m = 16; m >= 1; m >>= 1) ss += lac_shfl_xor(ss, m);
    const float r = NORM ? rsqrtf(ss / (float)dv + eps) : 1.0f; /* !NORM: the gate alone */
    typename lac_io<DT>::s_t *o = d_o + row * dv;
#pragma unroll 4
    for (int c = 8 * lane; c < dv; c += 256) {
        float f[8];
        lac_ld8<DT>(o + c, f);
        if (GATE) {
            float g[8];
            lac_ld8<DT>(d_gate + row * gate_ld + c, g);
            /* the sigmoid with an IEEE divide, not math.cuh's sigm (__fdividef, another
             * rounding): what this pass has been verified and timed with */
#pragma unroll
            for (int e = 0; e < 8; ++e)
                f[e] = f[e] * r * (1.0f / (1.0f + __expf(-(g[e] + gate_bias[c + e]))));
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) f[e] *= r;
        }
        lac_st8<DT>(o + c, f);
    }
}

template <int DT> int lac_launch_norm_t(const lac_ptrs &d, const lac_args &a, cudaStream_t stream) {
    typedef typename lac_io<DT>::s_t S;
    const int64_t blocks = (a.rows + LAC_NORM_ROWS - 1) / LAC_NORM_ROWS;
    if (a.norm_mode == 3) { /* v1's deferred mode: the gate alone, the norm is the caller's */
        if (a.gate)
            lac_rmsnorm_kernel<DT, true, false><<<(unsigned)blocks, 32 * LAC_NORM_ROWS, 0, stream>>>(
                (S *)d.o, d.rowpart, a.rows, a.dv, a.nslices, a.rms_eps, (const S *)a.gate,
                a.gate_ld, a.gate_bias);
    } else if (a.gate)
        lac_rmsnorm_kernel<DT, true><<<(unsigned)blocks, 32 * LAC_NORM_ROWS, 0, stream>>>(
            (S *)d.o, d.rowpart, a.rows, a.dv, a.nslices, a.rms_eps, (const S *)a.gate,
            a.gate_ld, a.gate_bias);
    else
        lac_rmsnorm_kernel<DT, false><<<(unsigned)blocks, 32 * LAC_NORM_ROWS, 0, stream>>>(
            (S *)d.o, d.rowpart, a.rows, a.dv, a.nslices, a.rms_eps, NULL, 0, NULL);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} /* namespace */

int lac_launch_norm(dtype_t dt, const lac_ptrs &d, const lac_args &a, cudaStream_t stream) {
    if (dt == DTYPE_F32) return lac_launch_norm_t<0>(d, a, stream);
    if (dt == DTYPE_BF16) return lac_launch_norm_t<1>(d, a, stream);
    return lac_launch_norm_t<2>(d, a, stream);
}

int lac_launch_scan(const lac_plan *p, const lac_ptrs &d, int64_t nbh, int dk, int dv,
                    cudaStream_t stream) {
    if (p->ws_per_bh <= 1) return 0;
    const int64_t vec = (int64_t)dk * dv / 4, total = nbh * vec;
    const int64_t blocks = (total + LAC_SCAN_THREADS - 1) / LAC_SCAN_THREADS;
    return pdl_launch(p->pdl, lac_scan_kernel, (unsigned)blocks, LAC_SCAN_THREADS, 0, stream,
                      (float4 *)d.states, vec, total, p->ws_per_bh, p->sub);
}

