/* cli.c: parse chela-bench's command line.  Every rejection is one line that
 * names the option and the bad value; nothing is half-applied. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

void options_defaults(options_t *o) {
    memset(o, 0, sizeof *o);
    o->command = CMD_RUN;
    o->dtype = DTYPE_BF16;
    o->heads = 16;
    o->dk = 64;
    o->dv = 64;
    o->z = 128;
    o->causal = 1;
    o->passes[0] = PASS_FWD;
    o->n_pass = 1;
    o->backend = BACKEND_AUTO;
    o->warmup = 3;
    o->repeat = 20;
    o->budget_ms = 500;
    o->check = 1;
    o->seed = 20240612;
    o->out = "results.csv";
    o->max_slowdown = 0.05;
    o->hbm_tolerance = 0.02;
}

/* One unit rule: the value is a percentage, with or without its '%' sign ("5%",
 * "5" and "0.5" are 5 %, 5 % and 0.5 %).  The old rule read a bare value below 1 as
 * a fraction, so 0.99 meant 99 % while 1 meant 1 %. */
static int parse_percent(const char *opt, const char *s, double *out, char *err, size_t n) {
    char *end;
    if (!s) {
        snprintf(err, n, "%s needs a value like 5%%", opt);
        return -1;
    }
    errno = 0;
    double v = strtod(s, &end);
    int pct = *end == '%';
    if (end == s || (*end && !(pct && end[1] == 0)) || errno || !(v >= 0) || v > 1000) {
        snprintf(err, n, "%s: '%s' is not a percentage (e.g. 5%%)", opt, s);
        return -1;
    }
    *out = v / 100;
    return 0;
}

void print_usage(void) {
    fputs(
        "usage: chela-bench [run] [options]      run ops over a sequence sweep, write CSV\n"
        "       chela-bench plot results.csv... [-o DIR]   (charts; default ./charts)\n"
        "       chela-bench compare BASE.csv NEW.csv [--max-slowdown 5%] [--hbm-tolerance 2%]\n"
        "                           [--allow-missing] [--allow-device-mismatch]\n"
        "                           (percentages: 5, 5% and 0.5 mean 5 %, 5 % and 0.5 %)\n"
        "       chela-bench show results.csv [--cols a,b,...] [--where col=value|col~text]...\n"
        "       chela-bench --list | --help | --version\n"
        "\n"
        "sweep:\n"
        "  --seq SPEC          lengths: 1k..64k (powers of two), 1k..8k:1k (step), 1024,3000,4k\n"
        "                      (k = 1024; each length 1..64M, at most 256 of them, SPEC at most\n"
        "                      511 characters; default 1k..64k on the GPU, 256..1k on the CPU)\n"
        "  --ops LIST          linear_attn,long_conv,short_long_conv,softmax_attn,chela,\n"
        "                      transformer,mega (default all)\n"
        "  --variants LIST     keep variants whose name contains one of these substrings\n"
        "  --tokens N          tokens per point, B = max(1, N / T) (default 64k on the GPU;\n"
        "                      the CPU backend uses B = 1)\n"
        "  --batch B           fixed batch instead of --tokens\n"
        "shapes:\n"
        "  --heads H           attention heads (default 16)\n"
        "  --head-dim D        dk = dv = D (default 64)\n"
        "  --dk K --dv V       query/key and value widths per head (e.g. --heads 1 --dk 128 --dv 2048)\n"
        "  --dim d             channels of the conv ops and CHELA's width (default 1024; 256 on the CPU)\n"
        "  --z Z --v V         CHELA's and MEGA's query/key and value widths (default 128, 2d)\n"
        "  --noncausal         bidirectional attention (linear_attn, softmax_attn)\n"
        "  --dtype T           bf16 (default), fp16, fp32\n"
        "  --pass P[,P...]     fwd (default: the forward, inference), bwd (the backward alone\n"
        "                      on what an untimed forward left: every input's gradient from a\n"
        "                      seeded dy), fwdbwd (one training step: forward then backward);\n"
        "                      a list sweeps; a variant without a backward is a skip row\n"
        "running:\n"
        "  --backend B         auto (default: the GPU if present, else the CPU references), cuda, cpu\n"
        "  --device N          CUDA device index (default 0)\n"
        "  --warmup N          untimed runs before timing (default 3)\n"
        "  --repeat N          minimum timed samples (default 20; 5 on the CPU backend)\n"
        "  --budget-ms MS      extra time per point to drive the noise under 0.5% (default 500)\n"
        "  --profile           also count HBM bytes per variant with CUPTI (a separate run)\n"
        "  --breakdown         also time each stage of a multi-stage variant (chela/fused,\n"
        "                      mega/layer):\n"
        "                      one more row per stage, role 'stage', variant 'NAME:STAGE'\n"
        "  --set NAME=V[,V...] a variant setting (see --list); a list sweeps it, one row per\n"
        "                      value (several --set: every combination); default auto\n"
        "  --no-ceilings       skip measuring the copy / GEMM ceilings (floor columns empty;\n"
        "                      for runs under ncu or nsys)\n"
        "  --no-check          skip verification against the CPU reference (rows note it)\n"
        "  --seed N            input seed (default 20240612)\n"
        "  -o FILE             results CSV (default results.csv; written whole or not at all)\n",
        stdout);
}

