/* test_emu_linear_attn_bwd.cpp: linear_attn/chunked's backward kernels (bwd_mma.cu) run on the
 * CPU by the emulation in tests/emu/ (prims.cuh's LAC_EMULATE hook), against the double
 * reference harness/ref_grad_attn.c: their index algebra (fragments, masks, segments, the scan,
 * the slices' fp32 sums) checked without a GPU.  What it cannot check: timing-dependent races
 * (cp.async copies at once here), the real ldmatrix / mma beyond the PTX ISA's layouts as
 * warp_emu.cpp reads them, registers and shared-memory limits.  The GPU test of the same
 * kernels is test_gpu_linear_attn_bwd (label gpu).
 *
 * The passes are enqueued as lab_enqueue_t does (bwd_mma.cu), the plan by lab_plan_make on an
 * H100's facts.  Tolerance: the harness's (verify.c), |got - ref| / max(|ref|, rms of the
 * reference row) <= 2^-6 (bf16) / 1e-2 (fp16); measured here ~4e-3 (bf16), ~1.2e-3 (fp16). */
#define LAC_EMULATE 1
#define LAB_EMULATE 1
#include <math.h>
#include <stdio.h>

#include <vector>

#include "linear_attn/bwd_mma.cu"
#include "ref_grad.h"
#include "rng.h"
#include "settings.h"

namespace {

float h16(uint16_t h, bool bf16) {
    return bf16 ? __uint_as_float((uint32_t)h << 16) : __half2float(__ushort_as_half(h));
}

/* The worst normwise error over rows of row_len (verify.c's measure); NaN counts as failure. */
double worst_err(const std::vector<uint16_t> &got, const std::vector<double> &ref, int row_len,
                 bool bf16) {
    double worst = 0.0;
    for (size_t r0 = 0; r0 < ref.size(); r0 += (size_t)row_len) {
        double ss = 0.0;
        for (int j = 0; j < row_len; j++) ss += ref[r0 + j] * ref[r0 + j];
        double rms = sqrt(ss / row_len);
        if (rms == 0.0) rms = 1e-30;
        for (int j = 0; j < row_len; j++) {
            const double g = h16(got[r0 + j], bf16);
            if (!std::isfinite(g)) return INFINITY;
            worst = fmax(worst, fabs(g - ref[r0 + j]) / fmax(fabs(ref[r0 + j]), rms));
        }
    }
    return worst;
}

template <bool BF16, int DK> int check(int B, int H, int T, int dv, int seg_tokens) {
    const lac_problem pr = {B, H, T, DK, dv, 1, BF16 ? DTYPE_BF16 : DTYPE_F16};
    const lab_device_facts f = {132, DK == 64 ? 2 : 1};
    lab_plan p;
    if (lab_plan_make(&pr, seg_tokens, &f, &p)) {
        printf("plan: %s\n", bench_last_error());
        return 1;
    }
    const size_t nk = (size_t)B * H * T * DK, nv = (size_t)B * H * T * dv;
    std::vector<uint16_t> q(nk), k(nk), v(nv), dO(nv);
    std::vector<uint16_t> gq(nk, 0xffff), gk(nk, 0xffff), gv(nv, 0xffff); /* NaN */
    std::vector<double> Q(nk), K(nk), V(nv), DO(nv), rq(nk), rk(nk), rv(nv);
    auto fill = [](std::vector<uint16_t> &h, std::vector<double> &d, uint32_t id) {
        for (size_t i = 0; i < h.size(); i++) {
            const float x = rng_uniform(7, id, i);
            h[i] = BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(x))
                        : __half_as_ushort(__float2half_rn(x));
            d[i] = h16(h[i], BF16);
        }
    };
    fill(q, Q, 1);
    fill(k, K, 2);
    fill(v, V, 3);
    fill(dO, DO, 4);
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = B, s.H = H, s.T = T, s.dk = DK, s.dv = dv, s.causal = 1, s.dtype = pr.dtype;
    if (ref_linear_attn_bwd(&s, Q.data(), K.data(), V.data(), DO.data(), rq.data(), rk.data(),
                            rv.data()))
        return 1;

