/* v1.cu: linear_attn/chunked v1 (la_version=1; also the fp32 path).  The obviously-correct rung,
 * CUDA cores only, same passes and workspace layout as v2.  A block is 64 threads, thread j
 * owning value column slice*64 + j and its state column S[:, j] (dk fp32 registers).  Tokens go
 * through shared memory 16 at a time as fp32; per token the thread does S[:,j] += k_t v_tj
 * (causal) then o_tj = q_t . S[:,j] / sqrt(dk): the per-token recurrence, no chunk algebra.
 *
 * Predicted cost: the recurrence is 2*dk*dv FMAs per token (pass A adds dk*dv): LM shape
 * (2^20 token-heads, dk = dv = 64) 8.6 G FMA in pass C + 4.3 G in pass A ~ 0.4 ms at ~33 TFMA/s
 * fp32 if the FMA pipe were saturated, which one-column-per-thread with smem broadcasts will not
 * do: expect ~1-2 ms.  CHELA (dk = 128, dv = 2048, 65536 tokens): 34 G + 17 G FMA -> ~2-4 ms.
 * Verified, never timed on the H100. */
#include "bench_check.h"
#include "linear_attn/passes.h"
#include "linear_attn/prims.cuh"

namespace {

/* v1's read of v[row_off + j], through SiLU(v + v_bias[j]) rounded to the dtype when v_bias. */
template <int DT>
__device__ __forceinline__ float lac_v1_ld_v(const typename lac_io<DT>::s_t *d_v, int64_t row_off,
                                             int j, const lac_args &a) {
    const float x = lac_io<DT>::ld(d_v[row_off + j]);
    if (!a.v_bias) return x;
    return lac_io<DT>::ld(lac_io<DT>::st(silu(x + a.v_bias[j])));
}

/* Pass A.  grid = B*H*ws_per_bh*nslices, block = 64.  ws[bh][u][dv][dk] = (K_u^T V_u)^T. */
template <int DT, int DK>
__global__ void __launch_bounds__(LAC_DVS)
    lac_v1_state_kernel(const typename lac_io<DT>::s_t *__restrict__ d_k,
                        const typename lac_io<DT>::s_t *__restrict__ d_v,
                        float *__restrict__ d_states, lac_args a) {
    __shared__ float s_k[LAC_V1_TILE][DK];
    __shared__ float s_v[LAC_V1_TILE][LAC_DVS];
    const int j = threadIdx.x;
    const lac_part blk = lac_part_of(a);
    const int slice = blk.slice;
    const int64_t bh = blk.bh;
    const int64_t row0 = bh * a.T;
    const int t_begin = blk.c_begin * LAC_C;
    const int t_end = lac_min(blk.c_end * LAC_C, a.T);

    float s[DK];
#pragma unroll
    for (int c = 0; c < DK; ++c) s[c] = 0.f;

    for (int tt = t_begin; tt < t_end; tt += LAC_V1_TILE) {
        for (int i = j; i < LAC_V1_TILE * DK; i += LAC_DVS) {
            const int r = i / DK, c = i % DK, t = tt + r;
            s_k[r][c] = t < t_end ? lac_io<DT>::ld(d_k[(row0 + t) * DK + c]) : 0.f;
        }
        for (int i = j; i < LAC_V1_TILE * LAC_DVS; i += LAC_DVS) {
            const int r = i / LAC_DVS, c = i % LAC_DVS, t = tt + r;
            s_v[r][c] = t < t_end ? lac_v1_ld_v<DT>(d_v, (row0 + t) * a.dv, slice * LAC_DVS + c, a)
                                  : 0.f;
        }
        __syncthreads();
#pragma unroll 1
        for (int r = 0; r < LAC_V1_TILE; ++r) {
            const float vj = s_v[r][j];
#pragma unroll
            for (int c = 0; c < DK; ++c) s[c] += s_k[r][c] * vj;
        }
        __syncthreads();
    }
    float *dst = d_states + ((bh * a.ws_per_bh + blk.u) * a.dv + slice * LAC_DVS + j) * DK;
#pragma unroll
    for (int c = 0; c < DK; ++c) dst[c] = s[c];
}

/* Pass C.  grid = B*H*nseg*nslices, block = 64.  Writes o (unnormalised) and, when norm_mode
 * != 0, each row's sum of squares over this slice to rowpart[slice][row]. */
template <int DT, int DK, bool CAUSAL>
__global__ void __launch_bounds__(LAC_DVS)
    lac_v1_output_kernel(const typename lac_io<DT>::s_t *__restrict__ d_q,
                         const typename lac_io<DT>::s_t *__restrict__ d_k,
                         const typename lac_io<DT>::s_t *__restrict__ d_v,
                         typename lac_io<DT>::s_t *__restrict__ d_o,
                         const float *__restrict__ d_states, float *__restrict__ d_rowpart,
                         lac_args a) {
    __shared__ float s_q[LAC_V1_TILE][DK];
    __shared__ float s_k[LAC_V1_TILE][DK];
    __shared__ float s_v[LAC_V1_TILE][LAC_DVS];
    __shared__ float s_o[LAC_V1_TILE][LAC_DVS + 1]; /* +1: the row sums read down columns */
    const int j = threadIdx.x;
    const int slice = blockIdx.x % a.nslices;
    const int rest = blockIdx.x / a.nslices;
    const int seg = rest % a.nseg;
    const int64_t bh = rest / a.nseg;
    const int64_t row0 = bh * a.T;
    const int t_begin = seg * a.seg_chunks * LAC_C;
    const int t_end = lac_min(t_begin + a.seg_chunks * LAC_C, a.T);

    float s[DK];
    const int state_idx = CAUSAL ? seg - 1 : a.nseg_ws - 1;
    if (state_idx >= 0) {
        const float *src =
            d_states + ((bh * a.ws_per_bh + state_idx) * a.dv + slice * LAC_DVS + j) * DK;
#pragma unroll
        for (int c = 0; c < DK; ++c) s[c] = src[c];
    } else {
#pragma unroll
        for (int c = 0; c < DK; ++c) s[c] = 0.f;
    }

    for (int tt = t_begin; tt < t_end; tt += LAC_V1_TILE) {
        for (int i = j; i < LAC_V1_TILE * DK; i += LAC_DVS) {
            const int r = i / DK, c = i % DK, t = tt + r;
            const bool ok = t < t_end;
            s_q[r][c] = ok ? lac_io<DT>::ld(d_q[(row0 + t) * DK + c]) : 0.f;
            if (CAUSAL) s_k[r][c] = ok ? lac_io<DT>::ld(d_k[(row0 + t) * DK + c]) : 0.f;
        }
        if (CAUSAL) {
            for (int i = j; i < LAC_V1_TILE * LAC_DVS; i += LAC_DVS) {
                const int r = i / LAC_DVS, c = i % LAC_DVS, t = tt + r;
                s_v[r][c] = t < t_end
                                ? lac_v1_ld_v<DT>(d_v, (row0 + t) * a.dv, slice * LAC_DVS + c, a)
                                : 0.f;
            }
        }
        __syncthreads();
        for (int r = 0; r < LAC_V1_TILE; ++r) {
            if (CAUSAL) {
                const float vj = s_v[r][j];
#pragma unroll
                for (int c = 0; c < DK; ++c) s[c] += s_k[r][c] * vj;
            }
            float acc = 0.f;
#pragma unroll
            for (int c = 0; c < DK; ++c) acc += s_q[r][c] * s[c];
            s_o[r][j] = acc * a.scale;
        }
        __syncthreads();
        for (int i = j; i < LAC_V1_TILE * LAC_DVS; i += LAC_DVS) {
            const int r = i / LAC_DVS, c = i % LAC_DVS, t = tt + r;
            if (t < t_end)
                d_o[(row0 + t) * a.dv + slice * LAC_DVS + c] = lac_io<DT>::st(s_o[r][c]);
        }
        if (a.norm_mode != 0 && j < LAC_V1_TILE && tt + j < t_end) {
            float ss = 0.f;
            for (int c = 0; c < LAC_DVS; ++c) ss += s_o[j][c] * s_o[j][c];
            d_rowpart[(int64_t)slice * a.rows + row0 + tt + j] = ss;
        }
        __syncthreads();
    }
}

template <int DT, int DK> int lac_prepare_v1(int *bps, int *bps_a) {
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps, lac_v1_output_kernel<DT, DK, true>, LAC_DVS, (size_t)0));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps_a, lac_v1_state_kernel<DT, DK>, LAC_DVS, (size_t)0));
    return 0;
}

