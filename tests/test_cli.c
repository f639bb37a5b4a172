/* test_cli.c: the --seq grammar, option conflicts, settings' word values, and the CSV
 * format (golden header, round trip, malformed files). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "seqparse.h"
#include "settings.h"
#include "verify.h"

static int parse(const char *spec, int *out, char *err) {
    return seq_parse(spec, out, SEQ_MAX_POINTS, err, 256);
}

START_TEST(seq_powers_of_two) {
    int v[SEQ_MAX_POINTS];
    char err[256];
    ck_assert_int_eq(parse("1k..64k", v, err), 7);
    for (int i = 0; i < 7; i++) ck_assert_int_eq(v[i], 1024 << i);
    ck_assert_int_eq(parse("256..2k", v, err), 4);
    ck_assert_int_eq(v[0], 256);
    ck_assert_int_eq(v[3], 2048);
}
END_TEST

START_TEST(seq_steps_and_lists) {
    int v[SEQ_MAX_POINTS];
    char err[256];
    ck_assert_int_eq(parse("1k..8k:1k", v, err), 8);
    ck_assert_int_eq(v[7], 8192);
    ck_assert_int_eq(parse("1024,3000,4k", v, err), 3);
    ck_assert_int_eq(v[1], 3000);
    ck_assert_int_eq(v[2], 4096);
    ck_assert_int_eq(parse("4k,4096,1", v, err), 2); /* duplicates dropped, order kept */
    ck_assert_int_eq(v[1], 1);
    ck_assert_int_eq(parse("100..1000", v, err), 4); /* 100 200 400 800 */
    ck_assert_int_eq(v[3], 800);
}
END_TEST

START_TEST(seq_rejects_bad_input) {
    const char *bad[] = {"0", "64k..1k", "1k..", "abc", "99999999999k", "", "1k,,2k", ",1k",
                         "1k..2k:0", "-5", "1.5k", "1k..2k:", "..2k", "12x", "1kk"};
    int v[SEQ_MAX_POINTS];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        ck_assert_msg(parse(bad[i], v, err) < 0, "'%s' was accepted", bad[i]);
        ck_assert_msg(strncmp(err, "--seq", 5) == 0, "no message for '%s'", bad[i]);
        ck_assert_msg(strchr(err, '\n') == NULL, "message not one line for '%s'", bad[i]);
    }
}
END_TEST

static int opts(options_t *o, char *err, int argc, const char **argv) {
    options_defaults(o);
    return options_parse(argc, (char **)argv, o, err, 256);
}

START_TEST(options_parse_and_conflicts) {
    options_t o;
    char err[256];
    const char *ok[] = {"chela-bench", "run", "--seq", "1k..4k", "--ops", "linear_attn,long_conv",
                        "--heads", "1", "--dk", "128", "--dv", "2048", "--tokens", "64k", "-o",
                        "x.csv"};
    ck_assert_int_eq(opts(&o, err, 16, ok), 0);
    ck_assert_int_eq(o.n_seq, 3);
    ck_assert_int_eq(o.dv, 2048);
    ck_assert_int_eq((int)o.tokens, 65536);
    ck_assert_uint_eq(o.op_mask, 3u);
    const char *c1[] = {"chela-bench", "--tokens", "1024", "--batch", "2"};
    ck_assert_int_eq(opts(&o, err, 5, c1), -1);
    ck_assert_ptr_nonnull(strstr(err, "conflict"));
    const char *c2[] = {"chela-bench", "--head-dim", "64", "--dk", "128"};
    ck_assert_int_eq(opts(&o, err, 5, c2), -1);
    const char *c3[] = {"chela-bench", "--ops", "linear_attn,nope"};
    ck_assert_int_eq(opts(&o, err, 3, c3), -1);
    ck_assert_ptr_nonnull(strstr(err, "nope"));
    const char *c4[] = {"chela-bench", "--heads", "0"};
    ck_assert_int_eq(opts(&o, err, 3, c4), -1);
    const char *c5[] = {"chela-bench", "--dtype", "int8"};
    ck_assert_int_eq(opts(&o, err, 3, c5), -1);
    const char *c6[] = {"chela-bench", "--seq"};
    ck_assert_int_eq(opts(&o, err, 2, c6), -1);
    const char *c7[] = {"chela-bench", "--frobnicate"};
    ck_assert_int_eq(opts(&o, err, 2, c7), -1);
    /* a K multiple past long long (the -2^63 one overflowed before: fuzz_cli) */
    const char *ck1[] = {"chela-bench", "--dim", "-22222222222222222220K"};
    ck_assert_int_eq(opts(&o, err, 3, ck1), -1);
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    const char *ck2[] = {"chela-bench", "--dim", "9007199254740993k"};
    ck_assert_int_eq(opts(&o, err, 3, ck2), -1);
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    const char *ck3[] = {"chela-bench", "--dim", "-2k"};
    ck_assert_int_eq(opts(&o, err, 3, ck3), -1);
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    const char *c8[] = {"chela-bench", "--batch", "-3"};
    ck_assert_int_eq(opts(&o, err, 3, c8), -1);
}
END_TEST