    std::vector<float> fst(p.state_bytes / 4 + 1, NAN), bst(p.state_bytes / 4 + 1, NAN);
    std::vector<float> q32(p.acc_bytes / 4 + 1, 0.f), k32(p.acc_bytes / 4 + 1, 0.f);
    const lab_args a = {T, dv, p.nslices, p.nseg, p.seg_chunks, 1.0f / sqrtf((float)DK)};
    const unsigned grid = (unsigned)((int64_t)B * H * p.nseg * p.nslices);
    if (p.nseg > 1) {
        emu_launch(grid, LAC_THREADS, lab_sums_smem<DK>(), [&] {
            lab_sums_kernel<BF16, DK>(q.data(), k.data(), v.data(), dO.data(), fst.data(),
                                      bst.data(), a);
        });
        const int64_t vec = (int64_t)DK * dv / 4, total = (int64_t)B * H * vec;
        emu_launch((unsigned)((total + LAB_SCAN_THREADS - 1) / LAB_SCAN_THREADS),
                   LAB_SCAN_THREADS, 0, [&] {
                       lab_scan_kernel((float4 *)fst.data(), (float4 *)bst.data(), vec, total,
                                       p.nseg);
                   });
    }
    float *dq32 = p.reduce ? q32.data() : nullptr, *dk32 = p.reduce ? k32.data() : nullptr;
    emu_launch(grid, LAC_THREADS, lab_dq_smem<DK>(p.reduce != 0), [&] {
        lab_dq_kernel<BF16, DK>(k.data(), v.data(), dO.data(), fst.data(), gq.data(), dq32, a);
    });
    emu_launch(grid, LAC_THREADS, lab_dkv_smem<DK>(p.reduce != 0), [&] {
        lab_dkv_kernel<BF16, DK>(q.data(), k.data(), v.data(), dO.data(), bst.data(), gk.data(),
                                 gv.data(), dk32, a);
    });
    if (p.reduce) {
        const int64_t n8 = (int64_t)B * H * T * DK / 8;
        emu_launch((unsigned)((2 * n8 + LAB_CONV_THREADS - 1) / LAB_CONV_THREADS),
                   LAB_CONV_THREADS, 0, [&] {
                       lab_convert_kernel<BF16>(q32.data(), k32.data(), gq.data(), gk.data(), n8);
                   });
    }
    const double tol = BF16 ? 0.015625 : 1e-2;
    const double e[3] = {worst_err(gq, rq, DK, BF16), worst_err(gk, rk, DK, BF16),
                         worst_err(gv, rv, dv, BF16)};
    char words[96];
    lab_plan_words(&p, words, sizeof words);
    printf("%s B=%d H=%d T=%d dk=%d dv=%d [%s]: dQ %.3e dK %.3e dV %.3e (tol %.3e)\n",
           BF16 ? "bf16" : "fp16", B, H, T, DK, dv, words, e[0], e[1], e[2], tol);
    return e[0] <= tol && e[1] <= tol && e[2] <= tol ? 0 : 1;
}

} /* namespace */

int main(void) {
    int bad = 0;
    bad += check<true, 64>(1, 1, 1, 64, SETTING_AUTO);     /* one token                      */
    bad += check<true, 64>(1, 1, 37, 64, SETTING_AUTO);    /* less than a chunk              */
    bad += check<true, 64>(1, 2, 200, 64, 128);            /* 2 segments, a partial chunk    */
    bad += check<false, 64>(2, 1, 130, 64, SETTING_AUTO);  /* fp16                           */
    bad += check<true, 128>(1, 1, 130, 192, 64);           /* 3 segments, 3 slices (atomics) */
    bad += check<false, 128>(1, 1, 100, 128, SETTING_AUTO); /* fp16, 2 slices                 */
    bad += check<true, 64>(1, 1, 100, 128, 64);            /* dk 64 summed over 2 slices     */
    printf(bad ? "FAILED: %d shapes\n" : "all shapes within tolerance\n", bad);
    return bad ? 1 : 0;
}
