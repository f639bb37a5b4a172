/* long_conv/fft: causal depthwise long convolution through cuFFT, the standard way (H3, Hyena,
 * MEGA, CHELA's own training code) and the baseline CHELA's fused kernels are measured against.
 *
 * ---- version index (llm.c style) ------------------------------------------------------------
 * Run:  chela-bench --ops long_conv --variants fft --seq 1k..64k
 * v1  cuFFT R2C, a product with the kernel's spectrum (made once in setup), C2R, between a pad
 *     and a truncate pass.  1.745 ms at T = 1k, 3.651 ms at 64k (H100, bf16, d 1024, 65536
 *     tokens): 17-20x its HBM floor.  profiles/NOTES.md, "long_conv".
 *
 *   y[b,c,t] = sum_{j<=t} k[c,j] x[b,c,t-j],   x [B,d,T] (run dtype), k [d,T] fp32, y [B,d,T]
 *
 * Zero-padding both to N >= 2T turns the circular convolution of the FFT into the linear one
 * (N >= 2T-1 suffices); the first T outputs are the causal ones.  N = 2*m with m the smallest
 * 7-smooth number >= T (2^a 3^b 5^c 7^d: cuFFT's fast radices), so N = 2T for T a power of two
 * and N is always even (a real transform of even length is half a complex one).
 *
 * ---- v1 in detail -----------------------------------------------------------------------------
 *
 * v1 (the only version).  Setup computes the kernel's spectrum once, since k is a parameter
 * fixed at inference time: K = R2C(k / N) (batch d), the 1/N of the unnormalised inverse
 * folded into it, stored as [d, N/2+1] complex; that pass is not timed.  Run enqueues five
 * passes on the stream:
 *   1. pad_convert_kernel: x (run dtype) -> fp32 real buffer [B*d, N], zeros for t >= T
 *      (rewritten every run: the inverse transform below lands in the same buffer).
 *      Each thread owns 8 consecutive samples: 16-byte loads and two float4 stores when
 *      T % 8 == 0 and N % 8 == 0, else 8 scalar coalesced accesses strided by 256.
 *   2. cufftExecR2C (plan batch B*d, out of place) -> spectrum buffer [B*d, N/2+1] complex.
 *   3. spectrum_mul_kernel: X *= K; a thread owns one (channel, bin), loads K once and walks
 *      the B batch rows (4 loads in flight), so K is read from HBM once, not B times.
 *   4. cufftExecC2R (out of place, overwrites the spectrum) -> real buffer.
 *   5. truncate_convert_kernel: the first T samples of each row -> y in the run dtype.
 * Plans are made in setup with auto-allocation off; one work area of the largest size any of
 * the three plans asked for is ours (the two run plans execute in order on one stream, so
 * they can share it) and is counted in workspace_bytes (estimated there with
 * cufftGetSizeMany64 on a fresh handle, since no plan exists yet).
 * Workspace: real 4*B*d*N + spectrum 8*B*d*(N/2+1) + kernel spectrum 8*d*(N/2+1) + cuFFT work.
 * Predicted cost, B*T = 65536, d = 1024, bf16, T = 64k (B = 1, N = 128k) on an H100:
 *   pad: read x 134 MB, write 537 MB; R2C: read 537 MB, write 537 MB (more if cuFFT needs two
 *   passes at this length); mul: 537 MB read + write, K 537 MB; C2R: as R2C; truncate: read
 *   268 MB, write y 134 MB.  ~ 4.3 GB at the least, 5-7 GB with multi-pass FFTs ->
 *   ~ 1.5-2.3 ms at ~3.0 TB/s, against the op's ideal 537 MB (x, k, y once) -> 0.18 ms.  At
 *   T = 1k (B = 64) the bytes are the same except K (8 MB, L2-resident) -> ~ 1.3-2 ms.
 *   FLOPs ~ 2 * 2.5 N log2 N per row ~ 22 GFLOP at T = 64k: memory-bound throughout.
 *   measured: 1.73-1.92 ms from 1k to 16k, 3.65 at 64k (the index above; ~1.3-2.3 predicted).
 *
 * ---- the backward (--pass bwd|fwdbwd) ---------------------------------------------------------
 *
 *   dX[b,c,s] = sum_{t>=s} k[c,t-s] dY[b,c,t]
 *   dK[c,j]   = sum_b sum_{t>=j} x[b,c,t-j] dY[b,c,t]
 *
 * Both are correlations, so both are products with a conjugate spectrum, circular at length N
 * and exact on the first T lags for the same reason as the forward (the padded halves are
 * zero): dX = C2R(conj(K/N) G) and dK = C2R(sum_b conj(X_b) G_b) / N, with G = R2C(dY).  The
 * training forward (setup saw s->pass != PASS_FWD) keeps X = R2C(x) in d_spec by writing the
 * product into a second spectrum buffer d_gspec (spectrum_mul_keep_kernel) instead of in
 * place; the kernel spectrum K/N is the forward's.  run_bwd enqueues seven passes (its
 * --breakdown stages):
 *   pad_dy  dY (run dtype) -> d_real, zero-padded (pass 1's kernel)
 *   r2c_dy  cufftExecR2C (the forward's plan) -> G in d_gspec
 *   mul     spectrum_bwd_kernel: a thread owns (channel, bin), loads K once, walks the batch:
 *           dKs += conj(X_b) G_b (the batch summed in the frequency domain, fp32), then
 *           G_b = conj(K) G_b in place; dKs (scaled by 1/N) -> d_kgspec [d, Nc]
 *   c2r_dx  cufftExecC2R (the forward's plan) d_gspec -> d_real
 *   out_dx  the first T samples of each row -> dX (run dtype)
 *   c2r_dk  cufftExecC2R, a plan of batch d, d_kgspec -> the first d rows of d_real
 *   out_dk  the first T samples -> dK (fp32)
 * X is only read, so run_bwd can be called again after one forward (variant.h).  Workspace
 * in training: the forward's + G [B*d, Nc] + dK's spectrum [d, Nc] complex.  Predicted at
 * T = 64k, B = 1, d = 1024 (N = 128k): about 2.5x the forward's bytes (two spectra read in
 * the product, two inverse transforms), ~4-6 ms on an H100; not yet measured.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cufft.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(long_conv_fft);
DECLARE_BWD_STAGES(long_conv_fft);
}

/* 0 forces the scalar pad / truncate paths (debugging a first GPU run). */
#define LC_VEC 1