static int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out,
                     char *err, size_t n) {
    if (!s) {
        snprintf(err, n, "%s needs a value", opt);
        return -1;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end != s && (*end == 'k' || *end == 'K') && end[1] == 0) {
        /* the K multiple only where it fits: -2^63 K overflowed here (found by fuzz_cli) */
        if (errno == 0 && v >= LLONG_MIN / 1024 && v <= LLONG_MAX / 1024) v *= 1024;
        else errno = ERANGE;
        end++;
    }
    if (end == s || *end) {
        snprintf(err, n, "%s: '%s' is not a whole number", opt, s);
        return -1;
    }
    if (errno == ERANGE || v < lo || v > hi) {
        snprintf(err, n, "%s: %s is out of range (%lld..%lld)", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* --pass fwd|bwd|fwdbwd[,...]: a list sweeps, each pass once. */
static int parse_passes(const char *s, options_t *o, char *err, size_t n) {
    char buf[64];
    if (!s || !*s || strlen(s) >= sizeof buf) {
        snprintf(err, n, "--pass needs fwd, bwd, fwdbwd or a comma list of them");
        return -1;
    }
    strcpy(buf, s);
    int k = 0;
    const char *p = buf;
    for (;;) { /* by hand, not strtok: an empty item ("fwd,,bwd") is an error, not skipped */
        const char *comma = strchr(p, ',');
        char item[64];
        snprintf(item, sizeof item, "%.*s", (int)(comma ? (size_t)(comma - p) : strlen(p)), p);
        pass_t ps;
        if (pass_parse(item, &ps)) {
            snprintf(err, n, "--pass: '%s' is not fwd, bwd or fwdbwd", item);
            return -1;
        }
        for (int j = 0; j < k; j++)
            if (o->passes[j] == ps) {
                snprintf(err, n, "--pass: '%s' is listed twice", item);
                return -1;
            }
        o->passes[k++] = ps; /* at most 3 distinct values, so k stays <= 3 */
        if (!comma) break;
        p = comma + 1;
    }
    o->n_pass = k;
    return 0;
}

static int parse_ops(const char *s, unsigned *mask, char *err, size_t n) {
    char buf[256];
    if (!s || !*s || strlen(s) >= sizeof buf) {
        snprintf(err, n, "--ops needs a comma-separated list of ops");
        return -1;
    }
    strcpy(buf, s);
    *mask = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const op_desc_t *op = op_find(t);
        if (!op) {
            snprintf(err, n, "--ops: unknown op '%s' (known: linear_attn, long_conv, "
                     "short_long_conv, softmax_attn, chela, transformer, mega)", t);
            return -1;
        }
        *mask |= 1u << op->id;
    }
    return 0;
}

/* Which subcommands an option means something to. */
enum { FOR_RUN = 1, FOR_PLOT = 2, FOR_COMPARE = 4, FOR_SHOW = 8, FOR_ANY = 15 };
static int option_scope(const char *a) {
    static const char *const compare_only[] = {"--max-slowdown", "--hbm-tolerance",
                                               "--allow-missing", "--allow-device-mismatch"};
    if (!strcmp(a, "-o") || !strcmp(a, "--output")) return FOR_RUN | FOR_PLOT;
    if (!strcmp(a, "--cols") || !strcmp(a, "--where")) return FOR_SHOW;
    if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "--version") || !strcmp(a, "--list"))
        return FOR_ANY;
    for (size_t k = 0; k < sizeof compare_only / sizeof compare_only[0]; k++)
        if (!strcmp(a, compare_only[k])) return FOR_COMPARE;
    return FOR_RUN;
}