/* --pass: default fwd; a list sweeps in the order given; bad values are one line naming them. */
START_TEST(options_pass) {
    options_t o;
    char err[256];
    const char *d[] = {"chela-bench"};
    ck_assert_int_eq(opts(&o, err, 1, d), 0);
    ck_assert_int_eq(o.n_pass, 1);
    ck_assert_int_eq(o.passes[0], PASS_FWD);
    const char *l[] = {"chela-bench", "--pass", "fwdbwd,fwd,bwd"};
    ck_assert_int_eq(opts(&o, err, 3, l), 0);
    ck_assert_int_eq(o.n_pass, 3);
    ck_assert_int_eq(o.passes[0], PASS_FWDBWD);
    ck_assert_int_eq(o.passes[1], PASS_FWD);
    ck_assert_int_eq(o.passes[2], PASS_BWD);
    const char *one[] = {"chela-bench", "--pass", "bwd"};
    ck_assert_int_eq(opts(&o, err, 3, one), 0);
    ck_assert_int_eq(o.n_pass, 1);
    ck_assert_int_eq(o.passes[0], PASS_BWD);
    const char *bad[][3] = {{"chela-bench", "--pass", "backward"},
                            {"chela-bench", "--pass", "fwd,,bwd"},
                            {"chela-bench", "--pass", "fwd,"},
                            {"chela-bench", "--pass", "bwd,bwd"},
                            {"chela-bench", "--pass", ""}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_int_eq(opts(&o, err, 3, bad[k]), -1);
        ck_assert_ptr_nonnull(strstr(err, "--pass"));
        ck_assert_ptr_null(strchr(err, '\n'));
    }
    ck_assert_ptr_nonnull(strstr(err, "--pass"));
    const char *none[] = {"chela-bench", "--pass"};
    ck_assert_int_eq(opts(&o, err, 2, none), -1);
    /* the names the CSV's pass column holds, and back */
    pass_t p;
    ck_assert_str_eq(pass_name(PASS_FWDBWD), "fwdbwd");
    ck_assert_int_eq(pass_parse("bwd", &p), 0);
    ck_assert_int_eq(p, PASS_BWD);
}
END_TEST

/* The golden header: changing it needs a schema bump in the same commit. */
START_TEST(csv_golden_header) {
    ck_assert_str_eq(csv_header(),
                     "schema,git_sha,device,sm_clock_mhz,backend,op,variant,role,dtype,batch,seq,"
                     "heads,dk,dv,dim,samples,median_ms,p10_ms,p90_ms,min_ms,stdrel,flops,"
                     "ideal_bytes,tflops,gbps,floor_ms,floor_ratio,hbm_read_bytes,hbm_write_bytes,"
                     "hbm_ratio,max_abs_err,max_rel_err,status,note,causal,pass,config,"
                     "peak_mem_bytes,build");
    ck_assert_int_eq(CSV_SCHEMA, 2);
}
END_TEST