#define LC_THREADS 256
#define LC_PER_THREAD 8
#define LC_PER_BLOCK (LC_THREADS * LC_PER_THREAD) /* samples per block in pad / truncate */
#define LC_MUL_UNROLL 4                           /* batch rows in flight in the product */

#include "dtype_device.cuh" /* to_f32 / from_f32 */

/* Kernels have internal linkage: other variants in the same binary define their own
 * *_kernel names. */
namespace {


/* ---- pass 1: convert + zero-pad ----------------------------------------------------------------
 * src [rows, T] -> dst [rows, N] fp32 (times scale; 1 at run time, 1/N for the kernel taps in
 * setup).  Grid 1D: blockIdx.x = row * n_blk + blk, n_blk = ceil(N / 2048).
 * VEC (T % 8 == 0, N % 8 == 0): thread owns n0 = 8*(blk*256 + tid) .. n0+7, which are either
 * all < T or all >= T; row starts are 16-byte aligned for both src and dst. */
template <typename Tin, bool VEC>
__global__ void __launch_bounds__(LC_THREADS)
    pad_convert_kernel(const Tin *__restrict__ src, float *__restrict__ dst, int T, int N,
                       int n_blk, float scale) {
    const int row = blockIdx.x / n_blk;
    const int blk = blockIdx.x - row * n_blk;
    const Tin *s = src + (size_t)row * T;
    float *o = dst + (size_t)row * N;
    if (VEC) {
        const int n0 = (blk * LC_THREADS + threadIdx.x) * LC_PER_THREAD;
        if (n0 >= N) return;
        float f[8];
        if (n0 < T) {
            load8(s + n0, f);
#pragma unroll
            for (int u = 0; u < 8; u++) f[u] *= scale;
        } else {
#pragma unroll
            for (int u = 0; u < 8; u++) f[u] = 0.0f;
        }
        store8(o + n0, f);
    } else {
#pragma unroll
        for (int u = 0; u < LC_PER_THREAD; u++) {
            const int n = blk * LC_PER_BLOCK + u * LC_THREADS + threadIdx.x;
            if (n < N) o[n] = (n < T) ? to_f32(s[n]) * scale : 0.0f;
        }
    }
}

/* ---- pass 3: X[b,c,:] *= K[c,:] ----------------------------------------------------------------
 * Grid 1D: blockIdx.x = c * n_fblk + fblk; a thread owns bin f of channel c and walks b, with
 * LC_MUL_UNROLL loads issued before their stores (a load can't pass a store to the same array
 * unless we say so). */
__global__ void __launch_bounds__(LC_THREADS)
    spectrum_mul_kernel(cufftComplex *__restrict__ X, const cufftComplex *__restrict__ K, int Nc,
                        int d, int B, int n_fblk) {
    const int c = blockIdx.x / n_fblk;
    const int f = (blockIdx.x - c * n_fblk) * LC_THREADS + threadIdx.x;
    if (f >= Nc) return;
    const float2 kk = __ldg(&K[(size_t)c * Nc + f]);
    const size_t bstride = (size_t)d * Nc;
    cufftComplex *p = X + (size_t)c * Nc + f;
    for (int b0 = 0; b0 < B; b0 += LC_MUL_UNROLL) {
        float2 z[LC_MUL_UNROLL];
#pragma unroll
        for (int u = 0; u < LC_MUL_UNROLL; u++)
            if (b0 + u < B) z[u] = p[(size_t)(b0 + u) * bstride];
#pragma unroll
        for (int u = 0; u < LC_MUL_UNROLL; u++) {
            if (b0 + u < B) {
                float2 r;
                r.x = z[u].x * kk.x - z[u].y * kk.y;
                r.y = z[u].x * kk.y + z[u].y * kk.x;
                p[(size_t)(b0 + u) * bstride] = r;
            }
        }
    }
}

/* ---- training forward: Y = X K into a second buffer, X kept for the backward ----------------
 * The pass-3 loop, out of place. */
__global__ void __launch_bounds__(LC_THREADS)
    spectrum_mul_keep_kernel(cufftComplex *__restrict__ Y, const cufftComplex *__restrict__ X,
                             const cufftComplex *__restrict__ K, int Nc, int d, int B,
                             int n_fblk) {
    const int c = blockIdx.x / n_fblk;
    const int f = (blockIdx.x - c * n_fblk) * LC_THREADS + threadIdx.x;
    if (f >= Nc) return;
    const float2 kk = __ldg(&K[(size_t)c * Nc + f]);
    const size_t bstride = (size_t)d * Nc, off = (size_t)c * Nc + f;
    for (int b0 = 0; b0 < B; b0 += LC_MUL_UNROLL) {
        float2 z[LC_MUL_UNROLL];
#pragma unroll
        for (int u = 0; u < LC_MUL_UNROLL; u++)
            if (b0 + u < B) z[u] = X[off + (size_t)(b0 + u) * bstride];
#pragma unroll
        for (int u = 0; u < LC_MUL_UNROLL; u++) {
            if (b0 + u < B) {
                float2 r;
                r.x = z[u].x * kk.x - z[u].y * kk.y;
                r.y = z[u].x * kk.y + z[u].y * kk.x;
                Y[off + (size_t)(b0 + u) * bstride] = r;
            }
        }
    }
}

/* ---- backward product: dKs[c] = inv_n sum_b conj(X_b) G_b;  G_b = conj(K) G_b -------------
 * Grid as pass 3.  K holds K/N already (setup), so the dX product needs no scale; the dK sum
 * gets inv_n = 1/N for the unnormalised inverse.  conj(a) b = (a.x b.x + a.y b.y) +
 * i (a.x b.y - a.y b.x). */
__global__ void __launch_bounds__(LC_THREADS)
    spectrum_bwd_kernel(cufftComplex *__restrict__ G, cufftComplex *__restrict__ dKs,
                        const cufftComplex *__restrict__ X, const cufftComplex *__restrict__ K,
                        int Nc, int d, int B, int n_fblk, float inv_n) {
    const int c = blockIdx.x / n_fblk;
    const int f = (blockIdx.x - c * n_fblk) * LC_THREADS + threadIdx.x;
    if (f >= Nc) return;
    const float2 kk = __ldg(&K[(size_t)c * Nc + f]);
    const size_t bstride = (size_t)d * Nc, off = (size_t)c * Nc + f;
    float2 acc = make_float2(0.f, 0.f);
    for (int b0 = 0; b0 < B; b0 += LC_MUL_UNROLL) {
        float2 g[LC_MUL_UNROLL], x[LC_MUL_UNROLL];
#pragma unroll
        for (int u = 0; u < LC_MUL_UNROLL; u++)
            if (b0 + u < B) {
                g[u] = G[off + (size_t)(b0 + u) * bstride];
                x[u] = __ldg(&X[off + (size_t)(b0 + u) * bstride]);
            }
#pragma unroll
        for (int u = 0; u < LC_MUL_UNROLL; u++) {
            if (b0 + u < B) {
                acc.x += x[u].x * g[u].x + x[u].y * g[u].y;
                acc.y += x[u].x * g[u].y - x[u].y * g[u].x;
                float2 r;
                r.x = kk.x * g[u].x + kk.y * g[u].y;
                r.y = kk.x * g[u].y - kk.y * g[u].x;
                G[off + (size_t)(b0 + u) * bstride] = r;
            }
        }
    }
    dKs[off] = make_float2(acc.x * inv_n, acc.y * inv_n);
}

/* ---- pass 5: truncate + convert ----------------------------------------------------------------
 * src [rows, N] fp32 -> y [rows, T] run dtype, first T samples.  Grid 1D: blockIdx.x =
 * row * n_blk + blk, n_blk = ceil(T / 2048).  VEC as in pass 1. */
template <typename Tout, bool VEC>
__global__ void __launch_bounds__(LC_THREADS)
    truncate_convert_kernel(const float *__restrict__ src, Tout *__restrict__ y, int T, int N,
                            int n_blk) {
    const int row = blockIdx.x / n_blk;
    const int blk = blockIdx.x - row * n_blk;
    const float *s = src + (size_t)row * N;
    Tout *o = y + (size_t)row * T;
    if (VEC) {
        const int n0 = (blk * LC_THREADS + threadIdx.x) * LC_PER_THREAD;
        if (n0 >= T) return;
        float f[8];
        load8(s + n0, f);
        store8(o + n0, f);
    } else {
#pragma unroll
        for (int u = 0; u < LC_PER_THREAD; u++) {
            const int n = blk * LC_PER_BLOCK + u * LC_THREADS + threadIdx.x;
            if (n < T) o[n] = from_f32<Tout>(s[n]);
        }
    }
}

} // namespace

