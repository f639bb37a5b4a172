"""test_passes.py: the CPU side of --pass (the training passes), without torch: the
option's grammar, the FLOPs and ideal bytes of each pass against values worked out by
hand from harness/ops.c (and, with CHELA_BENCH set, against the rows chela-bench itself
writes at every pass), the fwd rows byte for byte as before --pass, the peers' leaves
against the op's inputs, and the sweep's training path (train.py) on a fake torch.

Run by test_peers.py (ctest peers_cli), which imports these classes into its own run.
"""

import contextlib
import math
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import csvrow  # noqa: E402
import gpu  # noqa: E402
import opcost  # noqa: E402
import options  # noqa: E402
import peerlist  # noqa: E402
import peers_attn  # noqa: E402
import peers_conv  # noqa: E402
import peers_layers  # noqa: E402
import sweep  # noqa: E402
from peerbase import PeerCase  # noqa: E402


class PassOption(unittest.TestCase):
    def test_good(self):
        self.assertEqual(options.parse([]).passes, ["fwd"])
        for spec, want in (("fwd", ["fwd"]), ("fwdbwd", ["fwdbwd"]), ("bwd", ["bwd"]),
                           ("fwd,fwdbwd", ["fwd", "fwdbwd"]), ("fwdbwd,bwd,fwd", ["fwdbwd", "bwd", "fwd"])):
            self.assertEqual(options.parse(["--pass", spec]).passes, want)

    def test_bad(self):  # harness/cli.c parse_passes's words
        needs = "--pass needs fwd, bwd, fwdbwd or a comma list of them"
        for argv, msg in ((["--pass"], needs), (["--pass", ""], needs), (["--pass", "f" * 64], needs),
                          (["--pass", "backward"], "--pass: 'backward' is not fwd, bwd or fwdbwd"),
                          (["--pass", "fwd,,bwd"], "--pass: '' is not fwd, bwd or fwdbwd"),
                          (["--pass", "fwd,"], "--pass: '' is not fwd, bwd or fwdbwd"),
                          (["--pass", "FWD"], "--pass: 'FWD' is not fwd, bwd or fwdbwd"),
                          (["--pass", "fwdbwd,fwd,fwdbwd"], "--pass: 'fwdbwd' is listed twice")):
            with self.subTest(argv=argv):
                with self.assertRaises(options.UsageError) as cm:
                    options.parse(argv)
                self.assertEqual(str(cm.exception), msg)


S = opcost.Shape
# One shape per op (the peers' at T = 1024): B 64, T 1024.
SHAPES = {"linear_attn": S(64, 1024, H=16, dk=64, dv=64), "softmax_attn": S(64, 1024, H=16, dk=64, dv=64),
          "long_conv": S(64, 1024, d=1024), "chela": S(64, 1024, H=1, dk=128, dv=2048, d=1024, z=128, v=2048),
          "transformer": S(64, 1024, H=16, dk=64, dv=64, d=1024)}