static void sample_row(csv_row_t *r) {
    csv_row_init(r);
    strcpy(r->git_sha, "abc123");
    strcpy(r->device, "NVIDIA H100 80GB HBM3");
    r->sm_clock_mhz = 1980;
    strcpy(r->backend, "cuda");
    strcpy(r->op, "linear_attn");
    strcpy(r->variant, "linear_attn/chunked");
    strcpy(r->role, "kernel");
    strcpy(r->dtype, "bf16");
    r->batch = 16;
    r->seq = 4096;
    r->heads = 16;
    r->dk = 64;
    r->dv = 64;
    r->samples = 20;
    r->median_ms = 0.251234567;
    r->flops = 4.0 * 65536 * 16 * 64 * 64;
    r->ideal_bytes = 536870912;
    r->max_rel_err = 3.2e-3;
    strcpy(r->status, "ok");
    strcpy(r->note, "oracle, with a comma");
}

START_TEST(csv_round_trip) {
    char path[] = "csv_rt_XXXXXX", err[256];
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    csv_row_t a, *rows = NULL;
    sample_row(&a);
    csv_writer *w = csv_open(path, err, sizeof err);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(csv_write_row(w, &a), 0);
    csv_row_init(&a);
    strcpy(a.status, "skip:oom");
    ck_assert_int_eq(csv_write_row(w, &a), 0);
    ck_assert_int_eq(csv_close(w, err, sizeof err), 0);
    ck_assert_int_eq(csv_read(path, &rows, err, sizeof err), 2);
    ck_assert_str_eq(rows[0].variant, "linear_attn/chunked");
    ck_assert_str_eq(rows[0].note, "oracle; with a comma"); /* separators never leak */
    ck_assert(fabs(rows[0].median_ms - 0.251235) < 1e-9);  /* %.6g */
    ck_assert(rows[0].ideal_bytes == 536870912);           /* integers exact */
    ck_assert(isnan(rows[0].p10_ms));                      /* empty = not measured */
    ck_assert(isnan(rows[1].median_ms));
    ck_assert_str_eq(rows[1].status, "skip:oom");
    free(rows);
    remove(path);
}
END_TEST

static int read_text(const char *text, char *err) {
    char path[] = "csv_bad_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    csv_row_t *rows = NULL;
    int n = csv_read(path, &rows, err, 256);
    free(rows);
    remove(path);
    return n;
}

START_TEST(csv_rejects_malformed) {
    char err[256], good[4096], text[16384];
    csv_row_t r;
    sample_row(&r);
    csv_format_row(&r, good, sizeof good);
    ck_assert_int_eq(read_text("", err), -1);
    ck_assert_ptr_nonnull(strstr(err, "empty"));
    ck_assert_int_eq(read_text("a,b,c\n1,2,3\n", err), -1);
    snprintf(text, sizeof text, "%s\n%s\n1,2,3\n", csv_header(), good);
    ck_assert_int_eq(read_text(text, err), -1);
    ck_assert_ptr_nonnull(strstr(err, ":3:"));
    char bad[4096];
    strcpy(bad, good);
    char *m = strstr(bad, "0.251235");
    ck_assert_ptr_nonnull(m);
    memcpy(m, "0.2x1235", 8);
    snprintf(text, sizeof text, "%s\n%s\n", csv_header(), bad);
    ck_assert_int_eq(read_text(text, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "median_ms"));
    snprintf(text, sizeof text, "%s\n3%s\n", csv_header(), good + 1); /* schema 3: unknown */
    ck_assert_int_eq(read_text(text, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "schema"));
    /* concatenated files: a repeated header is fine */
    snprintf(text, sizeof text, "%s\n%s\n%s\n%s\n", csv_header(), good, csv_header(), good);
    ck_assert_int_eq(read_text(text, err), 2);
}
END_TEST

