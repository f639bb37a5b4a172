/* fuzz_seq.c: libFuzzer target for the --seq parser.  Any input: either a
 * count in 1..SEQ_MAX_POINTS of lengths in 1..SEQ_MAX_T, or -1 with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seqparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char spec[600], err[256];
    int out[SEQ_MAX_POINTS];
    if (size >= sizeof spec) size = sizeof spec - 1;
    memcpy(spec, data, size);
    spec[size] = 0;
    int n = seq_parse(spec, out, SEQ_MAX_POINTS, err, sizeof err);
    if (n == 0 || n > SEQ_MAX_POINTS) abort();
    for (int i = 0; i < n; i++)
        if (out[i] < 1 || out[i] > SEQ_MAX_T) abort();
    if (n < 0 && strncmp(err, "--seq", 5) != 0) abort();
    return 0;
}
