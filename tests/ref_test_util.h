/* ref_test_util.h: what the CPU reference tests share: an op's seeded inputs, sample index
 * buffers, whole-output runs and closeness checks (test_reference.c, test_reference_layers.c). */
#ifndef CHELA_REF_TEST_UTIL_H
#define CHELA_REF_TEST_UTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "op.h"
#include "reference.h"
#include "reference_extra.h"

#define SEED 0x5EEDC0DEull

#define SEED 0x5EEDC0DEull

/* ---------------- helpers ---------------- */

typedef struct {
    int n;
    float *t[OP_MAX_INPUTS];
    tensor_desc_t desc[OP_MAX_INPUTS];
    tensor_desc_t out;
} inputs_t;

static inline void inputs_make(op_id id, const shape_t *s, uint64_t seed, inputs_t *x) {
    const op_desc_t *op = op_get(id);
    ck_assert_ptr_nonnull(op);
    x->n = op->describe(s, x->desc, &x->out);
    for (int i = 0; i < x->n; i++) {
        x->t[i] = malloc(x->desc[i].elems * sizeof(float));
        ck_assert_ptr_nonnull(x->t[i]);
        tensor_fill_host(&x->desc[i], seed, (uint32_t)i, s->dtype, x->t[i]);
    }
}

static inline void inputs_free(inputs_t *x) {
    for (int i = 0; i < x->n; i++) free(x->t[i]);
    x->n = 0;
}

static inline const float *const *cin(const inputs_t *x) { return (const float *const *)x->t; }

/* A sample and the index arrays it points at. */
typedef struct {
    sample_t s;
    int *seq, *t, *col;
} sample_buf_t;

static inline void sample_make(sample_buf_t *b, int n_seq, const int *seq, int n_t, const int *t,
                        int n_col, const int *col) {
    b->seq = malloc(sizeof(int) * (size_t)n_seq);
    b->t = malloc(sizeof(int) * (size_t)n_t);
    b->col = malloc(sizeof(int) * (size_t)n_col);
    ck_assert(b->seq && b->t && b->col);
    for (int i = 0; i < n_seq; i++) b->seq[i] = seq ? seq[i] : i;
    for (int i = 0; i < n_t; i++) b->t[i] = t ? t[i] : i;
    for (int i = 0; i < n_col; i++) b->col[i] = col ? col[i] : i;
    b->s = (sample_t){.n_seq = n_seq, .seq = b->seq, .n_t = n_t, .t = b->t, .n_col = n_col,
                      .col = b->col};
}

/* Everything: seq, t and col all in order, so out is the op's full [seq][t][col]. */
static inline void sample_full(sample_buf_t *b, int n_seq, int T, int n_col) {
    sample_make(b, n_seq, NULL, T, NULL, n_col, NULL);
}

static inline void sample_free(sample_buf_t *b) {
    free(b->seq);
    free(b->t);
    free(b->col);
}

static inline double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static inline double max_abs(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* Asserts max|a - b| <= rel * max|b| (norm-wise, so outputs that cancel to ~0 do
 * not make the check meaningless or flaky). */
static inline void assert_close(const double *a, const double *b, size_t n, double rel,
                         const char *what) {
    double diff = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]);
        if (!(e <= diff)) { /* also catches NaN */
            diff = e;
            worst = i;
        }
    }
    double scale = max_abs(b, n);
    ck_assert_msg(scale > 0.0, "%s: reference is all zero", what);
    ck_assert_msg(diff <= rel * scale, "%s: max|diff| %.3e at %zu (%.17g vs %.17g) > %.1e * %.3e",
                  what, diff, worst, a[worst], b[worst], rel, scale);
}

static inline void assert_finite(const double *a, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) ck_assert_msg(isfinite(a[i]), "%s[%zu] = %g", what, i, a[i]);
}

static inline void to_double(const float *x, size_t n, double *y) {
    for (size_t i = 0; i < n; i++) y[i] = (double)x[i];
}

/* Runs the op's reference on every output. */
static inline double *run_full(op_id id, const shape_t *s, const inputs_t *x) {
    const op_desc_t *op = op_get(id);
    sample_buf_t b;
    sample_full(&b, op->seq_count(s), s->T, op->col_count(s));
    double *out = dalloc((size_t)op->seq_count(s) * s->T * op->col_count(s));
    ck_assert_msg(op->reference(s, cin(x), &b.s, out) == 0, "%s: %s", op->name, bench_last_error());
    sample_free(&b);
    return out;
}

/* ---------------- linear attention ---------------- */


static inline void la_quadratic(const double *q, const double *k, const double *v, int n_seq, int T,
                         int dk, int dv, int causal, double *o) {
    for (int sq = 0; sq < n_seq; sq++) {
        const double *Q = q + (size_t)sq * T * dk, *K = k + (size_t)sq * T * dk;
        const double *V = v + (size_t)sq * T * dv;
        for (int t = 0; t < T; t++) {
            double *ot = o + ((size_t)sq * T + t) * dv;
            for (int c = 0; c < dv; c++) ot[c] = 0.0;
            for (int s = 0; s < (causal ? t + 1 : T); s++) {
                double a = 0.0;
                for (int i = 0; i < dk; i++) a += Q[(size_t)t * dk + i] * K[(size_t)s * dk + i];
                a /= sqrt((double)dk);
                for (int c = 0; c < dv; c++) ot[c] += a * V[(size_t)s * dv + c];
            }
        }
    }
}

/* ---------------- finite differences of a whole backward (test_grad_chela.c, _mega.c) -------- */

typedef struct {
    double worst;     /* max of |grad - fd| / (fd_abs + fd_rel |fd|): <= 1 passes */
    double worst_abs; /* max |grad - fd|                                          */
    int tensor;       /* where worst was                                           */
    size_t elem;
    double g, fd;
} fd_result_t;

/* Compares grad with the four-point central difference of loss(ctx) over every element of
 * x[0 .. n) (tensor ti of the caller's inputs, restored after), step h:
 *   fd = (8 (L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))) / 12h;
 * keeps the worst in *res without asserting, so a caller can also expect a failure. */
static inline void fd_compare(double *x, size_t n, int ti, const double *grad,
                              double (*loss)(void *ctx), void *ctx, double h, double fd_abs,
                              double fd_rel, fd_result_t *res) {
    for (size_t j = 0; j < n; j++) {
        const double x0 = x[j];
        double Lh[4]; /* L at x0 + h, x0 - h, x0 + 2h, x0 - 2h */
        static const double at[4] = {1.0, -1.0, 2.0, -2.0};
        for (int k = 0; k < 4; k++) {
            x[j] = x0 + at[k] * h;
            Lh[k] = loss(ctx);
        }
        x[j] = x0;
        const double fd = (8.0 * (Lh[0] - Lh[1]) - (Lh[2] - Lh[3])) / (12.0 * h);
        const double err = fabs(grad[j] - fd);
        const double ratio = err / (fd_abs + fd_rel * fabs(fd));
        res->worst_abs = fmax(res->worst_abs, err);
        if (!(ratio <= res->worst)) { /* also catches NaN */
            *res = (fd_result_t){.worst = ratio, .worst_abs = res->worst_abs, .tensor = ti,
                                 .elem = j, .g = grad[j], .fd = fd};
        }
    }
}

#endif
