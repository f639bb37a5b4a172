/* grad_ref_layers.c: the layers' gradient references for the harness (grad_ref.h), from the
 * whole-layer double backwards (ref_grad_transformer.h).
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
#include "ref_grad_transformer.h"

static void tf_view(const shape_t *s, int tensor, grad_view_t *v) {
    const int d = s->d;
    int rows = 1, cols = d;
    switch (tensor) {
    case TRANSFORMER_IN_X:
        v->n_seq = s->B;
        v->n_t = s->T;
        v->n_col = d;
        v->seq_stride = (size_t)s->T * d;
        v->t_stride = (size_t)d;
        v->col_stride = 1;
        return;
    case TRANSFORMER_IN_WQKV: rows = d; cols = 3 * d; break;
    case TRANSFORMER_IN_WO: rows = d; cols = d; break;
    case TRANSFORMER_IN_W1: rows = d; cols = 4 * d; break;
    case TRANSFORMER_IN_W2: rows = 4 * d; cols = d; break;
    case TRANSFORMER_IN_BQKV: cols = 3 * d; break;
    case TRANSFORMER_IN_B1: cols = 4 * d; break;
    default: break; /* the d-vectors: gains, biases */
    }
    v->n_seq = 1;
    v->n_t = rows;
    v->n_col = cols;
    v->seq_stride = 0;
    v->t_stride = (size_t)cols;
    v->col_stride = 1;
}

/* The whole backward: the forward (QKV, Wo, the FFN: 12 d^2 a token, the attention T d / 2
 * a token on average), then twice that for the gradients. */
static double tf_grad_cost(const shape_t *s, int tensor, const sample_t *smp) {
    (void)tensor;
    (void)smp;
    const double tokens = (double)s->B * s->T, d = s->d;
    return 3.0 * tokens * (12.0 * d * d + 0.5 * (double)s->T * d);
}

static int tf_grad_whole(const shape_t *s, const float *const *in, const float *dy,
                         double *const *grad) {
    tensor_desc_t desc[OP_MAX_INPUTS], out;
    const int n = op_get(OP_TRANSFORMER)->describe(s, desc, &out);
    double *din[OP_MAX_INPUTS] = {0}, *ddy = NULL;
    int rc = -1;
    for (int i = 0; i < n; i++) {
        if (!(din[i] = malloc(desc[i].elems * sizeof(double)))) goto out;
        for (size_t k = 0; k < desc[i].elems; k++) din[i][k] = in[i][k];
    }
    if (!(ddy = malloc(out.elems * sizeof(double)))) goto out;
    for (size_t k = 0; k < out.elems; k++) ddy[k] = dy[k];
    rc = ref_transformer_bwd(s, (const double *const *)din, NULL, ddy, grad);
out:
    if (rc && !ddy) bench_set_error(__FILE__, __LINE__, "host memory for the layer's reference");
    for (int i = 0; i < n; i++) free(din[i]);
    free(ddy);
    return rc;
}

const grad_ref_t GRAD_REF_TRANSFORMER = {.op = OP_TRANSFORMER, .view = tf_view,
                                         .cost = tf_grad_cost, .whole = tf_grad_whole};