START_TEST(csv_unwritable_path_fails_early) {
    char err[256] = "";
    ck_assert_ptr_null(csv_open("/nonexistent-dir/x.csv", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/x.csv"));
}
END_TEST

static const double *g_vals;
static float got_vals(void *ctx, size_t i) {
    (void)ctx;
    return (float)g_vals[i];
}

/* The error measure: rounding-level error on a cancelled element passes, one
 * wrong element fails, an unwritten (NaN) element fails. */
START_TEST(verify_measure) {
    double ref[8] = {0.3, -0.28, 0.02, 0.31, 1.0, 2.0, -1.5, 0.5};
    double got[8];
    memcpy(got, ref, sizeof got);
    got[2] += 5e-4; /* ~2.5% of the element, ~0.2% of its row: rounding of the terms */
    g_vals = got;
    verify_result_t r = verify_compare(ref, 8, 4, got_vals, NULL);
    ck_assert(r.max_rel_err < 1e-2);
    got[5] = 2.1; /* a wrong value: 5% */
    r = verify_compare(ref, 8, 4, got_vals, NULL);
    ck_assert(r.max_rel_err > 1e-2);
    ck_assert_int_eq((int)r.worst, 5);
    got[5] = NAN;
    r = verify_compare(ref, 8, 4, got_vals, NULL);
    ck_assert_int_eq((int)r.nonfinite, 1);
    ck_assert(!(r.max_rel_err <= 1e-2));
}
END_TEST

/* A setting of words (transformer/layer's attn): each word parses to its place in the list,
 * reads back by name and prints as the word; integers and other words are refused. */
START_TEST(settings_words) {
    static const setting_def_t defs[] = {{"attn", "auto|cudnn|flash", "help"},
                                         {"lt_tune", "auto|0|1", "help"},
                                         {NULL, NULL, NULL}};
    char err[160], buf[64];
    int v = 99;
    ck_assert_int_eq(setting_parse(&defs[0], "cudnn", &v, err, sizeof err), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(setting_parse(&defs[0], "flash", &v, err, sizeof err), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(setting_parse(&defs[0], "auto", &v, err, sizeof err), 0);
    ck_assert_int_eq(v, SETTING_AUTO);
    ck_assert_int_eq(setting_parse(&defs[0], "fa", &v, err, sizeof err), -1);
    ck_assert_int_eq(setting_parse(&defs[0], "flashy", &v, err, sizeof err), -1);
    ck_assert_int_eq(setting_parse(&defs[0], "1", &v, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "auto|cudnn|flash"));
    ck_assert_int_eq(setting_parse(&defs[1], "flash", &v, err, sizeof err), -1);
    settings_t set = {.def = defs, .n = 2, .val = {1, 0}, .user_set = 1u};
    ck_assert(settings_is(&set, "attn", "flash"));
    ck_assert(!settings_is(&set, "attn", "cudnn"));
    ck_assert(!settings_is(&set, "attn", "auto"));
    ck_assert(settings_is(NULL, "attn", "auto"));
    settings_format(&set, 1, buf, sizeof buf);
    ck_assert_str_eq(buf, "attn=flash");
    settings_format(&set, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "attn=flash lt_tune=0");
    set.val[0] = SETTING_AUTO;
    ck_assert(settings_is(&set, "attn", "auto"));
    settings_format(&set, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "attn=auto lt_tune=0");
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, seq_powers_of_two);
    tcase_add_test(tc, seq_steps_and_lists);
    tcase_add_test(tc, seq_rejects_bad_input);
    tcase_add_test(tc, options_parse_and_conflicts);
    tcase_add_test(tc, options_pass);
    tcase_add_test(tc, csv_golden_header);
    tcase_add_test(tc, csv_round_trip);
    tcase_add_test(tc, csv_rejects_malformed);
    tcase_add_test(tc, csv_unwritable_path_fails_early);
    tcase_add_test(tc, verify_measure);
    tcase_add_test(tc, settings_words);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
