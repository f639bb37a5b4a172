/* oracle_test_util.c: the GPU oracle tests' shared helpers (oracle_test_util.h says what and
 * why). */
#include "oracle_test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "gpu_util.h"
#include "grad_ref.h"

shape_t oracle_shape(int B, int T, int d, dtype_t dt, pass_t pass) {
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = B;
    s.T = T;
    s.d = d;
    s.causal = 1;
    s.dtype = dt;
    s.pass = pass;
    return s;
}

void oracle_io_make(const oracle_t *o, shape_t *s, int host, oracle_io_t *x) {
    memset(x, 0, sizeof *x);
    const op_desc_t *op = op_get(o->op);
    ck_assert_ptr_nonnull(op);
    tensor_desc_t outd;
    const int n_in = op->describe(s, x->desc, &outd);
    ck_assert_int_eq(n_in, o->n_in);
    x->ny = (size_t)s->B * s->T * (size_t)s->d;
    ck_assert_uint_eq(outd.elems, x->ny); /* the output is [B,T,d], read back as such */
    x->n_in = n_in;
    x->io.shape = s;
    x->io.n_in = n_in;
    size_t most = outd.elems; /* the largest tensor: x, dy or a weight */
    for (int i = 0; i < n_in; i++) most = x->desc[i].elems > most ? x->desc[i].elems : most;
    float *tmp = malloc(most * sizeof(float));
    ck_assert_ptr_nonnull(tmp);
    const uint64_t seed = o->seed ? o->seed : ORACLE_SEED;
    for (int i = 0; i < n_in; i++) {
        const size_t n = x->desc[i].elems;
        if (o->ref_elems) ck_assert_uint_eq(n, o->ref_elems(s, i));
        if (host) {
            tensor_fill_host(&x->desc[i], seed, (uint32_t)i, s->dtype, tmp);
            x->hin[i] = malloc(n * sizeof(double));
            ck_assert_ptr_nonnull(x->hin[i]);
            for (size_t k = 0; k < n; k++) x->hin[i][k] = tmp[k];
        }
        void *p = NULL;
        CK_CUDA_OK(cudaMalloc(&p, tensor_bytes(&x->desc[i], s->dtype)));
        ck_assert_int_eq(gpu_fill_tensor(&x->desc[i], seed, (uint32_t)i, s->dtype, p, 0),
                         0);
        x->io.in[i] = p;
        CK_CUDA_OK(cudaMalloc(&x->g.grad[i], n * sizeof(float)));
    }
    const tensor_desc_t dyd = grad_dy_desc(&outd);
    if (host) {
        tensor_fill_host(&dyd, seed, GRAD_DY_INDEX, s->dtype, tmp);
        x->hdy = malloc(outd.elems * sizeof(double));
        ck_assert_ptr_nonnull(x->hdy);
        for (size_t k = 0; k < outd.elems; k++) x->hdy[k] = tmp[k];
    }
    free(tmp);
    void *dy = NULL;
    CK_CUDA_OK(cudaMalloc(&dy, tensor_bytes(&dyd, s->dtype)));
    ck_assert_int_eq(gpu_fill_tensor(&dyd, seed, GRAD_DY_INDEX, s->dtype, dy, 0), 0);
    x->g.dy = dy;
    CK_CUDA_OK(cudaMalloc(&x->io.out, x->ny * sizeof(float))); /* the oracle writes fp32 */
    CK_CUDA_OK(cudaMemset(x->io.out, 0xFF, x->ny * sizeof(float)));
}

void oracle_io_free(oracle_io_t *x) {
    for (int i = 0; i < x->n_in; i++) {
        CK_CUDA_OK(cudaFree((void *)x->io.in[i]));
        CK_CUDA_OK(cudaFree(x->g.grad[i]));
        free(x->hin[i]);
    }
    CK_CUDA_OK(cudaFree((void *)x->g.dy));
    CK_CUDA_OK(cudaFree(x->io.out));
    free(x->hdy);
}

oracle_groups_t oracle_groups_even(size_t width, int parts) {
    ck_assert(parts >= 1 && parts <= ORACLE_MAX_PARTS && width % (size_t)parts == 0);
    oracle_groups_t g = {.width = width, .parts = parts};
    for (int p = 0; p <= parts; p++) g.bounds[p] = width / (size_t)parts * (size_t)p;
    return g;
}

