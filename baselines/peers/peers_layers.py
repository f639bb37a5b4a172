"""peers_layers.py: the two whole layers as a PyTorch user writes them, eager, bf16.

chela/torch_layer: the CHELA layer of the README's Definitions, with X~ = LayerNorm(X):
    U  = SiLU(k3 * X~)                      F.conv1d, depthwise, causal (left padding 2)
    Z  = Kc * U                             torch.fft rfft/irfft in fp32, n = 2T; Kc =
                                            K_long + pad(k3') + pad(k_m) merged once and its
                                            spectrum computed once in setup (not timed)
    [Zq | Ga | Go | Hz] = Z [Wz|Wa|Wo|Wh] + b     one GEMM (cuBLAS through F.linear)
    Zq = SiLU(Zq);  Q = kq Zq + mq;  K = kk Zq + mk;  V = SiLU(X~ Wv + bv)
    O  = RMSNorm(chunk_linear_attn(Q, K, V, scale=z^-0.5, normalize=False))   fla, one head
    M  = O sigmoid(Ga);  H = SiLU(Hz + M Uh + bh);  Y = sigmoid(Go) H + (1 - sigmoid(Go)) X
    Y' = Y + W2 SiLU(W1 LayerNorm(Y))
  x [B, T, d]; LayerNorm eps 1e-5 (biased variance), RMSNorm eps 1e-6 without gain
  (harness/op_inputs.h).  Parameters are bf16 as a model in bf16 holds them (the norm
  gains, biases and k3 rounded from their fp32 draws); the long kernel and its spectrum
  fp32.
transformer/torch_layer: pre-LN, [Q|K|V] = LN1(X) Wqkv + bqkv, d/64 causal heads of 64
  through F.scaled_dot_product_attention (torch's backend choice, named in config),
  Y = X + A Wo + bo, Y' = Y + GELU(LN2(Y) W1 + b1) W2 + b2 (hidden 4d, exact GELU).

Each is checked on its first 128 rows of the first and last sequence, every column,
against the same layer in float64 (direct convolutions, the attention as a masked
product): the rows a CPU-side reference can afford, as chela-bench's are.

Trained (--pass bwd, fwdbwd), the leaves are x and every parameter of ops.c's list, in
the layout the forward uses (nn.Linear's [out, in] weights, conv1d's [d, 1, 3] taps);
CHELA's long-kernel branches K_long, k3', k_m are the parameters, so the step merges
them and transforms the merged kernel itself (fp32) instead of using a spectrum made
in setup.  The backward is torch's autograd (fla's for the attention).
"""

import math

import check
from opcost import shape_km
from peerbase import PeerCase, Unsupported, edge_batches
from peers_attn import sdpa_choice

LN_EPS = 1e-5   # CHELA_LN_EPS
RMS_EPS = 1e-6  # CHELA_RMS_EPS
CHECK_ROWS = 128


def _ln64(torch, x, g, b):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + LN_EPS) * g.double() + b.double()


def _causal_conv64(torch, x, k, taps):
    """[R, d]: y[t, c] = sum_{j < taps, j <= t} k[c, j] x[t - j, c]; x [R, d] float64."""
    y = torch.zeros_like(x)
    R = x.shape[0]
    kk = k.double()
    for j in range(min(taps, R)):
        y[j:] += kk[:, j] * x[: R - j]
    return y


def merged_kernel(F, k_long, k3b, kmt):
    """Kc = K_long + pad(k3') + pad(k_m), added in that order (as setup's in-place merge)."""
    T = k_long.shape[-1]
    return k_long + F.pad(k3b, (0, T - k3b.shape[-1])) + F.pad(kmt, (0, T - kmt.shape[-1]))


