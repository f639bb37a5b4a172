#!/usr/bin/env python3
"""test_peers.py: the CPU side of the peer adapters, with plain python3 (stdlib unittest;
no torch, no GPU): the command line and its failures (exit 2, one line, no CSV), the
--seq grammar, the statistics and the stop rule on fake samples (the numbers
harness/core/stats.c and measure.c give, worked out by hand), the schema-2 header
against harness/csv.c's COLS table, the row format and the -o rules, the FLOPs and ideal
bytes against rows chela-bench wrote, and a fake-row file that chela-bench reads (with
CHELA_BENCH=path/to/chela-bench: `show` and `compare` on it must exit 0).  The --pass
tests (the training passes) live in test_passes.py and run here too.

    python3 baselines/peers/test_peers.py        (ctest: peers_cli)
"""

import glob
import math
import os
import re
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # the test leaves nothing in the source tree

import check  # noqa: E402
import csvout  # noqa: E402
import csvrow  # noqa: E402
import method  # noqa: E402
import opcost  # noqa: E402
import options  # noqa: E402
import peerlist  # noqa: E402
import peers_attn  # noqa: E402
import run_peers  # noqa: E402,F401  (imported for the no-torch check)
import seqspec  # noqa: E402
import sweep  # noqa: E402
from test_passes import PassCost, PassOption, PassRows, Sampler, TrainingSweep  # noqa: E402,F401  (run here)

HEADER = ("schema,git_sha,device,sm_clock_mhz,backend,op,variant,role,dtype,batch,seq,heads,dk,dv,dim,"
          "samples,median_ms,p10_ms,p90_ms,min_ms,stdrel,flops,ideal_bytes,tflops,gbps,floor_ms,"
          "floor_ratio,hbm_read_bytes,hbm_write_bytes,hbm_ratio,max_abs_err,max_rel_err,status,note,"
          "causal,pass,config,peak_mem_bytes,build")


class NoTorch(unittest.TestCase):
    def test_modules_import_without_torch(self):
        # Everything above was imported; none of it may have pulled torch or fla in.
        self.assertNotIn("torch", sys.modules)
        self.assertNotIn("fla", sys.modules)


class Seq(unittest.TestCase):
    def test_good(self):
        self.assertEqual(seqspec.parse_seq("1k..64k"), [1024 << i for i in range(7)])
        self.assertEqual(seqspec.parse_seq("1k..8k:1k"), [1024 * i for i in range(1, 9)])
        self.assertEqual(seqspec.parse_seq("1024,3000,4k"), [1024, 3000, 4096])
        self.assertEqual(seqspec.parse_seq("2K,1k,1024"), [2048, 1024])  # duplicates dropped, order kept
        self.assertEqual(seqspec.parse_seq("3..10"), [3, 6])
        self.assertEqual(seqspec.parse_seq("65536k"), [1 << 26])
        self.assertEqual(len(seqspec.parse_seq("1..256:1")), 256)

    def test_bad(self):
        cases = {
            "0": "--seq: '0': a sequence length must be at least 1 (got 0)",
            "64k..1k": "--seq: '64k..1k': range start 65536 is above its end 1024",
            "1k..": "--seq: '1k..': expected a number at '(end)'",
            "1k..64k:0": "--seq: '1k..64k:0': the step must be at least 1 (got 0)",
            "abc": "--seq: 'abc': expected a number at 'abc'",
            "99999999999k": "--seq: '99999999999k': number too large (max 67108864)",
            "65537k": "--seq: '65537k': 67109888 is too large (max 67108864)",
            "": "--seq: empty (write e.g. 1k..64k)",
            "1k,,2k": "--seq: '1k,,2k': empty item in the list",
            "1k-2k": "--seq: '1k-2k': unexpected '-2k' (write 1k..64k, 1k..8k:1k or 1024,2k)",
            "1k..2k:1kx": "--seq: '1k..2k:1kx': unexpected 'x' after the range",
            "1..257:1": "--seq: more than 256 lengths",
            "1" * 512: "--seq: value too long",
        }
        for spec, msg in cases.items():
            with self.subTest(spec=spec[:20]):
                with self.assertRaises(seqspec.SeqError) as cm:
                    seqspec.parse_seq(spec)
                self.assertEqual(str(cm.exception), msg)


