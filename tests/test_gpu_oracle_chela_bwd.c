/* test_gpu_oracle_chela_bwd.c: chela/oracle_fp32's backward (run_bwd) against the double CPU
 * reference of the layer's backward (ref_chela_bwd), through the oracle's own functions (setup
 * at pass fwdbwd, run, run_bwd), independent of the variant table and the runner.  Exit 77
 * (skipped) when no CUDA device is present.
 *
 * Inputs are the harness's own: chela_describe's tensors filled from a seed by gpu_fill_tensor
 * on the device and tensor_fill_host on the host (the same bits, rounded to their storage
 * type), dy likewise (grad_dy_desc, GRAD_DY_INDEX), so the reference sees exactly what the GPU
 * saw.  Every gradient buffer is fp32 (the oracle's convention, dX included) and poisoned with
 * 0xFF bytes (NaN) before each run_bwd, so an element never written fails.  run_bwd runs twice
 * and must give the same bits (no float atomics; cuBLAS is deterministic on one stream).  The
 * training forward's output (it now keeps Y, O, and the V and FFN pre-activations apart) is
 * checked too, and run_bwd after a pass-fwd setup must refuse.  (The filling, poisoning,
 * reading back and comparing are oracle_test_util.c's, shared with
 * test_gpu_oracle_transformer_bwd.c.)
 *
 * Shapes: T = 1 (one token: every sum has one term, k3's taps 1, 2 and k3b's get exactly 0),
 * 7, 33, 70 (one tile of the long conv, one fold-free scan), 130 (two conv tiles) and 300
 * (three tiles, and the scans fold their local state once, at step 256); d = 64, z = 64,
 * v = 128, and d = 16, z = 16, v = 32 (half-empty channel groups), and odd widths d = 40,
 * z = 37 (two threads a value column, half-empty warps in the row scans), v = 100 (a partial
 * last column block); B = 1, 2; fp32, bf16 and fp16 runs (only the inputs' rounding differs:
 * the oracle is fp32 after widening).
 *
 * Error measure: |got - ref| / scale, scale = the largest |ref| of the tensor.  For w_proj and
 * b_proj, whose column groups [Zq | Ga | Go | Hz] come from four different paths, each group is
 * judged against its own largest |ref| (never less than 1% of the whole tensor's), so that an
 * error in the small attention-side groups cannot hide under the large gate-side ones.
 * Tolerance TOL = 1e-4: the GPU side is fp32 throughout on exactly the reference's inputs, so
 * its error is fp32 rounding alone, through a dozen chained stages, sums of up to T + 2d terms,
 * LayerNorm backwards whose mean terms cancel, and an RMSNorm backward that amplifies the
 * rounding of the first tokens' gradients by (mean(o^2) + eps) / eps (o_raw is small there:
 * ref_grad_chela.c).  The same kernels run on a CPU emulation (threads, barriers and shuffles
 * emulated, fp32 GEMMs summed in plain order, which is worse than cuBLAS's blocked sums) gave
 * at most 1.9e-6 on these shapes, 2.7e-6 at T = 4096, and 3.1e-5 on a stress shape (T = 1,
 * z = 256, d = 8: kappa and mu through that amplification): 1e-4 leaves 50x over the tested
 * shapes, while a value rounded to bf16 anywhere (2^-9 = 2e-3), a missed term, a wrong index
 * or a wrong scale is off by far more. */
#include <stdio.h>

#include "bench_check.h"
#include "op.h"
#include "op_inputs.h"
#include "oracle_test_util.h"
#include "ref_grad_chela.h"
#include "variant.h"

DECLARE_VARIANT(chela_oracle_fp32);
DECLARE_BWD(chela_oracle_fp32);

#define TOL 1e-4
#define PART_FLOOR 1e-2 /* a column group's scale is at least this fraction of the tensor's */

static const oracle_t ORACLE = {.op = OP_CHELA, .n_in = CHELA_N_IN, ORACLE_FNS(chela_oracle_fp32),
                                .ref_elems = ref_chela_in_elems};

typedef struct {
    int B, T, d, z, v;
    dtype_t dt;
} case_t;

