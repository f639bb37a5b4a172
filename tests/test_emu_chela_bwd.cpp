/* test_emu_chela_bwd.cpp: chela/fused's own backward kernels (kernels/chela/bwd_kernels.cuh)
 * run on the CPU by the emulation in tests/emu/, each against central finite differences of
 * the forward it undoes, computed in double from the definition (not from the kernels'
 * derivations): so a wrong derivative, sign, index or layout fails, whatever the derivation
 * in the file's header says.
 *
 *   gate_bwd_rows      L = sum dY . (sg SiLU(Hz + bhz + rstd H' + bh) + (1 - sg) X),
 *                      sg = sigmoid(Go + bgo):  dX (residual part), dGo, dHz, dhs = dHz rstd
 *   rms_gate_bwd_rows  L = sum dM . O rstd(O) sigmoid(Ga + ba), from the stored o = O s and
 *                      dm = rstd dM:  dO, dGa
 *   qk_bwd_kernel      L = sum dQ . (kq SiLU(Zq + bz) + mq) + dK . (kk SiLU(Zq + bz) + mk):
 *                      dZq; the column-sum terms of dmq, dmk, dkq, dkk
 *   short_conv_bwd     L = sum dU . SiLU(k3 * X~) over [B,T,d]: dX~ (added), dk3 (partials)
 *   unrev_transpose, dk_slices: exact
 *
 * Inputs are bf16 (the kernels' storage type here); the differences are taken at those
 * rounded values.  Tolerance: |got - ref| <= 2^-7 max |ref| of the tensor (one bf16 rounding
 * of each output, 2^-9, and fp32 arithmetic, with 4x margin); parameters' fp32 terms 1e-4. */
#define CHELA_EMULATE 1
#include "cuda_runtime.h" /* tests/emu/'s: the CUDA stand-ins, before the kernels */

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <functional>
#include <vector>

#include "chela/bwd_kernels.cuh"
#include "rng.h"