MI = 64 * 16 * 1024 * 64 * 2  # one [64, 16, 1024, 64] bf16 tensor (128 MiB); also x, y, dy of the others
FFT = 2.5 * 2048 * 11         # one real FFT of N = 2T = 2048: 2.5 N log2 N
LC_FWD = 64 * 1024 * (2 * FFT + 6 * 1025)                        # 7785021440
LC_BWD = 64 * 1024 * (2 * FFT + 14 * 1025) + 1024 * FFT          # 8380088320
CH_MACS = 1024 * (128 + 2048 + 2048) + 2 * 1024 * 2048 + 4 * 1024 * 1024  # a token's GEMM MACs: 12713984
CH_W = CH_MACS                                                   # the GEMM weights' elements are the same sum
CH_F32 = 2048 + 3072 + 1024 * 1024 + 3072 + 1024 * 7 + 4224 + 512 + 2048 + 1024 + 2048  # fp32 params, k_m 7 taps
TF_W, TF_F32 = 12 * 1024 * 1024, 13 * 1024
SA = 2 * 64 * 16 * 1024 * 1024 * 64                              # causal softmax attention, 2 B H T^2 D
HAND = {  # op: {pass: (flops, ideal bytes)}
    "linear_attn": {"fwd": (4 * 64 * 16 * 1024 * 64 * 64, 4 * MI),
                    "bwd": (2 * 4 * 64 * 16 * 1024 * 64 * 64, 7 * MI),        # q k v dy read, dq dk dv written
                    "fwdbwd": (3 * 4 * 64 * 16 * 1024 * 64 * 64, 8 * MI)},    # and o written
    "softmax_attn": {"fwd": (SA, 4 * MI), "bwd": (2.5 * SA, 7 * MI), "fwdbwd": (3.5 * SA, 8 * MI)},
    "long_conv": {"fwd": (LC_FWD, 2 * MI + 4 * 1024 * 1024),
                  "bwd": (LC_BWD, 3 * MI + 2 * 4 * 1024 * 1024),                # x dy dx; k dk fp32
                  "fwdbwd": (LC_BWD + LC_FWD, 4 * MI + 2 * 4 * 1024 * 1024)},
    "chela": {"fwd": (65536 * (2 * CH_MACS + 4 * 128 * 2048) + LC_FWD, 2 * MI + 2 * CH_W + 4 * CH_F32),
              "bwd": (65536 * (4 * CH_MACS + 8 * 128 * 2048) + LC_BWD + 18 * 64 * 1024 * 1024,
                      3 * MI + (2 + 4) * CH_W + 2 * 4 * CH_F32),             # weights' gradients fp32
              "fwdbwd": (65536 * (6 * CH_MACS + 12 * 128 * 2048) + LC_FWD + LC_BWD + 18 * 64 * 1024 * 1024,
                         4 * MI + (2 + 4) * CH_W + 2 * 4 * CH_F32)},
    "transformer": {"fwd": (65536 * 24 * 1024 * 1024 + SA, 2 * MI + 2 * TF_W + 4 * TF_F32),
                    "bwd": (2 * 65536 * 24 * 1024 * 1024 + 2.5 * SA, 3 * MI + 6 * TF_W + 8 * TF_F32),
                    "fwdbwd": (3 * 65536 * 24 * 1024 * 1024 + 3.5 * SA, 4 * MI + 6 * TF_W + 8 * TF_F32)},
}


class PassCost(unittest.TestCase):
    def test_hand_values(self):
        for op, by_pass in HAND.items():
            for p, (fl, by) in by_pass.items():
                with self.subTest(op=op, pass_=p):
                    self.assertAlmostEqual(opcost.flops(op, SHAPES[op], p) / fl, 1.0, places=12)
                    self.assertEqual(opcost.ideal_bytes(op, SHAPES[op], p), by)
        self.assertEqual(HAND["chela"]["fwdbwd"][1], 621745152)  # the arithmetic above, written out once
        with self.assertRaises(ValueError):
            opcost.flops("linear_attn", SHAPES["linear_attn"], "backward")

    def test_against_chela_bench(self):
        """chela-bench's CPU backend writes every pass's flops and ideal_bytes at a small
        shape (B 2, odd widths): the peers' must be the same numbers."""
        bench = os.environ.get("CHELA_BENCH")
        if not bench:
            self.skipTest("CHELA_BENCH not set: chela-bench's own per-pass numbers not compared")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "passes.csv")
            args = ["--backend", "cpu", "--ops", "linear_attn,softmax_attn,long_conv,chela,transformer",
                    "--seq", "64", "--batch", "2", "--pass", "fwd,bwd,fwdbwd", "--dim", "128", "--z", "16",
                    "--v", "64", "--heads", "2", "--dk", "16", "--dv", "24", "--repeat", "1", "--warmup", "0",
                    "--budget-ms", "0", "-o", out]
            r = subprocess.run([bench, *args], capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out, encoding="utf-8") as f:
                lines = [ln.rstrip("\n") for ln in f if ln.strip()]
        names, seen = lines[0].split(","), set()
        for ln in lines[1:]:
            row = dict(zip(names, ln.split(",")))
            op, num = row["op"], (lambda k: int(float(row[k])) if row[k] else 0)  # noqa: E731
            s = S(num("batch"), num("seq"), H=num("heads"), dk=num("dk"), dv=num("dv"), d=num("dim"),
                  z=num("dk") if op == "chela" else 0, v=num("dv") if op == "chela" else 0, dtype=row["dtype"])
            for col, fn in (("flops", opcost.flops), ("ideal_bytes", opcost.ideal_bytes)):
                want, got = float(row[col]), fn(op, s, row["pass"])
                self.assertLessEqual(abs(got - want), 5e-6 * want, "%s %s %s" % (op, row["pass"], col))
            seen.add((op, row["pass"]))
        self.assertEqual(len(seen), 15)


