/* softmax_attn/cudnn_sdpa_bwd.c: cuDNN's fused flash-attention backward through the backend
 * graph API (cudnn_sdpa.h is the interface).
 *
 * Like the forward, this is the operation graph cuDNN's fused engine recognises: the one
 * cudnn-frontend's composite SDPA-backward node lowers to for plain MHA (no dropout, bias or
 * padding).  With P = softmax(S) rebuilt from the forward's stats (L = max + log sum):
 *
 *   Dsum = rowsum(dO * O)                 MUL, reduction ADD, then * 1 into softmax_sum, an fp32
 *                                         [B,H,T,1] tensor of the graph that lives in our
 *                                         workspace (the frontend keeps it there too)
 *   S   = (Q . K^T) * scale - L           matmul, MUL by-value, SUB stats
 *   causal only: S = mask ? S : -FLT_MAX  the forward's mask sub-graph
 *   E   = exp(S)                          = P, fp32 virtual
 *   dV  = E^T . dO                        E^T is a RESHAPE of E (dims [B,H,T,T], strides
 *                                         swapped) in the I/O dtype, then matmul -> dV
 *   dP  = dO . V^T                        V^T: V's descriptor with its last two dims swapped
 *   dS  = (dP - Dsum) * E * scale         SUB, MUL, MUL
 *   dK  = dS^T . Q                        RESHAPE to the I/O dtype, matmul -> dK
 *   dQ  = dS . K                          K from K^T by a RESHAPE; the matmul accumulates into
 *                                         dQ_accum (fp32 [B,H,T,D], our workspace), then
 *                                         IDENTITY converts it into dQ
 * cuDNN before 9.6 wanted dQ_accum zeroed by the caller (the frontend's note): the launch
 * does that there; from 9.6 the engine does it.
 *
 * Not yet run on a GPU (written after the forward was verified on the H100): the data type of
 * the reshaped K (fp32, as the frontend's intermediates default to) and the virtual dO * O
 * strides (the frontend's [B,H,T,D] with a row stride of H * D) copy the frontend's choices. */
#include <stdio.h>
#include <string.h>

#include "bench_check.h"
#include "softmax_attn/cudnn_sdpa_plan.h"

static size_t round_up(size_t n) { return (n + 255) / 256 * 256; }

static int build_graph(sa_cudnn_plan *pl, const sa_cudnn_problem_t *p, cg_desc *graph) {
    cg_pool_t *P = &pl->pool;
    const int64_t B = p->B, H = p->H, T = p->T, D = p->D;
    const cudnnDataType_t io = p->dt == DTYPE_F16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    const int64_t dq[4] = {B, H, T, D}, sq[4] = {p->q.batch, p->q.head, p->q.row, 1};
    const int64_t dkt[4] = {B, H, D, T}, skt[4] = {p->k.batch, p->k.head, 1, p->k.row};
    const int64_t sk[4] = {p->k.batch, p->k.head, p->k.row, 1};
    const int64_t svt[4] = {p->v.batch, p->v.head, 1, p->v.row};
    const int64_t sv[4] = {p->v.batch, p->v.head, p->v.row, 1};
    const int64_t so[4] = {p->o.batch, p->o.head, p->o.row, 1};
    const int64_t ds[4] = {B, H, T, T}, ss[4] = {H * T * T, T * T, T, 1};
    const int64_t sst[4] = {H * T * T, T * T, 1, T}; /* the same [B,H,T,T] transposed */
    const int64_t dr[4] = {B, H, T, 1}, sr[4] = {H * T, T, 1, 1};
    const int64_t sacc[4] = {H * T * D, T * D, D, 1};
    const int64_t sdoo[4] = {H * T * D, T * D, H * D, 1}; /* the frontend's, virtual */
    const int64_t one[4] = {1, 1, 1, 1};
    int64_t uid = UID_VIRTUAL;
#define T_IN(id, dt, dim, stride) cg_tensor(P, (id), (dt), (dim), (stride), 0)
#define VIRT(dt, dim, stride) cg_tensor(P, uid++, (dt), (dim), (stride), CG_VIRTUAL)
    cg_desc q = T_IN(UID_Q, io, dq, sq), kt = T_IN(UID_K, io, dkt, skt);
    cg_desc vt = T_IN(UID_V, io, dkt, svt), o = T_IN(UID_O, io, dq, so);
    cg_desc d_o = T_IN(UID_DO, io, dq, so), stats = T_IN(UID_STATS, f32, dr, sr);
    cg_desc dQ = T_IN(UID_DQ, io, dq, sq), dK = T_IN(UID_DK, io, dq, sk);
    cg_desc dV = T_IN(UID_DV, io, dq, sv);
    cg_desc dsum = T_IN(UID_SOFTMAX_SUM, f32, dr, sr), acc = T_IN(UID_DQ_ACCUM, f32, dq, sacc);
    cg_desc scale = cg_tensor(P, UID_SCALE, f32, one, one, CG_BY_VALUE);
    cg_desc unit = cg_tensor(P, UID_ONE, f32, one, one, CG_BY_VALUE);
    if (!q || !kt || !vt || !o || !d_o || !stats || !dQ || !dK || !dV || !dsum || !acc || !scale ||
        !unit)
        return -1;
    cg_desc ops[32];
    int n = 0;
#define OP(x)                             \
    do {                                  \
        if (!(ops[n++] = (x))) return -1; \
    } while (0)

    /* Dsum = rowsum(dO * O) */
    cg_desc doo = VIRT(f32, dq, sdoo), rs = VIRT(f32, dr, sr);
    if (!doo || !rs) return -1;
    OP(cg_pointwise(P, CUDNN_POINTWISE_MUL, f32, d_o, o, NULL, doo, -1));
    OP(cg_reduction(P, CUDNN_REDUCE_TENSOR_ADD, doo, rs));
    OP(cg_pointwise(P, CUDNN_POINTWISE_MUL, f32, rs, unit, NULL, dsum, -1));

    /* E = exp((Q K^T) * scale - L), masked */
    cg_desc s = VIRT(f32, ds, ss), s1 = VIRT(f32, ds, ss), s2 = VIRT(f32, ds, ss);
    if (!s || !s1 || !s2) return -1;
    OP(cg_matmul(P, q, kt, s));
    OP(cg_pointwise(P, CUDNN_POINTWISE_MUL, f32, s, scale, NULL, s1, -1));
    OP(cg_pointwise(P, CUDNN_POINTWISE_SUB, f32, s1, stats, NULL, s2, -1));
    if (p->causal && !(s2 = sa_cudnn_causal_mask(pl, ds, ss, s2, &uid, ops, &n))) return -1;
    cg_desc e = VIRT(f32, ds, ss), et = VIRT(io, ds, sst);
    if (!e || !et) return -1;
    OP(cg_pointwise(P, CUDNN_POINTWISE_EXP, f32, s2, NULL, NULL, e, -1));

    /* dV = E^T dO */
    OP(cg_reshape(P, e, et));
    OP(cg_matmul(P, et, d_o, dV));

    /* dS = (dO V^T - Dsum) * E * scale */
    cg_desc dp = VIRT(f32, ds, ss), t3 = VIRT(f32, ds, ss), t4 = VIRT(f32, ds, ss);
    cg_desc dS = VIRT(f32, ds, ss), dSt = VIRT(io, ds, sst);
    if (!dp || !t3 || !t4 || !dS || !dSt) return -1;
    OP(cg_matmul(P, d_o, vt, dp));
    OP(cg_pointwise(P, CUDNN_POINTWISE_SUB, f32, dp, dsum, NULL, t3, -1));
    OP(cg_pointwise(P, CUDNN_POINTWISE_MUL, f32, t3, e, NULL, t4, -1));
    OP(cg_pointwise(P, CUDNN_POINTWISE_MUL, f32, t4, scale, NULL, dS, -1));

    /* dK = dS^T Q */
    OP(cg_reshape(P, dS, dSt));
    OP(cg_matmul(P, dSt, q, dK));

    /* dQ = dS K, through the fp32 accumulator */
    cg_desc k = VIRT(f32, dq, sk);
    if (!k) return -1;
    OP(cg_reshape(P, kt, k));
    OP(cg_matmul(P, dS, k, acc));
    OP(cg_pointwise(P, CUDNN_POINTWISE_IDENTITY, f32, acc, NULL, NULL, dQ, -1));
#undef OP
#undef VIRT
#undef T_IN
    *graph = cg_graph(P, pl->h, ops, n);
    return *graph ? 0 : -1;
}