class ChelaLayer(PeerCase):
    LEAVES = (("x", "x"), ("ln1_g", "ln1_g"), ("ln1_b", "ln1_b"), ("k3", "k3w"), ("k_long", "k_long"),
              ("k3b", "k3b"), ("km", "kmt"), ("w_proj", "wp_t"), ("b_proj", "b_proj"), ("kappa_q", "kq"),
              ("mu_q", "mq"), ("kappa_k", "kk"), ("mu_k", "mk"), ("w_v", "wv_t"), ("b_v", "b_v"),
              ("u_h", "uh_t"), ("b_h", "b_h"), ("ln2_g", "ln2_g"), ("ln2_b", "ln2_b"), ("w1", "w1_t"),
              ("w2", "w2_t"))

    def setup(self):
        t, s = self.torch, self.s
        if self.env.fla_fn is None:
            raise Unsupported("fla is not loaded")
        bf = t.bfloat16
        B, T, d, z, v = s.B, s.T, s.d, s.z, s.v
        np_, km = z + v + 2 * d, shape_km(T)
        self.x = self.uniform((B, T, d), 1.0, bf)
        self.ln1_g, self.ln1_b = self.gain(d, bf), self.uniform((d,), 0.1, bf)
        self.k3 = self.uniform((d, 3), 0.5, bf)
        k_long = self.long_kernel(d, T)
        k3b, kmt = self.uniform((d, 3), 0.5), self.uniform((d, km), 0.3)
        self.w_proj, self.b_proj = self.uniform((d, np_), 1 / math.sqrt(d), bf), self.uniform((np_,), 0.1, bf)
        self.kq, self.mq = self.gain(z, bf), self.uniform((z,), 0.1, bf)
        self.kk, self.mk = self.gain(z, bf), self.uniform((z,), 0.1, bf)
        self.w_v, self.b_v = self.uniform((d, v), 1 / math.sqrt(d), bf), self.uniform((v,), 0.1, bf)
        self.u_h, self.b_h = self.uniform((v, d), 1 / math.sqrt(v), bf), self.uniform((d,), 0.1, bf)
        self.ln2_g, self.ln2_b = self.gain(d, bf), self.uniform((d,), 0.1, bf)
        self.w1 = self.uniform((d, 2 * d), 1 / math.sqrt(d), bf)
        self.w2 = self.uniform((2 * d, d), 1 / math.sqrt(2 * d), bf)
        # What a model does once: the merged kernel and its spectrum, conv1d's weight,
        # nn.Linear's [out, in] weights.  Trained, the branches are the parameters: the
        # step merges them (run_train), the check merges them for its reference.
        self.n = 2 * T
        if self.training:
            self.k_long, self.k3b, self.kmt = k_long, k3b, kmt
            self.kc = self.kf = None
        else:
            kc = k_long
            kc[:, :3] += k3b
            kc[:, :km] += kmt
            self.kc = kc
            self.kf = t.fft.rfft(kc, n=self.n)                     # [d, T + 1] complex64
        self.k3w = self.k3.flip(-1).unsqueeze(1).contiguous()  # [d, 1, 3]: cross-correlation
        self.wp_t, self.wv_t = self.w_proj.T.contiguous(), self.w_v.T.contiguous()
        self.uh_t, self.w1_t, self.w2_t = self.u_h.T.contiguous(), self.w1.T.contiguous(), self.w2.T.contiguous()
        F = t.nn.functional
        self.rms = "F.rms_norm" if hasattr(F, "rms_norm") else "fp32 rsqrt"
        self.la_kw = {"scale": z ** -0.5, "normalize": False}

    def _rms_norm(self, o):
        F = self.torch.nn.functional
        if hasattr(F, "rms_norm"):
            return F.rms_norm(o, (o.shape[-1],), eps=RMS_EPS)
        of = o.float()
        return (of * self.torch.rsqrt(of.pow(2).mean(-1, keepdim=True) + RMS_EPS)).to(o.dtype)

    def run(self):
        return self._forward(self.kf)

    def run_train(self):
        t = self.torch
        kc = merged_kernel(t.nn.functional, self.k_long, self.k3b, self.kmt)
        return self._forward(t.fft.rfft(kc, n=self.n))

    def _forward(self, kf):
        t, s = self.torch, self.s
        F, fft = t.nn.functional, t.fft
        T, d, z, v = s.T, s.d, s.z, s.v
        xt = F.layer_norm(self.x, (d,), self.ln1_g, self.ln1_b, LN_EPS)
        u = F.silu(F.conv1d(xt.transpose(1, 2), self.k3w, padding=2, groups=d)[..., :T])  # [B, d, T]
        zc = fft.irfft(fft.rfft(u.float(), n=self.n) * kf, n=self.n)[..., :T]
        zc = zc.transpose(1, 2).to(t.bfloat16, memory_format=t.contiguous_format)       # [B, T, d]
        p = F.linear(zc, self.wp_t, self.b_proj)                                         # [B, T, np]
        zq = F.silu(p[..., :z])
        q = (self.kq * zq + self.mq).unsqueeze(2)
        k = (self.kk * zq + self.mk).unsqueeze(2)
        val = F.silu(F.linear(xt, self.wv_t, self.b_v)).unsqueeze(2)
        o = self.env.fla_fn(q, k, val, **self.la_kw)
        o = self._rms_norm((o[0] if isinstance(o, tuple) else o).squeeze(2))
        m = o * t.sigmoid(p[..., z:z + v])
        h = F.silu(p[..., z + v + d:] + F.linear(m, self.uh_t, self.b_h))
        g = t.sigmoid(p[..., z + v:z + v + d])
        y = g * h + (1 - g) * self.x
        f = F.silu(F.linear(F.layer_norm(y, (d,), self.ln2_g, self.ln2_b, LN_EPS), self.w1_t))
        return y + F.linear(f, self.w2_t)

    def _reference(self, b, R):
        """Rows 0..R-1 of sequence b in float64: [R, d]."""
        t, s = self.torch, self.s
        d, z, v = s.d, s.z, s.v
        D = lambda a: a.double()  # noqa: E731
        x = D(self.x[b, :R])
        xt = _ln64(t, x, self.ln1_g, self.ln1_b)
        u = t.nn.functional.silu(_causal_conv64(t, xt, self.k3, 3))
        kc = self.kc if self.kc is not None else merged_kernel(t.nn.functional, self.k_long, self.k3b, self.kmt)
        zc = _causal_conv64(t, u, kc[:, :R], R)
        p = zc @ D(self.w_proj) + D(self.b_proj)
        zq = t.nn.functional.silu(p[:, :z])
        q, k = D(self.kq) * zq + D(self.mq), D(self.kk) * zq + D(self.mk)
        val = t.nn.functional.silu(xt @ D(self.w_v) + D(self.b_v))
        a = (q @ k.T / math.sqrt(z)).tril()
        o = a @ val
        o = o / t.sqrt(o.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        m = o * t.sigmoid(p[:, z:z + v])
        h = t.nn.functional.silu(p[:, z + v + d:] + m @ D(self.u_h) + D(self.b_h))
        g = t.sigmoid(p[:, z + v:z + v + d])
        y = g * h + (1 - g) * x
        f = t.nn.functional.silu(_ln64(t, y, self.ln2_g, self.ln2_b) @ D(self.w1))
        return y + f @ D(self.w2)

    def check(self, out):
        t, s = self.torch, self.s
        R = min(s.T, CHECK_ROWS)
        bs = edge_batches(s.B)
        ref = t.cat([self._reference(b, R) for b in bs])
        got = t.cat([out[b, :R] for b in bs])
        e_abs, e_rel = check.compare(t, got, ref)
        return e_abs, e_rel, check.sample_text(bs, range(R), "%d columns" % s.d)

    def config(self):
        kc = "Kc merged and transformed in the step" if self.training else "spectrum precomputed"
        return ("%s eager: LayerNorm; conv1d k3+SiLU; torch.fft Kc fp32 n=2T %s; "
                "F.linear bf16 GEMMs; fla %s chunk_linear_attn normalize=False; %s; FFN SiLU" % (
                    self.env.tag, kc, self.env.fla_version, self.rms))


class TransformerLayer(PeerCase):
    LEAVES = (("x", "x"), ("ln1_g", "ln1_g"), ("ln1_b", "ln1_b"), ("w_qkv", "wqkv_t"), ("b_qkv", "bqkv"),
              ("w_o", "wo_t"), ("b_o", "bo"), ("ln2_g", "ln2_g"), ("ln2_b", "ln2_b"), ("w1", "w1_t"),
              ("b1", "b1"), ("w2", "w2_t"), ("b2", "b2"))

    def setup(self):
        t, s = self.torch, self.s
        bf = t.bfloat16
        B, T, d = s.B, s.T, s.d
        if d % 64 or s.H * 64 != d:
            raise Unsupported("d = %d is not a multiple of the head dim 64" % d)
        self.x = self.uniform((B, T, d), 1.0, bf)
        self.ln1_g, self.ln1_b = self.gain(d, bf), self.uniform((d,), 0.1, bf)
        self.wqkv, self.bqkv = self.uniform((d, 3 * d), 1 / math.sqrt(d), bf), self.uniform((3 * d,), 0.1, bf)
        self.wo, self.bo = self.uniform((d, d), 1 / math.sqrt(d), bf), self.uniform((d,), 0.1, bf)
        self.ln2_g, self.ln2_b = self.gain(d, bf), self.uniform((d,), 0.1, bf)
        self.w1, self.b1 = self.uniform((d, 4 * d), 1 / math.sqrt(d), bf), self.uniform((4 * d,), 0.1, bf)
        self.w2, self.b2 = self.uniform((4 * d, d), 1 / math.sqrt(4 * d), bf), self.uniform((d,), 0.1, bf)
        self.wqkv_t, self.wo_t = self.wqkv.T.contiguous(), self.wo.T.contiguous()
        self.w1_t, self.w2_t = self.w1.T.contiguous(), self.w2.T.contiguous()
        self.chosen = None

    def run(self):
        t, s = self.torch, self.s
        F = t.nn.functional
        B, T, d, H = s.B, s.T, s.d, s.H
        xt = F.layer_norm(self.x, (d,), self.ln1_g, self.ln1_b, LN_EPS)
        q, k, v = F.linear(xt, self.wqkv_t, self.bqkv).view(B, T, 3, H, 64).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)            # [B, H, T, 64]
        if self.chosen is None:  # the first call (verification, untimed) asks what torch picks
            self.chosen = sdpa_choice(t, q, k, v) or ""
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = self.x + F.linear(a.transpose(1, 2).reshape(B, T, d), self.wo_t, self.bo)
        f = F.gelu(F.linear(F.layer_norm(y, (d,), self.ln2_g, self.ln2_b, LN_EPS), self.w1_t, self.b1))
        return y + F.linear(f, self.w2_t, self.b2)

    def _reference(self, b, R):
        t, s = self.torch, self.s
        d, H = s.d, s.H
        D = lambda a: a.double()  # noqa: E731
        x = D(self.x[b, :R])
        qkv = _ln64(t, x, self.ln1_g, self.ln1_b) @ D(self.wqkv) + D(self.bqkv)
        q, k, v = (qkv[:, i * d:(i + 1) * d].view(R, H, 64).transpose(0, 1) for i in range(3))  # [H, R, 64]
        sc = (q @ k.transpose(1, 2)) / 8.0
        future = t.ones(R, R, dtype=t.bool, device=x.device).triu(1)
        a = t.softmax(sc.masked_fill(future, -math.inf), -1) @ v                        # [H, R, 64]
        y = x + a.transpose(0, 1).reshape(R, d) @ D(self.wo) + D(self.bo)
        f = t.nn.functional.gelu(_ln64(t, y, self.ln2_g, self.ln2_b) @ D(self.w1) + D(self.b1))
        return y + f @ D(self.w2) + D(self.b2)

    def check(self, out):
        t, s = self.torch, self.s
        R = min(s.T, CHECK_ROWS)
        bs = edge_batches(s.B)
        ref = t.cat([self._reference(b, R) for b in bs])
        got = t.cat([out[b, :R] for b in bs])
        e_abs, e_rel = check.compare(t, got, ref)
        return e_abs, e_rel, check.sample_text(bs, range(R), "%d columns" % s.d)

    def config(self):
        be = "default->%s" % self.chosen if self.chosen else "default"
        return "%s eager pre-LN: F.linear bf16 GEMMs; sdpa backend=%s is_causal=1; exact GELU" % (
            self.env.tag, be)
