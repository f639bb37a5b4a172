#!/usr/bin/env python3
"""run_peers.py: time the PyTorch / flash-linear-attention peers with chela-bench's
method and write chela-bench schema-2 rows (backend torch, role baseline), so that
`chela-bench plot ours.csv peers.csv` draws them beside chela-bench's own rows.

    python3 baselines/peers/run_peers.py --seq 1k..64k [--peers sdpa,fla,fft,chela_layer,transformer_layer]
                                         [--pass fwd,bwd,fwdbwd] [--repeat 20 --warmup 3 --budget-ms 500]
                                         -o peers.csv

Exit status: 0 every row ok or skipped; 1 a row failed or the run was interrupted;
2 bad usage, a missing dependency (one line naming it, no CSV), an unwritable -o.
README.md beside this file says what each peer is.
"""

import signal
import sys

import csvout
import deps
import options

PROG = "run_peers"


def say(msg):
    try:
        print("%s: %s" % (PROG, msg), file=sys.stderr, flush=True)
    except OSError:
        pass


class Signals:
    """First SIGINT/SIGTERM/SIGHUP: stop after the current point (the rows so far are
    kept, exit 1); a second: nothing more; a third: stop at once, no CSV."""

    def __init__(self):
        self.count = 0
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on)

    def _on(self, signum, frame):
        self.count += 1
        if self.count == 1:
            say("signal %d: stopping after the current point" % signum)
        elif self.count >= 3:
            raise KeyboardInterrupt

    def stop(self):
        return self.count > 0


def _setup(o):
    """torch, fla and the run's context, or (None, exit status)."""
    need_fla = any("fla" in p.needs for p in o.peers)
    try:
        torch = deps.load_torch(o.device)
    except deps.DepError as e:
        say(str(e))
        return None, 2
    fla_fn = fla_version = fla_missing = None
    if need_fla:
        try:
            fla_fn, fla_version = deps.load_fla()
        except deps.DepError as e:
            fla_missing = str(e)
    if fla_missing and all("fla" in p.needs for p in o.peers):
        say("%s: every peer asked for (%s) needs it" % (fla_missing, ",".join(p.name for p in o.peers)))
        return None, 2
    if fla_missing:
        say("note: %s; the rows of %s are skip:unavailable" % (
            fla_missing, ", ".join(p.name for p in o.peers if "fla" in p.needs)))
    return (torch, fla_fn, fla_version, fla_missing), 0


def main(argv):
    try:
        o = options.parse(argv)
    except options.UsageError as e:
        say(str(e))
        return 2
    if o.help:
        sys.stdout.write(options.USAGE)
        return 0
    try:
        csvout.check_target(o.out)
    except csvout.OutputError as e:
        say(str(e))
        return 2
    got, rc = _setup(o)
    if got is None:
        return rc
    torch, fla_fn, fla_version, fla_missing = got

    import gpu  # torch-side modules only now that torch is there
    import provenance
    import sweep
    from peerbase import Env

    device = torch.cuda.get_device_name(torch.cuda.current_device())
    cells = {"git_sha": provenance.git_sha(), "device": device,
             "build": provenance.build(torch, fla_version)}
    ceilings = None
    if o.ceilings:
        try:
            copy_gbps, gemm, n = gpu.measure_ceilings(torch)
            ceilings = (copy_gbps, gemm)
            say("%s: copy %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s (n = %d)" % (device, copy_gbps, gemm, n))
        except Exception as e:  # noqa: BLE001 -- the rows stand without a floor
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            say("note: the ceilings could not be measured (%s); floor_ms and floor_ratio stay empty" % why)
            torch.cuda.empty_cache()
    flusher = gpu.L2Flusher(torch)
    say("L2 %.0f MiB, swept by reading %.0f MiB before every sample" % (flusher.l2_bytes / 2**20, flusher.nbytes / 2**20))
    try:
        writer = csvout.Writer(o.out)
    except csvout.OutputError as e:
        say(str(e))
        return 2
    sig = Signals()
    ctx = sweep.Context(torch, Env(torch, o.seed, fla_fn, fla_version), o, cells["git_sha"], device,
                        cells["build"], flusher, ceilings, sig.stop)
    # chela-bench's order: each length, each op (here each peer), each pass, its variants
    cases = ((peer, case, pass_) for T in o.seq for peer in o.peers for pass_ in o.passes
             for case in peer.cases(T, o.tokens))
    n_fail = 0
    try:
        for peer, case, pass_ in cases:
            if sig.stop() or writer.error:
                break
            if fla_missing and "fla" in peer.needs:
                row = sweep.unavailable_row(cells, case, fla_missing, pass_)
            else:
                row = sweep.run_case(ctx, case, cells, pass_)
                sweep.release(torch)
            sweep.progress(row)
            writer.write(row)
            n_fail += row["status"].startswith("fail")
    except KeyboardInterrupt:
        writer.abort()
        say("interrupted: no CSV written")
        return 1
    except BaseException:
        writer.abort()  # a bug: nothing half-written is left behind
        raise
    try:
        writer.close()
    except csvout.OutputError as e:
        say(str(e))
        return 2
    return 1 if n_fail or sig.stop() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