static int group_of(const oracle_groups_t *g, size_t col) {
    int p = 0;
    while (p + 1 < g->parts && col >= g->bounds[p + 1]) p++;
    return p;
}

void oracle_check_tensor(const char *label, const char *what, const double *ref, const float *got,
                         size_t n, const oracle_groups_t *g, double tol, double part_floor) {
    oracle_check_tensor_scaled(label, what, ref, got, n, g, tol, part_floor, 0, 0);
}

void oracle_check_tensor_scaled(const char *label, const char *what, const double *ref,
                                const float *got, size_t n, const oracle_groups_t *g, double tol,
                                double part_floor, double scale_over, double fallback) {
    double whole = 0, part_max[ORACLE_MAX_PARTS] = {0};
    for (size_t i = 0; i < n; i++) {
        const int p = group_of(g, i % g->width);
        whole = fmax(whole, fabs(ref[i]));
        part_max[p] = fmax(part_max[p], fabs(ref[i]));
    }
    if (scale_over > 0) {
        whole = scale_over;
        for (int p = 0; p < ORACLE_MAX_PARTS; p++) part_max[p] = scale_over;
    }
    if (whole == 0) {
        ck_assert_msg(fallback > 0, "%s %s: the reference is all zero", label, what);
        whole = fallback;
        for (int p = 0; p < ORACLE_MAX_PARTS; p++) part_max[p] = fallback;
    }
    double worst = 0;
    size_t at = 0;
    long long nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        const double scale = fmax(part_max[group_of(g, i % g->width)], part_floor * whole);
        if (!isfinite(got[i])) {
            if (!nonfinite++) at = i;
            worst = INFINITY;
            continue;
        }
        const double e = fabs((double)got[i] - ref[i]) / scale;
        if (e > worst && !nonfinite) {
            worst = e;
            at = i;
        }
    }
    printf("  %-36s %-9s max_rel %.3e (tol %.1e)%s\n", label, what, worst, tol,
           nonfinite ? "  NON-FINITE" : "");
    ck_assert_msg(nonfinite == 0 && worst <= tol,
                  "%s %s: max_rel %.3e > %.1e (%lld non-finite) at %zu (row %zu col %zu): got "
                  "%.8g ref %.8g",
                  label, what, worst, tol, nonfinite, at, at / g->width, at % g->width,
                  (double)got[at], ref[at]);
}

