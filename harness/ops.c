/* ops.c: the op table: tensors, FLOPs, ideal bytes and reference for each op.
 *
 * FLOPs are defined here once per op, never per implementation (FlashAttention's
 * habit), so TFLOP/s compares implementations of one op on the same footing.
 * Ideal bytes are the same for every op: each input read once and the output
 * written once, in their storage types (tensor_bytes); a variant that re-reads
 * or materialises intermediates shows it as hbm_ratio > 1. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "reference.h"
#include "settings.h"

static tensor_desc_t act(const char *name, size_t elems, float scale) {
    tensor_desc_t t = {.name = name, .elems = elems, .store = STORE_ACT, .init = INIT_UNIFORM,
                       .scale = scale};
    return t;
}
/* A GEMM weight: stored in the run's dtype like an activation, but a parameter (its
 * gradient is fp32, op.h). */
static tensor_desc_t weight(const char *name, size_t elems, float scale) {
    tensor_desc_t t = act(name, elems, scale);
    t.param = 1;
    return t;
}
/* fp32 tensors are parameters here: conv kernels, biases, affine coefficients. */
static tensor_desc_t f32(const char *name, size_t elems, float scale) {
    tensor_desc_t t = {.name = name, .elems = elems, .store = STORE_F32, .init = INIT_UNIFORM,
                       .scale = scale, .param = 1};
    return t;
}
static tensor_desc_t gain(const char *name, size_t elems) {
    tensor_desc_t t = {.name = name, .elems = elems, .store = STORE_F32, .init = INIT_OFFSET,
                       .scale = 0.1f, .offset = 1.0f, .param = 1};
    return t;
}
/* A long kernel: random taps decaying as exp(-j/tau).  tau = T/16 keeps it long
 * (it still spans thousands of taps at T = 64k) while fp32 FFT and direct
 * summation agree to tolerance (chela-spec.md); the amplitude 1/sqrt(tau) keeps
 * outputs O(1) at every T. */
static tensor_desc_t long_kernel(const char *name, int d, int T) {
    float tau = fmaxf(4.0f, (float)T / 16.0f);
    tensor_desc_t t = {.name = name, .elems = (size_t)d * (size_t)T, .store = STORE_F32,
                       .init = INIT_DECAY, .scale = 1.0f / sqrtf(tau), .tau = tau, .row_len = T,
                       .param = 1};
    return t;
}

size_t tensor_bytes(const tensor_desc_t *t, dtype_t a) {
    return t->elems * (t->store == STORE_F32 ? 4 : dtype_size(a));
}

/* op.h states the rule per pass: inputs (and dy) read once, the output and the gradients
 * written once. */
static double generic_ideal_bytes(const op_desc_t *op, const shape_t *s) {
    tensor_desc_t in[OP_MAX_INPUTS], out;
    int n = op->describe(s, in, &out);
    const double out_bytes = (double)tensor_bytes(&out, s->dtype);
    double bytes = s->pass == PASS_BWD ? 0 : out_bytes; /* the output written */
    if (s->pass != PASS_FWD) bytes += out_bytes;         /* dy read           */
    for (int i = 0; i < n; i++) {
        bytes += (double)tensor_bytes(&in[i], s->dtype);
        if (s->pass != PASS_FWD) { /* its gradient written, fp32 for a parameter */
            tensor_desc_t g = in[i];
            g.store = grad_storage(&in[i]);
            bytes += (double)tensor_bytes(&g, s->dtype);
        }
    }
    return bytes;
}

static double sample_tmax(const sample_t *m) { return m->n_t ? (double)m->t[m->n_t - 1] + 1 : 0; }
static double sample_tsum(const sample_t *m) {
    double a = 0;
    for (int i = 0; i < m->n_t; i++) a += (double)m->t[i] + 1;
    return a;
}

