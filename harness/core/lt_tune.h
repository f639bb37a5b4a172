/* lt_tune.h: picks, by timing, the fastest of cuBLASLt's heuristic candidates for one matmul.
 *
 * cuBLASLt's heuristic ranks its kernels by a model; its first answer is not always the
 * fastest on the GPU at hand (on the H100, at the CHELA layer's N = 2048, K = 1024 products,
 * its first pick ran at ~700 TFLOP/s while N = 1024, K = 2048 ran at ~790).  Both layers
 * plan every GEMM through lt_tune at setup, so the comparison between them stays even.
 *
 * Timing runs at setup on the caller's buffers, which should hold the op's own activations
 * (both layers run one forward pass first): the GPU's clock follows its power, its power the
 * operands' bits, and random operands ranked candidates differently from the real ones.
 * The layers' setting lt_tune (--set lt_tune=0) keeps the heuristic's first answer: they
 * resolve it once at setup (lt_tune_resolve) and then neither prepare operands nor call
 * lt_tune. */
#ifndef CHELA_LT_TUNE_H
#define CHELA_LT_TUNE_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stddef.h>

#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Enqueues what runs before the product in the caller's own sequence (0, or -1 after
 * bench_set_error). */
typedef int (*lt_prologue_fn)(void *ctx, cudaStream_t stream);

/* One cublasLtMatmul call, in cuBLAS's own (column-major) terms. */
typedef struct {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c, d;
    const void *A, *B, *C; /* C: NULL when beta is 0 (D is passed) */
    void *D;
    float beta;
    void *ws;
    size_t ws_bytes;
    const char *what; /* names the product at the call site ("chela proj") */
    /* Run, untimed, before each sample (NULL: nothing): the product is timed in its context
     * (the cache and clock state its producer leaves), as the whole layer runs it. */
    lt_prologue_fn prologue;
    void *prologue_ctx;
} lt_call_t;

#define LT_TUNE_CANDIDATES 8 /* heuristic answers timed */

/* Whether tuning is on for a layer's lt_tune setting (SETTING_AUTO: on, 0: off, 1: on).
 * Callers skip the forward pass that prepares their operands, and lt_tune, when it is off. */
int lt_tune_resolve(int setting);

/* *algo: in, the heuristic's first answer (kept when nothing beats it); out, the fastest
 * candidate.  Always times: the caller decides whether to tune (lt_tune_resolve).  Returns 0,
 * or -1 after bench_set_error (a CUDA error). */
int lt_tune(cublasLtHandle_t h, const lt_call_t *call, cudaStream_t stream,
            cublasLtMatmulAlgo_t *algo);

#ifdef __cplusplus
}
#endif
#endif
