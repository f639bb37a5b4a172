/* shape.c: small helpers on shapes and dtypes. */
#include "shape.h"

#include <string.h>

int shape_km(int T) {
    int lg = 0;
    for (long long p = 10; p <= T; p *= 10) lg++; /* floor(log10 T), exact in integers */
    return 2 * lg + 1;
}

size_t dtype_size(dtype_t t) { return t == DTYPE_F32 ? 4 : 2; }

const char *dtype_name(dtype_t t) {
    switch (t) {
    case DTYPE_F32: return "fp32";
    case DTYPE_F16: return "fp16";
    default: return "bf16";
    }
}

int dtype_parse(const char *s, dtype_t *out) {
    if (!strcmp(s, "bf16")) *out = DTYPE_BF16;
    else if (!strcmp(s, "fp16") || !strcmp(s, "f16")) *out = DTYPE_F16;
    else if (!strcmp(s, "fp32") || !strcmp(s, "f32")) *out = DTYPE_F32;
    else return -1;
    return 0;
}

const char *pass_name(pass_t p) {
    switch (p) {
    case PASS_BWD: return "bwd";
    case PASS_FWDBWD: return "fwdbwd";
    default: return "fwd";
    }
}

int pass_parse(const char *s, pass_t *out) {
    if (!strcmp(s, "fwd")) *out = PASS_FWD;
    else if (!strcmp(s, "bwd")) *out = PASS_BWD;
    else if (!strcmp(s, "fwdbwd")) *out = PASS_FWDBWD;
    else return -1;
    return 0;
}