namespace {

int failures = 0;
using bf = __nv_bfloat16;

float bf2f(bf x) { return __bfloat162float(x); }
bf f2bf(float x) { return __float2bfloat16_rn(x); }

void check(const char *what, double err, double tol) {
    const bool ok = err <= tol;
    printf("%-48s max err %.3g (tol %.3g) %s\n", what, err, tol, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

/* uniform in [lo, lo + span), rounded to bf16 */
std::vector<bf> rnd(size_t n, uint64_t seed, float lo, float span) {
    std::vector<bf> a(n);
    for (size_t i = 0; i < n; i++)
        a[i] = f2bf(lo + span * (float)(rng_mix64(seed * 1000003ull + i) >> 40) / (float)(1u << 24));
    return a;
}
std::vector<float> rndf(size_t n, uint64_t seed, float lo, float span) {
    std::vector<float> a(n);
    for (size_t i = 0; i < n; i++)
        a[i] = lo + span * (float)(rng_mix64(seed * 7777777ull + i) >> 40) / (float)(1u << 24);
    return a;
}
std::vector<double> dbl(const std::vector<bf> &a) {
    std::vector<double> r(a.size());
    for (size_t i = 0; i < a.size(); i++) r[i] = bf2f(a[i]);
    return r;
}

double sig(double x) { return 1.0 / (1.0 + exp(-x)); }
double silu_d(double x) { return x * sig(x); }

/* d f / d x[i] by central differences, x restored */
double fd(std::vector<double> &x, size_t i, const std::function<double()> &f) {
    const double x0 = x[i], h = 1e-5 * (fabs(x0) > 1 ? fabs(x0) : 1.0);
    x[i] = x0 + h;
    const double fp = f();
    x[i] = x0 - h;
    const double fm = f();
    x[i] = x0;
    return (fp - fm) / (2 * h);
}

/* max |got - ref| / max |ref| */
double rel_err(const std::vector<double> &got, const std::vector<double> &ref) {
    double m = 0, e = 0;
    for (double r : ref) m = fmax(m, fabs(r));
    for (size_t i = 0; i < ref.size(); i++) {
        const double a = fabs(got[i] - ref[i]) / m;
        e = a > e || a != a ? a : e;
    }
    return e;
}

/* ---- gate_bwd_rows: rows of d, P = [Zq z | Ga v | Go d | Hz d] ---- */
void gate_case() {
    const int rows = 5, d = 264, z = 64, v = 128, np = z + v + 2 * d; /* d: a partial group */
    auto dy = rnd((size_t)rows * d, 1, -1, 2), x = rnd((size_t)rows * d, 2, -2, 4);
    auto p = rnd((size_t)rows * np, 3, -2, 4), h = rnd((size_t)rows * d, 4, -3, 6);
    auto bp = rndf(np, 5, -0.2f, 0.4f), bh = rndf(d, 6, -0.2f, 0.4f);
    auto rss = rndf((size_t)(v / 64) * rows, 7, 10.f, 100.f);
    std::vector<bf> dxres((size_t)rows * d), dp((size_t)rows * np, f2bf(0.f)), dhs((size_t)rows * d);
    emu_launch(2, CFB_EW_THREADS, 0, [&] {
        gate_bwd_rows<bf>(dy.data(), x.data(), p.data(), bp.data(), np, z, v, h.data(), bh.data(),
                          rss.data(), d, rows, dxres.data(), dp.data(), dhs.data());
    });
    std::vector<double> X = dbl(x), P = dbl(p), DY = dbl(dy), H = dbl(h);
    std::vector<double> rx, rgo, rhz, rhs, gx, ggo, ghz, ghs;
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int sl = 0; sl < v / 64; sl++) ss += rss[(size_t)sl * rows + r];
        const double rstd = 1.0 / sqrt(ss / v + CHELA_RMS_EPS);
        auto L = [&]() {
            double acc = 0;
            for (int j = 0; j < d; j++) {
                const double sg = sig(P[(size_t)r * np + z + v + j] + bp[z + v + j]);
                const double hp = P[(size_t)r * np + z + v + d + j] + bp[z + v + d + j] +
                                  rstd * H[(size_t)r * d + j] + bh[j];
                acc += DY[(size_t)r * d + j] * (sg * silu_d(hp) + (1 - sg) * X[(size_t)r * d + j]);
            }
            return acc;
        };
        for (int j = 0; j < d; j++) {
            rx.push_back(fd(X, (size_t)r * d + j, L));
            rgo.push_back(fd(P, (size_t)r * np + z + v + j, L));
            const double dhz = fd(P, (size_t)r * np + z + v + d + j, L);
            rhz.push_back(dhz);
            rhs.push_back(dhz * rstd);
            gx.push_back(bf2f(dxres[(size_t)r * d + j]));
            ggo.push_back(bf2f(dp[(size_t)r * np + z + v + j]));
            ghz.push_back(bf2f(dp[(size_t)r * np + z + v + d + j]));
            ghs.push_back(bf2f(dhs[(size_t)r * d + j]));
        }
    }
    check("gate_bwd dX (residual part)", rel_err(gx, rx), 1.0 / 128);
    check("gate_bwd dGo", rel_err(ggo, rgo), 1.0 / 128);
    check("gate_bwd dHz", rel_err(ghz, rhz), 1.0 / 128);
    check("gate_bwd dhs", rel_err(ghs, rhs), 1.0 / 128);
}

/* ---- rms_gate_bwd_rows: rows of v ---- */
void rms_gate_case() {
    const int rows = 4, d = 256, z = 64, v = 192, np = z + v + 2 * d;
    auto O = rndf((size_t)rows * v, 11, -2.f, 4.f);
    auto p = rnd((size_t)rows * np, 12, -3, 6);
    auto bp = rndf(np, 13, -0.2f, 0.4f);
    auto dM = rndf((size_t)rows * v, 14, -1.f, 2.f);
    std::vector<bf> o((size_t)rows * v), dm((size_t)rows * v), dp((size_t)rows * np, f2bf(0.f));
    std::vector<float> rss((size_t)(v / 64) * rows, 0.f);
    std::vector<double> Od((size_t)rows * v), Gd((size_t)rows * v);
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int k = 0; k < v; k++) ss += (double)O[(size_t)r * v + k] * O[(size_t)r * v + k];
        const double rstd = 1.0 / sqrt(ss / v + CHELA_RMS_EPS);
        for (int k = 0; k < v; k++) {
            const double s = sig(bf2f(p[(size_t)r * np + z + k]) + bp[z + k]);
            o[(size_t)r * v + k] = f2bf((float)(O[(size_t)r * v + k] * s));
            dm[(size_t)r * v + k] = f2bf((float)(rstd * dM[(size_t)r * v + k]));
            rss[(size_t)(k / 64) * rows + r] += O[(size_t)r * v + k] * O[(size_t)r * v + k];
            /* the reference sees the O the kernel can recover: o / s */
            Od[(size_t)r * v + k] = bf2f(o[(size_t)r * v + k]) / s;
            Gd[(size_t)r * v + k] = bf2f(p[(size_t)r * np + z + k]);
        }
    }
    const std::vector<bf> dm0 = dm; /* the kernel overwrites dm with dO */
    emu_launch(1, CFB_EW_THREADS, 0, [&] {
        rms_gate_bwd_rows<bf>(dm.data(), o.data(), p.data(), bp.data(), np, z, v, rss.data(), rows,
                              dp.data());
    });
    std::vector<double> rO, rG, gO, gG;
    for (int r = 0; r < rows; r++) {
        /* the row's dM as the kernel received it: dm / rstd with its own rss */
        double ss = 0;
        for (int sl = 0; sl < v / 64; sl++) ss += rss[(size_t)sl * rows + r];
        const double rstd_k = 1.0 / sqrt(ss / v + CHELA_RMS_EPS);
        auto L = [&]() {
            double s2 = 0, acc = 0;
            for (int k = 0; k < v; k++) s2 += Od[(size_t)r * v + k] * Od[(size_t)r * v + k];
            const double rstd = 1.0 / sqrt(s2 / v + CHELA_RMS_EPS);
            for (int k = 0; k < v; k++)
                acc += bf2f(dm0[(size_t)r * v + k]) / rstd_k * Od[(size_t)r * v + k] * rstd *
                       sig(Gd[(size_t)r * v + k] + bp[z + k]);
            return acc;
        };
        for (int k = 0; k < v; k++) {
            rO.push_back(fd(Od, (size_t)r * v + k, L));
            rG.push_back(fd(Gd, (size_t)r * v + k, L));
            gO.push_back(bf2f(dm[(size_t)r * v + k]));
            gG.push_back(bf2f(dp[(size_t)r * np + z + k]));
        }
    }
    check("rms_gate_bwd dO", rel_err(gO, rO), 1.0 / 128);
    check("rms_gate_bwd dGa", rel_err(gG, rG), 1.0 / 128);
}

