"""opcost.py: the shapes, FLOPs and ideal HBM bytes of chela-bench's ops, re-implemented
from harness/ops.c (the op table) and harness/runner.c (make_shape, row_context) so that
a peer's row means what a chela-bench row of the same op and shape means.

FLOPs are the op's as defined, not the implementation's, per pass (op_pass_flops: fwd,
bwd, fwdbwd = bwd + fwd).  Ideal bytes follow generic_ideal_bytes: fwd reads each input
once and writes the output once in their storage types (activations and GEMM weights in
the run's dtype, conv kernels, biases and norm parameters always fp32: ops.c's act(),
weight(), f32()/gain()/long_kernel()); bwd reads each input and dy and writes every
gradient (fp32 for a parameter, op.h grad_storage); fwdbwd does both.  Keep this file in
step with ops.c.  Pure Python: no torch.
"""

import math

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
F32 = 4
PASSES = ("fwd", "bwd", "fwdbwd")  # harness pass_name


class Shape:
    """shape_t: B batch, T length, H heads, dk/dv head widths, d width (conv ops and the
    layers), z/v CHELA's query-key and value widths; 0 where the op has no such field."""

    __slots__ = ("B", "T", "H", "dk", "dv", "d", "z", "v", "dtype", "causal")

    def __init__(self, B, T, H=0, dk=0, dv=0, d=0, z=0, v=0, dtype="bf16", causal=1):
        self.B, self.T, self.H, self.dk, self.dv = B, T, H, dk, dv
        self.d, self.z, self.v, self.dtype, self.causal = d, z, v, dtype, causal

    def __repr__(self):
        return "Shape(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__)


