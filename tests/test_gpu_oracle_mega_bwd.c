/* test_gpu_oracle_mega_bwd.c: mega/oracle_fp32's backward (run_bwd) against the double CPU
 * reference of the layer's backward (ref_mega_bwd), through the oracle's own functions (setup
 * at pass fwdbwd, run, run_bwd), independent of the variant table and the runner.  Exit 77
 * (skipped) when no CUDA device is present.
 *
 * Inputs are the harness's own: mega_describe's tensors filled from SEED by gpu_fill_tensor
 * on the device and tensor_fill_host on the host (the same bits, rounded to their storage
 * type), dy likewise (grad_dy_desc, GRAD_DY_INDEX), so the reference sees exactly what the GPU
 * saw (oracle_test_util.c drives the oracle, fills and compares).  Every gradient buffer is fp32 (the oracle's convention, dX included) and poisoned with
 * 0xFF bytes (NaN) before each run_bwd, so an element never written fails.  run_bwd runs twice
 * and must give the same bits (no float atomics; cuBLAS is deterministic on one stream).  The
 * training forward's output (it keeps Y, O, the softmax statistics and the V and FFN
 * pre-activations apart) is checked too, and run_bwd after a pass-fwd setup must refuse.
 *
 * The attention chunk is the setting mega_chunk (ops.c, read by the oracle at setup and by the
 * reference from the same shape), here 64, its smallest allowed value: T = 1 and 7 and 33 are
 * one partial chunk (c = min(64, T)), T = 70 a full chunk and a partial one of 6, T = 150 two
 * full and one of 22; one case at auto (c = T = 100, a single chunk).  d = 64, z = 64, v = 128,
 * and odd widths d = 40, z = 37, v = 100 (partial warps in the dot products, a partial last
 * column block); B = 1, 2; fp32, bf16 and one fp16 run (only the inputs' rounding differs: the
 * oracle is fp32 after widening).
 *
 * Error measure: |got - ref| / scale, scale = the largest |ref| of the tensor (w_proj and b_proj
 * column group by column group: [Zq | G | F | Hz] come from four different paths, each judged
 * against its own largest |ref|, never less than 1% of the whole tensor's, so that an error in
 * the small attention-side groups cannot hide under the gate-side ones).  dmu_k is 0 in exact
 * arithmetic (mu_k shifts all of a query's scores alike: ref_grad_mega.h), so both sides return
 * rounding; it is judged against dmu_q's scale (the same kind of sum, of dQ rather than dK).
 * At T = 1 every query has one key, so dS = P (dP - D) is 0 in exact arithmetic and the four
 * attention-score parameters' reference is all zero: a tensor whose reference is all zero is
 * judged in absolute terms against db_proj's largest |ref| (order 1: what dQ, dK feed).
 *
 * Tolerance TOL = 1e-4 for every tensor.  The GPU side is fp32 throughout on exactly the
 * reference's inputs, so its error is fp32 rounding alone, through a dozen chained stages, sums
 * of up to T + 2d terms and two LayerNorm backwards whose mean terms cancel.  Measured without
 * a GPU (throwaway programs outside the repository):
 *   - this oracle's own sources (forward and backward, every kernel and the host code) run on
 *     the CPU emulation of tests/emu, cuBLAS replaced by plain-order fp32 sums (worse than
 *     cuBLAS's blocked ones), against ref_mega_bwd: at most 7.7e-7 on any tensor at T = 1, 7
 *     and 70 (chunk 64: a full chunk and a partial one; d = 64, z = 64, v = 128), at d = z = 16,
 *     v = 32, T = 33, at the odd widths d = 40, z = 37, v = 100 (B = 2, T = 70), and with bf16
 *     x, dy and weights (T = 9), the second run_bwd
 *     bit-identical each time;
 *   - the attention kernels alone against double sums, chunks 64 and 8 at T = 70 and 20, odd
 *     z = 37, v = 100: at most 2.6e-7 (O, dQ, dK, dV); the EMA kernels alone against the
 *     reference's route (the kernel's gradient dK by direct correlation, then the chain) up to
 *     T = 3000: at most 1.5e-6 (dX~ and the four parameters);
 *   - the reference's own code compiled with float for double, on every shape here: at most
 *     1.3e-6 on any tensor, kappa_q, mu_q, kappa_k, mu_k included (the four attention-score
 *     parameters are small, 2.7e-6 .. 2.3e-3 at ops.c's fills, and come from cancelling sums,
 *     dQ_t = sum_u dS_tu (k_u - mean k), sum_u dS_tu = 0, yet each is judged against its own
 *     largest |ref| and stays there).
 * 1e-4 leaves ~75x over the worst of these, while a value rounded to bf16 anywhere (2^-9 =
 * 2e-3), a missed term, a wrong index, chunk boundary or scale is off by far more. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench_check.h"
#include "op.h"
#include "op_inputs.h"
#include "oracle_test_util.h"
#include "ref_grad_mega.h"
#include "settings.h"
#include "variant.h"

DECLARE_VARIANT(mega_oracle_fp32);
DECLARE_BWD(mega_oracle_fp32);

#define SEED 0x3e6aba5eull
#define TOL 1e-4
#define PART_FLOOR 1e-2 /* a column group's scale is at least this fraction of the tensor's */
#define CHUNK_MIN 64 /* mega_chunk's smallest allowed value (variants.c: auto|64..65536) */

