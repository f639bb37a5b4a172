/* verify.h: which outputs to check, and how close is close enough.
 *
 * The sample is exhaustive when the reference for every output is cheap;
 * otherwise a few sequences, a few hundred positions (always the first and the
 * last, the rest random) and up to 64 columns, shrunk until the reference fits
 * a budget of multiply-adds, so checking stays around a second even at T = 64k. */
#ifndef CHELA_VERIFY_H
#define CHELA_VERIFY_H

#include <stdint.h>

#include "op.h"

typedef struct {
    sample_t s;
    int *seq, *t, *col;
    int exhaustive;
} sample_buf_t;

/* Chooses the sample for an op at a shape.  Returns 0 or -1 (out of memory). */
int sample_choose(const op_desc_t *op, const shape_t *s, uint64_t seed, double budget_macs,
                  sample_buf_t *out);
/* For an op whose every output row needs all earlier rows (a whole layer): one
 * sequence, every column, up to 64 positions among the first rows, as many rows
 * as the budget allows (at least one). */
int sample_prefix(const op_desc_t *op, const shape_t *s, uint64_t seed, double budget_macs,
                  sample_buf_t *out);
/* Checking against a GPU oracle costs nothing per element: up to max_seq
 * sequences, max_t positions over the whole length (first and last included),
 * every column. */
int sample_spread(const op_desc_t *op, const shape_t *s, uint64_t seed, int max_seq, int max_t,
                  sample_buf_t *out);
/* Every output: used by the CPU backend and by tests. */
int sample_full(const op_desc_t *op, const shape_t *s, sample_buf_t *out);
void sample_free(sample_buf_t *b);
size_t sample_count(const sample_t *s);

/* Tolerance on max_rel_err for a dtype (stated in the README):
 * bf16: 2^-6, fp16: 1e-2, fp32: 5e-5 (sums of up to 64k fp32 terms); why in verify.c. */
double verify_tolerance(dtype_t dt);

typedef struct {
    double max_abs_err;
    double max_rel_err; /* max |got - ref| / max(|ref|, rms of that reference row) */
    long long worst;    /* sample index of max_rel_err */
    long long nonfinite;
} verify_result_t;

/* got_at(ctx, i) returns the device result for sample element i.  The sample is
 * made of rows of row_len values (one output position, its sampled columns).
 * Why the row's rms and not the element alone: an attention output is a sum of
 * terms that can cancel, so one element may be tiny while its error is at the
 * rounding level of the terms; judging it against the magnitude of its own
 * output vector is the normwise test per position, and it still catches a wrong
 * value anywhere (it would be off by the row's size, not by rounding). */
verify_result_t verify_compare(const double *ref, size_t n, size_t row_len,
                               float (*got_at)(void *ctx, size_t i), void *ctx);

#endif