/* ---- host side ----------------------------------------------------------------------------- */
typedef struct {
    shape_t s;
    int N, Nc;               /* transform length, complex bins N/2+1          */
    long long rows;          /* B*d                                           */
    float *d_real;           /* [B*d, N] fp32: padded input, then the output  */
    cufftComplex *d_spec;    /* [B*d, Nc]                                     */
    cufftComplex *d_kspec;   /* [d, Nc]: FFT(k / N), made in setup            */
    void *d_work;            /* cuFFT work area shared by all plans (ours)    */
    cufftHandle plan_fwd, plan_inv, plan_k;
    int have_fwd, have_inv, have_k;
    /* training (s.pass != PASS_FWD): X kept in d_spec, these for the product and the backward */
    int train;
    cufftComplex *d_gspec;   /* [B*d, Nc]: the forward's product, then dY's spectrum */
    cufftComplex *d_kgspec;  /* [d, Nc]: dK's spectrum                            */
    cufftHandle plan_kinv;   /* C2R, batch d                                      */
    int have_kinv;
} lc_state_t;

static int is_7smooth(long long m) {
    static const int primes[4] = {2, 3, 5, 7};
    for (int i = 0; i < 4; i++)
        while (m % primes[i] == 0) m /= primes[i];
    return m == 1;
}
/* N = 2 * (smallest 7-smooth m >= T): even, >= 2T, made of cuFFT's fast radices. */
static long long lc_fft_len(int T) {
    long long m = T < 1 ? 1 : T;
    while (!is_7smooth(m)) m++;
    return 2 * m;
}

