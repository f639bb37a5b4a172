/* shape.h: the problem description every op, variant and reference agrees on.
 *
 * One struct names every dimension so that a variant never has to guess which
 * fields matter for its op: attention ops use B, T, H, dk, dv; convolution ops
 * use B, T, d; the whole CHELA and MEGA layers use B, T, d, z, v.  Unused fields are 0.
 * Plain C, shared by .c and .cu files. */
#ifndef CHELA_SHAPE_H
#define CHELA_SHAPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { DTYPE_F32 = 0, DTYPE_BF16 = 1, DTYPE_F16 = 2 } dtype_t;

typedef enum {
    OP_LINEAR_ATTN = 0,   /* causal (or not) linear attention, multi-head           */
    OP_LONG_CONV,         /* causal depthwise convolution, kernel as long as T      */
    OP_SHORT_LONG_CONV,   /* CHELA's short conv + SiLU + (long + 2 short) conv      */
    OP_SOFTMAX_ATTN,      /* causal (or not) softmax attention, multi-head          */
    OP_CHELA,             /* the whole CHELA layer forward (chela-spec.md)          */
    OP_TRANSFORMER,       /* a pre-LN Transformer layer of the same width: the
                             layer-level baseline                                   */
    OP_MEGA,              /* MEGA's gated attention layer (EMA + chunked softmax
                             attention), the hybrid CHELA modifies (chela-spec.md)   */
    OP_COUNT
} op_id;

/* Which pass a point times (DESIGN.md, chela-spec.md "Training"): the forward alone
 * (inference), the backward alone on what a forward left, or one training step (the
 * forward keeping what the backward needs, then the backward). */
typedef enum { PASS_FWD = 0, PASS_BWD = 1, PASS_FWDBWD = 2 } pass_t;

typedef struct {
    int B;        /* batch (sequences)                                              */
    int T;        /* sequence length                                                */
    int H;        /* heads (attention ops; CHELA's own attention is single-head)   */
    int dk;       /* query/key width per head                                       */
    int dv;       /* value width per head                                           */
    int d;        /* channels (conv ops) or model width (chela)                     */
    int z;        /* chela, mega: shared query/key width (default 128)              */
    int v;        /* chela, mega: value width (default 2d)                          */
    int causal;   /* 1 = causal (the default), 0 = bidirectional (the attention ops;
                     transformer is always causal)                                  */
    dtype_t dtype;/* storage type of activations; accumulation is always fp32+      */
    /* The pass being measured.  A variant's setup sees it: for PASS_BWD and PASS_FWDBWD its
     * run() keeps (or arranges to recompute) what run_bwd() needs.  The ops' forward
     * references ignore it. */
    pass_t pass;
    /* The variant's settings for this run (settings.h; NULL = every one "auto").  Read
     * with settings_get(s->set, "name"); the ops and references ignore it, except where
     * a setting is part of the op's definition (op_desc_t.fn_settings: mega's chunk). */
    const struct settings *set;
} shape_t;

/* Size of the middle short kernel of the short-long conv: k_m = 2*floor(log10 T)+1
 * (T = 1k -> 7, 64k -> 9), chela-spec.md. */
int shape_km(int T);

/* "fwd", "bwd", "fwdbwd" (the CSV's pass column) and back; pass_parse returns 0 on success. */
const char *pass_name(pass_t p);
int pass_parse(const char *s, pass_t *out);

size_t dtype_size(dtype_t t);
const char *dtype_name(dtype_t t);
/* Parses "bf16", "fp16"/"f16", "fp32"/"f32"; returns 0 on success. */
int dtype_parse(const char *s, dtype_t *out);

#ifdef __cplusplus
}
#endif
#endif
