/* op.h: what an op is: its tensors, its cost model and its CPU reference.
 *
 * An op is one mathematical function with a fixed definition (chela-spec.md).
 * Everything that does not depend on an implementation lives here, once:
 *   - the input tensors (name, size, storage, how the harness fills them),
 *   - the output tensor,
 *   - FLOPs and ideal HBM bytes (so every variant of an op is judged alike),
 *   - the CPU reference: plain C, double accumulation, able to compute only a
 *     sampled set of outputs so that checking stays cheap at T = 64k.
 *
 * Layouts (row-major, innermost last):
 *   linear_attn  : q,k [B,H,T,dk]  v [B,H,T,dv]  -> o [B,H,T,dv]
 *                  o_t = (q_t/sqrt(dk)) . sum_{s<=t} k_s^T v_s   (s over all T if !causal)
 *   softmax_attn : q,k,v [B,H,T,dk] (dk == dv)    -> o [B,H,T,dk]
 *                  o_t = sum_{s<=t} softmax_s(q_t . k_s / sqrt(dk)) v_s  (s over all T if !causal)
 *   long_conv    : x [B,d,T] (act), k [d,T] (fp32) -> y [B,d,T]
 *   short_long_conv: x [B,d,T], k3 [d,3], k_long [d,T], k3b [d,3], km [d,k_m] -> z [B,d,T]
 *   chela        : x [B,T,d] + parameters (ops.c lists them) -> y [B,T,d]
 *   mega         : x [B,T,d] + parameters (ops.c lists them) -> y [B,T,d]
 */
#ifndef CHELA_OP_H
#define CHELA_OP_H

#include <stddef.h>
#include <stdint.h>

#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OP_MAX_INPUTS 24

typedef enum {
    STORE_ACT = 0, /* the run's dtype (bf16 by default): activations and GEMM weights */
    STORE_F32 = 1  /* always fp32: conv kernels, biases, norm parameters             */
} storage_t;

typedef enum {
    INIT_UNIFORM = 0, /* scale * u,                         u ~ U[-1, 1) never 0   */
    INIT_OFFSET,      /* offset + scale * u                 (norm gains: 1 + 0.1u) */
    INIT_DECAY        /* scale * u * exp(-j / tau), j = index % row_len (long kernels) */
} init_t;

typedef struct {
    const char *name;
    size_t elems;
    storage_t store;
    init_t init;
    float scale;
    float offset;   /* INIT_OFFSET */
    float tau;      /* INIT_DECAY  */
    int row_len;    /* INIT_DECAY: taps per channel */
    /* 1 for a parameter (weights, kernels, norm gains, biases), 0 for an activation: a
     * parameter's gradient is fp32 whatever its storage (grad_storage). */
    int param;
} tensor_desc_t;

/* Storage of the gradient of a tensor: fp32 for parameters and fp32-stored tensors, else
 * the run's dtype (activations' gradients are activations). */
static inline storage_t grad_storage(const tensor_desc_t *t) {
    return (t->param || t->store == STORE_F32) ? STORE_F32 : STORE_ACT;
}

/* Which outputs a reference computes.  Every op's output is viewed as
 * [seq][t][col]:
 *   attention ops: seq = b*H + h, col = value column (0..dv-1)
 *   conv ops:      seq = b,       col = channel     (0..d-1)
 *   chela, mega:   seq = b,       col = feature     (0..d-1)
 * out receives n_seq * n_t * n_col doubles in that order.  t must be ascending. */
typedef struct {
    int n_seq;
    const int *seq;
    int n_t;
    const int *t;
    int n_col;
    const int *col;
} sample_t;

/* in[i] points at input i as float (values already rounded to their storage
 * type, exactly what the GPU sees).  Returns 0, or -1 after bench_set_error. */
typedef int (*reference_fn)(const shape_t *s, const float *const *in, const sample_t *smp,
                            double *out);

typedef struct {
    op_id id;
    const char *name;
    /* Fills in[] (at most OP_MAX_INPUTS) and *out; returns the number of inputs. */
    int (*describe)(const shape_t *s, tensor_desc_t *in, tensor_desc_t *out);
    /* FLOPs of the op as defined (not of any implementation); comment in each op file. */
    double (*flops)(const shape_t *s);
    /* FLOPs of its backward alone (bwd pass; fwdbwd is flops + flops_bwd), defined once per
     * op in ops.c like the forward's; NULL for an op without a backward (the layers, for now). */
    double (*flops_bwd)(const shape_t *s);
    /* Rough count of double-precision multiply-adds the reference needs for the
     * given sample: used to cap CPU work and to size verification samples. */
    double (*reference_cost)(const shape_t *s, const sample_t *smp);
    reference_fn reference;
    int (*seq_count)(const shape_t *s);
    int (*col_count)(const shape_t *s);
    /* Flat index in the output tensor of sample element (seq, t, col). */
    size_t (*out_index)(const shape_t *s, int seq, int t, int col);
    /* NULL, or the name of a variant with role "oracle": the op in plain fp32 on the
     * GPU, writing its output as fp32.  For ops whose CPU reference can afford only
     * the first rows of a long sequence (a whole layer: every row needs all earlier
     * rows through GEMMs), the harness checks the oracle against the CPU reference
     * on the CPU's sample, then checks the other variants against the oracle on a
     * sample that spans the whole sequence (DESIGN.md, step 3). */
    const char *gpu_oracle;
    /* 0 (= 1), or the factor on verify_tolerance() for this op: a whole layer passes its
     * activations through n rounded intermediates, as any bf16 implementation does
     * (factor sqrt(n)), and the branches form of short_long_conv rounds twice (verify.c
     * says what was measured and why). */
    double tol_scale;
    /* NULL, or a check of the op's own shape rules (not an implementation's): NULL when
     * the shape is one the op is defined for, else why not ("d = 100 is not a multiple
     * of the head dim 64").  Such a point is a skip:shape row for every variant and the
     * reference, never a failure. */
    const char *(*shape_problem)(const shape_t *s, char *buf, size_t len);
    /* NULL, or the NULL-terminated names of the settings that are part of the op's
     * definition (mega's "mega_chunk"): the reference and the oracle read them from s->set
     * like the variants, and the harness computes the oracle again for a settings
     * combination that gives one of them another value (runner_gpu.c). */
    const char *const *fn_settings;
} op_desc_t;

const op_desc_t *op_get(op_id id);
/* Fewest HBM bytes any implementation must move, the same rule for every op, by s->pass:
 *   fwd    each input read once and the output written once, in their storage types;
 *   bwd    each input and dy (the output's size and type) read once, every gradient written
 *          once in grad_storage() (what a forward saved is the implementation's choice, so it
 *          is not counted: re-reading it shows as hbm_ratio > 1);
 *   fwdbwd the two: inputs and dy read, the output and every gradient written. */
double op_ideal_bytes(const op_desc_t *op, const shape_t *s);
/* FLOPs of the pass s->pass: flops, flops_bwd, or their sum; NaN where the op has no
 * backward. */
double op_pass_flops(const op_desc_t *op, const shape_t *s);
const op_desc_t *op_find(const char *name); /* NULL if unknown */

/* Element counts and bytes of a described tensor in the run's dtype. */
size_t tensor_bytes(const tensor_desc_t *t, dtype_t act);

/* Fills host[] with tensor `index` of a point as the GPU sees it (rounded to its
 * storage type).  Same bits as the device fill kernel. */
void tensor_fill_host(const tensor_desc_t *t, uint64_t seed, uint32_t index, dtype_t act,
                      float *host);

#ifdef __cplusplus
}
#endif
#endif
