"""peerbase.py: what every peer case provides to the sweep (sweep.py), and the input
fills they share.

A case is made at one point (an op, a shape); then
  setup()    allocates its inputs and parameters and does what a real model does once
             (a kernel's spectrum, a transposed weight): never timed;
  context()  a context manager held around its runs (an SDPA backend choice);
  run()      the call that is timed: returns the output tensor;
  check(out) its output against a float64 reference on a sample of rows:
             (max_abs_err, max_rel_err, what was checked);
  config()   what ran, for the row's config cell.
Unsupported (raised by setup or run) makes the row skip:unsupported with its reason.

For the training passes (--pass bwd|fwdbwd, train.py) a case is made with training=True
and also provides
  LEAVES       (op tensor name, attribute) for every input and parameter of the op, in
               harness/ops.c's order: the tensors the backward writes gradients to (a
               case without them has no backward: skip:unsupported);
  run_train()  the forward of a training step (default run()): where run() uses what a
               model computes once from a parameter (a kernel's spectrum), the step
               computes it from the parameter, since training changes it;
  on_leaves()  called once the leaves require grad, before the first call (what torch
               chooses may depend on it).

Inputs are seeded uniform values scaled as harness/ops.c scales them (activations
U[-1, 1), weights U[-1, 1) / sqrt(fan_in), biases 0.1 U, gains 1 + 0.1 U, long kernels
decaying as exp(-j / tau), tau = max(4, T / 16), amplitude 1 / sqrt(tau)): the same
distributions, not the same bits (chela-bench's inputs come from its own hash).
"""

import contextlib
import math


class Unsupported(Exception):
    """This point cannot run on this peer; str() says why."""


class Env:
    """What the cases share: torch, the seeded generator, fla if loaded."""

    def __init__(self, torch, seed, fla_fn=None, fla_version=None):
        self.torch = torch
        self.seed = seed
        self.gen = torch.Generator(device="cuda")
        self.fla_fn = fla_fn
        self.fla_version = fla_version
        self.tag = "torch %s" % torch.__version__


class PeerCase:
    LEAVES = ()

    def __init__(self, env, case, training=False):
        self.env = env
        self.torch = env.torch
        self.case = case
        self.s = case.shape
        self.params = case.params
        self.training = training
        env.gen.manual_seed(env.seed)

    # ---- fills (ops.c's distributions) ----
    def uniform(self, shape, scale=1.0, dtype=None, offset=0.0):
        t = self.torch
        x = t.rand(shape, generator=self.env.gen, device="cuda", dtype=t.float32)
        x.mul_(2).sub_(1).mul_(scale)
        if offset:
            x.add_(offset)
        return x if dtype is None or dtype == t.float32 else x.to(dtype)

    def gain(self, n, dtype=None):
        return self.uniform((n,), 0.1, dtype, offset=1.0)

    def long_kernel(self, d, T):
        """[d, T] fp32: scale * u * exp(-j / tau), tau = max(4, T / 16), scale 1/sqrt(tau)."""
        t = self.torch
        tau = max(4.0, T / 16.0)
        j = t.arange(T, device="cuda", dtype=t.float32)
        return self.uniform((d, T), 1.0 / math.sqrt(tau)) * t.exp(-j / tau)

    # ---- the interface ----
    def setup(self):
        raise NotImplementedError

    def context(self):
        return contextlib.nullcontext()

    def run(self):
        raise NotImplementedError

    def run_train(self):
        return self.run()

    def leaves(self):
        """[(name, tensor)] of LEAVES."""
        return [(name, getattr(self, attr)) for name, attr in self.LEAVES]

    def on_leaves(self):
        pass

    def check(self, out):
        raise NotImplementedError

    def config(self):
        raise NotImplementedError


def edge_batches(B):
    """The sequences checked: the first and the last."""
    return sorted({0, B - 1})