/* Nominal FLOPs of a causal long convolution done the fast way: two real FFTs of
 * length N = 2T (forward of x, inverse of the product; the kernel's spectrum is a
 * parameter, precomputed) at 2.5 N log2 N each, plus the complex pointwise
 * product (6 flops per bin).  The direct sum, T^2 MACs per channel, is not the
 * op's cost: no sensible implementation pays it at T = 64k. */
static double long_conv_flops_per_channel(int T) {
    double N = 2.0 * T;
    return 2.0 * 2.5 * N * log2(N) + 6.0 * (N / 2 + 1);
}

/* The backward of the same convolution done the same way, per batch row of a channel and
 * per channel (long_conv_bwd_flops): dX = k (*) dY and dK = sum_b x_b (*) dY_b are
 * correlations, products with conjugate spectra.  Per batch row: the forward transform of
 * dY and the inverse of dX's spectrum (2 x 2.5 N log2 N), the product conj(K) G (6 flops a
 * bin) and the accumulation of conj(X_b) G_b into dK's spectrum (8 flops a bin); per
 * channel, one inverse transform of dK's spectrum (the batch is summed in the frequency
 * domain).  x's spectrum is the forward's (a training forward keeps it); an implementation
 * that recomputes it pays more than the op's count. */
static double long_conv_bwd_flops(double B, double d, int T) {
    const double N = 2.0 * T, fft = 2.5 * N * log2(N);
    return B * d * (2.0 * fft + 14.0 * (N / 2 + 1)) + d * fft;
}

/* ---------------- linear_attn ---------------- */
static int la_describe(const shape_t *s, tensor_desc_t *in, tensor_desc_t *out) {
    size_t bht = (size_t)s->B * s->H * s->T;
    in[0] = act("q", bht * s->dk, 1.0f);
    in[1] = act("k", bht * s->dk, 1.0f);
    in[2] = act("v", bht * s->dv, 1.0f);
    *out = act("o", bht * s->dv, 0);
    return 3;
}
/* State form: per token, S += k^T v (dk*dv MACs) and o = q S (dk*dv MACs). */
static double la_flops(const shape_t *s) { return 4.0 * s->B * s->H * (double)s->T * s->dk * s->dv; }
/* Backward, state form: per token, the suffix state R += q'^T dO (dk*dv MACs) and three
 * contractions with a dk x dv state, dQ = dO S^T, dK = v R^T, dV = k R (dk*dv MACs each):
 * 4 dk dv MACs, twice the forward (fwdbwd: 3x).  S_t is the forward's (kept or rebuilt:
 * a rebuild is the implementation's cost, not the op's). */
static double la_flops_bwd(const shape_t *s) { return 2.0 * la_flops(s); }
static double la_cost(const shape_t *s, const sample_t *m) {
    double per_seq = (s->causal ? sample_tmax(m) : s->T) * s->dk * m->n_col + m->n_t * (double)s->dk * m->n_col;
    return per_seq * m->n_seq;
}
static int attn_seqs(const shape_t *s) { return s->B * s->H; }
/* [B,H,T,cols] with seq = b*H + h */
static size_t attn_index(const shape_t *s, int seq, int t, int col, int cols) {
    return ((size_t)seq * s->T + (size_t)t) * (size_t)cols + (size_t)col;
}
static size_t la_out_index(const shape_t *s, int seq, int t, int col) {
    return attn_index(s, seq, t, col, s->dv);
}
static size_t sa_out_index(const shape_t *s, int seq, int t, int col) {
    return attn_index(s, seq, t, col, s->dk);
}
static int la_cols(const shape_t *s) { return s->dv; }

/* ---------------- softmax_attn ---------------- */
static int sa_describe(const shape_t *s, tensor_desc_t *in, tensor_desc_t *out) {
    size_t bht = (size_t)s->B * s->H * s->T;
    in[0] = act("q", bht * s->dk, 1.0f);
    in[1] = act("k", bht * s->dk, 1.0f);
    in[2] = act("v", bht * s->dk, 1.0f);
    *out = act("o", bht * s->dk, 0);
    return 3;
}
/* 4 T^2 D per head (QK^T and PV), halved by the causal mask (FlashAttention's
 * count): 2 T^2 D causal, 4 T^2 D with --noncausal. */
