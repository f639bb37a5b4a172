/* variants.c: THE table of implementations the harness iterates.
 *
 * One explicit array (redis's command-table habit): in C, self-registering
 * objects in a static library get dropped by the linker, and one list is
 * easier to read than a registry spread over files.  Adding a variant = one
 * source file in kernels/ or baselines/ + one DECLARE_VARIANT + one row here.
 * Names are stable: they are the keys of CI baselines. */
#include "variant.h"

DECLARE_VARIANT(linear_attn_chunked);
DECLARE_BWD(linear_attn_chunked);
DECLARE_VARIANT(linear_attn_naive_cumsum);
DECLARE_BWD_STAGES(linear_attn_naive_cumsum);
DECLARE_VARIANT(long_conv_fft);
DECLARE_BWD_STAGES(long_conv_fft);
DECLARE_VARIANT(long_conv_fast_var);
DECLARE_VARIANT(softmax_attn_naive);
DECLARE_VARIANT(softmax_attn_flash);
DECLARE_BWD(softmax_attn_flash);
DECLARE_VARIANT(softmax_attn_cudnn);
DECLARE_BWD(softmax_attn_cudnn);
const char *softmax_attn_cudnn_available(void);
DECLARE_VARIANT(transformer_layer);
DECLARE_BWD_STAGES(transformer_layer);
DECLARE_VARIANT(transformer_oracle_fp32);
DECLARE_BWD(transformer_oracle_fp32);
DECLARE_VARIANT(short_long_conv_branches);
DECLARE_VARIANT(short_long_conv_reparam);
DECLARE_BWD(long_conv_fast_var);
DECLARE_BWD(short_long_conv_branches);
DECLARE_BWD(short_long_conv_reparam);
DECLARE_STAGED_VARIANT(chela_fused);
DECLARE_BWD_STAGES(chela_fused);
DECLARE_VARIANT(chela_oracle_fp32);
DECLARE_BWD(chela_oracle_fp32);
DECLARE_STAGED_VARIANT(mega_layer);
DECLARE_VARIANT(mega_oracle_fp32);
DECLARE_BWD(mega_oracle_fp32);

/* ---- settings (settings.h): each one's default is "auto", the tuned behaviour ---- */
static const setting_def_t LA_CHUNKED_SETTINGS[] = {
    {"la_version", "auto|1|2|3|6",
     "kernel version: auto = 6 (wgmma) on an sm_90a build at cc 9.0, else 3; fp32 runs 1"},
    {"la_seg", "auto|64..1048576",
     "tokens a pass-C segment holds: auto = one segment unless B*H leaves SMs idle"},
    {"la_sub", "auto|1..4096", "pass-A parts a segment: auto = split only when blocks < 1.5 an SM"},
    {"la_pdl", "auto|0|1", "programmatic dependent launch between passes: auto = 1"},
    {"la_bwd_seg", "auto|64..1048576",
     "backward: tokens a segment holds: auto = one segment unless B*H*dv/64 leaves SMs idle"},
    {NULL, NULL, NULL},
};
static const setting_def_t LC_FAST_SETTINGS[] = {
    {"lcf_toeplitz_max_t", "auto|0..65536",
     "largest T of the Toeplitz tensor-core path (16-bit runs): auto = 4096 where the wgmma "
     "kernel runs and B >= 8, else 2048; 0 = always the FFT"},
    {"lct_version", "auto|3|4|5",
     "Toeplitz kernel: auto = 5 (wgmma) where it runs, 4 or 3 the older mma.sync kernels"},
    {"lcw_w", "auto|1|2|4", "wgmma Toeplitz: warpgroups a block (auto: 4 from 16 groups, 2 from 8)"},
    {"lcw_sets", "auto|2|3", "wgmma Toeplitz: fragment sets at one warpgroup (auto: 3 from 4 groups)"},
    {"lcf_xpair", "auto|0|1", "FFT: an odd batch's last row packs two channels a transform (auto = 1)"},
    {"lcf_block_points", "auto|8192|16384",
     "FFT points one block holds: auto = 8192 at T = 8k, else 16384"},
    {"lcf_narrow", "auto|0|1",
     "FFT 8192-point blocks as a 256-thread copy, three an SM: auto = on grids of >= 8 waves"},
    {NULL, NULL, NULL},
};
static const setting_def_t CHELA_FUSED_SETTINGS[] = {
    {"lt_tune", "auto|0|1",
     "time cuBLASLt's first 8 candidates for each GEMM at setup and keep the fastest (auto = 1)"},
    {"la_seg", "auto|64..1048576", "its attention's pass-C segment tokens (as linear_attn/chunked)"},
    {"la_sub", "auto|1..4096", "its attention's pass-A parts a segment (as linear_attn/chunked)"},
    {NULL, NULL, NULL},
};
static const setting_def_t TRANSFORMER_SETTINGS[] = {
    {"lt_tune", "auto|0|1",
     "time cuBLASLt's first 8 candidates for each GEMM at setup and keep the fastest (auto = 1)"},
    {"attn", "auto|cudnn|flash",
     "its attention: auto = cuDNN's fused SDPA where the build has it and it plans the shape, "
     "else softmax_attn/flash's kernel"},
    {NULL, NULL, NULL},
};

