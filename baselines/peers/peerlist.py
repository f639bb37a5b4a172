"""peerlist.py: which peers exist, what each measures and what it needs.

A peer yields one or more cases per sequence length: an op of chela-bench's, a variant
name (op/name, named after the peer), the shape chela-bench would use for that op
(harness/runner.c make_shape: tokens per point, B = max(1, tokens / T)), and the class
in a peers_*.py module that runs it.  Nothing here imports torch; the module of a case
is imported only when the case runs.
"""

from opcost import Shape, batch_for


class Case:
    __slots__ = ("peer", "op", "variant", "shape", "module", "cls", "params")

    def __init__(self, peer, op, variant, shape, module, cls, **params):
        self.peer, self.op, self.variant, self.shape = peer, op, variant, shape
        self.module, self.cls, self.params = module, cls, params


def _attn(T, tokens, H, dk, dv):
    return Shape(batch_for(T, tokens), T, H=H, dk=dk, dv=dv)


def _sdpa(T, tokens):
    s = _attn(T, tokens, 16, 64, 64)  # softmax_attn's LM shape: H 16, head dim 64
    return [Case("sdpa", "softmax_attn", "softmax_attn/torch_sdpa" + suffix, s, "peers_attn", "Sdpa",
                 backend=backend)
            for suffix, backend in (("", "default"), ("_flash", "flash"), ("_cudnn", "cudnn"))]


def _fla(T, tokens):
    return [Case("fla", "linear_attn", "linear_attn/fla_chunk", s, "peers_attn", "FlaChunk")
            for s in (_attn(T, tokens, 16, 64, 64),      # the LM shape
                      _attn(T, tokens, 1, 128, 2048))]   # CHELA's single head: dk = z, dv = v


def _fft(T, tokens):
    return [Case("fft", "long_conv", "long_conv/torch_fft", Shape(batch_for(T, tokens), T, d=1024),
                 "peers_conv", "TorchFFT")]


def _chela(T, tokens):
    d = 1024  # make_shape for chela: H 1, dk = z, dv = v
    s = Shape(batch_for(T, tokens), T, H=1, dk=128, dv=2 * d, d=d, z=128, v=2 * d)
    return [Case("chela_layer", "chela", "chela/torch_layer", s, "peers_layers", "ChelaLayer")]


def _transformer(T, tokens):
    d = 1024  # make_shape for transformer: head dim 64, d / 64 heads
    s = Shape(batch_for(T, tokens), T, H=d // 64, dk=64, dv=64, d=d)
    return [Case("transformer_layer", "transformer", "transformer/torch_layer", s, "peers_layers",
                 "TransformerLayer")]


class Peer:
    __slots__ = ("name", "needs", "cases", "what")

    def __init__(self, name, needs, cases, what):
        self.name, self.needs, self.cases, self.what = name, needs, cases, what


PEERS = (
    Peer("sdpa", (), _sdpa,
         "torch.nn.functional.scaled_dot_product_attention, causal: default, flash, cuDNN backends"),
    Peer("fla", ("fla",), _fla, "fla.ops.linear_attn.chunk_linear_attn (normalize=False)"),
    Peer("fft", (), _fft, "causal long convolution by torch.fft.rfft/irfft in fp32"),
    Peer("chela_layer", ("fla",), _chela, "the CHELA layer in PyTorch (fla linear attention, torch.fft conv)"),
    Peer("transformer_layer", (), _transformer, "a pre-LN Transformer layer in PyTorch (SDPA)"),
)
BY_NAME = {p.name: p for p in PEERS}
NAMES = tuple(p.name for p in PEERS)


def select(spec):
    """The peers of a comma list, in the order given, or ValueError naming the bad one."""
    if spec is None:
        return list(PEERS)
    if not spec or spec.startswith(",") or spec.endswith(",") or ",," in spec:
        raise ValueError("--peers needs a comma-separated list of peers (known: %s)" % ", ".join(NAMES))
    out = []
    for name in spec.split(","):
        if name not in BY_NAME:
            raise ValueError("--peers: unknown peer '%s' (known: %s)" % (name, ", ".join(NAMES)))
        if BY_NAME[name] not in out:
            out.append(BY_NAME[name])
    return out
