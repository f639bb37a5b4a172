/* softmax_attn/cudnn: cuDNN 9's fused flash attention (SDPA) forward, the vendor's answer to
 * softmax_attn/flash, as a baseline.
 *
 * ---- version index (llm.c style) ------------------------------------------------------------
 * Run:  chela-bench --ops softmax_attn --variants cudnn --seq 1k..64k [--noncausal]
 * v1  the SDPA pattern as a cuDNN backend operation graph (cudnn_sdpa.c), planned at setup by
 *     cuDNN's heuristics; causal and not, bf16 and fp16, any head dim cuDNN's engines accept
 *     (multiples of 8 up to 256 are asked; 64 and 128 must plan).
 *     measured (H100, cuDNN 9.14.0 of the GPU machine's image, bf16 causal, H 16, D 64, 65536
 *     tokens, quick runs of 3 samples): 0.418 ms at T = 1k (flash 0.551), 3.97 ms at 16k
 *     (flash 6.55): 1.3-1.65x softmax_attn/flash, as TOOLING.md §6 saw PyTorch's cuDNN backend
 *     beat its FA2 one.  Plans seen: engine 2 (knob 24 = KERNEL_CFG: 32 at D = 64, 7 at 96 and
 *     128, ws 256 bytes), engine 1 at T = 1; verified causal and not, bf16 and fp16, D = 40,
 *     64, 96, 128, T = 1 to 4097.
 *
 *   q, k, v [B,H,T,D] (bf16 or fp16)  ->  o [B,H,T,D],  o_t = sum_{s in A(t)} softmax_s(q_t.k_s
 *   / sqrt D) v_s, A(t) = {s <= t} causal, all s otherwise.
 *
 * Optional dependency: CMake looks for cuDNN 9 (README, "cuDNN"); a build without it has the
 * same row, recorded as skip:unavailable with the reason, as is a machine where cudnnCreate
 * fails.  A head dim outside 64 and 128 that cuDNN has no engine for is skip:unsupported
 * (setup declines with cuDNN's reason); at 64 and 128 a missing plan is a failure.
 * When the pass is not the forward alone, the plan also writes the softmax statistics
 * (fp32 [B,H,T,1] log-sum-exp) into a buffer of the state, for a backward. */
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "softmax_attn/cudnn_sdpa.h"
#include "variant.h"

DECLARE_VARIANT(softmax_attn_cudnn);
const char *softmax_attn_cudnn_available(void);

typedef struct {
    sa_cudnn_plan *plan;
    void *d_ws;      /* the plan's workspace                       */
    float *d_stats;  /* [B,H,T] fp32, when the pass needs a backward */
} cudnn_state;

const char *softmax_attn_cudnn_available(void) { return sa_cudnn_unavailable(); }

const char *softmax_attn_cudnn_supports(const shape_t *s) {
    if (s->dtype != DTYPE_BF16 && s->dtype != DTYPE_F16)
        return "bf16 or fp16 only (cuDNN's fused attention)";
    if (s->dk != s->dv) return "dk must equal dv";
    if (s->B <= 0 || s->H <= 0 || s->T <= 0 || s->dk <= 0) return "empty shape";
    if (s->dk % 8 != 0 || s->dk > 256) return "head dim must be a multiple of 8, at most 256";
    return NULL;
}

/* The plan's own workspace is known only at setup (small: cuDNN's forward engines ask for
 * little or none); counted here: the stats buffer a backward pass keeps. */
size_t softmax_attn_cudnn_workspace_bytes(const shape_t *s) {
    return s->pass != PASS_FWD ? (size_t)s->B * s->H * (size_t)s->T * sizeof(float) : 0;
}

void softmax_attn_cudnn_teardown(void *state) {
    cudnn_state *st = (cudnn_state *)state;
    if (!st) return;
    sa_cudnn_destroy(st->plan);
    cudaFree(st->d_ws);
    cudaFree(st->d_stats);
    free(st);
}

int softmax_attn_cudnn_setup(const shape_t *s, const io_t *io, void **state) {
    (void)io;
    *state = NULL;
    const long long D = s->dk;
    const sa_layout_t packed = {(long long)s->H * s->T * D, (long long)s->T * D, D};
    const sa_cudnn_problem_t p = {.B = s->B, .H = s->H, .T = s->T, .D = s->dk,
                                  .causal = s->causal, .dt = s->dtype, .q = packed,
                                  .k = packed, .v = packed, .o = packed,
                                  .stats = s->pass != PASS_FWD};
    cudnn_state *st = calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("softmax_attn/cudnn: out of host memory");
    if (sa_cudnn_plan_create(&p, &st->plan)) {
        free(st);
        /* 64 and 128 must plan; another head dim without an engine is declined (a skip). */
        return (D == 64 || D == 128 || sa_cudnn_unavailable()) ? -1 : 1;
    }
    const size_t ws = sa_cudnn_workspace_bytes(st->plan);
    if ((ws && cudaMalloc(&st->d_ws, ws) != cudaSuccess) ||
        (p.stats && cudaMalloc((void **)&st->d_stats, softmax_attn_cudnn_workspace_bytes(s)) !=
                        cudaSuccess)) {
        softmax_attn_cudnn_teardown(st);
        (void)cudaGetLastError();
        BENCH_FAIL("softmax_attn/cudnn: cudaMalloc of the workspace (%zu bytes) or stats", ws);
    }
    *state = st;
    return 0;
}

int softmax_attn_cudnn_run(void *state, const io_t *io, cudaStream_t stream) {
    cudnn_state *st = (cudnn_state *)state;
    if (!st) BENCH_FAIL("softmax_attn/cudnn: run without setup");
    return sa_cudnn_launch(st->plan, io->in[0], io->in[1], io->in[2], io->out, st->d_stats,
                           st->d_ws, stream);
}

/* "cudnn=9.14.0 engine=4 knobs=... ws=0" (cudnn_sdpa.h) */
void softmax_attn_cudnn_config(const void *state, char *buf, size_t len) {
    const cudnn_state *st = (const cudnn_state *)state;
    if (st) sa_cudnn_describe(st->plan, buf, len);
    else if (len) buf[0] = 0;
}