class Stats(unittest.TestCase):
    """Values worked out by hand from stats.c's definitions: sorted samples, mean, sample
    standard deviation (n - 1) over the mean, quantile q at position q (n - 1) linearly
    interpolated between its neighbours."""

    def test_five(self):
        st = method.compute([5.0, 1.0, 4.0, 2.0, 3.0])
        # sorted 1 2 3 4 5; mean 3; var (4+1+0+1+4)/4 = 2.5; std sqrt(2.5) = 1.58113883
        self.assertEqual((st.n, st.median, st.min, st.mean), (5, 3.0, 1.0, 3.0))
        self.assertAlmostEqual(st.p10, 1.4, places=12)   # pos 0.4: 1*0.6 + 2*0.4
        self.assertAlmostEqual(st.p90, 4.6, places=12)   # pos 3.6: 4*0.4 + 5*0.6
        self.assertAlmostEqual(st.stdrel, 0.527046276694730, places=12)

    def test_two_and_one_and_none(self):
        st = method.compute([2.0, 1.0])
        self.assertAlmostEqual(st.median, 1.5, places=12)
        self.assertAlmostEqual(st.p10, 1.1, places=12)   # pos 0.1
        self.assertAlmostEqual(st.p90, 1.9, places=12)   # pos 0.9
        self.assertAlmostEqual(st.stdrel, 0.471404520791032, places=12)  # sqrt(0.5) / 1.5
        st = method.compute([2.0])
        self.assertEqual((st.median, st.p10, st.p90, st.min, st.stdrel), (2.0, 2.0, 2.0, 2.0, 0.0))
        st = method.compute([])
        self.assertEqual(st.n, 0)
        self.assertTrue(math.isnan(st.median) and math.isnan(st.stdrel))

    def test_ten_quantiles(self):
        st = method.compute([float(i) for i in range(10, 0, -1)])  # 1..10
        self.assertAlmostEqual(st.median, 5.5, places=12)  # pos 4.5
        self.assertAlmostEqual(st.p10, 1.9, places=12)     # pos 0.9
        self.assertAlmostEqual(st.p90, 9.1, places=12)     # pos 8.1


class FakeRun:
    """A sampler of given times and a fake clock that moves dt_ms a sample."""

    def __init__(self, values, dt_ms=0.0):
        self.values, self.dt, self.t, self.i, self.warms = values, dt_ms, 0.0, 0, 0

    def sample(self):
        v = self.values(self.i) if callable(self.values) else self.values[self.i]
        self.i += 1
        self.t += self.dt
        return v

    def warm(self):
        self.warms += 1

    def now(self):
        return self.t