/* One plan shape, used for making plans and for asking sizes, so the two cannot disagree. */
static cufftResult lc_plan_many(cufftHandle h, int make, long long N, long long batch,
                                cufftType type, size_t *work) {
    long long n[1] = {N};
    long long real_nembed[1] = {N};
    long long cplx_nembed[1] = {N / 2 + 1};
    const int r2c = (type == CUFFT_R2C);
    long long *in_nembed = r2c ? real_nembed : cplx_nembed;
    long long *out_nembed = r2c ? cplx_nembed : real_nembed;
    const long long idist = r2c ? N : N / 2 + 1;
    const long long odist = r2c ? N / 2 + 1 : N;
    if (make)
        return cufftMakePlanMany64(h, 1, n, in_nembed, 1, idist, out_nembed, 1, odist, type,
                                   batch, work);
    return cufftGetSizeMany64(h, 1, n, in_nembed, 1, idist, out_nembed, 1, odist, type, batch,
                              work);
}

static size_t lc_buffers_bytes(const shape_t *s) {
    const long long N = lc_fft_len(s->T), Nc = N / 2 + 1;
    const size_t rows = (size_t)s->B * s->d;
    const size_t train = s->pass != PASS_FWD ? (rows + (size_t)s->d) * (size_t)Nc : 0;
    return rows * (size_t)N * sizeof(float) + rows * (size_t)Nc * sizeof(cufftComplex) +
           (size_t)s->d * (size_t)Nc * sizeof(cufftComplex) + train * sizeof(cufftComplex);
}

/* Largest work area of the three plans, asked of cuFFT without making them.  If cuFFT cannot
 * answer, guess one spectrum buffer's worth (what a two-pass out-of-place FFT needs). */
