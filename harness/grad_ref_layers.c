/* grad_ref_layers.c: the layers' gradient references for the harness (grad_ref.h), from the
 * whole-layer double backwards (ref_grad_transformer.h, ref_grad_chela.h).
 *
 * A layer's gradients cannot be sampled the way an op's are: every weight's gradient sums
 * over every token, and every token's dX depends on every later token through the
 * attention.  So the reference is the whole backward, computed once per point (whole()), and
 * a tensor's sample is read out of it; cost() is that whole backward for any sample, so the
 * runner affords it only at small shapes (B T (36 d^2 + 3 T d) multiply-adds: d 256, 2000
 * tokens is ~6e9).  Larger points are checked against the fp32 GPU oracle instead.
 *
 * Views: dX [B,T,d] as seq = b, t = token, col = feature; a weight [in,out] as one seq of
 * `in` rows of `out` columns; a vector [n] as one row of n columns. */
#include <stdlib.h>

#include "bench_check.h"
#include "grad_ref.h"
#include "op_inputs.h"
#include "ref_grad_chela.h"
#include "ref_grad_transformer.h"

/* A layer's dX [B,T,d]: seq = b, t = token, col = feature. */
static void act_view(const shape_t *s, grad_view_t *v) {
    v->n_seq = s->B;
    v->n_t = s->T;
    v->n_col = s->d;
    v->seq_stride = (size_t)s->T * s->d;
    v->t_stride = (size_t)s->d;
    v->col_stride = 1;
}

/* A parameter as one seq of `rows` rows of `cols` columns (a vector: one row). */
static void param_view(int rows, int cols, grad_view_t *v) {
    v->n_seq = 1;
    v->n_t = rows;
    v->n_col = cols;
    v->seq_stride = 0;
    v->t_stride = (size_t)cols;
    v->col_stride = 1;
}

static void tf_view(const shape_t *s, int tensor, grad_view_t *v) {
    const int d = s->d;
    int rows = 1, cols = d;
    switch (tensor) {
    case TRANSFORMER_IN_X: act_view(s, v); return;
    case TRANSFORMER_IN_WQKV: rows = d; cols = 3 * d; break;
    case TRANSFORMER_IN_WO: rows = d; cols = d; break;
    case TRANSFORMER_IN_W1: rows = d; cols = 4 * d; break;
    case TRANSFORMER_IN_W2: rows = 4 * d; cols = d; break;
    case TRANSFORMER_IN_BQKV: cols = 3 * d; break;
    case TRANSFORMER_IN_B1: cols = 4 * d; break;
    default: break; /* the d-vectors: gains, biases */
    }
    param_view(rows, cols, v);
}

/* The whole backward: the forward (QKV, Wo, the FFN: 12 d^2 a token, the attention T d / 2
 * a token on average), then twice that for the gradients. */
static double tf_grad_cost(const shape_t *s, int tensor, const sample_t *smp) {
    (void)tensor;
    (void)smp;
    const double tokens = (double)s->B * s->T, d = s->d;
    return 3.0 * tokens * (12.0 * d * d + 0.5 * (double)s->T * d);
}

/* Widens the float inputs and dy to double and runs a whole double backward. */
typedef int (*whole_bwd_fn)(const shape_t *s, const double *const *in, const double *dy,
                            double *const *grad);
static int whole_in_double(op_id op, const shape_t *s, const float *const *in, const float *dy,
                           double *const *grad, whole_bwd_fn bwd) {
    tensor_desc_t desc[OP_MAX_INPUTS], out;
    const int n = op_get(op)->describe(s, desc, &out);
    double *din[OP_MAX_INPUTS] = {0}, *ddy = NULL;
    int rc = -1;
    for (int i = 0; i < n; i++) {
        if (!(din[i] = malloc(desc[i].elems * sizeof(double)))) goto out;
        for (size_t k = 0; k < desc[i].elems; k++) din[i][k] = in[i][k];
    }
    if (!(ddy = malloc(out.elems * sizeof(double)))) goto out;
    for (size_t k = 0; k < out.elems; k++) ddy[k] = dy[k];
    rc = bwd(s, (const double *const *)din, ddy, grad);
out:
    if (rc && !ddy) bench_set_error(__FILE__, __LINE__, "host memory for the layer's reference");
    for (int i = 0; i < n; i++) free(din[i]);
    free(ddy);
    return rc;
}

