/* args.h: the arguments every kernel of one linear_attn/chunked launch shares (by value), filled
 * from the plan by the host side (launch) and read by every kernel file (v1.cu ... scan.cu). */
#ifndef CHELA_LINEAR_ATTN_ARGS_H
#define CHELA_LINEAR_ATTN_ARGS_H

#include <stdint.h>

struct lac_args {
    int64_t rows;   /* B*H*T: token rows, also the pitch of the norm partials               */
    int T;          /* sequence length                                                       */
    int dv;         /* value width (o and v row pitch)                                       */
    int nslices;    /* dv / 64                                                               */
    int nseg;       /* segments per (b,h): pass C grid                                       */
    int seg_chunks; /* chunks of LAC_C tokens per segment (the last may be shorter)          */
    int nseg_ws;    /* segment states pass C reads: nseg-1 (causal) or nseg                  */
    int sub;        /* pass A parts per segment (several blocks sum one segment's state)     */
    int sub_chunks; /* chunks per part (the last part of a segment may be shorter or empty)  */
    int ws_per_bh;  /* states per (b,h) in the workspace: nseg_ws * sub (pass A's grid)       */
    int norm_mode;  /* 0 none, 1 fused in pass C (one slice), 2 partials for the norm pass,  */
                    /* 3 partials to the caller and the gate in pass C's store (no norm pass) */
    float scale;    /* 1/sqrt(dk)                                                            */
    float rms_eps;
    const void *gate;       /* norm pass: o *= sigmoid(gate[row*gate_ld + j] + gate_bias[j]) */
    int64_t gate_ld;        /* (NULL: no gate)                                               */
    const float *gate_bias;
    const float *v_bias;    /* v read as SiLU(v + v_bias[j]) rounded to dtype (NULL: as is)  */
};

#endif