static size_t lc_work_estimate(const shape_t *s) {
    const long long N = lc_fft_len(s->T);
    const long long rows = (long long)s->B * s->d;
    const size_t guess = (size_t)rows * (size_t)(N / 2 + 1) * sizeof(cufftComplex);
    const struct {
        long long batch;
        cufftType type;
    } cfg[4] = {{rows, CUFFT_R2C}, {rows, CUFFT_C2R}, {s->d, CUFFT_R2C}, {s->d, CUFFT_C2R}};
    size_t most = 0;
    for (int i = 0; i < (s->pass != PASS_FWD ? 4 : 3); i++) {
        cufftHandle h;
        if (cufftCreate(&h) != CUFFT_SUCCESS) return guess;
        size_t ws = 0;
        cufftResult r = cufftSetAutoAllocation(h, 0);
        if (r == CUFFT_SUCCESS) r = lc_plan_many(h, 0, N, cfg[i].batch, cfg[i].type, &ws);
        cufftDestroy(h);
        if (r != CUFFT_SUCCESS) return guess;
        if (ws > most) most = ws;
    }
    return most;
}

extern "C" const char *long_conv_fft_supports(const shape_t *s) {
    if (s->dtype != DTYPE_F32 && s->dtype != DTYPE_BF16 && s->dtype != DTYPE_F16)
        return "dtype must be fp32, bf16 or fp16";
    if (s->B < 1 || s->d < 1 || s->T < 1) return "empty shape";
    const long long N = lc_fft_len(s->T);
    if (N > INT_MAX / 2) return "T too large for one cuFFT transform";
    const long long rows = (long long)s->B * s->d;
    const long long pad_blocks = rows * ((N + LC_PER_BLOCK - 1) / LC_PER_BLOCK);
    const long long mul_blocks = (long long)s->d * ((N / 2 + 1 + LC_THREADS - 1) / LC_THREADS);
    if (pad_blocks > INT_MAX || mul_blocks > INT_MAX) return "B*d*T too large for a 1D grid";
    return NULL;
}

extern "C" size_t long_conv_fft_workspace_bytes(const shape_t *s) {
    return lc_buffers_bytes(s) + lc_work_estimate(s);
}

extern "C" void long_conv_fft_teardown(void *state) {
    lc_state_t *st = (lc_state_t *)state;
    if (!st) return;
    if (st->have_fwd) cufftDestroy(st->plan_fwd);
    if (st->have_inv) cufftDestroy(st->plan_inv);
    if (st->have_k) cufftDestroy(st->plan_k);
    if (st->d_work) cudaFree(st->d_work);
    if (st->d_real) cudaFree(st->d_real);
    if (st->d_spec) cudaFree(st->d_spec);
    if (st->d_kspec) cudaFree(st->d_kspec);
    if (st->have_kinv) cufftDestroy(st->plan_kinv);
    if (st->d_gspec) cudaFree(st->d_gspec);
    if (st->d_kgspec) cudaFree(st->d_kgspec);
    free(st);
}

static bool lc_vec(int T, int N) { return LC_VEC && T % 8 == 0 && N % 8 == 0; }