static double sa_flops(const shape_t *s) {
    return (s->causal ? 2.0 : 4.0) * s->B * s->H * (double)s->T * s->T * s->dk;
}
/* Backward: FlashAttention-2's count, 2.5x the forward: five T x T x D matmuls (S = QK^T
 * recomputed, dP = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q) against the forward's two,
 * halved by the mask alike; fwdbwd is 3.5x the forward. */
static double sa_flops_bwd(const shape_t *s) { return 2.5 * sa_flops(s); }
static double sa_cost(const shape_t *s, const sample_t *m) {
    const double keys = s->causal ? sample_tsum(m) : (double)m->n_t * s->T;
    return keys * (s->dk + m->n_col) * (double)m->n_seq;
}
static int sa_cols(const shape_t *s) { return s->dk; }

/* ---------------- long_conv ---------------- */
static int lc_describe(const shape_t *s, tensor_desc_t *in, tensor_desc_t *out) {
    in[0] = act("x", (size_t)s->B * s->d * s->T, 1.0f);
    in[1] = long_kernel("k", s->d, s->T);
    *out = act("y", (size_t)s->B * s->d * s->T, 0);
    return 2;
}
static double lc_flops(const shape_t *s) {
    return (double)s->B * s->d * long_conv_flops_per_channel(s->T);
}
static double lc_flops_bwd(const shape_t *s) { return long_conv_bwd_flops(s->B, s->d, s->T); }
static double lc_cost(const shape_t *s, const sample_t *m) {
    (void)s;
    return sample_tsum(m) * m->n_col * (double)m->n_seq;
}
static int conv_seqs(const shape_t *s) { return s->B; }
static int conv_cols(const shape_t *s) { return s->d; }
/* [B,d,T] with seq = b, col = channel */
static size_t conv_out_index(const shape_t *s, int seq, int t, int col) {
    return ((size_t)seq * s->d + (size_t)col) * (size_t)s->T + (size_t)t;
}
/* chela: [B,T,d] */
static size_t chela_out_index(const shape_t *s, int seq, int t, int col) {
    return ((size_t)seq * s->T + (size_t)t) * (size_t)s->d + (size_t)col;
}

/* ---------------- short_long_conv ---------------- */
static int slc_describe(const shape_t *s, tensor_desc_t *in, tensor_desc_t *out) {
    int km = shape_km(s->T);
    in[0] = act("x", (size_t)s->B * s->d * s->T, 1.0f);
    in[1] = f32("k3", (size_t)s->d * 3, 0.5f);
    in[2] = long_kernel("k_long", s->d, s->T);
    in[3] = f32("k3b", (size_t)s->d * 3, 0.5f);
    in[4] = f32("km", (size_t)s->d * km, 0.3f);
    *out = act("z", (size_t)s->B * s->d * s->T, 0);
    return 5;
}
/* One long conv (the reparameterized form: all the op needs) plus the short conv
 * before SiLU (3 taps) at 2 flops a tap. */
static double slc_flops(const shape_t *s) {
    return (double)s->B * s->d * (long_conv_flops_per_channel(s->T) + 2.0 * 3 * s->T);
}
/* Backward: the long conv's backward on u with the merged kernel (dU and dKc; the branch
 * kernels' gradients are slices of dKc, free), then the short conv's: SiLU' on k3 * x
 * recomputed (6 flops an element, as the forward's short conv), dX = k3 (*) dpre and dk3
 * (6 flops an element each). */
static double slc_flops_bwd(const shape_t *s) {
    return long_conv_bwd_flops(s->B, s->d, s->T) + 3.0 * 6.0 * s->B * s->d * (double)s->T;
}
static double slc_cost(const shape_t *s, const sample_t *m) {
    int km = shape_km(s->T);
    return (sample_tsum(m) + 3.0 * sample_tmax(m) + m->n_t * (3.0 + km)) * m->n_col * (double)m->n_seq;
}