/* ---- qk_bwd_kernel ---- */
void qk_case() {
    const int rows = 6, d = 256, z = 64, v = 128, np = z + v + 2 * d;
    auto dq = rnd((size_t)rows * z, 21, -1, 2), dk = rnd((size_t)rows * z, 22, -1, 2);
    auto p = rnd((size_t)rows * np, 23, -3, 6);
    auto bp = rndf(np, 24, -0.2f, 0.4f), kq = rndf(z, 25, 0.5f, 1.f), kk = rndf(z, 26, 0.5f, 1.f);
    std::vector<bf> dp((size_t)rows * np, f2bf(0.f));
    std::vector<float> part4((size_t)rows * 4 * z);
    emu_launch(1, 64, 0, [&] {
        qk_bwd_kernel<bf>(dq.data(), dk.data(), p.data(), bp.data(), np, kq.data(), kk.data(), z,
                          rows, dp.data(), part4.data());
    });
    std::vector<double> P = dbl(p), rz, gz;
    double eterm = 0;
    for (int r = 0; r < rows; r++) {
        auto L = [&]() {
            double acc = 0;
            for (int j = 0; j < z; j++) {
                const double a = silu_d(P[(size_t)r * np + j] + bp[j]);
                acc += bf2f(dq[(size_t)r * z + j]) * kq[j] * a + bf2f(dk[(size_t)r * z + j]) * kk[j] * a;
            }
            return acc;
        };
        for (int j = 0; j < z; j++) {
            rz.push_back(fd(P, (size_t)r * np + j, L));
            gz.push_back(bf2f(dp[(size_t)r * np + j]));
            const double zq = silu_d(P[(size_t)r * np + j] + bp[j]);
            const double want[4] = {bf2f(dq[(size_t)r * z + j]), bf2f(dk[(size_t)r * z + j]),
                                    bf2f(dq[(size_t)r * z + j]) * zq, bf2f(dk[(size_t)r * z + j]) * zq};
            for (int k = 0; k < 4; k++)
                eterm = fmax(eterm, fabs(part4[(size_t)r * 4 * z + k * z + j] - want[k]));
        }
    }
    check("qk_bwd dZq", rel_err(gz, rz), 1.0 / 128);
    check("qk_bwd column-sum terms (abs)", eterm, 1e-4);
}