# The fwd rows' CPU-side cells at T = 2048, as run_peers.py wrote them before --pass existed.
FWD_ROWS_2048 = [
    "softmax_attn,softmax_attn/torch_sdpa,baseline,bf16,32,2048,16,64,64,,,,,,,,274877906944,536870912",
    "softmax_attn,softmax_attn/torch_sdpa_flash,baseline,bf16,32,2048,16,64,64,,,,,,,,274877906944,536870912",
    "softmax_attn,softmax_attn/torch_sdpa_cudnn,baseline,bf16,32,2048,16,64,64,,,,,,,,274877906944,536870912",
    "linear_attn,linear_attn/fla_chunk,baseline,bf16,32,2048,16,64,64,,,,,,,,17179869184,536870912",
    "linear_attn,linear_attn/fla_chunk,baseline,bf16,32,2048,1,128,2048,,,,,,,,68719476736,570425344",
    "long_conv,long_conv/torch_fft,baseline,bf16,32,2048,,,,1024,,,,,,,8455913472,276824064",
    "chela,chela/torch_layer,baseline,bf16,32,2048,1,128,2048,1024,,,,,,,1743622701056,302352896",
    "transformer,transformer/torch_layer,baseline,bf16,32,2048,16,64,64,1024,,,,,,,1924145348608,293654528",
]
CELLS = {"git_sha": "unknown", "device": "Fake GPU", "build": "torch 0.0"}


class PassRows(unittest.TestCase):
    def cases(self):
        return [c for p in peerlist.PEERS for c in p.cases(2048, 65536)]

    def test_fwd_rows_unchanged(self):
        for case, want in zip(self.cases(), FWD_ROWS_2048):
            for row in (sweep.base_row(CELLS, case), sweep.base_row(CELLS, case, "fwd")):
                line = csvrow.format_row(row)
                self.assertEqual(line, "2,unknown,Fake GPU,,torch," + want + ",,,,,,,,,,,,1,fwd,,,torch 0.0")
            row = sweep.unavailable_row(CELLS, case, "why")
            self.assertTrue(csvrow.format_row(row).endswith(",skip:unavailable,why,1,fwd,,,torch 0.0"))

    def test_training_rows(self):
        for case in self.cases():
            for p in ("bwd", "fwdbwd"):
                for row in (sweep.base_row(CELLS, case, p), sweep.unavailable_row(CELLS, case, "why", p)):
                    cells = dict(zip(csvrow.NAMES, csvrow.format_row(row).split(",")))
                    self.assertEqual(cells["pass"], p)
                    self.assertEqual(row["flops"], opcost.flops(case.op, case.shape, p))
                    self.assertEqual(row["ideal_bytes"], opcost.ideal_bytes(case.op, case.shape, p))
                    self.assertEqual(row["flops"], opcost.flops_bwd(case.op, case.shape) +
                                     (opcost.flops_fwd(case.op, case.shape) if p == "fwdbwd" else 0))

    def test_leaves_are_the_ops_inputs(self):
        # the gradients a training pass checks are those of ops.c's inputs, in its order
        classes = {"Sdpa": peers_attn.Sdpa, "FlaChunk": peers_attn.FlaChunk, "TorchFFT": peers_conv.TorchFFT,
                   "ChelaLayer": peers_layers.ChelaLayer, "TransformerLayer": peers_layers.TransformerLayer}
        for case in self.cases():
            ins, _ = opcost.describe(case.op, case.shape)
            self.assertEqual([n for n, _ in classes[case.cls].LEAVES], [t.name for t in ins], case.variant)


