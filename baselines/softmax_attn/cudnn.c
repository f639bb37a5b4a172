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
 * b1  the backward (run_bwd): cuDNN's fused flash-attention backward graph (cudnn_sdpa_bwd.c),
 *     planned at setup beside a forward that keeps the stats.  Causal only (the sampled
 *     gradient check of a bidirectional one needs every row's statistics, 3 D T^2 a sequence).
 *     Not yet run on a GPU: where cuDNN finds no plan for the graph, setup declines the
 *     training pass (skip:unsupported, cuDNN's reason in the note) rather than failing it.
 *
 *   q, k, v [B,H,T,D] (bf16 or fp16)  ->  o [B,H,T,D],  o_t = sum_{s in A(t)} softmax_s(q_t.k_s
 *   / sqrt D) v_s, A(t) = {s <= t} causal, all s otherwise.
 *
 * Optional dependency: CMake looks for cuDNN 9 (README, "cuDNN"); a build without it has the
 * same row, recorded as skip:unavailable with the reason, as is a machine where cudnnCreate
 * fails.  A head dim outside 64 and 128 that cuDNN has no engine for is skip:unsupported
 * (setup declines with cuDNN's reason); at 64 and 128 a missing plan is a failure.
 * When the pass is not the forward alone, the forward plan also writes the softmax statistics
 * (fp32 [B,H,T,1] log-sum-exp) into a buffer of the state, which the backward plan reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "softmax_attn/cudnn_sdpa.h"
#include "variant.h"

DECLARE_VARIANT(softmax_attn_cudnn);
DECLARE_BWD(softmax_attn_cudnn);
const char *softmax_attn_cudnn_available(void);

typedef struct {
    sa_cudnn_plan *plan;     /* the forward                                              */
    sa_cudnn_plan *bwd;      /* the backward, when the pass has one                        */
    void *d_ws;              /* one workspace for both (they run one after the other)      */
    float *d_stats;          /* [B,H,T] fp32, when the pass needs a backward              */
} cudnn_state;

const char *softmax_attn_cudnn_available(void) { return sa_cudnn_unavailable(); }

const char *softmax_attn_cudnn_supports(const shape_t *s) {
    if (s->dtype != DTYPE_BF16 && s->dtype != DTYPE_F16)
        return "bf16 or fp16 only (cuDNN's fused attention)";
    if (s->dk != s->dv) return "dk must equal dv";
    if (s->B <= 0 || s->H <= 0 || s->T <= 0 || s->dk <= 0) return "empty shape";
    if (s->dk % 8 != 0 || s->dk > 256) return "head dim must be a multiple of 8, at most 256";
    if (s->pass != PASS_FWD && !s->causal)
        return "causal only for the backward (checking a bidirectional one costs 3 D T^2 a head)";
    return NULL;
}

/* The plans' own workspaces are known only at setup (small: cuDNN's engines ask for little or
 * none); counted here: for a backward pass, the stats buffer and the backward graph's two fp32
 * tensors (row sums [B,H,T], dQ's accumulator [B,H,T,D]). */
static size_t stats_bytes(const shape_t *s) { return (size_t)s->B * s->H * (size_t)s->T * sizeof(float); }
size_t softmax_attn_cudnn_workspace_bytes(const shape_t *s) {
    return s->pass != PASS_FWD ? stats_bytes(s) * (2 + (size_t)s->dk) : 0;
}

void softmax_attn_cudnn_teardown(void *state) {
    cudnn_state *st = (cudnn_state *)state;
    if (!st) return;
    sa_cudnn_destroy(st->plan);
    sa_cudnn_destroy(st->bwd);
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
        /* 64 and 128 must plan; another head dim without an engine is declined (a skip), as is
         * a training pass (its forward writes stats) until b1 has run on a GPU. */
        if (sa_cudnn_unavailable()) return -1;
        return (D == 64 || D == 128) && !p.stats ? -1 : 1;
    }
    if (p.stats && sa_cudnn_bwd_plan_create(&p, &st->bwd)) {
        /* not yet verified on a GPU (version index b1): a missing plan declines the pass */
        char why[400];
        snprintf(why, sizeof why, "%s", bench_last_error());
        softmax_attn_cudnn_teardown(st);
        bench_clear_error();
        bench_set_error(__FILE__, __LINE__, "cuDNN has no backward plan: %s", why);
        return 1;
    }
    size_t ws = sa_cudnn_workspace_bytes(st->plan);
    if (st->bwd && sa_cudnn_workspace_bytes(st->bwd) > ws) ws = sa_cudnn_workspace_bytes(st->bwd);
    if ((ws && cudaMalloc(&st->d_ws, ws) != cudaSuccess) ||
        (p.stats && cudaMalloc((void **)&st->d_stats, stats_bytes(s)) != cudaSuccess)) {
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

/* dQ, dK, dV in q, k, v's layout from the forward's o and stats (run() came first). */
int softmax_attn_cudnn_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                               cudaStream_t stream) {
    cudnn_state *st = (cudnn_state *)state;
    if (!st || !st->bwd) BENCH_FAIL("softmax_attn/cudnn: run_bwd without a training setup");
    return sa_cudnn_bwd_launch(st->bwd, io->in[0], io->in[1], io->in[2], io->out, g->dy,
                               st->d_stats, g->grad[0], g->grad[1], g->grad[2], st->d_ws, stream);
}

/* "cudnn=9.14.0 engine=2 knobs=24:32 ws=256" (cudnn_sdpa.h), then for a training pass
 * "bwd_engine=.. bwd_knobs=.. bwd_ws=..". */
void softmax_attn_cudnn_config(const void *state, char *buf, size_t len) {
    const cudnn_state *st = (const cudnn_state *)state;
    if (!len) return;
    buf[0] = 0;
    if (!st) return;
    sa_cudnn_describe(st->plan, buf, len);
    const size_t k = strlen(buf);
    if (st->bwd && k + 1 < len) {
        buf[k] = ' ';
        sa_cudnn_describe(st->bwd, buf + k + 1, len - k - 1);
    }
}
