"""opcost.py: the shapes, FLOPs and ideal HBM bytes of chela-bench's ops, re-implemented
from harness/ops.c (the op table) and harness/runner.c (make_shape, row_context) so that
a peer's row means what a chela-bench row of the same op and shape means.

FLOPs are the op's as defined, not the implementation's; ideal bytes are each input
read once and the output written once in their storage types: activations and GEMM
weights in the run's dtype, conv kernels, biases and norm parameters always fp32
(ops.c's act() and f32()/gain()/long_kernel()).  Keep this file in step with ops.c.
Pure Python: no torch.
"""

import math

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
F32 = 4


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


def _chela_gemm_macs_per_token(s):
    d, z, v = float(s.d), float(s.z), float(s.v)
    return d * (z + v + 2 * d) + d * v + v * d + d * 2 * d + 2 * d * d


def flops(op, s):
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


def _tensors(op, s):
    """(act elements, fp32 elements) of the op's inputs and output (ops.c describe)."""
    B, T, d, z, v = s.B, s.T, s.d, s.z, s.v
    if op == "linear_attn":
        bht = B * s.H * T
        return 2 * bht * s.dk + 2 * bht * s.dv, 0          # q, k, v, o
    if op == "softmax_attn":
        bht = B * s.H * T
        return 4 * bht * s.dk, 0                            # q, k, v, o
    if op == "long_conv":
        return 2 * B * d * T, d * T                         # x, y; k fp32
    if op == "chela":
        np_ = z + v + 2 * d
        act = (B * T * d                                     # x
               + d * np_ + d * v + v * d + d * 2 * d + 2 * d * d  # w_proj, w_v, u_h, w1, w2
               + B * T * d)                                  # y
        f32 = (2 * d + 3 * d + d * T + 3 * d + d * shape_km(T)  # ln1 g/b, k3, k_long, k3b, km
               + np_ + 4 * z + v + d + 2 * d)                # b_proj, kappa/mu q/k, b_v, b_h, ln2 g/b
        return act, f32
    if op == "transformer":
        act = B * T * d + 3 * d * d + d * d + 4 * d * d + 4 * d * d + B * T * d  # x, Wqkv, Wo, W1, W2, y
        f32 = 2 * d + 3 * d + d + 2 * d + 4 * d + d          # ln1 g/b, bqkv, bo, ln2 g/b, b1, b2
        return act, f32
    raise ValueError("no tensors for op %r" % op)


def ideal_bytes(op, s):
    """op_ideal_bytes: every input read once, the output written once."""
    act, f32 = _tensors(op, s)
    return float(act * DTYPE_BYTES[s.dtype] + f32 * F32)


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
