"""provenance.py: the context cells every row repeats: git_sha (as chela-bench's build
records it: `git describe --always --dirty --abbrev=12` of the source tree, else
"unknown"), device, and build (the versions of what ran).
"""

import os
import subprocess


def git_sha():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        r = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty", "--abbrev=12"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = r.stdout.strip()
    return sha if r.returncode == 0 and sha else "unknown"


def torch_versions(torch):
    """'torch 2.11.0+cu130; cuda 13.0; cudnn 91300' (what torch was built with and loaded)."""
    parts = ["torch %s" % torch.__version__, "cuda %s" % (torch.version.cuda or "none")]
    try:
        cudnn = torch.backends.cudnn.version()
    except Exception:
        cudnn = None
    parts.append("cudnn %s" % (cudnn if cudnn else "none"))
    return "; ".join(parts)


def build(torch, fla_version=None):
    """The build cell: torch, CUDA, cuDNN, triton and fla versions."""
    parts = [torch_versions(torch)]
    try:
        import triton
        parts.append("triton %s" % triton.__version__)
    except Exception:
        pass
    if fla_version:
        parts.append("fla %s" % fla_version)
    return "; ".join(parts)