static int lc_setup_impl(lc_state_t *st, const io_t *io) {
    const shape_t *s = &st->s;
    const int d = s->d, T = s->T, N = st->N, Nc = st->Nc;
    const long long rows = st->rows;

    CUDA_CHECK(cudaMalloc((void **)&st->d_real, (size_t)rows * N * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&st->d_spec, (size_t)rows * Nc * sizeof(cufftComplex)));
    CUDA_CHECK(cudaMalloc((void **)&st->d_kspec, (size_t)d * Nc * sizeof(cufftComplex)));

    /* Plans with auto-allocation off: the work area is ours, one for all three. */
    size_t ws_fwd = 0, ws_inv = 0, ws_k = 0;
    CUFFT_CHECK(cufftCreate(&st->plan_fwd));
    st->have_fwd = 1;
    CUFFT_CHECK(cufftSetAutoAllocation(st->plan_fwd, 0));
    CUFFT_CHECK(lc_plan_many(st->plan_fwd, 1, N, rows, CUFFT_R2C, &ws_fwd));
    CUFFT_CHECK(cufftCreate(&st->plan_inv));
    st->have_inv = 1;
    CUFFT_CHECK(cufftSetAutoAllocation(st->plan_inv, 0));
    CUFFT_CHECK(lc_plan_many(st->plan_inv, 1, N, rows, CUFFT_C2R, &ws_inv));
    CUFFT_CHECK(cufftCreate(&st->plan_k));
    st->have_k = 1;
    CUFFT_CHECK(cufftSetAutoAllocation(st->plan_k, 0));
    CUFFT_CHECK(lc_plan_many(st->plan_k, 1, N, d, CUFFT_R2C, &ws_k));
    size_t ws = ws_fwd > ws_inv ? ws_fwd : ws_inv;
    if (ws_k > ws) ws = ws_k;
    if (st->train) { /* the backward's buffers and dK's inverse plan (batch d) */
        size_t ws_kinv = 0;
        CUDA_CHECK(cudaMalloc((void **)&st->d_gspec, (size_t)rows * Nc * sizeof(cufftComplex)));
        CUDA_CHECK(cudaMalloc((void **)&st->d_kgspec, (size_t)d * Nc * sizeof(cufftComplex)));
        CUFFT_CHECK(cufftCreate(&st->plan_kinv));
        st->have_kinv = 1;
        CUFFT_CHECK(cufftSetAutoAllocation(st->plan_kinv, 0));
        CUFFT_CHECK(lc_plan_many(st->plan_kinv, 1, N, d, CUFFT_C2R, &ws_kinv));
        if (ws_kinv > ws) ws = ws_kinv;
    }
    if (ws > 0) {
        CUDA_CHECK(cudaMalloc(&st->d_work, ws));
        CUFFT_CHECK(cufftSetWorkArea(st->plan_fwd, st->d_work));
        CUFFT_CHECK(cufftSetWorkArea(st->plan_inv, st->d_work));
        CUFFT_CHECK(cufftSetWorkArea(st->plan_k, st->d_work));
        if (st->train) CUFFT_CHECK(cufftSetWorkArea(st->plan_kinv, st->d_work));
    }

    /* Kernel spectrum, once: K = R2C(k / N) through the first d rows of the real buffer.
     * Default stream, then a device sync so any run stream sees it. */
    const int n_blk = (N + LC_PER_BLOCK - 1) / LC_PER_BLOCK;
    const float *k = (const float *)io->in[1];
    const float inv_n = 1.0f / (float)N;
    if (lc_vec(T, N))
        pad_convert_kernel<float, true><<<d * n_blk, LC_THREADS>>>(k, st->d_real, T, N, n_blk,
                                                                    inv_n);
    else
        pad_convert_kernel<float, false><<<d * n_blk, LC_THREADS>>>(k, st->d_real, T, N, n_blk,
                                                                     inv_n);
    CUDA_CHECK(cudaGetLastError());
    CUFFT_CHECK(cufftSetStream(st->plan_k, 0));
    CUFFT_CHECK(cufftExecR2C(st->plan_k, st->d_real, st->d_kspec));
    CUDA_CHECK(cudaDeviceSynchronize());
    CUFFT_CHECK(cufftDestroy(st->plan_k));
    st->have_k = 0;
    return 0;
}

extern "C" int long_conv_fft_setup(const shape_t *s, const io_t *io, void **state) {
    *state = NULL;
    const char *why = long_conv_fft_supports(s);
    if (why) BENCH_FAIL("long_conv/fft: unsupported shape: %s", why);
    lc_state_t *st = (lc_state_t *)calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("long_conv/fft: out of host memory");
    st->s = *s;
    st->N = (int)lc_fft_len(s->T);
    st->Nc = st->N / 2 + 1;
    st->rows = (long long)s->B * s->d;
    st->train = s->pass != PASS_FWD;
    if (lc_setup_impl(st, io) != 0) {
        long_conv_fft_teardown(st); /* keeps the recorded error */
        return -1;
    }
    *state = st;
    return 0;
}