/* mega: its chunk is part of the op's definition (ops.c), so both of its rows declare it (the
 * oracle's table is this one's tail: mega_chunk alone) and the reference reads it too. */
static const setting_def_t MEGA_SETTINGS[] = {
    {"lt_tune", "auto|0|1",
     "time cuBLASLt's first 8 candidates for each GEMM at setup and keep the fastest (auto = 1)"},
    {"mega_chunk", "auto|64..65536",
     "attention chunk c (part of the op's definition, the reference and oracle follow it): a "
     "query sees the keys of its own chunk; auto = 1024; at most T"},
    {NULL, NULL, NULL},
};
#define MEGA_ORACLE_SETTINGS (MEGA_SETTINGS + 1)

#define ROW(NAME, OP, ROLE, FILE, P, SETTINGS)                                           \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .workspace_bytes = P##_workspace_bytes, .setup = P##_setup, .run = P##_run,         \
     .teardown = P##_teardown, .settings = SETTINGS, .config = P##_config}
/* A variant with a backward (--pass bwd|fwdbwd): its run_bwd too (DECLARE_BWD). */
#define ROW_TRAIN(NAME, OP, ROLE, FILE, P, SETTINGS)                                     \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .workspace_bytes = P##_workspace_bytes, .setup = P##_setup, .run = P##_run,         \
     .teardown = P##_teardown, .run_bwd = P##_run_bwd, .settings = SETTINGS,             \
     .config = P##_config}
/* A variant with a backward on an optional library (cuDNN): its available() and run_bwd too. */
#define ROW_OPTIONAL_TRAIN(NAME, OP, ROLE, FILE, P, SETTINGS)                            \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .available = P##_available, .workspace_bytes = P##_workspace_bytes,                 \
     .setup = P##_setup, .run = P##_run, .teardown = P##_teardown,                       \
     .run_bwd = P##_run_bwd, .settings = SETTINGS, .config = P##_config}
/* A variant with a backward made of stages (--breakdown of bwd / fwdbwd points). */
#define ROW_TRAIN_STAGED(NAME, OP, ROLE, FILE, P, SETTINGS)                              \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .workspace_bytes = P##_workspace_bytes, .setup = P##_setup, .run = P##_run,         \
     .teardown = P##_teardown, .run_bwd = P##_run_bwd,                                   \
     .bwd_stage_names = P##_bwd_stage_names, .run_bwd_stage = P##_run_bwd_stage,         \
     .bwd_stage_cost = P##_bwd_stage_cost, .settings = SETTINGS, .config = P##_config}
/* A variant with forward and backward stages (--breakdown at every pass). */
#define ROW_TRAIN_STAGED_BOTH(NAME, OP, ROLE, FILE, P, SETTINGS)                         \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .workspace_bytes = P##_workspace_bytes, .setup = P##_setup, .run = P##_run,         \
     .teardown = P##_teardown, .run_bwd = P##_run_bwd,                                   \
     .bwd_stage_names = P##_bwd_stage_names, .run_bwd_stage = P##_run_bwd_stage,         \
     .bwd_stage_cost = P##_bwd_stage_cost, .stage_names = P##_stage_names,               \
     .run_stage = P##_run_stage, .stage_cost = P##_stage_cost, .settings = SETTINGS,     \
     .config = P##_config}
