"""peers_conv.py: long_conv/torch_fft, the causal depthwise long convolution done the
usual PyTorch way (H3, Hyena, CHELA's training code):

    y = irfft(rfft(x, n=2T) * rfft(k, n=2T), n=2T)[..., :T]

x [B, d, T] bf16 read and y written in bf16 (chela-bench's long_conv at the bf16
default: activations bf16, the kernel fp32), the transforms in fp32; the kernel's
spectrum is a parameter, computed once in setup and not timed, as long_conv/fft does.
Zero padding to n = 2T makes the FFT's circular convolution the linear one.

Checked at rows 0..127 and the last 8 of the first and last sequence, every channel,
against y[t] = sum_{j<=t} k[j] x[t-j] in float64.

Trained (--pass bwd, fwdbwd), x and the kernel k are the leaves, and the step computes
the kernel's spectrum from k (rfft, fp32) before the product, as a training step must
(the kernel is learned): torch's autograd then gives dx (bf16) and dk (fp32) through the
transforms.
"""

import check
from peerbase import PeerCase, edge_batches


def causal_conv_rows_ref(torch, x, k, rows):
    """[len(rows), d] float64: y[c, t] = sum_{j<=t} k[c, j] x[c, t-j] for t in rows;
    x [d, T], k [d, T]."""
    out = []
    for t in rows:
        xs = x[:, : t + 1].double().flip(-1)          # x[c, t - j] for j = 0..t
        out.append((k[:, : t + 1].double() * xs).sum(-1))
    return torch.stack(out)


class TorchFFT(PeerCase):
    LEAVES = (("x", "x"), ("k", "k"))

    def setup(self):
        t, s = self.torch, self.s
        self.n = 2 * s.T
        self.x = self.uniform((s.B, s.d, s.T), 1.0, t.bfloat16)
        self.k = self.long_kernel(s.d, s.T)
        # [d, T + 1] complex64; a training step computes it from k in the step instead
        self.kf = None if self.training else t.fft.rfft(self.k, n=self.n)

    def _conv(self, kf):
        fft = self.torch.fft
        y = fft.irfft(fft.rfft(self.x.float(), n=self.n) * kf, n=self.n)
        return y[..., : self.s.T].to(self.torch.bfloat16)

    def run(self):
        return self._conv(self.kf)

    def run_train(self):
        return self._conv(self.torch.fft.rfft(self.k, n=self.n))

    def check(self, out):
        t, s = self.torch, self.s
        rows = check.sample_rows(s.T)
        got, ref = [], []
        for b in edge_batches(s.B):
            ref.append(causal_conv_rows_ref(t, self.x[b], self.k, rows))   # [R, d]
            got.append(out[b][:, rows].T)                                    # [R, d]
        e_abs, e_rel = check.compare(t, t.cat(got), t.cat(ref))
        return e_abs, e_rel, check.sample_text(edge_batches(s.B), rows, "%d channels" % s.d)

    def config(self):
        return "%s torch.fft rfft/irfft fp32 n=2T=%d x/y bf16 kernel fp32 spectrum %s" % (
            self.env.tag, self.n, "computed in the step (autograd)" if self.training else "precomputed")
