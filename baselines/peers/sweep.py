"""sweep.py: one row per case, length and pass, as chela-bench's runner makes one
(harness/runner_gpu.c run_variant): setup, a first run that is checked (never timed
when wrong), the peak memory of the point, then cold timing by the harness's stop rule.
The training passes (bwd, fwdbwd) go through train.py: the first run is the forward and
the backward, checked (the forward's output as at fwd, every gradient finite), and the
timed call is the pass's (train.Step).

Statuses: ok; skip:oom (the point does not fit), skip:unsupported (the peer cannot run
this point: its reason in the note), skip:unavailable (the peer's package is missing);
fail:wrong (the check failed: never timed), fail:setup / fail:run (an error, named).
"""

import contextlib
import importlib
import math
import sys

import check
import csvrow
import gpu
import method
import opcost
import train
from peerbase import Unsupported


class Context:
    """What every row of the run repeats, and the run's shared state."""

    def __init__(self, torch, env, opts, git_sha, device, build, flusher, ceilings, stop):
        self.torch, self.env, self.opts = torch, env, opts
        self.git_sha, self.device, self.build = git_sha, device, build
        self.flusher, self.ceilings, self.stop = flusher, ceilings, stop


def base_row(ctx_cells, case, pass_="fwd"):
    s = case.shape
    row = csvrow.new_row(backend="torch", op=case.op, variant=case.variant, role="baseline",
                         **ctx_cells)
    row.update(opcost.shape_cells(case.op, s))
    row["pass"] = pass_
    row["flops"] = opcost.flops(case.op, s, pass_)
    row["ideal_bytes"] = opcost.ideal_bytes(case.op, s, pass_)
    return row


def _first_line(e):
    lines = str(e).strip().splitlines()
    return "%s: %s" % (type(e).__name__, lines[0]) if lines else type(e).__name__


def _is_oom(torch, e):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e)


def unavailable_row(ctx_cells, case, why, pass_="fwd"):
    row = base_row(ctx_cells, case, pass_)
    row["status"], row["note"] = "skip:unavailable", why
    return row


def run_case(ctx, case, ctx_cells, pass_="fwd"):
    """The row of one case at one point and pass."""
    torch = ctx.torch
    row = base_row(ctx_cells, case, pass_)
    training = pass_ != "fwd"
    mod = importlib.import_module(case.module)
    peer = getattr(mod, case.cls)(ctx.env, case, training=training)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    stage = "setup"
    try:
        peer.setup()
        step = train.Step(torch, peer, pass_) if training else None
        row["config"] = peer.config()
        with peer.context():
            stage = "run"
            out = step.first() if training else peer.run()
            torch.cuda.synchronize()
            row["config"] = peer.config()  # now with what the first call resolved
            # what the point held: inputs, parameters, output and what the first run took
            # (for a training pass also dy, the gradients and what the forward saved)
            row["peak_mem_bytes"] = torch.cuda.max_memory_allocated() - base
            stage = "check"
            # the training output carries a graph: the check must not record onto it
            with torch.no_grad() if training else contextlib.nullcontext():
                bad = check.count_nonfinite(torch, out)
                tol = check.tolerance(case.op, case.shape.dtype)
                e_abs, e_rel, what = peer.check(out)
            del out
            row["max_abs_err"], row["max_rel_err"] = e_abs, e_rel
            oracle = "oracle: torch float64 on the GPU (%s)" % what
            if bad:
                row["status"] = "fail:wrong"
                row["note"] = "%d non-finite outputs; %s" % (bad, oracle)
                return row
            if not (e_rel <= tol):
                row["status"] = "fail:wrong"
                row["note"] = "max_rel_err %.3g > tol %.3g; %s" % (e_rel, tol, oracle)
                return row
            row["note"] = "%s; tol %.0e" % (oracle, tol)
            if training:
                why = step.check_grads()
                if why:
                    row["status"] = "fail:wrong"
                    row["note"] = "%s; forward %s" % (why, oracle)
                    return row
                row["note"] += "; " + step.what()
            stage = "timing"
            if training:
                smp = gpu.ColdSampler(torch, step.call, ctx.flusher, before=step.before)
            else:
                smp = gpu.ColdSampler(torch, peer.run, ctx.flusher)
            rule = method.stop_rule_default(ctx.opts.warmup, ctx.opts.repeat, ctx.opts.budget_ms)
            samples, st = method.measure(rule, smp.sample, smp.warm, ctx.stop)
        row["samples"], row["median_ms"], row["p10_ms"] = st.n, st.median, st.p10
        row["p90_ms"], row["min_ms"], row["stdrel"] = st.p90, st.min, st.stdrel
        row["status"] = "ok"
        copy_gbps, gemm = ctx.ceilings if ctx.ceilings else (None, None)
        csvrow.derive(row, copy_gbps, gemm if case.shape.dtype != "fp32" else None)
    except Unsupported as e:
        row["status"], row["note"] = "skip:unsupported", str(e)
    except Exception as e:  # noqa: BLE001 -- every failure becomes a row, never a crash
        if _is_oom(torch, e):
            row["status"] = "skip:oom"
            row["note"] = "%s: %s" % (stage, _first_line(e))
        else:
            row["status"] = "fail:setup" if stage == "setup" else "fail:run"
            row["note"] = "while %s: %s" % ("setting up" if stage == "setup" else stage, _first_line(e))
        for k in ("samples", "median_ms", "p10_ms", "p90_ms", "min_ms", "stdrel"):
            row[k] = None
    return row


def release(torch):
    """After a case: its tensors are gone with its frame; give the cache back so the
    next point starts from the same free memory."""
    try:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 -- a sticky CUDA error shows in the next row
        pass


def progress(row):
    """One line on stderr a row, as chela-bench prints them."""
    if row.get("heads") is not None:
        shape = "B=%d H=%d dk=%d dv=%d" % (row["batch"], row["heads"], row["dk"], row["dv"])
    else:
        shape = "B=%d d=%d" % (row["batch"], row["dim"])
    dtype = row["dtype"] if row.get("pass", "fwd") == "fwd" else "%s %s" % (row["dtype"], row["pass"])
    line = "  %-28s T=%-6d %-28s %s " % (row["variant"], row["seq"], shape, dtype)
    med = row.get("median_ms")
    if med is not None and not math.isnan(med):
        line += "%9.4f ms" % med
        if row.get("floor_ratio") is not None:
            line += "  %5.2fx floor" % row["floor_ratio"]
        line += "  %7.1f GB/s  err %.2e  ok" % (row["gbps"], row["max_rel_err"])
    else:
        line += "%s%s%s" % (row["status"], ": " if row["note"] else "", row["note"])
    print(line, file=sys.stderr, flush=True)
