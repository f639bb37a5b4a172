"""check.py: a peer's output against a float64 reference, judged as chela-bench judges
its variants (harness/verify.c):

  error = max |got - ref| / max(|ref|, rms of that output row), a row being one
  position's columns (attention outputs are sums that cancel, so each element is
  judged against the size of its own output vector);
  tolerance 2^-6 for bf16, 1e-2 for fp16, 5e-5 for fp32, times sqrt(n) for the whole
  layers (n their rounded intermediates: chela sqrt(12), transformer sqrt(8), ops.c
  tol_scale).

The reference is computed by each peer in torch float64 on the GPU, on a sample: the
first rows (and, where a row costs O(T), the last rows) of the first and last sequence.
"""

import math

TOL_SCALE = {"chela": 3.4641, "transformer": 2.8284}  # ops.c tol_scale


def tolerance(op, dtype):
    base = 5e-5 if dtype == "fp32" else 0.015625 if dtype == "bf16" else 1e-2
    return base * TOL_SCALE.get(op, 1.0)


def compare(torch, got, ref):
    """(max_abs_err, max_rel_err) of got against ref, both [..., columns]; any
    non-finite value in got makes both inf."""
    g = got.to(torch.float64)
    r = ref.to(torch.float64)
    if not bool(torch.isfinite(g).all()):
        return math.inf, math.inf
    err = (g - r).abs()
    rms = r.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-30)
    rel = err / torch.maximum(r.abs(), rms)
    return float(err.max()), float(rel.max())


def count_nonfinite(torch, out):
    return int((~torch.isfinite(out)).sum())


def sample_rows(T, first=128, last=8):
    """The checked positions: the first `first` and the last `last` (sorted, distinct)."""
    return sorted(set(range(min(T, first))) | set(range(max(0, T - last), T)))


def ranges_text(values):
    """'0-127 1016-1023' for sorted distinct integers (no commas: it goes into a cell)."""
    out, start, prev = [], None, None
    for v in list(values) + [None]:
        if start is not None and (v is None or v != prev + 1):
            out.append("%d" % start if start == prev else "%d-%d" % (start, prev))
            start = None
        if v is not None and start is None:
            start = v
        prev = v
    return " ".join(out)


def sample_text(seqs, rows, across):
    """What was checked: 'seqs 0 63 x rows 0-127 1016-1023 x 16 heads'."""
    return "seqs %s x rows %s x %s" % (ranges_text(seqs), ranges_text(rows), across)