static void note_if_ignored(options_t *o, const char *a) {
    int cmd = o->command == CMD_PLOT      ? FOR_PLOT
              : o->command == CMD_COMPARE ? FOR_COMPARE
              : o->command == CMD_SHOW    ? FOR_SHOW
                                          : FOR_RUN;
    if (a[0] != '-' || (option_scope(a) & cmd)) return;
    for (int k = 0; k < o->n_ignored; k++)
        if (!strcmp(o->ignored[k], a)) return;
    if (o->n_ignored < (int)(sizeof o->ignored / sizeof o->ignored[0])) o->ignored[o->n_ignored++] = a;
}

int options_parse(int argc, char **argv, options_t *o, char *err, size_t n) {
    int head_dim_given = 0, dkdv_given = 0, i = 1;
    long long v;
    if (argc > 1) {
        if (!strcmp(argv[1], "run")) i = 2;
        else if (!strcmp(argv[1], "plot")) o->command = CMD_PLOT, i = 2;
        else if (!strcmp(argv[1], "compare")) o->command = CMD_COMPARE, i = 2;
        else if (!strcmp(argv[1], "show")) o->command = CMD_SHOW, i = 2;
    }
#define NEXT() (i + 1 < argc ? argv[++i] : NULL)
#define INT(opt, lo, hi, dst)                                          \
    do {                                                               \
        if (parse_int(opt, NEXT(), lo, hi, &v, err, n)) return -1;     \
        dst = v;                                                       \
    } while (0)
    for (; i < argc; i++) {
        const char *a = argv[i];
        note_if_ignored(o, a);
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) o->command = CMD_HELP;
        else if (!strcmp(a, "--version")) o->command = CMD_VERSION;
        else if (!strcmp(a, "--list")) o->command = CMD_LIST;
        else if (!strcmp(a, "--seq")) {
            const char *s = NEXT();
            if (!s) { snprintf(err, n, "--seq needs a value (e.g. 1k..64k)"); return -1; }
            o->n_seq = seq_parse(s, o->seq, SEQ_MAX_POINTS, err, n);
            if (o->n_seq < 0) return -1;
            o->seq_given = 1;
        } else if (!strcmp(a, "--ops")) {
            if (parse_ops(NEXT(), &o->op_mask, err, n)) return -1;
        } else if (!strcmp(a, "--variants")) {
            o->variant_filter = NEXT();
            if (!o->variant_filter) { snprintf(err, n, "--variants needs a value"); return -1; }
        } else if (!strcmp(a, "--dtype")) {
            const char *s = NEXT();
            if (!s || dtype_parse(s, &o->dtype)) {
                snprintf(err, n, "--dtype: '%s' is not bf16, fp16 or fp32", s ? s : "");
                return -1;
            }
        } else if (!strcmp(a, "--pass")) {
            if (parse_passes(NEXT(), o, err, n)) return -1;
        } else if (!strcmp(a, "--tokens")) INT("--tokens", 1, 1LL << 34, o->tokens);
        else if (!strcmp(a, "--batch")) INT("--batch", 1, 1 << 20, o->batch);
        else if (!strcmp(a, "--heads")) {
            INT("--heads", 1, 4096, o->heads);
            o->attn_shape_given = 1;
        }
        else if (!strcmp(a, "--head-dim")) {
            INT("--head-dim", 1, 4096, o->dk);
            o->dv = o->dk;
            head_dim_given = o->attn_shape_given = 1;
        } else if (!strcmp(a, "--dk")) {
            INT("--dk", 1, 4096, o->dk);
            dkdv_given = o->attn_shape_given = 1;
        } else if (!strcmp(a, "--dv")) {
            INT("--dv", 1, 65536, o->dv);
            dkdv_given = o->attn_shape_given = 1;
        } else if (!strcmp(a, "--dim")) {
            INT("--dim", 1, 65536, o->dim);
            o->dim_given = 1;
        }
        else if (!strcmp(a, "--z")) {
            INT("--z", 1, 4096, o->z);
            o->z_given = 1;
        }
        else if (!strcmp(a, "--v")) {
            INT("--v", 1, 65536, o->v);
            o->v_given = o->z_given = 1;
        }
        else if (!strcmp(a, "--noncausal")) o->causal = 0;
        else if (!strcmp(a, "--backend")) {
            const char *s = NEXT();
            if (s && !strcmp(s, "auto")) o->backend = BACKEND_AUTO;
            else if (s && !strcmp(s, "cuda")) o->backend = BACKEND_CUDA;
            else if (s && !strcmp(s, "cpu")) o->backend = BACKEND_CPU;
            else {
                snprintf(err, n, "--backend: '%s' is not auto, cuda or cpu", s ? s : "");
                return -1;
            }
        } else if (!strcmp(a, "--device")) {
            INT("--device", 0, 1023, o->device);
            o->device_given = 1;
        }
        else if (!strcmp(a, "--warmup")) INT("--warmup", 0, 1000, o->warmup);
        else if (!strcmp(a, "--repeat")) {
            INT("--repeat", 1, 100000, o->repeat);
            o->repeat_given = 1;
        }
        else if (!strcmp(a, "--budget-ms")) INT("--budget-ms", 0, 3600000, o->budget_ms);
        else if (!strcmp(a, "--seed")) INT("--seed", 0, (1LL << 62), o->seed);
        else if (!strcmp(a, "--profile")) o->profile = 1;
        else if (!strcmp(a, "--breakdown")) o->breakdown = 1;
        else if (!strcmp(a, "--no-ceilings")) o->no_ceilings = 1;
        else if (!strcmp(a, "--cols")) {
            o->show_cols = NEXT();
            if (!o->show_cols || !*o->show_cols) {
                snprintf(err, n, "--cols needs a comma list of column names");
                return -1;
            }
        } else if (!strcmp(a, "--where")) {
            const char *w = NEXT();
            if (!w || !strpbrk(w, "=~") || strpbrk(w, "=~") == w) {
                snprintf(err, n, "--where needs column=value or column~text");
                return -1;
            }
            if (o->n_where == (int)(sizeof o->where / sizeof o->where[0])) {
                snprintf(err, n, "--where: at most %d of them",
                         (int)(sizeof o->where / sizeof o->where[0]));
                return -1;
            }
            o->where[o->n_where++] = w;
        }
        else if (!strcmp(a, "--set")) {
            const char *kv = NEXT();
            const char *eq = kv ? strchr(kv, '=') : NULL;
            if (!kv || !eq || eq == kv || !eq[1]) {
                snprintf(err, n, "--set needs name=value[,value...] (see --list for the names)");
                return -1;
            }
            if (o->n_set == (int)(sizeof o->set_args / sizeof o->set_args[0])) {
                snprintf(err, n, "--set: at most %d of them",
                         (int)(sizeof o->set_args / sizeof o->set_args[0]));
                return -1;
            }
            o->set_args[o->n_set++] = kv;
        }
        else if (!strcmp(a, "--max-slowdown")) {
            if (parse_percent(a, NEXT(), &o->max_slowdown, err, n)) return -1;
        } else if (!strcmp(a, "--hbm-tolerance")) {
            if (parse_percent(a, NEXT(), &o->hbm_tolerance, err, n)) return -1;
        } else if (!strcmp(a, "--allow-missing")) o->allow_missing = 1;
        else if (!strcmp(a, "--allow-device-mismatch")) o->allow_device_mismatch = 1;
        else if (!strcmp(a, "--no-check")) o->check = 0;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            o->out = NEXT();
            if (!o->out || !*o->out) { snprintf(err, n, "-o needs a file name"); return -1; }
            o->out_given = 1;
        } else if (a[0] == '-' && a[1]) {
            snprintf(err, n, "unknown option '%s' (see --help)", a);
            return -1;
        } else if ((o->command == CMD_PLOT || o->command == CMD_COMPARE || o->command == CMD_SHOW) &&
                   o->n_args < 4) {
            o->args[o->n_args++] = a;
        } else {
            snprintf(err, n, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
    }
#undef NEXT
#undef INT
    if (o->tokens && o->batch) {
        snprintf(err, n, "--tokens and --batch conflict: give one");
        return -1;
    }
    if (head_dim_given && dkdv_given) {
        snprintf(err, n, "--head-dim and --dk/--dv conflict: give one");
        return -1;
    }
    return 0;
}