/* ---------------- chela ---------------- */
static int chela_describe(const shape_t *s, tensor_desc_t *in, tensor_desc_t *out) {
    size_t d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v, T = (size_t)s->T;
    size_t np = z + v + 2 * d;
    in[CHELA_IN_X] = act("x", (size_t)s->B * T * d, 1.0f);
    in[CHELA_IN_LN1_G] = gain("ln1_g", d);
    in[CHELA_IN_LN1_B] = f32("ln1_b", d, 0.1f);
    in[CHELA_IN_K3] = f32("k3", d * 3, 0.5f);
    in[CHELA_IN_KLONG] = long_kernel("k_long", s->d, s->T);
    in[CHELA_IN_K3B] = f32("k3b", d * 3, 0.5f);
    in[CHELA_IN_KM] = f32("km", d * (size_t)shape_km(s->T), 0.3f);
    in[CHELA_IN_WPROJ] = weight("w_proj", d * np, 1.0f / sqrtf((float)d));
    in[CHELA_IN_BPROJ] = f32("b_proj", np, 0.1f);
    in[CHELA_IN_KAPPA_Q] = gain("kappa_q", z);
    in[CHELA_IN_MU_Q] = f32("mu_q", z, 0.1f);
    in[CHELA_IN_KAPPA_K] = gain("kappa_k", z);
    in[CHELA_IN_MU_K] = f32("mu_k", z, 0.1f);
    in[CHELA_IN_WV] = weight("w_v", d * v, 1.0f / sqrtf((float)d));
    in[CHELA_IN_BV] = f32("b_v", v, 0.1f);
    in[CHELA_IN_UH] = weight("u_h", v * d, 1.0f / sqrtf((float)v));
    in[CHELA_IN_BH] = f32("b_h", d, 0.1f);
    in[CHELA_IN_LN2_G] = gain("ln2_g", d);
    in[CHELA_IN_LN2_B] = f32("ln2_b", d, 0.1f);
    in[CHELA_IN_W1] = weight("w1", d * 2 * d, 1.0f / sqrtf((float)d));
    in[CHELA_IN_W2] = weight("w2", 2 * d * d, 1.0f / sqrtf(2.0f * (float)d));
    *out = act("y", (size_t)s->B * T * d, 0);
    return CHELA_N_IN;
}
static double chela_gemm_macs_per_token(const shape_t *s) {
    double d = s->d, z = s->z, v = s->v;
    return d * (z + v + 2 * d) /* fused projection */ + d * v /* V */ + v * d /* Uh */
           + d * 2 * d + 2 * d * d /* FFN */;
}
/* GEMMs (2 flops a MAC) + linear attention (state form) + the long conv. */
static double chela_flops(const shape_t *s) {
    double tokens = (double)s->B * s->T;
    return tokens * (2.0 * chela_gemm_macs_per_token(s) + 4.0 * s->z * s->v) +
           (double)s->B * s->d * long_conv_flops_per_channel(s->T);
}
/* Backward: the GEMMs twice (data and weight gradients), the attention's backward as
 * linear_attn counts it (2x its forward), the long conv's backward as long_conv counts it,
 * plus the short conv's (as short_long_conv's); the norms', gates' and biases' passes are
 * not counted, as the forward's are not. */
static double chela_flops_bwd(const shape_t *s) {
    double tokens = (double)s->B * s->T;
    return tokens * (4.0 * chela_gemm_macs_per_token(s) + 8.0 * s->z * s->v) +
           long_conv_bwd_flops(s->B, s->d, s->T) + 3.0 * 6.0 * s->B * s->d * (double)s->T;
}
/* Whole rows up to the last sampled t: GEMMs per row, direct long conv (t^2/2 per
 * channel), linear attention with the full state. */
static double chela_cost(const shape_t *s, const sample_t *m) {
    double rows = sample_tmax(m);
    return m->n_seq * (rows * (chela_gemm_macs_per_token(s) + 2.0 * s->z * s->v) +
                       s->d * rows * rows / 2);
}