template <int DT, int DK>
int lac_enqueue_v1(const lac_plan *p, const lac_ptrs &d, const lac_args &a, int64_t nbh,
                   int causal, cudaStream_t stream) {
    typedef typename lac_io<DT>::s_t S;
    const S *q = (const S *)d.q, *k = (const S *)d.k, *v = (const S *)d.v;
    if (p->ws_per_bh > 0) {
        const int64_t grid = nbh * p->ws_per_bh * p->nslices;
        lac_v1_state_kernel<DT, DK><<<(unsigned)grid, LAC_DVS, 0, stream>>>(k, v, d.states, a);
        CUDA_CHECK(cudaGetLastError());
        if (lac_launch_scan(p, d, nbh, DK, a.dv, stream)) return -1;
    }
    const int64_t grid = nbh * p->nseg * p->nslices;
    if (causal)
        lac_v1_output_kernel<DT, DK, true><<<(unsigned)grid, LAC_DVS, 0, stream>>>(
            q, k, v, (S *)d.o, d.states, d.rowpart, a);
    else
        lac_v1_output_kernel<DT, DK, false><<<(unsigned)grid, LAC_DVS, 0, stream>>>(
            q, k, v, (S *)d.o, d.states, d.rowpart, a);
    CUDA_CHECK(cudaGetLastError());
    if (a.norm_mode >= 2) return lac_launch_norm((dtype_t)DT, d, a, stream);
    return 0;
}

} /* namespace */

