/* op_inputs.h: the op model's input tensors of the layers, by index, and the norm epsilons
 * the spec reading fixes: what a variant of chela or transformer (a kernel, a baseline, an
 * oracle) needs to find its inputs in io_t.in[], apart from the CPU references (ops.c
 * describes each tensor's shape and fill). */
#ifndef CHELA_OP_INPUTS_H
#define CHELA_OP_INPUTS_H

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

/* Norm epsilons, fixed by the spec reading in chela-spec.md. */
#define CHELA_LN_EPS 1e-5
#define CHELA_RMS_EPS 1e-6

#endif
