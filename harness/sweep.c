/* sweep.c: run_sweep: pick the backend, measure the device, iterate lengths x
 * ops, write the CSV, decide the exit code. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_check.h"
#include "hbm_counters.h"
#include "nvtx_ranges.h"
#include "runner.h"
#include "stop_signal.h"

/* Returns 1 if a CUDA device is usable, else 0 with the reason in why.  With no
 * driver installed the runtime reports "CUDA driver version is insufficient", which
 * sends a user hunting for a driver upgrade: cudaDriverGetVersion gives 0 then. */
static int gpu_present(char *why, size_t n) {
    int count = 0, driver = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (cudaDriverGetVersion(&driver) == cudaSuccess && driver == 0)
            snprintf(why, n, "no NVIDIA driver found");
        else
            snprintf(why, n, "%s", cudaGetErrorString(e));
        (void)cudaGetLastError();
        return 0;
    }
    if (count == 0) {
        snprintf(why, n, "no CUDA device");
        return 0;
    }
    return 1;
}

/* Options that the chosen backend or ops leave unused: one note each, never an error. */
static void note_unused_options(const options_t *o, int use_gpu) {
    if (!use_gpu) {
        if (o->n_set) fprintf(stderr, "chela-bench: note: --set does nothing on the cpu backend\n");
        if (o->profile) fprintf(stderr, "chela-bench: note: --profile does nothing on the cpu backend\n");
        if (o->breakdown)
            fprintf(stderr, "chela-bench: note: --breakdown does nothing on the cpu backend\n");
        if (o->device_given)
            fprintf(stderr, "chela-bench: note: --device does nothing on the cpu backend\n");
    }
    unsigned attn = (1u << OP_LINEAR_ATTN) | (1u << OP_SOFTMAX_ATTN);
    if (o->attn_shape_given && o->op_mask && !(o->op_mask & attn))
        fprintf(stderr, "chela-bench: note: --heads/--head-dim/--dk/--dv shape the attention ops "
                        "only (chela takes --z/--v; transformer has d/64 heads of 64)\n");
    if (o->z_given && o->op_mask && !(o->op_mask & (1u << OP_CHELA)))
        fprintf(stderr, "chela-bench: note: --z/--v shape chela only, which --ops leaves out\n");
}

static int open_gpu(sweep_t *sw) {
    if (gpu_device_open(sw->o->device, &sw->dev)) return -1;
    fprintf(stderr, "chela-bench: %s (%d SMs, %.0f MB L2, %.1f GiB), measuring ceilings...\n",
            sw->dev.name, sw->dev.sm_count, sw->dev.l2_bytes / 1e6,
            sw->dev.total_mem / (1024.0 * 1024 * 1024));
    /* Under ncu/nsys the ceiling GEMMs would be profiled too: --no-ceilings skips them
     * (floor columns stay empty). */
    if (sw->o->no_ceilings) sw->dev.sm_clock_mhz = gpu_measure_sm_clock_mhz();
    else if (gpu_measure_ceilings(&sw->dev)) return -1;
    fprintf(stderr,
            "chela-bench: SM clock %.0f MHz as found (peak %.0f); copy %.0f GB/s (read+write); "
            "GEMM bf16 %.0f TFLOP/s, fp32 %.1f TFLOP/s\n",
            sw->dev.sm_clock_mhz, sw->dev.peak_clock_mhz, sw->dev.copy_gbps,
            sw->dev.bf16_gemm_tflops, sw->dev.fp32_gemm_tflops);
    if (l2_flusher_init(&sw->flush)) return -1;
    CUDA_CHECK(cudaStreamCreateWithFlags(&sw->stream, cudaStreamNonBlocking));
    nvtx_name_stream(sw->stream, "chela-bench");
    if (sw->o->profile) {
        char why[256] = "";
        hbm_counters *hc = NULL;
        int rc = hbm_counters_open(sw->o->device, &hc, why, sizeof why);
        if (rc == 0) {
            sw->profiler = hc;
        } else {
            snprintf(sw->profile_note, sizeof sw->profile_note, "%.150s",
                     rc == HBM_UNAVAILABLE ? why : bench_last_error());
            fprintf(stderr, "chela-bench: --profile: HBM counters unavailable, timing only: %s\n",
                    sw->profile_note);
        }
    }
    return 0;
}