static const case_t CASES[] = {
    {2, 1, 64, 64, 128, DTYPE_F32},   {2, 1, 64, 64, 128, DTYPE_BF16},
    {2, 7, 64, 64, 128, DTYPE_F32},   {2, 7, 64, 64, 128, DTYPE_BF16},
    {2, 33, 64, 64, 128, DTYPE_F32},  {2, 33, 64, 64, 128, DTYPE_BF16},
    {2, 70, 64, 64, 128, DTYPE_F32},  {2, 70, 64, 64, 128, DTYPE_BF16},
    {1, 70, 64, 64, 128, DTYPE_F16},  {2, 1, 16, 16, 32, DTYPE_F32},
    {2, 33, 16, 16, 32, DTYPE_BF16},  {1, 130, 40, 37, 100, DTYPE_F32},
    {1, 300, 64, 64, 128, DTYPE_BF16},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static shape_t case_shape(const case_t *c, pass_t pass) {
    shape_t s = oracle_shape(c->B, c->T, c->d, c->dt, pass);
    s.z = c->z;
    s.v = c->v;
    s.H = 1; /* as the runner builds a chela shape */
    s.dk = c->z;
    s.dv = c->v;
    return s;
}

/* Column groups of gradient i's rows: w_proj's and b_proj's [Zq | Ga | Go | Hz] apart. */
static oracle_groups_t grad_groups(int i, const void *ctx) {
    const case_t *c = ctx;
    const size_t d = (size_t)c->d, z = (size_t)c->z, v = (size_t)c->v, np = z + v + 2 * d;
    switch (i) {
    case CHELA_IN_WPROJ:
    case CHELA_IN_BPROJ:
        return (oracle_groups_t){.width = np, .parts = 4, .bounds = {0, z, z + v, z + v + d, np}};
    case CHELA_IN_K3:
    case CHELA_IN_K3B: return oracle_groups_even(3, 1);
    case CHELA_IN_KLONG: return oracle_groups_even((size_t)c->T, 1);
    case CHELA_IN_KM: return oracle_groups_even((size_t)shape_km(c->T), 1);
    case CHELA_IN_KAPPA_Q:
    case CHELA_IN_MU_Q:
    case CHELA_IN_KAPPA_K:
    case CHELA_IN_MU_K: return oracle_groups_even(z, 1);
    case CHELA_IN_WV:
    case CHELA_IN_BV: return oracle_groups_even(v, 1);
    case CHELA_IN_W1: return oracle_groups_even(2 * d, 1);
    default: return oracle_groups_even(d, 1); /* rows of d: x, the LayerNorms', u_h, b_h, w2 */
    }
}

static void run_case(const case_t *c) {
    shape_t s = case_shape(c, PASS_FWDBWD);
    char label[96];
    snprintf(label, sizeof label, "B=%d T=%d d=%d z=%d v=%d %s", c->B, c->T, c->d, c->z, c->v,
             dtype_name(c->dt));
    oracle_run_t r;
    oracle_run_gpu(&ORACLE, &s, label, &r);

    /* the reference in double on the same inputs and dy (it runs its own forward) */
    const double *const *hin = (const double *const *)r.x.hin;
    ck_assert_msg(ref_chela_fwd_d(&s, hin, r.yref) == 0, "%s", bench_last_error());
    ck_assert_msg(ref_chela_bwd(&s, hin, NULL, r.x.hdy, r.gref) == 0, "%s", bench_last_error());

    oracle_compare(&r, label, c->d, grad_groups, c, TOL, PART_FLOOR);
    oracle_run_free(&r);
}

START_TEST(oracle_bwd_vs_reference) { run_case(&CASES[_i]); }
END_TEST

/* After a pass-fwd setup nothing is kept: run_bwd must refuse, not read NULL buffers. */
START_TEST(oracle_bwd_refuses_after_fwd_setup) {
    const case_t c = {1, 7, 64, 64, 128, DTYPE_BF16};
    shape_t s = case_shape(&c, PASS_FWD);
    oracle_bwd_refuses_after_fwd(&ORACLE, &s);
}
END_TEST

/* Not a comparison (no reference reaches it): the oracle at the length the harness needs it,
 * B = 1, T = 65536, d = 1024, z = 128, v = 2048, bf16, the harness's inputs: one training
 * forward and two backwards timed by events (the first may include cuBLAS's warm-up), every
 * gradient checked finite (poisoned first: unwritten stays NaN).  Printed for the report. */
START_TEST(oracle_bwd_long_sequence) {
    const case_t c = {1, 65536, 1024, 128, 2048, DTYPE_BF16};
    shape_t s = case_shape(&c, PASS_FWDBWD);
    const char *why = chela_oracle_fp32_supports(&s);
    ck_assert_msg(why == NULL, "supports: %s", why ? why : "");
    char label[96];
    snprintf(label, sizeof label, "chela/oracle_fp32 B=%d T=%d d=%d z=%d v=%d bf16", c.B, c.T,
             c.d, c.z, c.v);
    oracle_bwd_timed(&ORACLE, &s, label);
}
END_TEST

int main(void) {
    return oracle_test_main("gpu_oracle_chela_bwd", oracle_bwd_vs_reference, N_CASES,
                            oracle_bwd_refuses_after_fwd_setup, oracle_bwd_long_sequence);
}
