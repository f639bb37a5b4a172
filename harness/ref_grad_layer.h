/* ref_grad_layer.h: the double-precision pieces the layers' backward references share
 * (ref_grad_chela*.c, ref_grad_mega*.c): activations and their derivatives, a GEMM and its
 * two gradients, LayerNorm forward (keeping what its backward needs) and backward, and the
 * [B,T,d] <-> [B,d,T] transposes the convolution references want.
 *
 * Written once here so the two layers' references differ only where the layers do.  They are
 * kept apart from reference_extra.h's helpers on purpose: those read the benchmark's float
 * tensors for the forward references, these work on double tensors, and a gradient
 * reference that shared the forward reference's code could not cross-check it.
 *
 * Layouts: rows of a matrix are contiguous; a weight W is [n_in, n_out] row-major, so a
 * layer's GEMM is Y = X W + b. */
#ifndef CHELA_REF_GRAD_LAYER_H
#define CHELA_REF_GRAD_LAYER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

double rg_logistic(double p);
double rg_silu(double p);
/* d/dp [p s(p)] = s(p) + p s(p)(1 - s(p)). */
double rg_silu_deriv(double p);

/* y[r][j] = bias[j] + sum_i x[r][i] W[i][j] for r < n_rows; bias NULL for none. */
void rg_gemm(const double *x, size_t n_rows, int n_in, const double *W, int n_out,
             const double *bias, double *y);
/* dW = X^T dY (overwrites dW). */
void rg_gemm_bwd_w(const double *x, const double *g, size_t n, int n_in, int n_out, double *dW);
/* dX = dY W^T, added to dx when accumulate, else stored. */
void rg_gemm_bwd_x(const double *g, const double *W, size_t n, int n_in, int n_out, double *dx,
                   int accumulate);
/* db = the sum over rows of dY (overwrites db). */
void rg_col_sum(const double *g, size_t n, int w, double *db);

/* LayerNorm of one row of n (biased variance, eps CHELA_LN_EPS): keeps mean, rstd and the
 * normalised row x_hat as well as y = x_hat . g + b. */
void rg_layer_norm_row(const double *x, int n, const double *g, const double *b, double *mean,
                       double *rstd, double *x_hat, double *y);
/* Its backward over n rows of w: ADDS the input gradient to dx (the callers' dx already holds
 * another path's part); dg and db are overwritten with the sums over rows. */
void rg_layer_norm_bwd(const double *x_hat, const double *rstd, const double *g, const double *dy,
                       size_t n, int w, double *dx, double *dg, double *db);

/* [B,T,d] <-> [B,d,T]: ref_grad_conv.c's layout is channel-major. */
void rg_btd_to_bdt(const double *in, int B, int T, int d, double *out);
void rg_bdt_to_btd(const double *in, int B, int T, int d, double *out);

#ifdef __cplusplus
}
#endif
#endif