def batch_for(T, tokens):
    """make_shape: each point does the same number of tokens, B = max(1, tokens / T)."""
    return max(1, tokens // T)


def shape_km(T):
    """k_m = 2 floor(log10 T) + 1, in integers (shape.c)."""
    lg, p = 0, 10
    while p <= T:
        lg += 1
        p *= 10
    return 2 * lg + 1


def long_conv_flops_per_channel(T):
    """Two real FFTs of N = 2T at 2.5 N log2 N each plus the pointwise complex product
    (6 flops a bin); the kernel's spectrum is a parameter (ops.c)."""
    N = 2.0 * T
    return 2.0 * 2.5 * N * math.log2(N) + 6.0 * (N / 2 + 1)


def long_conv_bwd_flops(B, d, T):
    """ops.c long_conv_bwd_flops: per batch row of a channel, the forward transform of dY
    and the inverse of dX's spectrum, conj(K) G (6 flops a bin) and the accumulation of
    conj(X_b) G_b into dK's spectrum (8 a bin); per channel one inverse transform (dK)."""
    N = 2.0 * T
    fft = 2.5 * N * math.log2(N)
    return float(B) * d * (2.0 * fft + 14.0 * (N / 2 + 1)) + d * fft


def _chela_gemm_macs_per_token(s):
    d, z, v = float(s.d), float(s.z), float(s.v)
    return d * (z + v + 2 * d) + d * v + v * d + d * 2 * d + 2 * d * d


def _sa_flops(s):
    """ops.c sa_flops, causal: 2 B H T^2 D."""
    return 2.0 * s.B * s.H * float(s.T) * s.T * s.dk


def flops_fwd(op, s):
    """ops.c: la_flops, sa_flops, lc_flops, chela_flops, tf_flops."""
    B, T = float(s.B), float(s.T)
    if op == "linear_attn":
        return 4.0 * B * s.H * T * s.dk * s.dv
    if op == "softmax_attn":
        return 2.0 * B * s.H * T * T * s.dk
    if op == "long_conv":
        return B * s.d * long_conv_flops_per_channel(s.T)
    if op == "chela":
        tokens = B * T
        return tokens * (2.0 * _chela_gemm_macs_per_token(s) + 4.0 * s.z * s.v) + \
            B * s.d * long_conv_flops_per_channel(s.T)
    if op == "transformer":
        d = float(s.d)
        return B * T * 2.0 * 12.0 * d * d + 2.0 * B * s.H * T * T * s.dk
    raise ValueError("no FLOPs for op %r" % op)


def flops_bwd(op, s):
    """ops.c: la_flops_bwd (2x the forward), sa_flops_bwd (2.5x), lc_flops_bwd,
    chela_flops_bwd, tf_flops_bwd."""
    tokens = float(s.B) * s.T
    if op == "linear_attn":
        return 2.0 * flops_fwd(op, s)
    if op == "softmax_attn":
        return 2.5 * _sa_flops(s)
    if op == "long_conv":
        return long_conv_bwd_flops(s.B, s.d, s.T)
    if op == "chela":  # GEMMs twice, the attention 2x, the long conv's and the short conv's backward
        return tokens * (4.0 * _chela_gemm_macs_per_token(s) + 8.0 * s.z * s.v) + \
            long_conv_bwd_flops(s.B, s.d, s.T) + 3.0 * 6.0 * s.B * s.d * float(s.T)
    if op == "transformer":  # GEMMs twice (data and weight gradients), the attention 2.5x
        d = float(s.d)
        return 2.0 * tokens * 2.0 * 12.0 * d * d + 2.5 * _sa_flops(s)
    raise ValueError("no backward FLOPs for op %r" % op)


def flops(op, s, pass_="fwd"):
    """ops.c op_pass_flops: the forward's, the backward's, or their sum (bwd + fwd)."""
    if pass_ == "fwd":
        return flops_fwd(op, s)
    if pass_ not in PASSES:
        raise ValueError("no pass %r" % pass_)
    return flops_bwd(op, s) + (flops_fwd(op, s) if pass_ == "fwdbwd" else 0)


class Tensor:
    """ops.c tensor_desc_t, what the costs need: elements, storage ("act": the run's
    dtype, "f32") and whether it is a parameter (its gradient fp32, op.h grad_storage)."""

    __slots__ = ("name", "elems", "store", "param")

    def __init__(self, name, elems, store="act", param=False):
        self.name, self.elems, self.store, self.param = name, elems, store, param

    def nbytes(self, dtype, grad=False):
        """tensor_bytes, or with grad the bytes of its gradient (grad_storage)."""
        f32 = self.store == "f32" or (grad and self.param)
        return self.elems * (F32 if f32 else DTYPE_BYTES[dtype])


def _act(name, n):
    return Tensor(name, n)


def _weight(name, n):  # a GEMM weight: stored like an activation, a parameter
    return Tensor(name, n, "act", True)


def _f32(name, n):  # conv kernels, biases, gains, affine coefficients: fp32 parameters
    return Tensor(name, n, "f32", True)


def describe(op, s):
    """ops.c describe: (the inputs in ops.c's order, the output)."""
    B, T, d, z, v = s.B, s.T, s.d, s.z, s.v
    if op in ("linear_attn", "softmax_attn"):
        bht = B * s.H * T
        dv = s.dv if op == "linear_attn" else s.dk
        return [_act("q", bht * s.dk), _act("k", bht * s.dk), _act("v", bht * dv)], _act("o", bht * dv)
    if op == "long_conv":
        return [_act("x", B * d * T), _f32("k", d * T)], _act("y", B * d * T)
    if op == "chela":
        np_ = z + v + 2 * d
        ins = [_act("x", B * T * d), _f32("ln1_g", d), _f32("ln1_b", d), _f32("k3", d * 3),
               _f32("k_long", d * T), _f32("k3b", d * 3), _f32("km", d * shape_km(T)),
               _weight("w_proj", d * np_), _f32("b_proj", np_), _f32("kappa_q", z), _f32("mu_q", z),
               _f32("kappa_k", z), _f32("mu_k", z), _weight("w_v", d * v), _f32("b_v", v),
               _weight("u_h", v * d), _f32("b_h", d), _f32("ln2_g", d), _f32("ln2_b", d),
               _weight("w1", d * 2 * d), _weight("w2", 2 * d * d)]
        return ins, _act("y", B * T * d)
    if op == "transformer":
        ins = [_act("x", B * T * d), _f32("ln1_g", d), _f32("ln1_b", d), _weight("w_qkv", d * 3 * d),
               _f32("b_qkv", 3 * d), _weight("w_o", d * d), _f32("b_o", d), _f32("ln2_g", d),
               _f32("ln2_b", d), _weight("w1", d * 4 * d), _f32("b1", 4 * d), _weight("w2", 4 * d * d),
               _f32("b2", d)]
        return ins, _act("y", B * T * d)
    raise ValueError("no tensors for op %r" % op)


def ideal_bytes(op, s, pass_="fwd"):
    """ops.c generic_ideal_bytes: fwd every input read once and the output written once;
    bwd every input and dy read, every gradient written; fwdbwd both."""
    if pass_ not in PASSES:
        raise ValueError("no pass %r" % pass_)
    ins, out = describe(op, s)
    out_b = out.nbytes(s.dtype)
    total = (0 if pass_ == "bwd" else out_b) + (out_b if pass_ != "fwd" else 0)  # y written; dy read
    for t in ins:
        total += t.nbytes(s.dtype)
        if pass_ != "fwd":
            total += t.nbytes(s.dtype, grad=True)
    return float(total)


def shape_cells(op, s):
    """row_context's shape columns: conv ops leave heads/dk/dv empty, an unused field
    is an empty cell."""
    def cell(x):
        return x if x else None
    conv = op in ("long_conv", "short_long_conv")
    return {"batch": s.B, "seq": s.T,
            "heads": None if conv else cell(s.H), "dk": None if conv else cell(s.dk),
            "dv": None if conv else cell(s.dv), "dim": cell(s.d), "dtype": s.dtype,
            "causal": 1 if s.causal else 0}
