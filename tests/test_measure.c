/* test_measure.c: the measurement module's stop rule and sample loops (harness/core/measure.h),
 * with fake samplers whose times are chosen, so every branch of the rule can be hit on a
 * machine without a GPU. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "measure.h"

typedef struct {
    int calls, warms, fail_at; /* fail_at: the call that fails (0: none) */
    double t;                  /* the time each sample reports */
    double jitter;             /* alternately +-jitter */
    int stop_after;            /* stop() answers 1 from this many samples (0: never) */
} fake_t;

static int fake_sample(void *c, double *ms, double *mhz) {
    fake_t *f = c;
    if (f->fail_at && ++f->calls == f->fail_at) return -1;
    if (!f->fail_at) f->calls++;
    *ms = f->t + ((f->calls & 1) ? f->jitter : -f->jitter);
    *mhz = 1980;
    return 0;
}
static int fake_warm(void *c) {
    ((fake_t *)c)->warms++;
    return 0;
}
static int fake_stop(void *c) {
    fake_t *f = c;
    return f->stop_after && f->calls >= f->stop_after;
}

static measurement_t m;

START_TEST(min_samples_then_spread) {
    /* steady times: the spread check (every 10) stops at 10, past min 3 */
    fake_t f = {0, 0, 0, 1.0, 0.0, 0};
    stop_rule_t r = stop_rule_default(2, 3, 1e9);
    sampler_t s = {fake_sample, fake_warm, NULL, &f};
    ck_assert_int_eq(measure_run(&r, &s, &m), 0);
    ck_assert_int_eq(f.warms, 2);
    ck_assert_int_eq(m.n, 10);
    ck_assert_double_eq_tol(m.time.median, 1.0, 1e-12);
    ck_assert_int_eq(m.n_mhz, 10);
    ck_assert_double_eq_tol(m.clock.median, 1980, 1e-9);
}
END_TEST

START_TEST(noisy_until_max_or_budget) {
    /* 10 % jitter never meets 0.5 %: a zero budget stops at the minimum, a huge one at the cap */
    fake_t f = {0, 0, 0, 1.0, 0.1, 0};
    stop_rule_t r = stop_rule_default(0, 5, 0);
    sampler_t s = {fake_sample, NULL, NULL, &f};
    ck_assert_int_eq(measure_run(&r, &s, &m), 0);
    ck_assert_int_eq(m.n, 5);
    ck_assert(m.time.p90 > m.time.p10);
    f.calls = 0;
    r = stop_rule_default(0, 5, 1e12);
    ck_assert_int_eq(measure_run(&r, &s, &m), 0);
    ck_assert_int_eq(m.n, MEASURE_MAX_SAMPLES);
}
END_TEST

START_TEST(fixed_and_stop_and_failure) {
    fake_t f = {0, 0, 0, 2.0, 0.5, 0};
    stop_rule_t r = stop_rule_fixed(1, 7);
    sampler_t s = {fake_sample, NULL, NULL, &f};
    ck_assert_int_eq(measure_run(&r, &s, &m), 0);
    ck_assert_int_eq(m.n, 7);
    ck_assert_int_eq(f.calls, 8); /* the warm-up is a dropped sample when warm is NULL */
    fake_t g = {0, 0, 0, 1.0, 0.1, 4};
    sampler_t t = {fake_sample, NULL, fake_stop, &g};
    r = stop_rule_default(0, 20, 1e9);
    ck_assert_int_eq(measure_run(&r, &t, &m), 0);
    ck_assert_int_eq(m.n, 4); /* asked to stop: fewer than the minimum */
    fake_t h = {0, 0, 3, 1.0, 0.0, 0};
    sampler_t u = {fake_sample, NULL, NULL, &h};
    ck_assert_int_eq(measure_run(&r, &u, &m), -1);
}
END_TEST

START_TEST(interleaved_drops_a_failing_one) {
    fake_t f[3] = {{0, 0, 0, 1.0, 0, 0}, {0, 0, 5, 2.0, 0, 0}, {0, 0, 0, 3.0, 0, 0}};
    sampler_t s[3];
    for (int i = 0; i < 3; i++) s[i] = (sampler_t){fake_sample, NULL, NULL, &f[i]};
    static measurement_t mm[3];
    int ok[3];
    stop_rule_t r = stop_rule_fixed(2, 7);
    ck_assert_int_eq(measure_interleaved(&r, s, 3, mm, ok), 2);
    ck_assert(ok[0] && !ok[1] && ok[2]);
    ck_assert_int_eq(mm[0].n, 7);
    ck_assert_double_eq_tol(mm[2].time.median, 3.0, 1e-12);
}
END_TEST

int main(void) {
    Suite *s = suite_create("measure");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, min_samples_then_spread);
    tcase_add_test(tc, noisy_until_max_or_budget);
    tcase_add_test(tc, fixed_and_stop_and_failure);
    tcase_add_test(tc, interleaved_drops_a_failing_one);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