static int ref_transformer_bwd_noacts(const shape_t *s, const double *const *in,
                                      const double *dy, double *const *grad) {
    return ref_transformer_bwd(s, in, NULL, dy, grad);
}
static int ref_chela_bwd_noacts(const shape_t *s, const double *const *in, const double *dy,
                                double *const *grad) {
    return ref_chela_bwd(s, in, NULL, dy, grad);
}

static int tf_grad_whole(const shape_t *s, const float *const *in, const float *dy,
                         double *const *grad) {
    return whole_in_double(OP_TRANSFORMER, s, in, dy, grad, ref_transformer_bwd_noacts);
}

/* ---------------- chela (ref_grad_chela.h) ----------------
 * Views: dX [B,T,d]; a weight [in,out] (w_proj [d,np], w_v [d,v], u_h [v,d], w1 [d,2d],
 * w2 [2d,d]) and the per-channel kernels (k3, k3b [d,3], k_long [d,T], km [d,k_m]) as one
 * seq of rows; a vector as one row. */
static void chela_view(const shape_t *s, int tensor, grad_view_t *v) {
    const int d = s->d, z = s->z, vv = s->v, np = s->z + s->v + 2 * s->d;
    int rows = 1, cols = d;
    switch (tensor) {
    case CHELA_IN_X: act_view(s, v); return;
    case CHELA_IN_K3:
    case CHELA_IN_K3B: rows = d; cols = 3; break;
    case CHELA_IN_KLONG: rows = d; cols = s->T; break;
    case CHELA_IN_KM: rows = d; cols = shape_km(s->T); break;
    case CHELA_IN_WPROJ: rows = d; cols = np; break;
    case CHELA_IN_BPROJ: cols = np; break;
    case CHELA_IN_KAPPA_Q:
    case CHELA_IN_MU_Q:
    case CHELA_IN_KAPPA_K:
    case CHELA_IN_MU_K: cols = z; break;
    case CHELA_IN_WV: rows = d; cols = vv; break;
    case CHELA_IN_BV: cols = vv; break;
    case CHELA_IN_UH: rows = vv; cols = d; break;
    case CHELA_IN_W1: rows = d; cols = 2 * d; break;
    case CHELA_IN_W2: rows = 2 * d; cols = d; break;
    default: break; /* the d-vectors */
    }
    param_view(rows, cols, v);
}

/* The whole backward: the forward's GEMMs (~12.4 d^2 a token at the default widths), the
 * direct long conv (T d / 2 a token), the attention's state (2 z v a token); three times. */
static double chela_grad_cost(const shape_t *s, int tensor, const sample_t *smp) {
    (void)tensor;
    (void)smp;
    const double tokens = (double)s->B * s->T, d = s->d, z = s->z, v = s->v;
    const double gemm = d * (z + v + 2 * d) + 2 * d * v + 4 * d * d;
    return 3.0 * tokens * (gemm + 0.5 * (double)s->T * d + 2 * z * v);
}

static int chela_grad_whole(const shape_t *s, const float *const *in, const float *dy,
                            double *const *grad) {
    return whole_in_double(OP_CHELA, s, in, dy, grad, ref_chela_bwd_noacts);
}

const grad_ref_t GRAD_REF_CHELA = {.op = OP_CHELA, .view = chela_view, .cost = chela_grad_cost,
                                   .whole = chela_grad_whole};

const grad_ref_t GRAD_REF_TRANSFORMER = {.op = OP_TRANSFORMER, .view = tf_view,
                                         .cost = tf_grad_cost, .whole = tf_grad_whole};
