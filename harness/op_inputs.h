/* op_inputs.h: the op model's input tensors of the layers, by index, and the norm epsilons
 * the spec reading fixes: what a variant of chela, transformer or mega (a kernel, a baseline, an
 * oracle) needs to find its inputs in io_t.in[], apart from the CPU references (ops.c
 * describes each tensor's shape and fill). */
#ifndef CHELA_OP_INPUTS_H
#define CHELA_OP_INPUTS_H

#include "shape.h"

/* Indices of the chela op's inputs (op_chela.c describes their shapes). */
enum {
    CHELA_IN_X = 0,   /* [B,T,d]        act                                   */
    CHELA_IN_LN1_G,   /* [d]            LayerNorm(X) gain                     */
    CHELA_IN_LN1_B,   /* [d]            LayerNorm(X) bias                     */
    CHELA_IN_K3,      /* [d,3]          short conv before SiLU                */
    CHELA_IN_KLONG,   /* [d,T]          long kernel                           */
    CHELA_IN_K3B,     /* [d,3]          parallel short branch                 */
    CHELA_IN_KM,      /* [d,k_m]        parallel short branch, k_m taps       */
    CHELA_IN_WPROJ,   /* [d, z+v+2d]    act  fused projection [Wz|Wa|Wo|Wh]   */
    CHELA_IN_BPROJ,   /* [z+v+2d]                                             */
    CHELA_IN_KAPPA_Q, /* [z]                                                  */
    CHELA_IN_MU_Q,    /* [z]                                                  */
    CHELA_IN_KAPPA_K, /* [z]                                                  */
    CHELA_IN_MU_K,    /* [z]                                                  */
    CHELA_IN_WV,      /* [d, v]         act                                   */
    CHELA_IN_BV,      /* [v]                                                  */
    CHELA_IN_UH,      /* [v, d]         act                                   */
    CHELA_IN_BH,      /* [d]                                                  */
    CHELA_IN_LN2_G,   /* [d]            FFN LayerNorm gain                    */
    CHELA_IN_LN2_B,   /* [d]                                                  */
    CHELA_IN_W1,      /* [d, 2d]        act                                   */
    CHELA_IN_W2,      /* [2d, d]        act                                   */
    CHELA_N_IN
};

/* Indices of the transformer op's inputs (ops.c describes their shapes).  Weights are
 * [in, out] row-major, so Y = X . W. */
enum {
    TRANSFORMER_IN_X = 0, /* [B,T,d]   act                                        */
    TRANSFORMER_IN_LN1_G, /* [d]       LayerNorm1 gain                            */
    TRANSFORMER_IN_LN1_B, /* [d]       LayerNorm1 bias                            */
    TRANSFORMER_IN_WQKV,  /* [d, 3d]   act  [Wq | Wk | Wv]; head h = columns h*dk.. */
    TRANSFORMER_IN_BQKV,  /* [3d]                                                 */
    TRANSFORMER_IN_WO,    /* [d, d]    act  output projection                     */
    TRANSFORMER_IN_BO,    /* [d]                                                  */
    TRANSFORMER_IN_LN2_G, /* [d]       LayerNorm2 gain                            */
    TRANSFORMER_IN_LN2_B, /* [d]                                                  */
    TRANSFORMER_IN_W1,    /* [d, 4d]   act                                        */
    TRANSFORMER_IN_B1,    /* [4d]                                                 */
    TRANSFORMER_IN_W2,    /* [4d, d]   act                                        */
    TRANSFORMER_IN_B2,    /* [d]                                                  */
    TRANSFORMER_N_IN
};

/* Indices of the mega op's inputs (ops.c describes their shapes and fills).  MEGA's gated
 * attention layer (chela-spec.md, "The hybrid baseline"): the EMA's parameters are [d, h]
 * fp32 with h = MEGA_EMA_H, alpha and delta before their sigmoid.  The fused projection of
 * X' has the columns [Zq (z) | gamma (v) | phi (d) | Hz (d)], the same widths as chela's. */
enum {
    MEGA_IN_X = 0,    /* [B,T,d]        act                                   */
    MEGA_IN_LN1_G,    /* [d]            LayerNorm(X) gain                     */
    MEGA_IN_LN1_B,    /* [d]            LayerNorm(X) bias                     */
    MEGA_IN_ALPHA,    /* [d,h]          EMA alpha, pre-sigmoid                */
    MEGA_IN_DELTA,    /* [d,h]          EMA damping delta, pre-sigmoid        */
    MEGA_IN_BETA,     /* [d,h]          EMA input expansion beta              */
    MEGA_IN_ETA,      /* [d,h]          EMA output projection eta             */
    MEGA_IN_WPROJ,    /* [d, z+v+2d]    act  fused projection [Wz|Wg|Wf|Wh]   */
    MEGA_IN_BPROJ,    /* [z+v+2d]                                             */
    MEGA_IN_KAPPA_Q,  /* [z]                                                  */
    MEGA_IN_MU_Q,     /* [z]                                                  */
    MEGA_IN_KAPPA_K,  /* [z]                                                  */
    MEGA_IN_MU_K,     /* [z]                                                  */
    MEGA_IN_WV,       /* [d, v]         act                                   */
    MEGA_IN_BV,       /* [v]                                                  */
    MEGA_IN_UH,       /* [v, d]         act                                   */
    MEGA_IN_BH,       /* [d]                                                  */
    MEGA_IN_LN2_G,    /* [d]            FFN LayerNorm gain                    */
    MEGA_IN_LN2_B,    /* [d]                                                  */
    MEGA_IN_W1,       /* [d, 2d]        act                                   */
    MEGA_IN_W2,       /* [2d, d]        act                                   */
    MEGA_N_IN
};

/* MEGA's EMA expansion: h damped EMAs a channel (MEGA's default, chela-spec.md). */
#define MEGA_EMA_H 16
/* The attention chunk when the setting mega_chunk is auto. */
#define MEGA_CHUNK_DEFAULT 1024

#ifdef __cplusplus
extern "C" {
#endif
/* The attention chunk c of a mega shape: the setting mega_chunk (s->set; auto =
 * MEGA_CHUNK_DEFAULT), at most T.  Chunks are the tokens [kc, kc + c) of each sequence, the
 * last one partial when c does not divide T; a query sees only the keys of its own chunk.
 * The reference, the oracle and every variant read it, since it changes the function. */
int mega_chunk(const shape_t *s);
#ifdef __cplusplus
}
#endif

/* Norm epsilons, fixed by the spec reading in chela-spec.md. */
#define CHELA_LN_EPS 1e-5
#define CHELA_RMS_EPS 1e-6

#endif
