/* cli.h: the command line of DESIGN.md, parsed into one options struct. */
#ifndef CHELA_CLI_H
#define CHELA_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "seqparse.h"
#include "shape.h"

typedef enum { BACKEND_AUTO = 0, BACKEND_CUDA, BACKEND_CPU } backend_t;
typedef enum { CMD_RUN = 0, CMD_PLOT, CMD_COMPARE, CMD_LIST, CMD_HELP, CMD_VERSION, CMD_SHOW } command_t;

typedef struct {
    command_t command;
    int seq[SEQ_MAX_POINTS];
    int n_seq;
    int seq_given;
    unsigned op_mask;       /* bit per op_id; 0 = all ops */
    const char *variant_filter; /* --variants: comma list of substrings, NULL = all */
    dtype_t dtype;
    long long tokens;       /* 0 = not given */
    int batch;              /* 0 = derived from tokens */
    int heads, dk, dv;      /* attention ops */
    int dim, z, v;          /* conv ops / chela; 0 = default */
    int dim_given, v_given;
    int repeat_given, device_given, attn_shape_given, z_given; /* for the notes below */
    int causal;
    /* --pass: the passes each point is measured in, in the order given (default {fwd}). */
    pass_t passes[3];
    int n_pass;
    backend_t backend;
    int device;
    int warmup, repeat;
    double budget_ms;       /* per point, beyond the minimum repeats */
    int profile, check;
    int breakdown; /* --breakdown: one more row per stage of a staged variant */
    int no_ceilings; /* --no-ceilings: skip the copy / GEMM ceiling measurement (floors empty) */
    /* --set name=value[,value...] as given, in order (settings.h; checked against the
     * variant table by the sweep, which knows which variants run) */
    const char *set_args[8];
    int n_set;
    uint64_t seed;
    const char *out;
    int out_given;          /* -o was on the command line */
    /* compare */
    double max_slowdown;   /* fraction, default 0.05 */
    double hbm_tolerance;  /* fraction, default 0.02 */
    int allow_missing, allow_device_mismatch;
    /* show */
    const char *show_cols;   /* --cols a,b,c (NULL: a default set) */
    const char *where[8];    /* --where col=value (exact) or col~text (contains), ANDed */
    int n_where;
    /* plot / compare / show operands */
    const char *args[4];
    int n_args;
    /* Options given that the chosen subcommand ignores (e.g. --seq with plot), in
     * order, for one note each on stderr; never an error. */
    const char *ignored[8];
    int n_ignored;
} options_t;

void options_defaults(options_t *o);
/* Returns 0, or -1 with a one-line message in err. */
int options_parse(int argc, char **argv, options_t *o, char *err, size_t err_len);
void print_usage(void);

#endif