template <typename Tact>
static int lc_run_typed(const lc_state_t *st, const io_t *io, cudaStream_t stream) {
    const shape_t *s = &st->s;
    const int T = s->T, N = st->N, Nc = st->Nc;
    const bool vec = lc_vec(T, N);
    const Tact *x = (const Tact *)io->in[0];
    Tact *y = (Tact *)io->out;

    CUFFT_CHECK(cufftSetStream(st->plan_fwd, stream));
    CUFFT_CHECK(cufftSetStream(st->plan_inv, stream));

    const int n_blk_pad = (N + LC_PER_BLOCK - 1) / LC_PER_BLOCK;
    const unsigned pad_blocks = (unsigned)(st->rows * n_blk_pad);
    if (vec)
        pad_convert_kernel<Tact, true><<<pad_blocks, LC_THREADS, 0, stream>>>(
            x, st->d_real, T, N, n_blk_pad, 1.0f);
    else
        pad_convert_kernel<Tact, false><<<pad_blocks, LC_THREADS, 0, stream>>>(
            x, st->d_real, T, N, n_blk_pad, 1.0f);
    CUDA_CHECK(cudaGetLastError());

    CUFFT_CHECK(cufftExecR2C(st->plan_fwd, st->d_real, st->d_spec));

    const int n_fblk = (Nc + LC_THREADS - 1) / LC_THREADS;
    cufftComplex *prod = st->d_spec;
    if (st->train) { /* X stays in d_spec for the backward */
        prod = st->d_gspec;
        spectrum_mul_keep_kernel<<<(unsigned)s->d * n_fblk, LC_THREADS, 0, stream>>>(
            prod, st->d_spec, st->d_kspec, Nc, s->d, s->B, n_fblk);
    } else {
        spectrum_mul_kernel<<<(unsigned)s->d * n_fblk, LC_THREADS, 0, stream>>>(
            st->d_spec, st->d_kspec, Nc, s->d, s->B, n_fblk);
    }
    CUDA_CHECK(cudaGetLastError());

    CUFFT_CHECK(cufftExecC2R(st->plan_inv, prod, st->d_real));

    const int n_blk_out = (T + LC_PER_BLOCK - 1) / LC_PER_BLOCK;
    const unsigned out_blocks = (unsigned)(st->rows * n_blk_out);
    if (vec)
        truncate_convert_kernel<Tact, true><<<out_blocks, LC_THREADS, 0, stream>>>(
            st->d_real, y, T, N, n_blk_out);
    else
        truncate_convert_kernel<Tact, false><<<out_blocks, LC_THREADS, 0, stream>>>(
            st->d_real, y, T, N, n_blk_out);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" int long_conv_fft_run(void *state, const io_t *io, cudaStream_t stream) {
    const lc_state_t *st = (const lc_state_t *)state;
    if (!st) BENCH_FAIL("long_conv/fft: run without setup");
    switch (st->s.dtype) {
    case DTYPE_BF16: return lc_run_typed<__nv_bfloat16>(st, io, stream);
    case DTYPE_F16: return lc_run_typed<__half>(st, io, stream);
    case DTYPE_F32: return lc_run_typed<float>(st, io, stream);
    }
    BENCH_FAIL("long_conv/fft: unknown dtype %d", (int)st->s.dtype);
}

/* "cufft N=2048 vec=1": the cuFFT transform length (2 x the 7-smooth m >= T) and whether the
 * pad / truncate passes move 8 samples a thread as vectors. */
extern "C" void long_conv_fft_config(const void *state, char *buf, size_t len) {
    const lc_state_t *st = (const lc_state_t *)state;
    if (!len) return;
    buf[0] = 0;
    if (st)
        snprintf(buf, len, "cufft N=%d vec=%d%s", st->N, lc_vec(st->s.T, st->N) ? 1 : 0,
                 st->train ? " keep_x=1" : "");
}

/* ---- the backward ----------------------------------------------------------------------- */

extern "C" const char *const long_conv_fft_bwd_stage_names[] = {
    "pad_dy", "r2c_dy", "mul", "c2r_dx", "out_dx", "c2r_dk", "out_dk", NULL};
enum { LCB_PAD, LCB_R2C, LCB_MUL, LCB_C2R_DX, LCB_OUT_DX, LCB_C2R_DK, LCB_OUT_DK, LCB_N };

