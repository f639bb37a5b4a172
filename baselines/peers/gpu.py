"""gpu.py: one sample as chela-bench takes it (harness/runner_gpu.c gpu_sample and
harness/gpu_util.cu), through torch:

  - the L2 is swept before every sample by a read-only pass over a buffer of at least
    twice the L2 (8 MiB at the least): a sum over it, which reads every byte and writes
    one number;
  - CUDA events on the current stream around the call alone;
  - a warm-up is a call waited for (the budget's clock starts after the warm-ups).

The ceilings (optional) are measured the way gpu_measure_ceilings does: a copy of
1 GiB each way (less on a small card) and a bf16 8192^3 matrix product on random data,
one warm-up and the median of 10 event-timed runs each, no L2 sweep.
"""

import method


class L2Flusher:
    def __init__(self, torch):
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        l2 = getattr(props, "L2_cache_size", 0) or 0
        self.l2_bytes = l2
        # An L2 of unknown size: 2 x 128 MiB covers every NVIDIA part so far.
        nbytes = max(2 * l2, 8 << 20) if l2 else 256 << 20
        self.buf = torch.ones(nbytes // 4, dtype=torch.float32, device="cuda")
        self.sink = torch.empty((), dtype=torch.float32, device="cuda")
        self.nbytes = self.buf.numel() * 4
        self.torch = torch

    def flush(self):
        self.torch.sum(self.buf, 0, out=self.sink)


class ColdSampler:
    """sample(): before() (if given: a training pass drops the last call's gradients,
    untimed), the L2 swept, then events around fn() alone; returns milliseconds.
    warm(): before() and one call, waited for."""

    def __init__(self, torch, fn, flusher, before=None):
        self.torch, self.fn, self.flusher, self.before = torch, fn, flusher, before
        self.a = torch.cuda.Event(enable_timing=True)
        self.b = torch.cuda.Event(enable_timing=True)

    def sample(self):
        if self.before is not None:
            self.before()
        self.flusher.flush()
        self.a.record()
        out = self.fn()
        self.b.record()
        self.b.synchronize()
        del out
        return self.a.elapsed_time(self.b)

    def warm(self):
        if self.before is not None:
            self.before()
        out = self.fn()
        self.torch.cuda.synchronize()
        del out


def _time_fixed(torch, fn, reps):
    """The median of reps event-timed calls after one warm-up (stop_rule_fixed)."""
    a = torch.cuda.Event(enable_timing=True)
    b = torch.cuda.Event(enable_timing=True)

    def sample():
        a.record()
        fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b)

    _, st = method.measure(method.stop_rule_fixed(1, reps), sample)
    return st.median


def _copy_gbps(torch, nbytes):
    src = torch.full((nbytes,), 1, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = _time_fixed(torch, lambda: dst.copy_(src), 10)
    return 2.0 * nbytes / (ms * 1e-3) / 1e9


def _gemm_tflops(torch, n):
    g = torch.Generator(device="cuda").manual_seed(7)
    # random, never zeros: zeros run measurably faster
    a = (torch.rand(n, n, device="cuda", generator=g) * 2 - 1).to(torch.bfloat16)
    b = (torch.rand(n, n, device="cuda", generator=g) * 2 - 1).to(torch.bfloat16)
    c = torch.empty(n, n, dtype=torch.bfloat16, device="cuda")
    ms = _time_fixed(torch, lambda: torch.matmul(a, b, out=c), 10)
    return 2.0 * n * n * n / (ms * 1e-3) / 1e12


def measure_ceilings(torch):
    """(copy GB/s counting bytes read and written, bf16 GEMM TFLOP/s, the GEMM's n)."""
    free_b, _ = torch.cuda.mem_get_info()
    copy_gbps = _copy_gbps(torch, min(1 << 30, free_b // 4))  # 1 GiB each way, far beyond L2
    n = 8192
    while n > 1024 and 3.0 * n * n * 4 > free_b / 2:
        n //= 2
    gemm_tflops = _gemm_tflops(torch, n)
    torch.cuda.empty_cache()
    return copy_gbps, gemm_tflops, n
