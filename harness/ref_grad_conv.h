/* ref_grad_conv.h: CPU references for the backward pass of the two causal
 * depthwise convolutions (long_conv, short_long_conv), in double.
 *
 * These are whole-tensor functions for small shapes (tests, and the oracle of a
 * future GPU backward): every input and output is a dense double array in the
 * layouts of op.h, x and y as [B,d,T], per-channel kernels as [d,len].  The
 * forwards here are written from the formulas again rather than calling
 * ref_conv.c, so a finite-difference test of the gradients does not lean on the
 * float-input sampled references it may one day be compared with.
 *
 * Every function returns 0, or -1 with the reason left for bench_last_error()
 * (bench_check.h).  Kernel taps that cannot reach any output (tap j >= T, e.g.
 * k3 when T < 3) get a gradient of exactly 0. */
#ifndef CHELA_REF_GRAD_CONV_H
#define CHELA_REF_GRAD_CONV_H

#ifdef __cplusplus
extern "C" {
#endif

/* y[b,c,t] = sum_{j<=t} k[c,j] x[b,c,t-j].  x, y [B,d,T]; k [d,T]. */
int ref_long_conv_fwd_d(int B, int d, int T, const double *x, const double *k, double *y);

/* Given dY = dL/dy:
 *   dX[b,c,s] = sum_{t>=s} k[c,t-s] dY[b,c,t]          (correlation with k)
 *   dK[c,j]   = sum_b sum_{t>=j} x[b,c,t-j] dY[b,c,t]  (correlation of dY with x)
 * dX [B,d,T], dK [d,T]; dK is overwritten, not accumulated into. */
int ref_long_conv_bwd(int B, int d, int T, const double *x, const double *k, const double *dY,
                      double *dX, double *dK);

/* u = SiLU(k3 * x) (causal, 3 taps), z = k_long * u + k3b * u + km * u, the
 * branches form.  x, z [B,d,T]; k3, k3b [d,3]; klong [d,T]; km [d,k_m] with
 * k_m = shape_km(T) = 2 floor(log10 T) + 1. */
int ref_short_long_conv_fwd_d(int B, int d, int T, const double *x, const double *k3,
                              const double *klong, const double *k3b, const double *km,
                              double *z);

/* Given dZ = dL/dz, all gradients of the branches form (shapes as the inputs).
 *
 * The three branches see the same u, so z = Kc * u with the merged kernel
 * Kc = k_long + pad(k3b) + pad(km) (the structural reparameterization), and
 * dL/dk for each branch is dKc restricted to that branch's taps:
 *   dklong = dKc,  dk3b[j] = dKc[j] (j < 3),  dkm[j] = dKc[j] (j < k_m).
 * So the reparameterised form trains exactly: one forward and one backward
 * with the single kernel Kc, then slicing dKc, gives the branches' gradients
 * with no approximation, and the optimizer still updates the branch parameters
 * (Kc moves by the sum of the branch steps covering each tap, not by -lr dKc).
 * Then dU is the correlation of dZ with Kc, dpre = dU * SiLU'(pre) with
 * SiLU'(p) = s(p)(1 + p(1 - s(p))), s the logistic, and dX / dk3 follow as for
 * long_conv with the 3-tap kernel. */
int ref_short_long_conv_bwd(int B, int d, int T, const double *x, const double *k3,
                            const double *klong, const double *k3b, const double *km,
                            const double *dZ, double *dX, double *dk3, double *dklong,
                            double *dk3b, double *dkm);

#ifdef __cplusplus
}
#endif
#endif
