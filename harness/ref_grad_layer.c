/* ref_grad_layer.c: the layers' backward references' shared double pieces (ref_grad_layer.h). */
#include "ref_grad_layer.h"

#include <math.h>
#include <string.h>

#include "op_inputs.h" /* CHELA_LN_EPS */

double rg_logistic(double p) { return 1.0 / (1.0 + exp(-p)); }
double rg_silu(double p) { return p * rg_logistic(p); }
double rg_silu_deriv(double p) {
    const double s = rg_logistic(p);
    return s * (1.0 + p * (1.0 - s));
}

void rg_layer_norm_row(const double *x, int n, const double *g, const double *b,
                       double *mean, double *rstd, double *x_hat, double *y) {
    double mu = 0.0;
    for (int i = 0; i < n; i++) mu += x[i];
    mu /= n;
    double var = 0.0;
    for (int i = 0; i < n; i++) var += (x[i] - mu) * (x[i] - mu);
    var /= n;
    const double r = 1.0 / sqrt(var + CHELA_LN_EPS);
    for (int i = 0; i < n; i++) {
        x_hat[i] = (x[i] - mu) * r;
        y[i] = x_hat[i] * g[i] + b[i];
    }
    *mean = mu;
    *rstd = r;
}

void rg_gemm(const double *x, size_t n_rows, int n_in, const double *W, int n_out,
             const double *bias, double *y) {
    for (size_t r = 0; r < n_rows; r++)
        for (int j = 0; j < n_out; j++) {
            double acc = bias ? bias[j] : 0.0;
            for (int i = 0; i < n_in; i++)
                acc += x[r * (size_t)n_in + i] * W[(size_t)i * n_out + j];
            y[r * (size_t)n_out + j] = acc;
        }
}

void rg_gemm_bwd_w(const double *x, const double *g, size_t n, int n_in, int n_out,
                   double *dW) {
    for (int i = 0; i < n_in; i++)
        for (int j = 0; j < n_out; j++) {
            double acc = 0.0;
            for (size_t r = 0; r < n; r++) acc += x[r * n_in + i] * g[r * n_out + j];
            dW[(size_t)i * n_out + j] = acc;
        }
}

void rg_col_sum(const double *g, size_t n, int w, double *db) {
    for (int j = 0; j < w; j++) {
        double acc = 0.0;
        for (size_t r = 0; r < n; r++) acc += g[r * w + j];
        db[j] = acc;
    }
}

void rg_gemm_bwd_x(const double *g, const double *W, size_t n, int n_in, int n_out,
                   double *dx, int accumulate) {
    for (size_t r = 0; r < n; r++)
        for (int i = 0; i < n_in; i++) {
            double acc = 0.0;
            for (int j = 0; j < n_out; j++) acc += g[r * n_out + j] * W[(size_t)i * n_out + j];
            dx[r * n_in + i] = accumulate ? dx[r * n_in + i] + acc : acc;
        }
}

void rg_layer_norm_bwd(const double *x_hat, const double *rstd, const double *g,
                       const double *dy, size_t n, int w, double *dx, double *dg,
                       double *db) {
    memset(dg, 0, (size_t)w * sizeof(double));
    memset(db, 0, (size_t)w * sizeof(double));
    for (size_t r = 0; r < n; r++) {
        const double *xh = x_hat + r * w, *gy = dy + r * w;
        double mean_dxh = 0.0, mean_dxh_xh = 0.0;
        for (int i = 0; i < w; i++) {
            dg[i] += gy[i] * xh[i];
            db[i] += gy[i];
            mean_dxh += gy[i] * g[i];
            mean_dxh_xh += gy[i] * g[i] * xh[i];
        }
        mean_dxh /= w;
        mean_dxh_xh /= w;
        for (int i = 0; i < w; i++)
            dx[r * w + i] += rstd[r] * (gy[i] * g[i] - mean_dxh - xh[i] * mean_dxh_xh);
    }
}

void rg_btd_to_bdt(const double *in, int B, int T, int d, double *out) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < d; c++)
                out[((size_t)b * d + c) * T + t] = in[((size_t)b * T + t) * d + c];
}

void rg_bdt_to_btd(const double *in, int B, int T, int d, double *out) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < d; c++)
                out[((size_t)b * T + t) * d + c] = in[((size_t)b * d + c) * T + t];
}
