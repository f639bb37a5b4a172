/* test_emu_bwd_rows.cpp: the layers' shared backward passes (kernels/common/bwd_rows.cuh: the
 * LayerNorm backward with its residual and parameter gradients, the column sums of a bias's
 * gradient) run on the CPU by the emulation in tests/emu/, against the same sums in double.
 * What it checks: the index algebra (a lane's 8-element groups, rows strided over blocks and
 * warps, the warps' ordered reduction, the partial sums' layout and their second pass), the
 * warp reductions (real shuffles: emu_shfl_xor), both storage paths of load8/store8 (bf16 and
 * fp32), and that a second run gives the same bits.  What it cannot: the GPU's timing, its
 * registers and shared-memory limits; test_gpu_variants runs the layers that use them.
 *
 * Tolerances (|got - ref| / max |ref| of the tensor, or of the row for dx):
 *   dx, bf16: 2^-7.  The inputs are exact bf16 values, so the only roundings are fp32 sums
 *     (~1e-6) and the one bf16 rounding of dx itself (2^-9 relative); 2^-7 leaves 4x.
 *   dx, fp32; dg, db; column sums: 1e-4.  fp32 sums of at most a few hundred terms of size ~1
 *     (relative error ~1e-6); a wrong index moves whole terms (errors ~1). */
#define CHELA_EMULATE 1
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "cuda_runtime.h" /* tests/emu/'s: the CUDA stand-ins, before the kernels */

#include "common/bwd_rows.cuh"
#include "rng.h"