static float *download_f32(const void *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(h);
    CK_CUDA_OK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

void oracle_run_gpu(const oracle_t *o, shape_t *s, const char *label, oracle_run_t *r) {
    memset(r, 0, sizeof *r);
    const char *why = o->supports(s);
    ck_assert_msg(why == NULL, "%s: supports: %s", label, why ? why : "");
    oracle_io_t *x = &r->x;
    oracle_io_make(o, s, 1, x);
    for (int i = 0; i < x->n_in; i++) {
        r->gref[i] = malloc(x->desc[i].elems * sizeof(double));
        ck_assert_ptr_nonnull(r->gref[i]);
    }
    r->yref = malloc(x->ny * sizeof(double));
    ck_assert_ptr_nonnull(r->yref);

    void *state = NULL;
    ck_assert_msg(o->setup(s, &x->io, &state) == 0, "%s: setup: %s", label, bench_last_error());
    ck_assert_msg(o->run(state, &x->io, 0) == 0, "%s: run: %s", label, bench_last_error());
    for (int rep = 0; rep < 2; rep++) {
        for (int i = 0; i < x->n_in; i++)
            ck_assert_int_eq(gpu_poison(x->g.grad[i], x->desc[i].elems * sizeof(float), 0), 0);
        ck_assert_msg(o->run_bwd(state, &x->io, &x->g, 0) == 0, "%s: run_bwd: %s", label,
                      bench_last_error());
        CK_CUDA_OK(cudaDeviceSynchronize());
        for (int i = 0; i < x->n_in; i++) {
            float *h = download_f32(x->g.grad[i], x->desc[i].elems);
            if (rep == 0) {
                r->got[i] = h;
                continue;
            }
            ck_assert_msg(memcmp(h, r->got[i], x->desc[i].elems * sizeof(float)) == 0,
                          "%s: the second run_bwd's d%s differs from the first's", label,
                          x->desc[i].name);
            free(h);
        }
    }
    r->y = download_f32(x->io.out, x->ny);
    o->config(state, r->cfg, sizeof r->cfg);
    o->teardown(state);
}

void oracle_compare(const oracle_run_t *r, const char *label, int d,
                    oracle_groups_t (*groups)(int i, const void *ctx), const void *ctx,
                    double tol, double part_floor) {
    printf("%s (%s)\n", label, r->cfg);
    const oracle_groups_t gy = oracle_groups_even((size_t)d, 1);
    oracle_check_tensor(label, "y", r->yref, r->y, r->x.ny, &gy, tol, part_floor);
    for (int i = 0; i < r->x.n_in; i++) {
        const oracle_groups_t gg = groups(i, ctx);
        char what[32];
        snprintf(what, sizeof what, "d%s", r->x.desc[i].name);
        oracle_check_tensor(label, what, r->gref[i], r->got[i], r->x.desc[i].elems, &gg, tol,
                            part_floor);
    }
}

void oracle_run_free(oracle_run_t *r) {
    for (int i = 0; i < r->x.n_in; i++) {
        free(r->gref[i]);
        free(r->got[i]);
    }
    free(r->yref);
    free(r->y);
    oracle_io_free(&r->x);
}

void oracle_bwd_refuses_after_fwd(const oracle_t *o, shape_t *s) {
    oracle_io_t x;
    oracle_io_make(o, s, 0, &x);
    void *state = NULL;
    ck_assert_msg(o->setup(s, &x.io, &state) == 0, "setup: %s", bench_last_error());
    ck_assert_msg(o->run(state, &x.io, 0) == 0, "run: %s", bench_last_error());
    ck_assert_msg(o->run_bwd(state, &x.io, &x.g, 0) != 0, "run_bwd after a pass-fwd setup ran");
    bench_clear_error();
    CK_CUDA_OK(cudaDeviceSynchronize());
    o->teardown(state);
    oracle_io_free(&x);
}

void oracle_bwd_timed(const oracle_t *o, shape_t *s, const char *label) {
    oracle_io_t x;
    oracle_io_make(o, s, 0, &x);
    void *state = NULL;
    ck_assert_msg(o->setup(s, &x.io, &state) == 0, "setup: %s", bench_last_error());
    for (int i = 0; i < x.n_in; i++)
        ck_assert_int_eq(gpu_poison(x.g.grad[i], x.desc[i].elems * sizeof(float), 0), 0);
    cudaEvent_t ev[4];
    for (int k = 0; k < 4; k++) CK_CUDA_OK(cudaEventCreate(&ev[k]));
    CK_CUDA_OK(cudaEventRecord(ev[0], 0));
    ck_assert_msg(o->run(state, &x.io, 0) == 0, "run: %s", bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[1], 0));
    ck_assert_msg(o->run_bwd(state, &x.io, &x.g, 0) == 0, "run_bwd: %s", bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[2], 0));
    ck_assert_msg(o->run_bwd(state, &x.io, &x.g, 0) == 0, "run_bwd: %s", bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[3], 0));
    CK_CUDA_OK(cudaEventSynchronize(ev[3]));
    float ms[3];
    for (int k = 0; k < 3; k++) CK_CUDA_OK(cudaEventElapsedTime(&ms[k], ev[k], ev[k + 1]));
    printf("timing %s: training fwd %.1f ms, bwd %.1f ms (first), %.1f ms (second)\n", label,
           ms[0], ms[1], ms[2]);
    for (int i = 0; i < x.n_in; i++) {
        unsigned long long bad = 0;
        ck_assert_int_eq(gpu_count_nonfinite(x.g.grad[i], x.desc[i].elems, DTYPE_F32, &bad, 0),
                         0);
        ck_assert_msg(bad == 0, "d%s: %llu non-finite of %zu", x.desc[i].name, bad,
                      x.desc[i].elems);
    }
    for (int k = 0; k < 4; k++) CK_CUDA_OK(cudaEventDestroy(ev[k]));
    o->teardown(state);
    oracle_io_free(&x);
}

int oracle_test_main(const char *suite, const TTest *vs_reference, int n_cases,
                     const TTest *refuses, const TTest *long_sequence) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    Suite *su = suite_create(suite);
    TCase *tc = tcase_create("gpu");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, vs_reference, 0, n_cases);
    tcase_add_test(tc, refuses);
    tcase_add_test(tc, long_sequence);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK); /* a forked child cannot use CUDA */
    srunner_run_all(sr, CK_VERBOSE);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