class StopRule(unittest.TestCase):
    def run_rule(self, rule, run, stop=None):
        samples, st = method.measure(rule, run.sample, run.warm, stop, now=run.now)
        return samples, st

    def test_steady_stops_at_repeat(self):
        run = FakeRun(lambda i: 1.0)
        samples, st = self.run_rule(method.stop_rule_default(3, 20, 500), run)
        self.assertEqual((len(samples), run.warms, st.stdrel), (20, 3, 0.0))

    def test_spread_checked_every_ten(self):
        # steady samples, repeat 15 and 25: the spread is looked at only at 20 and 30
        for repeat, want in ((15, 20), (25, 30), (1, 10)):
            samples, _ = self.run_rule(method.stop_rule_default(0, repeat, 1e9), FakeRun(lambda i: 1.0))
            self.assertEqual(len(samples), want)

    def test_outlier_needs_thirty(self):
        # one outlier a = 0.025 among ones: std = a / sqrt(n), mean = 1 + a / n;
        # n = 20: 0.0055902 / 1.00125 = 0.005583 > 0.5 %; n = 30: 0.0045644 / 1.000833 = 0.004561 < 0.5 %
        vals = lambda i: 1.025 if i == 19 else 1.0  # noqa: E731
        samples, st = self.run_rule(method.stop_rule_default(0, 20, 1e9), FakeRun(vals))
        self.assertEqual(len(samples), 30)
        self.assertAlmostEqual(st.stdrel, 0.00456056, places=6)

    def test_budget(self):
        # a spread that never settles (1, 2, 1, 2, ...), 10 ms a sample: budget 500 ms -> 50
        noisy = lambda i: 1.0 + (i % 2)  # noqa: E731
        samples, st = self.run_rule(method.stop_rule_default(0, 20, 500), FakeRun(noisy, 10.0))
        self.assertEqual(len(samples), 50)
        self.assertEqual((st.median, st.p10, st.p90, st.min), (1.5, 1.0, 2.0, 1.0))
        # budget 0: exactly --repeat
        samples, _ = self.run_rule(method.stop_rule_default(0, 15, 0), FakeRun(noisy, 10.0))
        self.assertEqual(len(samples), 15)
        # no budget in sight: the 1000-sample cap
        samples, _ = self.run_rule(method.stop_rule_default(0, 20, 1e12), FakeRun(noisy, 10.0))
        self.assertEqual(len(samples), 1000)

    def test_caps_and_fixed(self):
        r = method.stop_rule_default(3, 5000, 500)
        self.assertEqual((r.min_samples, r.max_samples), (1000, 1000))
        self.assertEqual(method.stop_rule_default(3, 0, 500).min_samples, 1)
        run = FakeRun(lambda i: 1.0 + i)
        samples, st = self.run_rule(method.stop_rule_fixed(1, 10), run)
        self.assertEqual((len(samples), run.warms, st.median), (10, 1, 5.5))

    def test_stop_signal_and_warm_as_sample(self):
        samples, _ = self.run_rule(method.stop_rule_default(0, 20, 1e9), FakeRun(lambda i: 1.0 + i % 2),
                                   stop=lambda: True)
        self.assertEqual(len(samples), 1)
        run = FakeRun([9.0, 9.0, 1.0, 2.0, 3.0])
        samples, _ = method.measure(method.stop_rule_fixed(2, 3), run.sample, None, None, now=run.now)
        self.assertEqual(samples, [1.0, 2.0, 3.0])  # a warm-up without warm(): a dropped sample


class Header(unittest.TestCase):
    def test_literal(self):
        self.assertEqual(csvrow.header(), HEADER)

    def test_against_csv_c(self):
        with open(os.path.join(ROOT, "harness", "csv.c"), encoding="utf-8") as f:
            src = f.read()
        table = src[src.index("static const col_t COLS[] = {"):]
        table = table[: table.index("};")]
        names = []
        for m in re.finditer(r'\{"(\w+)", COL_(STR|NUM)|\b(S2?|N2?)\((\w+)\)', table):
            if m.group(1):
                names.append((m.group(1), "s" if m.group(2) == "STR" else "n"))
            else:
                names.append((m.group(4), "s" if m.group(3).startswith("S") else "n"))
        self.assertEqual(tuple(names), csvrow.COLUMNS)


class RowFormat(unittest.TestCase):
    def test_numbers(self):
        f = csvrow.format_num
        cases = [(None, ""), (math.nan, ""), (3.0, "3"), (17179869184, "17179869184"), (0.1234567, "0.123457"),
                 (1e15, "1e+15"), (math.inf, "inf"), (-math.inf, "-inf"), (-2.5, "-2.5"), (1979.87, "1979.87")]
        for v, want in cases:
            self.assertEqual(f(v), want)

    def test_text_and_row(self):
        self.assertEqual(csvrow.format_text('a,b\n"c\r'), "a;b  c ")
        row = csvrow.new_row(variant="x/y", status="ok", note="a, b", config="c" * 400)
        cells = csvrow.format_row(row).split(",")
        self.assertEqual(len(cells), len(csvrow.COLUMNS))
        got = dict(zip(csvrow.NAMES, cells))
        self.assertEqual((got["schema"], got["causal"], got["pass"], got["note"]), ("2", "1", "fwd", "a; b"))
        self.assertEqual(len(got["config"]), 255)  # what the reader keeps
        with self.assertRaises(KeyError):
            csvrow.new_row(nope=1)

    def test_derive(self):
        row = csvrow.new_row(flops=2e12, ideal_bytes=3e9, median_ms=2.0)
        csvrow.derive(row, copy_gbps=3000.0, gemm_tflops=800.0)
        self.assertAlmostEqual(row["tflops"], 1000.0)      # 2e12 / 2 ms / 1e9
        self.assertAlmostEqual(row["gbps"], 1500.0)        # 3e9 / 2 ms / 1e6
        self.assertAlmostEqual(row["floor_ms"], 2.5)       # max(3e9 / 3e9, 2e12 / 8e11)
        self.assertAlmostEqual(row["floor_ratio"], 0.8)
        row = csvrow.derive(csvrow.new_row(flops=1.0, ideal_bytes=1.0, median_ms=1.0))
        self.assertIsNone(row["floor_ms"])