# ---- a fake torch: enough of it for sweep.run_case, gpu.ColdSampler and train.Step ----
class FT:
    """A fake tensor: a list of floats; backward() calls the owning peer's fake autograd."""

    def __init__(self, vals, peer=None):
        self.vals, self.peer, self.grad, self.requires_grad = list(vals), peer, None, False
        self.grad_fn = "fake" if peer is not None else None
        self.shape, self.dtype, self.freed = (len(self.vals),), "bf16", False

    def requires_grad_(self, on=True):
        self.requires_grad = on
        return self

    def __eq__(self, other):
        return [v == other for v in self.vals]

    def masked_fill_(self, mask, value):
        self.vals = [value if m else v for v, m in zip(self.vals, mask)]
        return self

    def backward(self, dy, retain_graph=False):
        if self.freed:
            raise RuntimeError("Trying to backward through the graph a second time")
        self.freed = not retain_graph
        self.peer.backward(dy, retain_graph)


class Mask(list):
    def __invert__(self):
        return Mask(not m for m in self)

    def sum(self):
        return len([m for m in self if m])


class FakeTorch:
    float32, bfloat16 = "f32", "bf16"
    no_grad = staticmethod(contextlib.nullcontext)

    @staticmethod
    def isfinite(x):
        return Mask(math.isfinite(v) for v in x.vals)

    class cuda:
        class Event:
            def __init__(self, enable_timing=True):
                pass

            def record(self):
                pass

            def synchronize(self):
                pass

            def elapsed_time(self, other):
                return 1.0

        synchronize = empty_cache = reset_peak_memory_stats = staticmethod(lambda: None)
        memory_allocated = max_memory_allocated = staticmethod(lambda: 0)


class FakeEnv:
    torch, seed = FakeTorch, 1

    class gen:
        @staticmethod
        def manual_seed(seed):
            pass


MADE = []  # the fake peers the sweep made, newest last


class FakePeer(PeerCase):
    """A peer of two leaves: its backward writes dx and dw, or misbehaves as told."""
    LEAVES = (("x", "x"), ("w", "w"))
    grads = {"x": [1.0, 2.0], "w": [3.0]}
    raise_in_backward = None

    def setup(self):
        self.x, self.w, self.log, self.dy = FT([1.0, 2.0]), FT([0.5]), [], None
        MADE.append(self)

    def uniform(self, shape, scale=1.0, dtype=None, offset=0.0):
        return FT([0.25, 0.0])  # dy: its zero must become 1

    def run(self):
        self.log.append("fwd")
        return FT([1.0, 2.0], self)

    def backward(self, dy, retain_graph):
        self.log.append("bwd retain" if retain_graph else "bwd")
        self.dy = dy.vals
        if self.raise_in_backward:
            raise self.raise_in_backward
        for name, vals in self.grads.items():
            leaf = getattr(self, name)
            if leaf.grad is not None:
                raise RuntimeError("a gradient accumulated into the last call's")
            leaf.grad = FT(vals)

    def check(self, out):
        return 0.001, 0.002, "seqs 0 x rows 0-1 x 2 columns"

    def config(self):
        return "fake"


class NoLeaves(FakePeer):
    LEAVES = ()


