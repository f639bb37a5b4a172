"""peers_attn.py: the attention peers.

softmax_attn/torch_sdpa[_flash|_cudnn]: torch.nn.functional.scaled_dot_product_attention
  (is_causal=True, scale 1/sqrt(D)) on q, k, v [B, H, T, D] bf16, with torch's own backend
  choice (the config names what it chose) or one backend forced by
  torch.nn.attention.sdpa_kernel; a backend that cannot run the point is skip:unsupported.
linear_attn/fla_chunk: fla.ops.linear_attn.chunk_linear_attn(q, k, v, scale=dk^-0.5,
  normalize=False) on [B, T, H, d] (fla's layout), i.e. o_t = (q_t/sqrt(dk)) sum_{s<=t}
  k_s^T v_s, chela-bench's linear_attn.

Both are checked on rows 0..127 and the last 8 of the first and last sequence, every
head and column, against the float64 form of their definition.  Trained (--pass bwd,
fwdbwd), q, k and v are the leaves: torch's own backward of the chosen SDPA backend
(skip:unsupported where torch has none), fla's backward of chunk_linear_attn.
"""

import inspect
import math
import re
import warnings

import check
from peerbase import PeerCase, Unsupported, edge_batches


def attn_rows_ref(torch, q, k, v, rows, scale, softmax):
    """Rows `rows` (ascending) of causal attention of one head in float64: q, k [T, dk],
    v [T, dv]; softmax(q k^T * scale) v, or for linear attention (q k^T * scale) v."""
    idx = torch.tensor(rows, device=q.device)
    tmax = rows[-1] + 1
    s = (q[idx].double() @ k[:tmax].double().T) * scale                      # [R, tmax]
    future = torch.arange(tmax, device=q.device)[None, :] > idx[:, None]
    if softmax:
        p = torch.softmax(s.masked_fill(future, -math.inf), dim=-1)
    else:
        p = s.masked_fill(future, 0.0)
    o = torch.zeros(len(rows), v.shape[-1], dtype=torch.float64, device=q.device)
    for c in range(0, tmax, 8192):  # the values in slices: [T, dv] float64 can be 1 GiB
        o += p[:, c:c + 8192] @ v[c:min(c + 8192, tmax)].double()
    return o


def sdpa_choice(torch, q, k, v):
    """The backend torch's dispatcher picks for a causal call on these inputs (a private
    API: None where this torch lacks it)."""
    try:
        from torch.nn.attention import SDPBackend
        idx = int(torch._fused_sdp_choice(q, k, v, None, 0.0, True))
        names = {int(m): name for name, m in SDPBackend.__members__.items()}
        return names.get(idx, str(idx))
    except Exception:
        return None


def _sdpa_reasons(messages):
    """torch's warnings about a backend it did not use, as reasons: without the
    '(Triggered internally at ...)' tails and the headers ('... not used because:',
    '... has been runtime disabled.': the other backends, switched off by sdpa_kernel)."""
    out = []
    for m in messages:
        m = re.sub(r"\s*\(Triggered internally at [^)]*\)", "", m).strip()
        m = m.splitlines()[0].strip() if m else ""
        if m and not m.endswith("not used because:") and not m.endswith("runtime disabled.") and m not in out:
            out.append(m)
    return out


def _check_heads(torch, out_rows, ref_rows):
    got = torch.cat(out_rows)
    ref = torch.cat(ref_rows)
    return check.compare(torch, got, ref)


