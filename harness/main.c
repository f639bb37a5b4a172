/* main.c: chela-bench's entry point: parse, dispatch to run / list / plot /
 * compare.  Exit codes: 0 ok, 1 a row failed (wrong result, CUDA error) or the
 * run was interrupted, 2 bad usage or unusable input. */
#include <stdio.h>
#include <string.h>

#include "build_describe.h"
#include "build_info.h"
#include "cli.h"
#include "compare.h"
#include "plot.h"
#include "show.h"
#include "runner.h"

static void list_variants(void) {
    printf("%-20s %-30s %-9s %s\n", "op", "variant", "role", "source");
    for (int op = 0; op < OP_COUNT; op++) {
        const op_desc_t *d = op_get((op_id)op);
        printf("%-20s %-30s %-9s %s\n", d->name, "reference", "reference",
               "harness/ref_*.c (the cpu backend)");
        for (int i = 0; i < N_VARIANTS; i++) {
            const variant_t *v = &VARIANTS[i];
            if (v->op != (op_id)op) continue;
            printf("%-20s %-30s %-9s %s%s\n", "", v->name, v->role, v->where,
                   v->run_bwd ? "  (has a backward: --pass bwd|fwdbwd)" : "");
            const char *why = v->available ? v->available() : NULL;
            if (why) printf("%-20s   unavailable: %s\n", "", why);
            for (int k = 0; v->settings && v->settings[k].name; k++)
                printf("%-20s   --set %s=%s (default auto)\n%-20s       %s\n", "",
                       v->settings[k].name, v->settings[k].values, "", v->settings[k].help);
        }
    }
}

int main(int argc, char **argv) {
    options_t o;
    char err[512];
    options_defaults(&o);
    if (options_parse(argc, argv, &o, err, sizeof err)) {
        fprintf(stderr, "chela-bench: %s\n", err);
        return 2;
    }
    static const char *const cmd_name[] = {"run", "plot", "compare", "--list", "--help",
                                           "--version", "show"};
    for (int k = 0; k < o.n_ignored; k++)
        fprintf(stderr, "chela-bench: note: %s does nothing for %s\n", o.ignored[k],
                cmd_name[o.command]);
    switch (o.command) {
    case CMD_HELP: print_usage(); return 0;
    case CMD_VERSION:
        printf("chela-bench %s (git %s)\nbuilt with %s\nlibraries: %s\ncuDNN: %s\n",
               CHELA_VERSION, git_sha(), CHELA_BUILD_FLAGS, build_describe(), build_cudnn());
        return 0;
    case CMD_LIST: list_variants(); return 0;
    case CMD_PLOT: return plot_main(&o);
    case CMD_COMPARE: return compare_main(&o);
    case CMD_SHOW: return show_main(&o);
    default: return run_sweep(&o);
    }
}
