/* test_gpu_oracle_transformer_bwd.c: transformer/oracle_fp32's backward (run_bwd) against the
 * double CPU reference of the layer's backward (ref_transformer_bwd), through the oracle's own
 * functions (setup at pass fwdbwd, run, run_bwd), independent of the variant table and the
 * runner.  Exit 77 (skipped) when no CUDA device is present.
 *
 * Inputs are the harness's own: tf_describe's tensors filled from a seed by gpu_fill_tensor on
 * the device and tensor_fill_host on the host (the same bits, rounded to their storage type),
 * dy likewise (grad_dy_desc, GRAD_DY_INDEX), so the reference sees exactly what the GPU saw.
 * Every gradient buffer is fp32 (the oracle's convention, dX included) and poisoned with 0xFF
 * bytes (NaN) before each run_bwd, so an element never written fails.  run_bwd runs twice and
 * must give the same bits (no float atomics; cuBLAS is deterministic on one stream).  The
 * training forward's output (it now keeps u and the attention's log-sum-exp) is checked too,
 * and run_bwd after a pass-fwd setup must refuse.  (The filling, poisoning, reading back and
 * comparing are oracle_test_util.c's, shared with test_gpu_oracle_chela_bwd.c.)
 *
 * Shapes: T = 1 (one key: P = 1, dQ = 0 exactly), 7 (inside one chunk of 32 and one block of
 * 8 rows), 33 (one past a chunk), 70 and 300 (several chunks and row blocks); D = 32, 64, 128;
 * B = 1, 2; fp32, bf16 and fp16 runs (only the inputs' rounding differs: the oracle is fp32
 * after widening).
 *
 * Error measure: |got - ref| / scale, scale = the largest |ref| of the tensor.  For Wqkv and
 * bqkv, whose q, k and v thirds carry gradients of different sizes, each third is judged
 * against its own largest |ref|, but never less than 1% of the whole tensor's: at T = 1 the
 * exact dQ is 0, so the q third of the reference is 0 while the GPU's dS = P (dp - delta) is
 * fp32 rounding (~1e-7 of dp), which that floor admits.
 * Tolerance TOL = 1e-4: the GPU side is fp32 throughout on exactly the reference's inputs, so
 * its error is fp32 rounding alone: sums of at most 4d = 512 terms (~sqrt(512) 2^-24 ~ 1e-6
 * relative), a dozen chained stages, a LayerNorm backward whose two mean terms cancel, exp of
 * scores ~1.  1e-4 leaves ~10-100x room over that; a value rounded to bf16 anywhere (2^-9 =
 * 2e-3), a missed term, a wrong index or a wrong scale is off by far more. */
#include <stdio.h>

#include "bench_check.h"
#include "op.h"
#include "op_inputs.h"
#include "oracle_test_util.h"
#include "ref_grad_transformer.h"
#include "variant.h"

DECLARE_VARIANT(transformer_oracle_fp32);
DECLARE_BWD(transformer_oracle_fp32);

#define TOL 1e-4
#define PART_FLOOR 1e-2 /* a third's scale is at least this fraction of the tensor's */

/* (ref_grad_transformer.h has no per-input element count: ref_elems NULL) */
static const oracle_t ORACLE = {.op = OP_TRANSFORMER, .n_in = TRANSFORMER_N_IN,
                                ORACLE_FNS(transformer_oracle_fp32)};

typedef struct {
    int B, T, d, H; /* head dim D = d / H */
    dtype_t dt;
} case_t;

static const case_t CASES[] = {
    {2, 1, 128, 2, DTYPE_F32},  {2, 1, 128, 2, DTYPE_BF16}, {2, 7, 128, 2, DTYPE_F32},
    {2, 7, 128, 2, DTYPE_BF16}, {2, 33, 128, 2, DTYPE_F32}, {2, 33, 128, 2, DTYPE_BF16},
    {2, 33, 64, 2, DTYPE_F32},  {2, 33, 64, 2, DTYPE_BF16}, {1, 70, 64, 2, DTYPE_F16},
    {1, 33, 128, 1, DTYPE_BF16}, {1, 300, 128, 2, DTYPE_BF16}, {1, 300, 64, 2, DTYPE_F32},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static shape_t case_shape(const case_t *c, pass_t pass) {
    shape_t s = oracle_shape(c->B, c->T, c->d, c->dt, pass);
    s.H = c->H;
    s.dk = s.dv = c->d / c->H;
    return s;
}

/* Gradient i's rows for the error report, Wqkv's and bqkv's in their q, k and v thirds. */
static oracle_groups_t grad_groups(int i, const void *ctx) {
    const size_t d = (size_t)((const case_t *)ctx)->d;
    switch (i) {
    case TRANSFORMER_IN_WQKV:
    case TRANSFORMER_IN_BQKV: return oracle_groups_even(3 * d, 3);
    case TRANSFORMER_IN_W1:
    case TRANSFORMER_IN_B1: return oracle_groups_even(4 * d, 1);
    default: return oracle_groups_even(d, 1);
    }
}

static void run_case(const case_t *c) {
    shape_t s = case_shape(c, PASS_FWDBWD);
    char label[96];
    snprintf(label, sizeof label, "B=%d T=%d d=%d H=%d D=%d %s", c->B, c->T, c->d, c->H, s.dk,
             dtype_name(c->dt));
    oracle_run_t r;
    oracle_run_gpu(&ORACLE, &s, label, &r);

    /* the reference in double on the same inputs and dy */
    const double *const *hin = (const double *const *)r.x.hin;
    ref_transformer_acts_t acts;
    ck_assert_msg(ref_transformer_fwd_d(&s, hin, r.yref, &acts) == 0, "%s", bench_last_error());
    ck_assert_msg(ref_transformer_bwd(&s, hin, &acts, r.x.hdy, r.gref) == 0, "%s",
                  bench_last_error());
    ref_transformer_acts_free(&acts);

    oracle_compare(&r, label, c->d, grad_groups, c, TOL, PART_FLOOR);
    oracle_run_free(&r);
}

START_TEST(oracle_bwd_vs_reference) { run_case(&CASES[_i]); }
END_TEST

/* After a pass-fwd setup nothing is kept: run_bwd must refuse, not read NULL buffers. */
START_TEST(oracle_bwd_refuses_after_fwd_setup) {
    const case_t c = {1, 7, 64, 2, DTYPE_BF16};
    shape_t s = case_shape(&c, PASS_FWD);
    oracle_bwd_refuses_after_fwd(&ORACLE, &s);
}
END_TEST

/* Not a comparison (no reference reaches it): the oracle at the length the harness needs it,
 * B = 1, T = 65536, d = 1024, H = 16 (D = 64), bf16, the harness's inputs: one training
 * forward and two backwards timed by events (the first may include cuBLAS's warm-up), every
 * gradient checked finite (poisoned first: unwritten stays NaN).  Printed for the report. */
START_TEST(oracle_bwd_long_sequence) {
    const case_t c = {1, 65536, 1024, 16, DTYPE_BF16};
    shape_t s = case_shape(&c, PASS_FWDBWD);
    char label[96];
    snprintf(label, sizeof label, "transformer/oracle_fp32 B=%d T=%d d=%d H=%d bf16", c.B, c.T,
             c.d, c.H);
    oracle_bwd_timed(&ORACLE, &s, label);
}
END_TEST

int main(void) {
    return oracle_test_main("gpu_oracle_transformer_bwd", oracle_bwd_vs_reference, N_CASES,
                            oracle_bwd_refuses_after_fwd_setup, oracle_bwd_long_sequence);
}
