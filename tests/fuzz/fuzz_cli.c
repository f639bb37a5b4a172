/* fuzz_cli.c: libFuzzer target for the command line: the input is split at
 * newlines into argv words; parsing must return 0 or -1 with a one-line message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char buf[2048], err[512];
    char *argv[64] = {"chela-bench"};
    int argc = 1;
    if (size >= sizeof buf) size = sizeof buf - 1;
    memcpy(buf, data, size);
    buf[size] = 0;
    for (char *p = buf; *p && argc < 63;) {
        argv[argc++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    options_t o;
    options_defaults(&o);
    err[0] = 0;
    int rc = options_parse(argc, argv, &o, err, sizeof err);
    if (rc != 0 && rc != -1) abort();
    if (rc == -1 && (!err[0] || strchr(err, '\n'))) abort();
    if (rc == 0 && (o.n_seq < 0 || o.heads < 1 || o.repeat < 1)) abort();
    return 0;
}