class Sdpa(PeerCase):
    LEAVES = (("q", "q"), ("k", "k"), ("v", "v"))

    def setup(self):
        t, s = self.torch, self.s
        from torch.nn.attention import SDPBackend
        self.SDPBackend = SDPBackend
        self.backend = self.params["backend"]
        shape = (s.B, s.H, s.T, s.dk)
        self.q = self.uniform(shape, 1.0, t.bfloat16)
        self.k = self.uniform(shape, 1.0, t.bfloat16)
        self.v = self.uniform(shape, 1.0, t.bfloat16)
        self.chosen = self._chosen() if self.backend == "default" else None
        self.probed = False

    def _chosen(self):
        return sdpa_choice(self.torch, self.q, self.k, self.v)

    def on_leaves(self):
        if self.backend == "default":  # inputs that require grad may be given another backend
            self.chosen = self._chosen()

    def context(self):
        from torch.nn.attention import sdpa_kernel
        if self.backend == "default":
            return super().context()
        forced = {"flash": self.SDPBackend.FLASH_ATTENTION, "cudnn": self.SDPBackend.CUDNN_ATTENTION}
        return sdpa_kernel([forced[self.backend]])

    def run(self):
        F = self.torch.nn.functional
        if self.backend == "default" or self.probed:
            return F.scaled_dot_product_attention(self.q, self.k, self.v, is_causal=True)
        # The first call of a forced backend keeps torch's warnings: they say why a
        # backend cannot take the point (the timed calls after it do not pay for this).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                o = F.scaled_dot_product_attention(self.q, self.k, self.v, is_causal=True)
            except RuntimeError as e:
                if "No available kernel" not in str(e):
                    raise
                why = _sdpa_reasons(str(w.message) for w in caught)
                raise Unsupported("sdpa backend=%s cannot run this point: %s"
                                  % (self.backend, "; ".join(why) or str(e).splitlines()[0])) from None
        self.probed = True
        return o

    def check(self, out):
        t, s = self.torch, self.s
        rows = check.sample_rows(s.T)
        got, ref = [], []
        for b in edge_batches(s.B):
            for h in range(s.H):
                ref.append(attn_rows_ref(t, self.q[b, h], self.k[b, h], self.v[b, h], rows,
                                         1.0 / math.sqrt(s.dk), softmax=True))
                got.append(out[b, h, rows])
        e_abs, e_rel = _check_heads(t, got, ref)
        return e_abs, e_rel, check.sample_text(edge_batches(s.B), rows, "%d heads" % s.H)

    def config(self):
        be = self.backend
        if be == "default":
            be = "default->%s" % self.chosen if self.chosen else "default"
        return "%s sdpa backend=%s is_causal=1 bf16 layout BHTD" % (self.env.tag, be)


class FlaChunk(PeerCase):
    LEAVES = (("q", "q"), ("k", "k"), ("v", "v"))

    def setup(self):
        t, s = self.torch, self.s
        fn = self.env.fla_fn
        if fn is None:
            raise Unsupported("fla is not loaded")
        try:
            names = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            names = {}
        if names and "normalize" not in names:
            raise Unsupported("this fla's chunk_linear_attn has no normalize argument")
        self.kw = {"scale": s.dk ** -0.5, "normalize": False}
        if "head_first" in names:  # older fla: say the layout, [B, T, H, d]
            self.kw["head_first"] = False
        self.fn = fn
        self.q = self.uniform((s.B, s.T, s.H, s.dk), 1.0, t.bfloat16)
        self.k = self.uniform((s.B, s.T, s.H, s.dk), 1.0, t.bfloat16)
        self.v = self.uniform((s.B, s.T, s.H, s.dv), 1.0, t.bfloat16)

    def run(self):
        o = self.fn(self.q, self.k, self.v, **self.kw)
        return o[0] if isinstance(o, tuple) else o

    def check(self, out):
        t, s = self.torch, self.s
        rows = check.sample_rows(s.T)
        got, ref = [], []
        for b in edge_batches(s.B):
            for h in range(s.H):
                ref.append(attn_rows_ref(t, self.q[b, :, h], self.k[b, :, h], self.v[b, :, h], rows,
                                         1.0 / math.sqrt(s.dk), softmax=False))
                got.append(out[b, rows, h])
        e_abs, e_rel = _check_heads(t, got, ref)
        return e_abs, e_rel, check.sample_text(edge_batches(s.B), rows, "%d heads" % s.H)

    def config(self):
        extra = " head_first=False" if "head_first" in self.kw else ""
        return "fla %s chunk_linear_attn normalize=False scale=dk^-0.5%s bf16 layout BTHD (%s)" % (
            self.env.fla_version, extra, self.env.tag)
