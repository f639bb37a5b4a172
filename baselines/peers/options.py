"""options.py: run_peers.py's command line.  Every rejection is one line naming the
option and the bad value (as chela-bench's harness/cli.c); nothing is half-applied.
Pure Python: no torch.
"""

import re

import opcost
import peerlist
import seqspec

USAGE = """usage: python3 baselines/peers/run_peers.py [options]
  time the PyTorch / flash-linear-attention peers with chela-bench's method and write
  schema-2 rows (backend torch, role baseline) that `chela-bench plot` draws beside its own

  --seq SPEC        lengths: 1k..64k (powers of two), 1k..8k:1k (step), 1024,3000,4k
                    (k = 1024; chela-bench's grammar; default 1k..64k)
  --peers LIST      sdpa,fla,fft,chela_layer,transformer_layer (default all)
  --tokens N        tokens per point, B = max(1, N / T) (default 65536)
  --pass P[,P...]   fwd (default: the forward), bwd (the backward alone on what an
                    untimed forward left), fwdbwd (one training step: forward then
                    backward to every input and parameter); a list sweeps
  --warmup N        untimed runs before timing (default 3)
  --repeat N        minimum timed samples (default 20)
  --budget-ms MS    extra time per point to drive the noise under 0.5% (default 500)
  --device N        CUDA device index (default 0)
  --seed N          input seed (default 20240612)
  --no-ceilings     skip measuring the copy / GEMM ceilings (floor columns empty)
  -o FILE           results CSV (default peers.csv; written whole or not at all)
  -h, --help        this text

exit status: 0 every row ok or skipped; 1 a row failed or the run was interrupted;
2 bad usage, a missing dependency (torch, a CUDA device, fla), or an unwritable -o.
"""


class UsageError(ValueError):
    """Bad command line; str() is the one-line message."""


class Options:
    def __init__(self):
        self.help = False
        self.seq = [1 << k for k in range(10, 17)]  # 1k..64k
        self.peers = list(peerlist.PEERS)
        self.tokens = 65536
        self.passes = ["fwd"]
        self.warmup = 3
        self.repeat = 20
        self.budget_ms = 500
        self.device = 0
        self.seed = 20240612
        self.ceilings = True
        self.out = "peers.csv"


def parse_int(opt, s, lo, hi):
    """A whole number with an optional k/K (x1024) suffix, in lo..hi (cli.c parse_int)."""
    if s is None:
        raise UsageError("%s needs a value" % opt)
    m = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?[0-9]+)([kK]?)", s, re.ASCII)
    if not m:
        raise UsageError("%s: '%s' is not a whole number" % (opt, s))
    v = int(m.group(1)) * (1024 if m.group(2) else 1)
    if v < lo or v > hi:
        raise UsageError("%s: %s is out of range (%d..%d)" % (opt, s, lo, hi))
    return v


def parse_passes(s):
    """--pass fwd|bwd|fwdbwd[,...]: a list sweeps, each pass once (cli.c parse_passes)."""
    if not s or len(s) >= 64:
        raise UsageError("--pass needs fwd, bwd, fwdbwd or a comma list of them")
    out = []
    for item in s.split(","):  # an empty item ("fwd,,bwd") is an error, not skipped
        if item not in opcost.PASSES:
            raise UsageError("--pass: '%s' is not fwd, bwd or fwdbwd" % item)
        if item in out:
            raise UsageError("--pass: '%s' is listed twice" % item)
        out.append(item)
    return out


def parse(argv):
    """Options from argv (without the program name), or UsageError."""
    o = Options()
    i = 0

    def value():
        nonlocal i
        i += 1
        return argv[i] if i < len(argv) else None

    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            o.help = True
        elif a == "--seq":
            s = value()
            if s is None:
                raise UsageError("--seq needs a value (e.g. 1k..64k)")
            try:
                o.seq = seqspec.parse_seq(s)
            except seqspec.SeqError as e:
                raise UsageError(str(e)) from None
        elif a == "--peers":
            s = value()
            try:
                o.peers = peerlist.select(s if s is not None else "")
            except ValueError as e:
                raise UsageError(str(e)) from None
        elif a == "--tokens":
            o.tokens = parse_int(a, value(), 1, 1 << 34)
        elif a == "--pass":
            o.passes = parse_passes(value())
        elif a == "--warmup":
            o.warmup = parse_int(a, value(), 0, 1000)
        elif a == "--repeat":
            o.repeat = parse_int(a, value(), 1, 100000)
        elif a == "--budget-ms":
            o.budget_ms = parse_int(a, value(), 0, 3600000)
        elif a == "--device":
            o.device = parse_int(a, value(), 0, 1023)
        elif a == "--seed":
            o.seed = parse_int(a, value(), 0, 1 << 62)
        elif a == "--no-ceilings":
            o.ceilings = False
        elif a in ("-o", "--output"):
            s = value()
            if not s:
                raise UsageError("-o needs a file name")
            o.out = s
        elif a.startswith("-") and len(a) > 1:
            raise UsageError("unknown option '%s' (see --help)" % a)
        else:
            raise UsageError("unexpected argument '%s' (see --help)" % a)
        i += 1
    return o