class NaNGrad(FakePeer):
    grads = {"x": [1.0, 2.0], "w": [math.nan]}


class MissingGrad(FakePeer):
    grads = {"x": [1.0, 2.0]}


class NoBackward(FakePeer):
    raise_in_backward = NotImplementedError("the derivative for 'fake_op' is not implemented.")


class Opts:
    warmup, repeat, budget_ms = 2, 5, 0


class Flusher:
    def flush(self):
        pass


ORACLE = "oracle: torch float64 on the GPU (seqs 0 x rows 0-1 x 2 columns); tol 2e-02"  # the fake's fwd note


class TrainingSweep(unittest.TestCase):
    def run_case(self, cls, pass_):
        # the sweep imports the case's module by name: this one, whether run or imported
        case = peerlist.Case("fake", "linear_attn", "linear_attn/fake", S(2, 4, H=1, dk=2, dv=2), __name__, cls)
        ctx = sweep.Context(FakeTorch, FakeEnv, Opts, "unknown", "Fake GPU", "torch 0.0", Flusher(), None,
                            lambda: False)
        row = sweep.run_case(ctx, case, dict(CELLS), pass_)
        return row, MADE[-1]

    def test_fwdbwd(self):
        row, peer = self.run_case("FakePeer", "fwdbwd")
        self.assertEqual((row["status"], row["pass"], row["samples"], row["median_ms"]), ("ok", "fwdbwd", 5, 1.0))
        self.assertEqual(row["note"], ORACLE + "; grads: all 2 (every input and parameter) finite; "
                         "not compared with a reference")
        self.assertEqual(peer.log, ["fwd", "bwd"] * (1 + 2 + 5))  # checked call, 2 warm-ups, 5 samples
        self.assertTrue(peer.x.requires_grad and peer.w.requires_grad)
        self.assertEqual(peer.dy, [0.25, 1.0])
        self.assertEqual(row["flops"], opcost.flops("linear_attn", S(2, 4, H=1, dk=2, dv=2), "fwdbwd"))

    def test_bwd_reuses_one_forward(self):
        row, peer = self.run_case("FakePeer", "bwd")
        self.assertEqual((row["status"], row["pass"]), ("ok", "bwd"))
        self.assertEqual(peer.log, ["fwd"] + ["bwd retain"] * (1 + 2 + 5))

    def test_fwd_untouched(self):
        row, peer = self.run_case("FakePeer", "fwd")
        self.assertEqual((row["status"], row["pass"], peer.log), ("ok", "fwd", ["fwd"] * 8))
        self.assertEqual(row["note"], ORACLE)
        self.assertFalse(peer.x.requires_grad)

    def test_failures_and_skips(self):
        for cls, status, note in (("NaNGrad", "fail:wrong", "dw: 1 non-finite gradient elements; forward oracle"),
                                  ("MissingGrad", "fail:wrong", "no gradient reached w; forward oracle"),
                                  ("NoBackward", "skip:unsupported", "no backward in this torch: "
                                   "NotImplementedError: the derivative for 'fake_op' is not implemented."),
                                  ("NoLeaves", "skip:unsupported", "no backward: the peer has no inputs")):
            with self.subTest(cls=cls):
                row, peer = self.run_case(cls, "fwdbwd")
                self.assertEqual(row["status"], status)
                self.assertTrue(row["note"].startswith(note), row["note"])
                self.assertIsNone(row["median_ms"])


class Sampler(unittest.TestCase):
    def test_before_runs_untimed_before_each_call(self):
        log = []

        class Fl:
            def flush(self):
                log.append("flush")
        smp = gpu.ColdSampler(FakeTorch, lambda: log.append("call"), Fl(), before=lambda: log.append("before"))
        smp.warm()
        smp.sample()
        self.assertEqual(log, ["before", "call", "before", "flush", "call"])


if __name__ == "__main__":
    unittest.main(verbosity=1)