/* ---------------- transformer ----------------
 * The layer-level baseline: a pre-LayerNorm Transformer layer of CHELA's width d,
 * H = d / dk heads of dk = dv = D = 64 (make_shape), causal.  Layout x, y [B,T,d].
 *   X~ = LayerNorm1(X)                   gain/bias fp32, eps CHELA_LN_EPS, biased variance
 *   [Q|K|V] = X~ . Wqkv + bqkv           Wqkv [d,3d] act, [in,out] row-major; bqkv [3d] fp32
 *   A_h = softmax_causal(Q_h K_h^T / sqrt(D)) V_h   head h = columns h*D..h*D+D-1 of Q, K, V
 *   Y  = X + A . Wo + bo                 Wo [d,d]
 *   Y' = Y + GELU(LayerNorm2(Y) . W1 + b1) . W2 + b2    W1 [d,4d], W2 [4d,d], GELU exact (erf)
 * Weights 12 d^2 (CHELA's layer: about 12.4 d^2 at d = 1024, z = 128, v = 2d).  Weights
 * U[-1,1) / sqrt(fan_in), biases 0.1 U, gains 1 + 0.1 U, as for chela. */
static int tf_describe(const shape_t *s, tensor_desc_t *in, tensor_desc_t *out) {
    const size_t d = (size_t)s->d, bt = (size_t)s->B * (size_t)s->T;
    const float w_d = 1.0f / sqrtf((float)d), w_4d = 1.0f / sqrtf(4.0f * (float)d);
    in[TRANSFORMER_IN_X] = act("x", bt * d, 1.0f);
    in[TRANSFORMER_IN_LN1_G] = gain("ln1_g", d);
    in[TRANSFORMER_IN_LN1_B] = f32("ln1_b", d, 0.1f);
    in[TRANSFORMER_IN_WQKV] = weight("w_qkv", d * 3 * d, w_d);
    in[TRANSFORMER_IN_BQKV] = f32("b_qkv", 3 * d, 0.1f);
    in[TRANSFORMER_IN_WO] = weight("w_o", d * d, w_d);
    in[TRANSFORMER_IN_BO] = f32("b_o", d, 0.1f);
    in[TRANSFORMER_IN_LN2_G] = gain("ln2_g", d);
    in[TRANSFORMER_IN_LN2_B] = f32("ln2_b", d, 0.1f);
    in[TRANSFORMER_IN_W1] = weight("w1", d * 4 * d, w_d);
    in[TRANSFORMER_IN_B1] = f32("b1", 4 * d, 0.1f);
    in[TRANSFORMER_IN_W2] = weight("w2", 4 * d * d, w_4d);
    in[TRANSFORMER_IN_B2] = f32("b2", d, 0.1f);
    *out = act("y", bt * d, 0);
    return TRANSFORMER_N_IN;
}
/* The GEMMs, 12 d^2 MACs a token (QKV 3, Wo 1, FFN 8), plus the causal attention
 * counted as softmax_attn counts it (2 B H T^2 D: QK^T and PV, halved by the mask). */
static double tf_flops(const shape_t *s) {
    const double d = s->d, tokens = (double)s->B * s->T;
    return tokens * 2.0 * 12.0 * d * d + sa_flops(s);
}
/* Backward: the GEMMs twice (each product's data and weight gradients), the attention's
 * backward as softmax_attn counts it (2.5x its forward); the norms' and biases' passes are
 * not counted, as the forward's are not. */
static double tf_flops_bwd(const shape_t *s) {
    const double d = s->d, tokens = (double)s->B * s->T;
    return 2.0 * tokens * 2.0 * 12.0 * d * d + sa_flops_bwd(s);
}
/* What ref_transformer spends per sampled sequence: LayerNorm1 and the K, V columns
 * (2 d^2) for every row up to the last sampled t; for each sampled row, LayerNorm1
 * again, Q (d^2), the attention of all H heads over t+1 keys (scores and PV, 2 d a
 * key), Wo (d^2), LayerNorm2, W1 (4 d^2) and W2 for the sampled columns only. */
