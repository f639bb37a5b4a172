/* variants.c: THE table of implementations the harness iterates.
 *
 * One explicit array (redis's command-table habit): in C, self-registering
 * objects in a static library get dropped by the linker, and one list is
 * easier to read than a registry spread over files.  Adding a variant = one
 * source file in kernels/ or baselines/ + one DECLARE_VARIANT + one row here.
 * Names are stable: they are the keys of CI baselines. */
#include "variant.h"

DECLARE_VARIANT(linear_attn_chunked);
DECLARE_VARIANT(linear_attn_naive_cumsum);
DECLARE_VARIANT(long_conv_fft);
DECLARE_VARIANT(softmax_attn_naive);
DECLARE_VARIANT(softmax_attn_flash);

#define ROW(NAME, OP, ROLE, FILE, P)                                                     \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .workspace_bytes = P##_workspace_bytes, .setup = P##_setup, .run = P##_run,         \
     .teardown = P##_teardown}

const variant_t VARIANTS[] = {
    ROW("linear_attn/chunked", OP_LINEAR_ATTN, "kernel", "kernels/linear_attn_chunked.cu",
        linear_attn_chunked),
    ROW("linear_attn/naive_cumsum", OP_LINEAR_ATTN, "baseline",
        "baselines/linear_attn_naive_cumsum.cu", linear_attn_naive_cumsum),
    ROW("long_conv/fft", OP_LONG_CONV, "baseline", "baselines/long_conv_fft.cu", long_conv_fft),
    ROW("softmax_attn/naive", OP_SOFTMAX_ATTN, "baseline", "baselines/softmax_attn_naive.cu",
        softmax_attn_naive),
    ROW("softmax_attn/flash", OP_SOFTMAX_ATTN, "baseline", "baselines/softmax_attn_flash.cu",
        softmax_attn_flash),
};
const int N_VARIANTS = (int)(sizeof VARIANTS / sizeof VARIANTS[0]);
