"""train.py: a peer case's training passes (--pass bwd|fwdbwd), as chela-bench's
harness/runner_train.c does them, through torch's autograd:

  - the case's inputs and parameters (its LEAVES, ops.c's inputs of the op) are made
    leaves with requires_grad after setup (never timed);
  - dy, the upstream gradient (L = sum(dy . out)): seeded uniform in [-1, 1), never zero
    (a zero drawn becomes 1), the output's shape and dtype, drawn after the inputs so
    they are the forward's;
  - fwdbwd is one call: run_train() (autograd recording) then out.backward(dy);
    bwd is one call: out.backward(dy, retain_graph=True) on the graph of one untimed
    forward (the checked call's), as chela-bench's run_bwd is repeatable after a forward;
  - before each call, outside the timed region, every gradient is set to None, so a call
    writes its gradients afresh and never accumulates into an earlier call's (as a
    training loop's zero_grad(set_to_none=True));
  - the check: every leaf got a gradient and all of it is finite (there is no float64
    backward reference here: the values are not compared with one).
A backward torch lacks (NotImplementedError, 'is not implemented', an SDPA backend with
no kernel for it) raises Unsupported: a skip:unsupported row with torch's reason.
"""

import re

import check
from peerbase import Unsupported

_NO_BACKWARD = re.compile(r"is not implemented|not implemented for|No available kernel")


def _first_line(e):
    lines = str(e).strip().splitlines()
    return "%s: %s" % (type(e).__name__, lines[0]) if lines else type(e).__name__


class Step:
    """The training pass of one case: first() is the checked call, then call() is what
    is timed and before() what precedes each timed call."""

    def __init__(self, torch, peer, pass_):
        self.torch, self.peer, self.pass_ = torch, peer, pass_
        self.leaves = peer.leaves()
        if not self.leaves:
            raise Unsupported("no backward: the peer has no inputs or parameters to train")
        for _, x in self.leaves:
            x.requires_grad_(True)
        peer.on_leaves()
        self.dy = self.out = None

    def _backward(self, out):
        try:
            out.backward(self.dy, retain_graph=self.pass_ == "bwd")
        except (NotImplementedError, RuntimeError) as e:
            if isinstance(e, NotImplementedError) or _NO_BACKWARD.search(str(e)):
                raise Unsupported("no backward in this torch: %s" % _first_line(e)) from None
            raise  # an error (out of memory included) is the sweep's to name

    def first(self):
        """The forward, dy drawn for its output, the backward; returns the output (for the
        forward's check)."""
        out = self.peer.run_train()
        if out.grad_fn is None:
            raise Unsupported("no backward: the output has no autograd graph")
        dy = self.peer.uniform(tuple(out.shape), 1.0, out.dtype)
        self.dy = dy.masked_fill_(dy == 0, 1.0)
        self._backward(out)
        if self.pass_ == "bwd":
            self.out = out  # the graph every timed backward runs on
        return out

    def before(self):
        for _, x in self.leaves:
            x.grad = None

    def call(self):
        if self.pass_ == "bwd":
            self.out.backward(self.dy, retain_graph=True)
            return None
        out = self.peer.run_train()
        out.backward(self.dy)
        return out

    def check_grads(self):
        """None when every leaf has a gradient and all of it is finite, else why not."""
        t = self.torch
        with t.no_grad():
            for name, x in self.leaves:
                if x.grad is None:
                    return "no gradient reached %s" % name
                bad = check.count_nonfinite(t, x.grad)
                if bad:
                    return "d%s: %d non-finite gradient elements" % (name, bad)
        return None

    def what(self):
        return "grads: all %d (every input and parameter) finite; not compared with a reference" % len(self.leaves)