static double tf_cost(const shape_t *s, const sample_t *m) {
    const double d = s->d;
    return m->n_seq * (sample_tmax(m) * (2.0 * d * d + d) + m->n_t * (6.0 * d * d + 2.0 * d) +
                       sample_tsum(m) * 2.0 * d + m->n_t * 4.0 * d * m->n_col);
}

/* The Transformer layer's heads are d / 64 wide-64 heads: d must split into them. */
static const char *tf_shape_problem(const shape_t *s, char *buf, size_t len) {
    if (s->dk > 0 && s->d % s->dk == 0 && s->H * s->dk == s->d) return NULL;
    snprintf(buf, len, "d = %d is not a multiple of the head dim %d", s->d, s->dk);
    return buf;
}

/* ---------------- mega ----------------
 * MEGA's gated attention layer (chela-spec.md, "The hybrid baseline"), single head, causal,
 * layout x, y [B,T,d]:
 *   X~ = LayerNorm1(X)
 *   X' = EMA(X~): per channel c and expansion dim j < h = MEGA_EMA_H,
 *        a = sigmoid(alpha), g = sigmoid(delta), h_t = a beta x_t + (1 - a g) h_{t-1},
 *        x'_t = sum_j eta_j h_{t,j}; the same as the causal conv with the kernel
 *        k[t] = sum_j eta_j a_j beta_j (1 - a_j g_j)^t
 *   [Zq | G | F | Hz] = X' . [Wz | Wg | Wf | Wh] + b       one fused GEMM, widths z, v, d, d
 *   Zq = SiLU(Zq);  Q = kq . Zq + mq;  K = kk . Zq + mk;  V = SiLU(X~ . Wv + bv)
 *   O  = softmax attention of Q, K, V (scale 1/sqrt(z)), causal within chunks of c tokens
 *        (mega_chunk: the setting of that name, auto = 1024, at most T; the last chunk
 *        partial), no term across chunks
 *   gamma = SiLU(G);  phi = sigmoid(F);  H^ = SiLU(Hz + (gamma . O) . Uh + bh)
 *   Y  = phi . H^ + (1 - phi) . X;   Y' = Y + W2 . SiLU(W1 . LayerNorm2(Y))   (FFN as chela's)
 * Weights, biases, kappa/mu and norms are filled as chela's.  The EMA's parameters, chosen so
 * that its kernel is long and yet its fp32 FFT agrees with direct summation:
 *   alpha (pre-sigmoid) -4 + 4u: a in [3.4e-4, 0.5], log-uniform where it is small;
 *   delta (pre-sigmoid)  2 +  u: g in [0.73, 0.95];
 *   so the decay rates a g span [2.4e-4, 0.48]: time constants 1/(a g) from 2 to ~4100
 *   tokens, the same longest decay (T/16 at T = 64k) as the long conv ops' kernels, whose
 *   fp32 FFT was checked against direct summation at T = 64k.  The parameters do not depend
 *   on T (a layer's EMA is the same at every length; MEGA's own init gives time constants of
 *   2-10 tokens, too short to exercise a long convolution).
 *   beta U[-1,1), eta 2 U[-1,1): X' has an rms near 1 (MEGA: beta near +-1, eta ~ N(0,1)). */
static tensor_desc_t f32_offset(const char *name, size_t elems, float offset, float scale) {
    tensor_desc_t t = {.name = name, .elems = elems, .store = STORE_F32, .init = INIT_OFFSET,
                       .scale = scale, .offset = offset, .param = 1};
    return t;
}

int mega_chunk(const shape_t *s) {
    int c = settings_get(s->set, "mega_chunk");
    if (c == SETTING_AUTO || c < 1) c = MEGA_CHUNK_DEFAULT;
    return c < s->T ? c : s->T;
}