template <typename Tact>
static int lc_bwd_stage_typed(const lc_state_t *st, const grad_io_t *g, int stage,
                              cudaStream_t stream) {
    const shape_t *s = &st->s;
    const int T = s->T, N = st->N, Nc = st->Nc;
    const bool vec = lc_vec(T, N);
    const int n_blk_pad = (N + LC_PER_BLOCK - 1) / LC_PER_BLOCK;
    const int n_blk_out = (T + LC_PER_BLOCK - 1) / LC_PER_BLOCK;
    const int n_fblk = (Nc + LC_THREADS - 1) / LC_THREADS;
    switch (stage) {
    case LCB_PAD: {
        const Tact *dy = (const Tact *)g->dy;
        const unsigned blocks = (unsigned)(st->rows * n_blk_pad);
        if (vec)
            pad_convert_kernel<Tact, true><<<blocks, LC_THREADS, 0, stream>>>(
                dy, st->d_real, T, N, n_blk_pad, 1.0f);
        else
            pad_convert_kernel<Tact, false><<<blocks, LC_THREADS, 0, stream>>>(
                dy, st->d_real, T, N, n_blk_pad, 1.0f);
        CUDA_CHECK(cudaGetLastError());
        return 0;
    }
    case LCB_R2C:
        CUFFT_CHECK(cufftSetStream(st->plan_fwd, stream));
        CUFFT_CHECK(cufftExecR2C(st->plan_fwd, st->d_real, st->d_gspec));
        return 0;
    case LCB_MUL:
        spectrum_bwd_kernel<<<(unsigned)s->d * n_fblk, LC_THREADS, 0, stream>>>(
            st->d_gspec, st->d_kgspec, st->d_spec, st->d_kspec, Nc, s->d, s->B, n_fblk,
            1.0f / (float)N);
        CUDA_CHECK(cudaGetLastError());
        return 0;
    case LCB_C2R_DX:
        CUFFT_CHECK(cufftSetStream(st->plan_inv, stream));
        CUFFT_CHECK(cufftExecC2R(st->plan_inv, st->d_gspec, st->d_real));
        return 0;
    case LCB_OUT_DX: {
        Tact *dx = (Tact *)g->grad[0];
        const unsigned blocks = (unsigned)(st->rows * n_blk_out);
        if (vec)
            truncate_convert_kernel<Tact, true><<<blocks, LC_THREADS, 0, stream>>>(
                st->d_real, dx, T, N, n_blk_out);
        else
            truncate_convert_kernel<Tact, false><<<blocks, LC_THREADS, 0, stream>>>(
                st->d_real, dx, T, N, n_blk_out);
        CUDA_CHECK(cudaGetLastError());
        return 0;
    }
    case LCB_C2R_DK: /* into the first d rows of d_real: dX is out by now */
        CUFFT_CHECK(cufftSetStream(st->plan_kinv, stream));
        CUFFT_CHECK(cufftExecC2R(st->plan_kinv, st->d_kgspec, st->d_real));
        return 0;
    case LCB_OUT_DK: {
        float *dk = (float *)g->grad[1];
        const unsigned blocks = (unsigned)((long long)s->d * n_blk_out);
        if (vec)
            truncate_convert_kernel<float, true><<<blocks, LC_THREADS, 0, stream>>>(
                st->d_real, dk, T, N, n_blk_out);
        else
            truncate_convert_kernel<float, false><<<blocks, LC_THREADS, 0, stream>>>(
                st->d_real, dk, T, N, n_blk_out);
        CUDA_CHECK(cudaGetLastError());
        return 0;
    }
    }
    BENCH_FAIL("long_conv/fft: no backward stage %d", stage);
}

extern "C" int long_conv_fft_run_bwd_stage(void *state, const io_t *io, const grad_io_t *g,
                                           int stage, cudaStream_t stream) {
    (void)io;
    const lc_state_t *st = (const lc_state_t *)state;
    if (!st || !st->train) BENCH_FAIL("long_conv/fft: backward without a training setup");
    switch (st->s.dtype) {
    case DTYPE_BF16: return lc_bwd_stage_typed<__nv_bfloat16>(st, g, stage, stream);
    case DTYPE_F16: return lc_bwd_stage_typed<__half>(st, g, stage, stream);
    case DTYPE_F32: return lc_bwd_stage_typed<float>(st, g, stage, stream);
    }
    BENCH_FAIL("long_conv/fft: unknown dtype %d", (int)st->s.dtype);
}

extern "C" int long_conv_fft_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                                     cudaStream_t stream) {
    for (int i = 0; i < LCB_N; i++)
        if (long_conv_fft_run_bwd_stage(state, io, g, i, stream)) return -1;
    return 0;
}

/* Each stage's nominal FLOPs (a real transform 2.5 N log2 N, a complex product 6, a
 * product-accumulate 8) and fewest bytes (what it must read and write once). */
extern "C" void long_conv_fft_bwd_stage_cost(const shape_t *s, int stage, double *flops,
                                             double *bytes) {
    const double N = (double)lc_fft_len(s->T), Nc = N / 2 + 1, T = s->T;
    const double rows = (double)s->B * s->d, d = s->d, esz = (double)dtype_size(s->dtype);
    const double fft = 2.5 * N * log2(N), cplx = 8.0;
    *flops = 0;
    switch (stage) {
    case LCB_PAD: *bytes = rows * (T * esz + N * 4); break;
    case LCB_R2C: *flops = rows * fft; *bytes = rows * (N * 4 + Nc * cplx); break;
    case LCB_MUL:
        *flops = rows * Nc * 14.0;
        *bytes = rows * Nc * cplx * 3 + d * Nc * cplx * 2; /* G, X read, G written; K, dKs */
        break;
    case LCB_C2R_DX: *flops = rows * fft; *bytes = rows * (Nc * cplx + N * 4); break;
    case LCB_OUT_DX: *bytes = rows * T * (4 + esz); break;
    case LCB_C2R_DK: *flops = d * fft; *bytes = d * (Nc * cplx + N * 4); break;
    default: *bytes = d * T * 8; break;
    }
}