/* ---- short_conv_bwd + unrev_transpose ---- */
void short_conv_case() {
    const int B = 2, T = 23, d = 136, chunk = 8, nch = (T + chunk - 1) / chunk;
    auto xln = rnd((size_t)B * T * d, 31, -2, 4);
    auto k3 = rndf((size_t)d * 3, 32, -1.f, 2.f);
    auto du = rnd((size_t)B * d * T, 33, -1, 2); /* [B,d,T] in time order */
    /* the long conv's backward leaves dU reversed in time: make that, then undo it */
    std::vector<bf> rev((size_t)B * d * T), dut((size_t)B * T * d);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++)
            for (int t = 0; t < T; t++)
                rev[((size_t)b * d + c) * T + (T - 1 - t)] = du[((size_t)b * d + c) * T + t];
    const int tiles = B * ((d + 31) / 32) * ((T + 31) / 32);
    emu_launch((unsigned)tiles, 256, 0, [&] { unrev_transpose_kernel<bf>(rev.data(), d, T, dut.data()); });
    long long bad = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++)
            for (int t = 0; t < T; t++)
                bad += memcmp(&dut[((size_t)b * T + t) * d + c], &du[((size_t)b * d + c) * T + t], 2) != 0;
    check("unrev_transpose (elements wrong)", (double)bad, 0);

    std::vector<bf> dx((size_t)B * T * d, f2bf(0.f));
    std::vector<float> part((size_t)B * nch * 3 * d);
    emu_launch2((unsigned)((d + CFB_SC_THREADS - 1) / CFB_SC_THREADS), (unsigned)(B * nch),
                CFB_SC_THREADS, 0, [&] {
                    short_conv_bwd_kernel<bf>(xln.data(), dut.data(), k3.data(), T, d, chunk,
                                              dx.data(), part.data());
                });
    std::vector<double> X = dbl(xln), K(k3.begin(), k3.end()), rx, gx, rk, gk;
    auto L = [&]() {
        double acc = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < d; c++) {
                    double pre = 0;
                    for (int j = 0; j < 3; j++)
                        if (t - j >= 0) pre += K[(size_t)c * 3 + j] * X[((size_t)b * T + t - j) * d + c];
                    acc += bf2f(du[((size_t)b * d + c) * T + t]) * silu_d(pre);
                }
        return acc;
    };
    for (size_t i = 0; i < X.size(); i += 7) { /* every 7th element: the loss is O(B T d) */
        rx.push_back(fd(X, i, L));
        gx.push_back(bf2f(dx[i]));
    }
    for (int c = 0; c < d; c++)
        for (int j = 0; j < 3; j++) {
            rk.push_back(fd(K, (size_t)c * 3 + j, L));
            double s = 0;
            for (int y = 0; y < B * nch; y++) s += part[(size_t)y * 3 * d + (size_t)c * 3 + j];
            gk.push_back(s);
        }
    check("short_conv_bwd dX~", rel_err(gx, rx), 1.0 / 128);
    check("short_conv_bwd dk3 (fp32 sums)", rel_err(gk, rk), 1e-4);
}

void slices_case() {
    const int d = 5, T = 40, km = 8;
    auto dkc = rndf((size_t)d * T, 41, -1.f, 2.f);
    std::vector<float> k3b((size_t)d * 3, -7.f), kmv((size_t)d * km, -7.f);
    emu_launch(1, 64, 0, [&] { dk_slices_kernel(dkc.data(), T, d, km, k3b.data(), kmv.data()); });
    long long bad = 0;
    for (int c = 0; c < d; c++) {
        for (int j = 0; j < 3; j++) bad += k3b[(size_t)c * 3 + j] != dkc[(size_t)c * T + j];
        for (int j = 0; j < km; j++) bad += kmv[(size_t)c * km + j] != dkc[(size_t)c * T + j];
    }
    check("dk_slices (elements wrong)", (double)bad, 0);
}

} // namespace

int main() {
    gate_case();
    rms_gate_case();
    qk_case();
    short_conv_case();
    slices_case();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