int lac_v1_prepare(dtype_t dt, int dk, int *bps, int *bps_a) {
    if (dt == DTYPE_F32)
        return dk == 64 ? lac_prepare_v1<0, 64>(bps, bps_a) : lac_prepare_v1<0, 128>(bps, bps_a);
    if (dt == DTYPE_BF16)
        return dk == 64 ? lac_prepare_v1<1, 64>(bps, bps_a) : lac_prepare_v1<1, 128>(bps, bps_a);
    return dk == 64 ? lac_prepare_v1<2, 64>(bps, bps_a) : lac_prepare_v1<2, 128>(bps, bps_a);
}

int lac_v1_enqueue(dtype_t dt, int dk, const lac_plan *p, const lac_ptrs &d, const lac_args &a,
                   int64_t nbh, int causal, cudaStream_t stream) {
    if (dt == DTYPE_F32)
        return dk == 64 ? lac_enqueue_v1<0, 64>(p, d, a, nbh, causal, stream)
                        : lac_enqueue_v1<0, 128>(p, d, a, nbh, causal, stream);
    if (dt == DTYPE_BF16)
        return dk == 64 ? lac_enqueue_v1<1, 64>(p, d, a, nbh, causal, stream)
                        : lac_enqueue_v1<1, 128>(p, d, a, nbh, causal, stream);
    return dk == 64 ? lac_enqueue_v1<2, 64>(p, d, a, nbh, causal, stream)
                    : lac_enqueue_v1<2, 128>(p, d, a, nbh, causal, stream);
}