int run_sweep(const options_t *o) {
    sweep_t sw = {.o = o};
    char why[256] = "", err[512];
    options_t local = *o;
    sw.o = &local;

    if (o->backend == BACKEND_CPU) sw.use_gpu = 0;
    else if (gpu_present(why, sizeof why)) sw.use_gpu = 1;
    else if (o->backend == BACKEND_CUDA) {
        fprintf(stderr, "chela-bench: --backend cuda: no usable GPU (%s)\n", why);
        return 2;
    }
    /* Filters that select nothing are mistakes: refused before a CSV is touched. */
    if (filters_check(o, sw.use_gpu, err, sizeof err)) {
        fprintf(stderr, "chela-bench: %s\n", err);
        return 2;
    }
    if (set_axes_parse(o, variant_selected, &sw.axes, err, sizeof err)) {
        fprintf(stderr, "chela-bench: %s\n", err);
        return 2;
    }
    /* The output next: an unusable -o (a directory, a FIFO nobody reads, a full disk)
     * fails here, before any work is done. */
    sw.csv = csv_open(o->out, err, sizeof err);
    if (!sw.csv) {
        fprintf(stderr, "chela-bench: %s\n", err);
        return 2;
    }
    stop_signals_install(csv_temp_path(sw.csv));
    /* a closed stderr pipe (chela-bench ... | head) must not kill it mid-file */
    signal(SIGPIPE, SIG_IGN);
    if (!sw.use_gpu && o->backend != BACKEND_CPU)
        fprintf(stderr,
                "chela-bench: no usable GPU (%s): running the CPU reference backend instead "
                "(double precision, one thread, B = 1, dim %d, sweep %s unless --seq is given). "
                "Rows say backend=cpu; these are CPU timings, not GPU results.\n",
                why, o->dim_given ? o->dim : CPU_DEFAULT_DIM, CPU_DEFAULT_SEQ);
    note_unused_options(o, sw.use_gpu);
    if (!o->seq_given)
        local.n_seq = seq_parse(sw.use_gpu ? "1k..64k" : CPU_DEFAULT_SEQ, local.seq,
                                SEQ_MAX_POINTS, err, sizeof err);
    if (!sw.use_gpu && !o->repeat_given) local.repeat = CPU_DEFAULT_REPEAT;
    if (sw.use_gpu && open_gpu(&sw)) {
        fprintf(stderr, "chela-bench: GPU setup failed: %s\n", bench_last_error());
        csv_abort(sw.csv);
        return 1;
    }

    for (int i = 0; i < sw.o->n_seq && !sw.sticky && !stop_requested() && !sw.write_failed; i++) {
        fprintf(stderr, "T = %d\n", sw.o->seq[i]);
        for (int op = 0; op < OP_COUNT && !sw.sticky && !stop_requested() && !sw.write_failed; op++) {
            if (o->op_mask && !(o->op_mask & (1u << op))) continue;
            /* --pass: each pass of the list a point of its own (the pass column) */
            for (int p = 0; p < sw.o->n_pass && !sw.sticky && !stop_requested() && !sw.write_failed;
                 p++) {
                shape_t s = make_shape(sw.o, (op_id)op, sw.o->seq[i], !sw.use_gpu);
                s.pass = sw.o->passes[p];
                if (sw.use_gpu) run_point_gpu(&sw, op_get((op_id)op), &s);
                else run_point_cpu(&sw, op_get((op_id)op), &s);
                sw.interrupted = stop_requested();
            }
        }
    }
    if (sw.profiler) hbm_counters_close(sw.profiler);
    if (sw.use_gpu) l2_flusher_free(&sw.flush);
    int closed = csv_close(sw.csv, err, sizeof err);
    stop_signals_forget_temp(); /* the handlers stay: a late signal only sets the flag */
    if (closed) { /* a failed write stopped the sweep: its cause, and nothing half-written */
        fprintf(stderr, "chela-bench: %s\n", err);
        return 2;
    }
    fprintf(stderr, "chela-bench: wrote %d rows to %s (%d failed, %d skipped)%s\n", sw.n_rows,
            o->out, sw.n_fail, sw.n_skip,
            sw.sticky ? "; stopped early: the CUDA context is unusable after an error" :
            stop_requested() ? "; interrupted: rows finished so far are kept" : "");
    if (sw.profile_note[0]) fprintf(stderr, "chela-bench: HBM columns empty: %s\n", sw.profile_note);
    return (sw.n_fail || sw.sticky || stop_requested()) ? 1 : 0;
}