static int mega_describe(const shape_t *s, tensor_desc_t *in, tensor_desc_t *out) {
    size_t d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v, T = (size_t)s->T;
    size_t np = z + v + 2 * d, dh = d * MEGA_EMA_H;
    in[MEGA_IN_X] = act("x", (size_t)s->B * T * d, 1.0f);
    in[MEGA_IN_LN1_G] = gain("ln1_g", d);
    in[MEGA_IN_LN1_B] = f32("ln1_b", d, 0.1f);
    in[MEGA_IN_ALPHA] = f32_offset("ema_alpha", dh, -4.0f, 4.0f);
    in[MEGA_IN_DELTA] = f32_offset("ema_delta", dh, 2.0f, 1.0f);
    in[MEGA_IN_BETA] = f32("ema_beta", dh, 1.0f);
    in[MEGA_IN_ETA] = f32("ema_eta", dh, 2.0f);
    in[MEGA_IN_WPROJ] = weight("w_proj", d * np, 1.0f / sqrtf((float)d));
    in[MEGA_IN_BPROJ] = f32("b_proj", np, 0.1f);
    in[MEGA_IN_KAPPA_Q] = gain("kappa_q", z);
    in[MEGA_IN_MU_Q] = f32("mu_q", z, 0.1f);
    in[MEGA_IN_KAPPA_K] = gain("kappa_k", z);
    in[MEGA_IN_MU_K] = f32("mu_k", z, 0.1f);
    in[MEGA_IN_WV] = weight("w_v", d * v, 1.0f / sqrtf((float)d));
    in[MEGA_IN_BV] = f32("b_v", v, 0.1f);
    in[MEGA_IN_UH] = weight("u_h", v * d, 1.0f / sqrtf((float)v));
    in[MEGA_IN_BH] = f32("b_h", d, 0.1f);
    in[MEGA_IN_LN2_G] = gain("ln2_g", d);
    in[MEGA_IN_LN2_B] = f32("ln2_b", d, 0.1f);
    in[MEGA_IN_W1] = weight("w1", d * 2 * d, 1.0f / sqrtf((float)d));
    in[MEGA_IN_W2] = weight("w2", 2 * d * d, 1.0f / sqrtf(2.0f * (float)d));
    *out = act("y", (size_t)s->B * T * d, 0);
    return MEGA_N_IN;
}
/* Sum over a sequence's chunks of L^2 (L = each chunk's length: c, the last T mod c). */
static double mega_chunk_sq(const shape_t *s) {
    const double c = mega_chunk(s), full = floor(s->T / c), rem = s->T - full * c;
    return full * c * c + rem * rem;
}
/* The GEMMs (the same widths as chela's, 2 flops a MAC), the EMA as a long conv done the fast
 * way (long_conv's count), and the chunked attention as softmax_attn counts it: QK^T and PV
 * (2 L^2 (z + v) a chunk of L tokens) halved by the causal mask, so T c (z + v) a sequence
 * when c divides T.  The softmax and the element-wise passes are not counted (nor are
 * chela's). */
static double mega_flops(const shape_t *s) {
    double tokens = (double)s->B * s->T;
    return tokens * 2.0 * chela_gemm_macs_per_token(s) +
           (double)s->B * s->d * long_conv_flops_per_channel(s->T) +
           (double)s->B * (s->z + s->v) * mega_chunk_sq(s);
}
/* What ref_mega spends a sampled sequence: per row up to the last sampled t, the GEMMs, the
 * EMA recurrence (d h) and the attention over the row's chunk so far (z + v a key: at most
 * min(c, rows) keys). */
static double mega_cost(const shape_t *s, const sample_t *m) {
    const double rows = sample_tmax(m), c = mega_chunk(s) < rows ? mega_chunk(s) : rows;
    return m->n_seq * rows *
           (chela_gemm_macs_per_token(s) + (double)s->d * MEGA_EMA_H + c * (s->z + s->v));
}
static const char *const MEGA_FN_SETTINGS[] = {"mega_chunk", NULL};

