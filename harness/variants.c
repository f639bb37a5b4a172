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
DECLARE_VARIANT(long_conv_fast_var);
DECLARE_VARIANT(softmax_attn_naive);
DECLARE_VARIANT(softmax_attn_flash);
DECLARE_VARIANT(transformer_layer);
DECLARE_VARIANT(transformer_oracle_fp32);
DECLARE_VARIANT(short_long_conv_branches);
DECLARE_VARIANT(short_long_conv_reparam);
DECLARE_STAGED_VARIANT(chela_fused);
DECLARE_VARIANT(chela_oracle_fp32);

#define ROW(NAME, OP, ROLE, FILE, P)                                                     \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .workspace_bytes = P##_workspace_bytes, .setup = P##_setup, .run = P##_run,         \
     .teardown = P##_teardown}
/* A variant with stages (--breakdown): its stage table too. */
#define ROW_STAGED(NAME, OP, ROLE, FILE, P)                                              \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .workspace_bytes = P##_workspace_bytes, .setup = P##_setup, .run = P##_run,         \
     .teardown = P##_teardown, .stage_names = P##_stage_names, \
     .run_stage = P##_run_stage, .stage_cost = P##_stage_cost}

const variant_t VARIANTS[] = {
    ROW("linear_attn/chunked", OP_LINEAR_ATTN, "kernel", "kernels/linear_attn_chunked.cu",
        linear_attn_chunked),
    ROW("linear_attn/naive_cumsum", OP_LINEAR_ATTN, "baseline",
        "baselines/linear_attn_naive_cumsum.cu", linear_attn_naive_cumsum),
    ROW("long_conv/fft", OP_LONG_CONV, "baseline", "baselines/long_conv_fft.cu", long_conv_fft),
    ROW("long_conv/fast", OP_LONG_CONV, "kernel", "kernels/long_conv_fast.cu", long_conv_fast_var),
    ROW("short_long_conv/branches", OP_SHORT_LONG_CONV, "kernel", "kernels/short_long_conv.cu",
        short_long_conv_branches),
    ROW("short_long_conv/reparam", OP_SHORT_LONG_CONV, "kernel", "kernels/short_long_conv.cu",
        short_long_conv_reparam),
    ROW("softmax_attn/naive", OP_SOFTMAX_ATTN, "baseline", "baselines/softmax_attn_naive.cu",
        softmax_attn_naive),
    ROW("softmax_attn/flash", OP_SOFTMAX_ATTN, "baseline", "baselines/softmax_attn_flash.cu",
        softmax_attn_flash),
    ROW("transformer/layer", OP_TRANSFORMER, "baseline", "baselines/transformer_layer.cu",
        transformer_layer),
    ROW("transformer/oracle_fp32", OP_TRANSFORMER, "oracle", "harness/oracle_transformer.cu",
        transformer_oracle_fp32),
    ROW_STAGED("chela/fused", OP_CHELA, "kernel", "kernels/chela_fused.cu", chela_fused),
    ROW("chela/oracle_fp32", OP_CHELA, "oracle", "harness/oracle_chela.cu",
        chela_oracle_fp32),
};
const int N_VARIANTS = (int)(sizeof VARIANTS / sizeof VARIANTS[0]);

int variant_n_stages(const variant_t *v) {
    int n = 0;
    while (v->stage_names && v->run_stage && v->stage_names[n]) n++;
    return n;
}