static const oracle_t ORACLE = {.op = OP_MEGA, .n_in = MEGA_N_IN, ORACLE_FNS(mega_oracle_fp32),
                                .ref_elems = ref_mega_in_elems, .seed = SEED};

static const setting_def_t CHUNK_DEF[] = {{"mega_chunk", "auto|64..65536", "test"},
                                          {NULL, NULL, NULL}};

typedef struct {
    int B, T, d, z, v;
    dtype_t dt;
    int chunk; /* the mega_chunk setting: CHUNK_MIN, or SETTING_AUTO */
} case_t;

static const case_t CASES[] = {
    {2, 1, 64, 64, 128, DTYPE_F32, CHUNK_MIN},   {2, 1, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {2, 7, 64, 64, 128, DTYPE_F32, CHUNK_MIN},   {2, 7, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {2, 33, 64, 64, 128, DTYPE_F32, CHUNK_MIN},  {2, 33, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {2, 70, 64, 64, 128, DTYPE_F32, CHUNK_MIN},  {2, 70, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {1, 70, 64, 64, 128, DTYPE_F16, CHUNK_MIN},  {1, 150, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {1, 100, 64, 64, 128, DTYPE_F32, SETTING_AUTO}, {2, 70, 40, 37, 100, DTYPE_F32, CHUNK_MIN},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

/* The settings block s.set points at (one per test: the shape's lifetime). */
static settings_t g_set;

static shape_t case_shape(const case_t *c, pass_t pass) {
    shape_t s = oracle_shape(c->B, c->T, c->d, c->dt, pass);
    memset(&g_set, 0, sizeof g_set);
    g_set.def = CHUNK_DEF;
    g_set.n = 1;
    g_set.val[0] = c->chunk;
    s.z = c->z;
    s.v = c->v;
    s.H = 1; /* as for chela's shapes */
    s.dk = c->z;
    s.dv = c->v;
    s.set = &g_set;
    return s;
}

/* Column groups of gradient i's rows: w_proj's and b_proj's [Zq | G | F | Hz] apart. */
static oracle_groups_t grad_groups(int i, const case_t *c) {
    const size_t d = (size_t)c->d, z = (size_t)c->z, v = (size_t)c->v, np = z + v + 2 * d;
    switch (i) {
    case MEGA_IN_WPROJ:
    case MEGA_IN_BPROJ:
        return (oracle_groups_t){.width = np, .parts = 4, .bounds = {0, z, z + v, z + v + d, np}};
    case MEGA_IN_ALPHA:
    case MEGA_IN_DELTA:
    case MEGA_IN_BETA:
    case MEGA_IN_ETA: return oracle_groups_even(MEGA_EMA_H, 1);
    case MEGA_IN_KAPPA_Q:
    case MEGA_IN_MU_Q:
    case MEGA_IN_KAPPA_K:
    case MEGA_IN_MU_K: return oracle_groups_even(z, 1);
    case MEGA_IN_WV:
    case MEGA_IN_BV: return oracle_groups_even(v, 1);
    case MEGA_IN_W1: return oracle_groups_even(2 * d, 1);
    default: return oracle_groups_even(d, 1); /* rows of d: x, the LayerNorms', u_h, b_h, w2 */
    }
}

static double max_abs(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static void run_case(const case_t *c) {
    shape_t s = case_shape(c, PASS_FWDBWD);
    char label[112];
    snprintf(label, sizeof label, "B=%d T=%d d=%d z=%d v=%d c=%d %s", c->B, c->T, c->d, c->z,
             c->v, mega_chunk(&s), dtype_name(c->dt));
    oracle_run_t r;
    oracle_run_gpu(&ORACLE, &s, label, &r);

    /* the reference in double on the same inputs and dy (it runs its own forward) */
    const double *const *hin = (const double *const *)r.x.hin;
    ck_assert_msg(ref_mega_fwd_d(&s, hin, r.yref) == 0, "%s", bench_last_error());
    ck_assert_msg(ref_mega_bwd(&s, hin, NULL, r.x.hdy, r.gref) == 0, "%s", bench_last_error());

    /* oracle_compare's checks, but dmu_k judged against dmu_q's scale and an all-zero
     * reference against db_proj's (header) */
    printf("%s (%s)\n", label, r.cfg);
    const oracle_groups_t gy = oracle_groups_even((size_t)c->d, 1);
    oracle_check_tensor(label, "y", r.yref, r.y, r.x.ny, &gy, TOL, PART_FLOOR);
    const double mu_scale = max_abs(r.gref[MEGA_IN_MU_Q], (size_t)c->z);
    const double zero_scale = max_abs(r.gref[MEGA_IN_BPROJ], r.x.desc[MEGA_IN_BPROJ].elems);
    for (int i = 0; i < r.x.n_in; i++) {
        const oracle_groups_t gg = grad_groups(i, c);
        char what[32];
        snprintf(what, sizeof what, "d%s", r.x.desc[i].name);
        oracle_check_tensor_scaled(label, what, r.gref[i], r.got[i], r.x.desc[i].elems, &gg, TOL,
                                   PART_FLOOR, i == MEGA_IN_MU_K ? mu_scale : 0, zero_scale);
    }
    oracle_run_free(&r);
}

START_TEST(oracle_bwd_vs_reference) { run_case(&CASES[_i]); }
END_TEST

/* After a pass-fwd setup nothing is kept: run_bwd must refuse, not read NULL buffers. */
START_TEST(oracle_bwd_refuses_after_fwd_setup) {
    const case_t c = {1, 7, 64, 64, 128, DTYPE_BF16, CHUNK_MIN};
    shape_t s = case_shape(&c, PASS_FWD);
    oracle_bwd_refuses_after_fwd(&ORACLE, &s);
}
END_TEST

/* Not a comparison (no reference reaches it): the oracle at the length the harness needs it,
 * B = 1, T = 65536, d = 1024, z = 128, v = 2048, bf16, the chunk at auto (1024), the harness's
 * inputs: one training forward and two backwards timed by events (the first may include
 * cuBLAS's warm-up), every gradient checked finite (poisoned first: unwritten stays NaN).
 * Printed for the report. */
START_TEST(oracle_bwd_long_sequence) {
    const case_t c = {1, 65536, 1024, 128, 2048, DTYPE_BF16, SETTING_AUTO};
    shape_t s = case_shape(&c, PASS_FWDBWD);
    const char *why = mega_oracle_fp32_supports(&s);
    ck_assert_msg(why == NULL, "supports: %s", why ? why : "");
    char label[112];
    snprintf(label, sizeof label, "mega/oracle_fp32 B=%d T=%d d=%d z=%d v=%d c=%d bf16", c.B,
             c.T, c.d, c.z, c.v, mega_chunk(&s));
    oracle_bwd_timed(&ORACLE, &s, label);
}
END_TEST

int main(void) {
    return oracle_test_main("gpu_oracle_mega_bwd", oracle_bwd_vs_reference, N_CASES,
                            oracle_bwd_refuses_after_fwd_setup, oracle_bwd_long_sequence);
}