static const op_desc_t OPS[OP_COUNT] = {
    [OP_LINEAR_ATTN] = {.id = OP_LINEAR_ATTN, .name = "linear_attn", .describe = la_describe,
                        .flops = la_flops, .flops_bwd = la_flops_bwd, .reference_cost = la_cost,
                        .reference = ref_linear_attn, .seq_count = attn_seqs, .col_count = la_cols,
                        .out_index = la_out_index},
    [OP_LONG_CONV] = {.id = OP_LONG_CONV, .name = "long_conv", .describe = lc_describe,
                      .flops = lc_flops, .flops_bwd = lc_flops_bwd, .reference_cost = lc_cost,
                      .reference = ref_long_conv,
                      .seq_count = conv_seqs, .col_count = conv_cols,
                      .out_index = conv_out_index},
    [OP_SHORT_LONG_CONV] = {.id = OP_SHORT_LONG_CONV, .name = "short_long_conv",
                            .describe = slc_describe, .flops = slc_flops,
                            .flops_bwd = slc_flops_bwd,
                            .reference_cost = slc_cost, .reference = ref_short_long_conv,
                            .seq_count = conv_seqs, .col_count = conv_cols,
                            .out_index = conv_out_index, .tol_scale = 2},
    [OP_SOFTMAX_ATTN] = {.id = OP_SOFTMAX_ATTN, .name = "softmax_attn", .describe = sa_describe,
                         .flops = sa_flops, .flops_bwd = sa_flops_bwd, .reference_cost = sa_cost,
                         .reference = ref_softmax_attn, .seq_count = attn_seqs,
                         .col_count = sa_cols, .out_index = sa_out_index},
    [OP_CHELA] = {.id = OP_CHELA, .name = "chela", .describe = chela_describe,
                  .flops = chela_flops, .flops_bwd = chela_flops_bwd,
                  .reference_cost = chela_cost, .reference = ref_chela,
                  .seq_count = conv_seqs, .col_count = conv_cols,
                  .out_index = chela_out_index, .gpu_oracle = "chela/oracle_fp32",
                  .tol_scale = 3.4641 /* sqrt(12) rounded intermediates, verify.c */},
    [OP_TRANSFORMER] = {.id = OP_TRANSFORMER, .name = "transformer", .describe = tf_describe,
                        .flops = tf_flops, .flops_bwd = tf_flops_bwd,
                        .reference_cost = tf_cost,
                        .reference = ref_transformer, .seq_count = conv_seqs,
                        .col_count = conv_cols, .out_index = chela_out_index,
                        .gpu_oracle = "transformer/oracle_fp32",
                        .tol_scale = 2.8284 /* sqrt(8) rounded intermediates, verify.c */,
                        .shape_problem = tf_shape_problem},
    [OP_MEGA] = {.id = OP_MEGA, .name = "mega", .describe = mega_describe, .flops = mega_flops,
                 .reference_cost = mega_cost, .reference = ref_mega, .seq_count = conv_seqs,
                 .col_count = conv_cols, .out_index = chela_out_index,
                 .gpu_oracle = "mega/oracle_fp32",
                 .tol_scale = 3.6056 /* sqrt(13) rounded intermediates, verify.c */,
                 .fn_settings = MEGA_FN_SETTINGS},
};

double op_ideal_bytes(const op_desc_t *op, const shape_t *s) { return generic_ideal_bytes(op, s); }

double op_pass_flops(const op_desc_t *op, const shape_t *s) {
    if (s->pass == PASS_FWD) return op->flops(s);
    if (!op->flops_bwd) return NAN;
    return op->flops_bwd(s) + (s->pass == PASS_FWDBWD ? op->flops(s) : 0);
}

const op_desc_t *op_get(op_id id) { return (id >= 0 && id < OP_COUNT) ? &OPS[id] : NULL; }

const op_desc_t *op_find(const char *name) {
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(OPS[i].name, name) == 0) return &OPS[i];
    return NULL;
}