namespace {

int failures = 0;

void check(const char *what, double err, double tol) {
    const bool ok = err <= tol; /* NaN fails */
    printf("%-44s max err %.3g (tol %.3g) %s\n", what, err, tol, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

float to_float(float x) { return x; }
float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> T from_float(float x);
template <> float from_float<float>(float x) { return x; }
template <> __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* uniform in [lo, lo + span), rounded to T, returned as its float value too */
template <typename T>
void fill(std::vector<T> &a, std::vector<double> &ad, uint64_t seed, float lo, float span) {
    ad.resize(a.size());
    for (size_t i = 0; i < a.size(); i++) {
        const float u = (float)(rng_mix64(seed * 1000003ull + i) >> 40) / (float)(1u << 24);
        a[i] = from_float<T>(lo + span * u);
        ad[i] = to_float(a[i]);
    }
}

/* LayerNorm backward over `rows` rows of D features, with (or without) a residual gradient,
 * on a grid of `blocks` blocks; dg / db through sum_chunks as the layers call it. */
template <typename T, int VPL>
void ln_case(const char *name, long long rows, unsigned blocks, bool with_res, double tol_dx) {
    constexpr int D = VPL * 256;
    const size_t n = (size_t)rows * D;
    std::vector<T> x(n), dy(n), dres(n), dx(n);
    std::vector<double> xd, dyd, dresd, gd(D);
    std::vector<float> g(D), part((size_t)blocks * 2 * D), dg(D), db(D);
    fill(x, xd, 11, -2.0f, 4.0f);
    fill(dy, dyd, 12, -1.0f, 2.0f);
    fill(dres, dresd, 13, -1.0f, 2.0f);
    for (int c = 0; c < D; c++) {
        g[c] = 1.0f + 0.1f * (float)((c * 37) % 17 - 8) / 8.0f;
        gd[c] = g[c];
    }
    std::vector<double> rdx(n), rdg(D, 0.0), rdb(D, 0.0);
    for (long long r = 0; r < rows; r++) {
        const double *xr = &xd[(size_t)r * D], *dr = &dyd[(size_t)r * D];
        double mean = 0, var = 0, m1 = 0, m2 = 0;
        for (int c = 0; c < D; c++) mean += xr[c];
        mean /= D;
        for (int c = 0; c < D; c++) var += (xr[c] - mean) * (xr[c] - mean);
        const double rstd = 1.0 / sqrt(var / D + CHELA_LN_EPS);
        for (int c = 0; c < D; c++) {
            const double xh = (xr[c] - mean) * rstd;
            m1 += gd[c] * dr[c];
            m2 += gd[c] * dr[c] * xh;
            rdg[c] += dr[c] * xh;
            rdb[c] += dr[c];
        }
        m1 /= D;
        m2 /= D;
        for (int c = 0; c < D; c++) {
            const double xh = (xr[c] - mean) * rstd;
            rdx[(size_t)r * D + c] = (with_res ? dresd[(size_t)r * D + c] : 0.0) +
                                     rstd * (gd[c] * dr[c] - m1 - xh * m2);
        }
    }
    std::vector<T> first;
    for (int run = 0; run < 2; run++) {
        memset(dx.data(), 0xFF, n * sizeof(T)); /* poison: an unwritten element is NaN */
        emu_launch(blocks, BWD_LN_WARPS * 32, 2 * D * sizeof(float), [&] {
            ln_bwd_rows<T, VPL>(x.data(), dy.data(), with_res ? dres.data() : nullptr, g.data(),
                                dx.data(), part.data(), rows);
        });
        if (run == 0) first = dx;
    }
    const unsigned sb = (D + 255) / 256; /* as the layers launch it: a thread a column */
    emu_launch(sb, 256, 0, [&] { sum_chunks(part.data(), (int)blocks, 2 * D, D, dg.data()); });
    emu_launch(sb, 256, 0, [&] { sum_chunks(part.data() + D, (int)blocks, 2 * D, D, db.data()); });
    double e_dx = 0, e_g = 0, e_b = 0, mg = 0, mb = 0;
    for (long long r = 0; r < rows; r++) {
        double mr = 0;
        for (int c = 0; c < D; c++) mr = fmax(mr, fabs(rdx[(size_t)r * D + c]));
        for (int c = 0; c < D; c++) {
            const double e = fabs(to_float(dx[(size_t)r * D + c]) - rdx[(size_t)r * D + c]) / mr;
            e_dx = e > e_dx || e != e ? e : e_dx;
        }
    }
    for (int c = 0; c < D; c++) {
        mg = fmax(mg, fabs(rdg[c]));
        mb = fmax(mb, fabs(rdb[c]));
    }
    for (int c = 0; c < D; c++) {
        const double a = fabs(dg[c] - rdg[c]) / mg, b = fabs(db[c] - rdb[c]) / mb;
        e_g = a > e_g || a != a ? a : e_g;
        e_b = b > e_b || b != b ? b : e_b;
    }
    char what[96];
    snprintf(what, sizeof what, "%s dx", name);
    check(what, e_dx, tol_dx);
    snprintf(what, sizeof what, "%s dg", name);
    check(what, e_g, 1e-4);
    snprintf(what, sizeof what, "%s db", name);
    check(what, e_b, 1e-4);
    snprintf(what, sizeof what, "%s second run, same bits", name);
    check(what, memcmp(first.data(), dx.data(), n * sizeof(T)) == 0 ? 0.0 : 1.0, 0.0);
}

/* Column sums of a [M,N] matrix in `chunks` row chunks, then the chunks summed. */
void colsum_case(const char *name, long long M, int N, unsigned chunks) {
    std::vector<__nv_bfloat16> z((size_t)M * N);
    std::vector<double> zd;
    fill(z, zd, 21, -1.0f, 2.0f);
    std::vector<float> part((size_t)chunks * N), out(N);
    emu_launch2((unsigned)((N + BWD_CS_COLS - 1) / BWD_CS_COLS), chunks, BWD_CS_WARPS * 32, 0,
                [&] { colsum_partial<__nv_bfloat16>(z.data(), M, N, part.data()); });
    emu_launch((unsigned)((N + 255) / 256), 256, 0,
               [&] { sum_chunks(part.data(), (int)chunks, (size_t)N, N, out.data()); });
    double mx = 0, err = 0;
    std::vector<double> ref(N, 0.0);
    for (long long r = 0; r < M; r++)
        for (int c = 0; c < N; c++) ref[c] += zd[(size_t)r * N + c];
    for (int c = 0; c < N; c++) mx = fmax(mx, fabs(ref[c]));
    for (int c = 0; c < N; c++) {
        const double e = fabs(out[c] - ref[c]) / mx;
        err = e > err || e != e ? e : err;
    }
    check(name, err, 1e-4);
}

} // namespace

int main() {
    /* 37 rows on 3 blocks of 8 warps: warps with two rows and with one, a last block short */
    ln_case<__nv_bfloat16, 1>("ln_bwd bf16 d 256, residual", 37, 3, true, 1.0 / 128);
    ln_case<__nv_bfloat16, 1>("ln_bwd bf16 d 256, no residual", 9, 1, false, 1.0 / 128);
    ln_case<float, 2>("ln_bwd fp32 d 512, residual", 21, 2, true, 1e-4);
    /* 100 rows in 7 chunks of 15 (the last one short), two column groups */
    colsum_case("colsum bf16 100 x 512, 7 chunks", 100, 512, 7);
    colsum_case("colsum bf16 3 x 256, 4 chunks (empty ones)", 3, 256, 4);
    /* 4224 = z + v + 2d of a CHELA projection: a last column group of 128 */
    colsum_case("colsum bf16 50 x 4224, 3 chunks (partial group)", 50, 4224, 3);
    colsum_case("colsum bf16 20 x 136, 2 chunks", 20, 136, 2);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