int sa_cudnn_bwd_plan_create(const sa_cudnn_problem_t *p, sa_cudnn_plan **out) {
    sa_cudnn_plan *pl = NULL;
    cg_desc graph = NULL;
    *out = NULL;
    if (sa_cudnn_plan_new(p, &pl)) return -1;
    pl->bwd = 1;
    pl->stats = 0;
    pl->sum_bytes = round_up((size_t)p->B * p->H * (size_t)p->T * sizeof(float));
    pl->own_ws = pl->sum_bytes + round_up((size_t)p->B * p->H * (size_t)p->T * p->D * sizeof(float));
    if (build_graph(pl, p, &graph) || cg_plan(&pl->pool, pl->h, graph, &pl->plan)) {
        sa_cudnn_destroy(pl);
        return -1;
    }
    *out = pl;
    return 0;
}

int sa_cudnn_bwd_launch(sa_cudnn_plan *pl, const void *q, const void *k, const void *v,
                        const void *o, const void *d_o, const float *stats, void *dq, void *dk,
                        void *dv, void *workspace, cudaStream_t s) {
    if (!pl || !pl->bwd) BENCH_FAIL("cuDNN SDPA: backward launch without a backward plan");
    if (!stats) BENCH_FAIL("cuDNN SDPA backward: needs the forward's stats");
    char *ws = (char *)workspace;
    void *dsum = ws, *acc = ws + pl->sum_bytes, *cudnn_ws = ws + pl->own_ws;
    if (cudnnGetVersion() < 90600) /* the engine zeroes dQ_accum itself from 9.6 */
        CUDA_CHECK(cudaMemsetAsync(acc, 0, pl->own_ws - pl->sum_bytes, s));
    void *ptrs[N_PACK] = {(void *)q, (void *)k, (void *)v, (void *)o, (void *)d_o, (void *)stats,
                          dq, dk, dv, dsum, acc, &pl->scale, &pl->one};
    int64_t uids[N_PACK] = {UID_Q,  UID_K,  UID_V,           UID_O,        UID_DO,    UID_STATS,
                            UID_DQ, UID_DK, UID_DV, UID_SOFTMAX_SUM, UID_DQ_ACCUM, UID_SCALE,
                            UID_ONE};
    int n = 13;
    if (pl->causal) {
        uids[n] = UID_NEG;
        ptrs[n++] = &pl->lowest;
    }
    return sa_cudnn_execute(pl, n, uids, ptrs, cudnn_ws, s);
}