/* A variant with stages (--breakdown): its stage table too. */
#define ROW_STAGED(NAME, OP, ROLE, FILE, P, SETTINGS)                                    \
    {.name = NAME, .op = OP, .role = ROLE, .where = FILE, .supports = P##_supports,      \
     .workspace_bytes = P##_workspace_bytes, .setup = P##_setup, .run = P##_run,         \
     .teardown = P##_teardown, .stage_names = P##_stage_names,                           \
     .run_stage = P##_run_stage, .stage_cost = P##_stage_cost, .settings = SETTINGS,     \
     .config = P##_config}

const variant_t VARIANTS[] = {
    ROW_TRAIN("linear_attn/chunked", OP_LINEAR_ATTN, "kernel", "kernels/linear_attn/chunked.cu",
              linear_attn_chunked, LA_CHUNKED_SETTINGS),
    ROW_TRAIN_STAGED("linear_attn/naive_cumsum", OP_LINEAR_ATTN, "baseline",
                     "baselines/linear_attn/naive_cumsum.cu", linear_attn_naive_cumsum, NULL),
    ROW_TRAIN_STAGED("long_conv/fft", OP_LONG_CONV, "baseline", "baselines/long_conv/fft.cu",
                     long_conv_fft, NULL),
    ROW_TRAIN("long_conv/fast", OP_LONG_CONV, "kernel", "kernels/long_conv/fast.cu",
              long_conv_fast_var, LC_FAST_SETTINGS),
    ROW_TRAIN("short_long_conv/branches", OP_SHORT_LONG_CONV, "kernel",
              "kernels/short_long_conv/branches.cu", short_long_conv_branches, LC_FAST_SETTINGS),
    ROW_TRAIN("short_long_conv/reparam", OP_SHORT_LONG_CONV, "kernel",
              "kernels/short_long_conv/reparam.cu", short_long_conv_reparam, LC_FAST_SETTINGS),
    ROW("softmax_attn/naive", OP_SOFTMAX_ATTN, "baseline", "baselines/softmax_attn/naive.cu",
        softmax_attn_naive, NULL),
    ROW_TRAIN("softmax_attn/flash", OP_SOFTMAX_ATTN, "baseline",
              "baselines/softmax_attn/flash.cu", softmax_attn_flash, NULL),
    ROW_OPTIONAL_TRAIN("softmax_attn/cudnn", OP_SOFTMAX_ATTN, "baseline",
                       "baselines/softmax_attn/cudnn.c", softmax_attn_cudnn, NULL),
    ROW_TRAIN_STAGED("transformer/layer", OP_TRANSFORMER, "baseline",
                     "baselines/transformer/layer.cu", transformer_layer, TRANSFORMER_SETTINGS),
    ROW_TRAIN("transformer/oracle_fp32", OP_TRANSFORMER, "oracle",
              "harness/oracle_transformer.cu", transformer_oracle_fp32, NULL),
    ROW_TRAIN_STAGED_BOTH("chela/fused", OP_CHELA, "kernel", "kernels/chela/fused.cu",
                          chela_fused, CHELA_FUSED_SETTINGS),
    ROW_TRAIN("chela/oracle_fp32", OP_CHELA, "oracle", "harness/oracle_chela.cu",
              chela_oracle_fp32, NULL),
    ROW_STAGED("mega/layer", OP_MEGA, "baseline", "baselines/mega/layer.cu", mega_layer,
               MEGA_SETTINGS),
    ROW_TRAIN("mega/oracle_fp32", OP_MEGA, "oracle", "harness/oracle_mega.cu", mega_oracle_fp32,
              MEGA_ORACLE_SETTINGS),
};
const int N_VARIANTS = (int)(sizeof VARIANTS / sizeof VARIANTS[0]);

int variant_n_stages(const variant_t *v) {
    int n = 0;
    while (v->stage_names && v->run_stage && v->stage_names[n]) n++;
    return n;
}

int variant_n_bwd_stages(const variant_t *v) {
    int n = 0;
    while (v->bwd_stage_names && v->run_bwd_stage && v->bwd_stage_names[n]) n++;
    return n;
}
