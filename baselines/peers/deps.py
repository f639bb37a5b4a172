"""deps.py: the lazy imports of torch and fla, each failure one line that says exactly
what is missing.  Nothing imports torch at module level: the CLI, the --seq grammar,
the statistics and the CSV writer work without it.
"""


class DepError(RuntimeError):
    """A dependency is missing; str() is the one-line message."""


def _first_line(e):
    text = str(e).strip().splitlines()
    return "%s: %s" % (type(e).__name__, text[0]) if text else type(e).__name__


def load_torch(device):
    """torch, with the CUDA device `device` made current, or DepError."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install raising anything
        raise DepError("torch is not installed or does not import (%s); the peers need PyTorch "
                       "with CUDA" % _first_line(e)) from None
    version = getattr(torch, "__version__", "?")
    try:
        ok = torch.cuda.is_available()
    except Exception as e:
        raise DepError("torch %s: cannot ask for a CUDA device (%s)" % (version, _first_line(e))) from None
    if not ok:
        cuda = getattr(getattr(torch, "version", None), "cuda", None)
        raise DepError("torch %s sees no CUDA device (torch.cuda.is_available() is False; %s)"
                       % (version, "built for CUDA %s" % cuda if cuda else "a CPU-only build"))
    n = torch.cuda.device_count()
    if device >= n:
        raise DepError("--device %d: this machine has %d CUDA device(s) (valid: 0..%d)" % (device, n, n - 1))
    torch.cuda.set_device(device)
    return torch


def load_fla():
    """(fla's chunk_linear_attn, fla's version), or DepError naming what failed."""
    try:
        import fla
        from fla.ops.linear_attn import chunk_linear_attn
    except Exception as e:
        raise DepError("fla (flash-linear-attention) is not installed or does not import (%s)"
                       % _first_line(e)) from None
    return chunk_linear_attn, getattr(fla, "__version__", "?")