def _read_rows(path):
    with open(path, encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    names = lines[0].split(",")
    return [dict(zip(names, ln.split(","))) for ln in lines[1:] if not ln.startswith("schema,")]


class OpCost(unittest.TestCase):
    """FLOPs and ideal bytes against the rows chela-bench itself wrote (the committed
    fixtures and recorded runs): the same shape must give the same numbers."""

    def test_against_recorded_rows(self):
        files = glob.glob(os.path.join(ROOT, "tests", "fixtures", "*.csv")) + \
            glob.glob(os.path.join(ROOT, "profiles", "runs", "*", "*.csv"))
        seen = set()
        for path in files:
            for r in _read_rows(path):
                op = r.get("op")
                if op not in ("linear_attn", "softmax_attn", "long_conv", "chela", "transformer") or \
                        r.get("role") == "stage" or not r.get("flops"):
                    continue
                num = lambda k: int(float(r[k])) if r.get(k) else 0  # noqa: E731
                s = opcost.Shape(num("batch"), num("seq"), H=num("heads"), dk=num("dk"), dv=num("dv"),
                                 d=num("dim"), z=num("dk") if op == "chela" else 0,
                                 v=num("dv") if op == "chela" else 0, dtype=r["dtype"])
                for col, fn in (("flops", opcost.flops), ("ideal_bytes", opcost.ideal_bytes)):
                    want, got = float(r[col]), fn(op, s)
                    self.assertLessEqual(abs(got - want), 5e-6 * want, "%s %s %s: %s" % (path, op, col, s))
                seen.add(op)
        self.assertIn("linear_attn", seen)  # the fixtures hold at least these
        self.assertIn("chela", seen)

    def test_small_cases(self):
        self.assertEqual([opcost.shape_km(T) for T in (1, 9, 10, 1024, 65536)], [1, 1, 3, 7, 9])
        s = opcost.Shape(64, 1024, H=16, dk=64, dv=64)
        self.assertEqual(opcost.flops("linear_attn", s), 4.0 * 64 * 16 * 1024 * 64 * 64)
        self.assertEqual(opcost.ideal_bytes("linear_attn", s), 2.0 * 4 * 64 * 16 * 1024 * 64)
        cells = opcost.shape_cells("long_conv", opcost.Shape(1, 65536, d=1024))
        self.assertEqual((cells["heads"], cells["dk"], cells["dim"], cells["batch"]), (None, None, 1024, 1))
        self.assertEqual(opcost.batch_for(3000, 65536), 21)
        self.assertEqual(opcost.batch_for(1 << 20, 65536), 1)


class Peers(unittest.TestCase):
    def test_select(self):
        self.assertEqual([p.name for p in peerlist.select(None)],
                         ["sdpa", "fla", "fft", "chela_layer", "transformer_layer"])
        self.assertEqual([p.name for p in peerlist.select("fft,sdpa,fft")], ["fft", "sdpa"])
        for bad in ("", "nope", "sdpa,", "sdpa,,fft"):
            with self.assertRaises(ValueError):
                peerlist.select(bad)

    def test_cases_follow_make_shape(self):
        T = 2048
        cases = {c.variant + str(c.shape.H): c for p in peerlist.PEERS for c in p.cases(T, 65536)}
        self.assertEqual(len(cases), 8)
        la = [c for c in cases.values() if c.op == "linear_attn"]
        self.assertEqual(sorted((c.shape.H, c.shape.dk, c.shape.dv) for c in la), [(1, 128, 2048), (16, 64, 64)])
        ch = cases["chela/torch_layer1"].shape
        self.assertEqual((ch.B, ch.H, ch.dk, ch.dv, ch.d, ch.z, ch.v), (32, 1, 128, 2048, 1024, 128, 2048))
        tf = cases["transformer/torch_layer16"].shape
        self.assertEqual((tf.H, tf.dk, tf.dv, tf.d), (16, 64, 64, 1024))
        for c in cases.values():
            self.assertTrue(c.variant.startswith(c.op + "/"))

    def test_check_helpers(self):
        self.assertEqual(check.tolerance("softmax_attn", "bf16"), 0.015625)
        self.assertAlmostEqual(check.tolerance("chela", "bf16"), 0.0541, places=4)
        self.assertEqual(check.sample_rows(300, 4, 2), [0, 1, 2, 3, 298, 299])
        self.assertEqual(check.sample_rows(3), [0, 1, 2])
        self.assertEqual(check.sample_text([0, 63], [0, 1, 2, 9], "2 heads"), "seqs 0 63 x rows 0-2 9 x 2 heads")


class UnavailableRows(unittest.TestCase):
    def test_rows_of_a_missing_package(self):
        cells = {"git_sha": "unknown", "device": "Fake GPU", "build": "torch 0.0"}
        for peer in peerlist.PEERS:
            for case in peer.cases(4096, 65536):
                row = sweep.unavailable_row(cells, case, "fla (flash-linear-attention) is not installed")
                self.assertEqual((row["status"], row["backend"], row["role"], row["op"], row["batch"]),
                                 ("skip:unavailable", "torch", "baseline", case.op, 16))
                self.assertEqual(row["flops"], opcost.flops(case.op, case.shape))
                self.assertIsNone(row["median_ms"])
                self.assertEqual(len(csvrow.format_row(row).split(",")), len(csvrow.COLUMNS))


class SdpaReasons(unittest.TestCase):
    def test_reasons_from_torch_warnings(self):
        # what torch 2.11 warned when flash was forced on fp32 inputs
        tail = " (Triggered internally at /pytorch/aten/src/ATen/native/transformers/cuda/sdp_utils.cpp:988.)"
        msgs = ["Memory efficient kernel not used because:" + tail,
                "Memory Efficient attention has been runtime disabled." + tail,
                "Flash attention kernel not used because:" + tail,
                "Expected query, key and value to all be of dtype: {Half, BFloat16}. Got Query dtype: float, "
                "Key dtype: float, and Value dtype: float instead." + tail,
                "cuDNN attention has been runtime disabled." + tail]
        self.assertEqual(peers_attn._sdpa_reasons(msgs),
                         ["Expected query, key and value to all be of dtype: {Half, BFloat16}. Got Query dtype: "
                          "float, Key dtype: float, and Value dtype: float instead."])


class Options(unittest.TestCase):
    def test_defaults_and_values(self):
        o = options.parse([])
        self.assertEqual((o.seq[0], o.seq[-1], len(o.seq), o.repeat, o.warmup, o.budget_ms, o.out),
                         (1024, 65536, 7, 20, 3, 500, "peers.csv"))
        o = options.parse(["--seq", "1k..4k", "--peers", "fft", "--repeat", "5", "--tokens", "64k",
                           "--budget-ms", "0", "--no-ceilings", "-o", "x.csv"])
        self.assertEqual((o.seq, [p.name for p in o.peers], o.repeat, o.tokens, o.budget_ms, o.ceilings, o.out),
                         ([1024, 2048, 4096], ["fft"], 5, 65536, 0, False, "x.csv"))

    def test_bad(self):
        cases = [(["--repeat", "abc"], "--repeat: 'abc' is not a whole number"),
                 (["--repeat", "0"], "--repeat: 0 is out of range (1..100000)"),
                 (["--warmup"], "--warmup needs a value"),
                 (["--bogus"], "unknown option '--bogus' (see --help)"),
                 (["stray"], "unexpected argument 'stray' (see --help)"),
                 (["-o"], "-o needs a file name"),
                 (["--seq"], "--seq needs a value (e.g. 1k..64k)")]
        for argv, msg in cases:
            with self.assertRaises(options.UsageError) as cm:
                options.parse(argv)
            self.assertEqual(str(cm.exception), msg)


STUB_NO_TORCH = "raise ModuleNotFoundError(\"No module named 'torch' (test stub)\", name='torch')\n"
STUB_TORCH_NO_CUDA = """__version__ = "0.0-stub"
class version:
    cuda = None
class cuda:
    @staticmethod
    def is_available():
        return False
"""
STUB_TORCH_ONE_GPU = """__version__ = "0.0-stub"
class version:
    cuda = "0.0"
class cuda:
    @staticmethod
    def is_available():
        return True
    @staticmethod
    def device_count():
        return 1
    @staticmethod
    def set_device(i):
        pass
"""
STUB_NO_FLA = "raise ModuleNotFoundError(\"No module named 'fla' (test stub)\", name='fla')\n"


class Cli(unittest.TestCase):
    """run_peers.py as a user runs it: exit 2, one line on stderr, no CSV (nor temp file)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.out = os.path.join(self.dir, "peers.csv")

    def tearDown(self):
        self.tmp.cleanup()

    def stubs(self, torch_src, fla_src=None):
        d = os.path.join(self.dir, "stubs")
        os.makedirs(os.path.join(d, "torch"), exist_ok=True)
        with open(os.path.join(d, "torch", "__init__.py"), "w") as f:
            f.write(torch_src)
        if fla_src is not None:
            os.makedirs(os.path.join(d, "fla"), exist_ok=True)
            with open(os.path.join(d, "fla", "__init__.py"), "w") as f:
                f.write(fla_src)
        return d

    def cli(self, *args, pythonpath=None):
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        return subprocess.run([sys.executable, os.path.join(HERE, "run_peers.py"), *args], env=env,
                              capture_output=True, text=True, timeout=120, cwd=self.dir)

    def assert_refused(self, r, *words):
        self.assertEqual(r.returncode, 2, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("run_peers: "), lines[0])
        for w in words:
            self.assertIn(w, lines[0])
        self.assertEqual(set(os.listdir(self.dir)) - {"stubs"}, set())  # no CSV, no temp file
        self.assertEqual(r.stdout, "")

    def test_help(self):
        r = self.cli("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--peers LIST", r.stdout)
        self.assertIn("--pass P[,P...]", r.stdout)

    def test_bad_usage(self):
        no_torch = self.stubs(STUB_NO_TORCH)  # usage is judged before torch is looked for
        for args, word in ((["--seq", "64k..1k"], "range start 65536 is above its end 1024"),
                           (["--seq", "abc"], "expected a number"),
                           (["--peers", "sdpa,bogus"], "unknown peer 'bogus'"),
                           (["--repeat", "x"], "--repeat: 'x' is not a whole number"),
                           (["--pass", "fwd,backward"], "--pass: 'backward' is not fwd, bwd or fwdbwd"),
                           (["--pass", "fwd,fwd"], "--pass: 'fwd' is listed twice"),
                           (["--frobnicate"], "unknown option")):
            with self.subTest(args=args):
                self.assert_refused(self.cli(*args, "-o", self.out, pythonpath=no_torch), word)

    def test_output_is_a_directory(self):
        os.mkdir(os.path.join(self.dir, "d"))
        r = self.cli("-o", os.path.join(self.dir, "d"), pythonpath=self.stubs(STUB_NO_TORCH))
        self.assertEqual(r.returncode, 2)
        self.assertIn("is a directory", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)

    def test_missing_torch(self):
        r = self.cli("--seq", "1k", "-o", self.out, pythonpath=self.stubs(STUB_NO_TORCH))
        self.assert_refused(r, "torch is not installed", "No module named 'torch'")

    def test_torch_without_cuda(self):
        r = self.cli("--seq", "1k", "-o", self.out, pythonpath=self.stubs(STUB_TORCH_NO_CUDA))
        self.assert_refused(r, "torch 0.0-stub sees no CUDA device")

    def test_device_out_of_range(self):
        r = self.cli("--device", "3", "-o", self.out, pythonpath=self.stubs(STUB_TORCH_ONE_GPU))
        self.assert_refused(r, "--device 3: this machine has 1 CUDA device(s)")

    def test_missing_fla_when_every_peer_needs_it(self):
        r = self.cli("--peers", "fla,chela_layer", "-o", self.out,
                     pythonpath=self.stubs(STUB_TORCH_ONE_GPU, STUB_NO_FLA))
        self.assert_refused(r, "fla (flash-linear-attention)", "No module named 'fla'", "needs it")


class Output(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_new_file_and_replace_keeps_mode(self):
        p = os.path.join(self.dir, "r.csv")
        w = csvout.Writer(p)
        self.assertTrue(w.write(csvrow.new_row(op="long_conv")))
        self.assertFalse(os.path.exists(p))  # nothing there until close
        w.close()
        with open(p) as f:
            lines = f.read().splitlines()
        self.assertEqual((lines[0], len(lines)), (HEADER, 2))
        os.chmod(p, 0o640)
        w = csvout.Writer(p)
        w.close()
        self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o640)
        self.assertEqual(sorted(os.listdir(self.dir)), ["r.csv"])

    def test_symlink_followed_and_refusals(self):
        target = os.path.join(self.dir, "t.csv")
        open(target, "w").close()
        link = os.path.join(self.dir, "l.csv")
        os.symlink(target, link)
        csvout.Writer(link).close()
        self.assertTrue(os.path.islink(link))
        with open(target) as f:
            self.assertEqual(f.read(), HEADER + "\n")
        os.symlink(os.path.join(self.dir, "nothing"), os.path.join(self.dir, "dangling"))
        for path, why in ((self.dir, "is a directory"),
                          (os.path.join(self.dir, "dangling"), "a symbolic link to nothing that exists"),
                          ("", "-o needs a file name")):
            with self.assertRaises(csvout.OutputError) as cm:
                csvout.Writer(path)
            self.assertIn(why, str(cm.exception))

    def test_abort_leaves_nothing(self):
        p = os.path.join(self.dir, "a.csv")
        w = csvout.Writer(p)
        w.write(csvrow.new_row())
        w.abort()
        self.assertEqual(os.listdir(self.dir), [])

    def test_character_device_written_through(self):
        w = csvout.Writer("/dev/null")
        self.assertTrue(w.through)
        w.write(csvrow.new_row())
        w.close()


def fake_rows():
    """Rows of the kind run_peers.py writes (made-up numbers: this is a format test)."""
    s = opcost.Shape(64, 1024, H=16, dk=64, dv=64)
    ctx = dict(git_sha="unknown", device="Fake GPU", backend="torch", role="baseline",
               build="torch 0.0; cuda 0.0; cudnn none")
    ok = csvrow.new_row(op="softmax_attn", variant="softmax_attn/torch_sdpa", status="ok",
                        config="torch 0.0 sdpa backend=default is_causal=1 bf16 layout BHTD",
                        note="oracle: torch float64 on the GPU (seqs 0 63 x rows 0-127 x 16 heads); tol 2e-02",
                        samples=20, median_ms=0.5, p10_ms=0.49, p90_ms=0.52, min_ms=0.48, stdrel=0.01,
                        max_abs_err=0.003, max_rel_err=0.009, peak_mem_bytes=671088640, **ctx)
    ok.update(opcost.shape_cells("softmax_attn", s))
    ok["flops"], ok["ideal_bytes"] = opcost.flops("softmax_attn", s), opcost.ideal_bytes("softmax_attn", s)
    csvrow.derive(ok, 3000.0, 800.0)
    c = opcost.Shape(64, 1024, d=1024)
    skip = csvrow.new_row(op="long_conv", variant="long_conv/torch_fft", status="skip:unavailable",
                          note="fla (flash-linear-attention) is not installed", **ctx)
    skip.update(opcost.shape_cells("long_conv", c))
    skip["flops"], skip["ideal_bytes"] = opcost.flops("long_conv", c), opcost.ideal_bytes("long_conv", c)
    return [ok, skip]


class ChelaBenchReads(unittest.TestCase):
    def test_fake_rows(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "peers.csv")
            w = csvout.Writer(p)
            for row in fake_rows():
                w.write(row)
            w.close()
            rows = _read_rows(p)
            self.assertEqual([r["status"] for r in rows], ["ok", "skip:unavailable"])
            self.assertEqual((rows[0]["heads"], rows[1]["heads"], rows[1]["dim"]), ("16", "", "1024"))
            bench = os.environ.get("CHELA_BENCH")
            if not bench:
                self.skipTest("CHELA_BENCH not set: chela-bench itself not run on the file")
            r = subprocess.run([bench, "show", p, "--cols", "variant,status,config", "--where", "backend=torch"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("softmax_attn/torch_sdpa", r.stdout)
            self.assertIn("skip:unavailable", r.stdout)
            r = subprocess.run([bench, "compare", p, p], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=1)
