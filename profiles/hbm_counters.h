/* hbm_counters.h: DRAM (HBM) bytes read / written and GPU time of everything
 * launched between begin and end, from the GPU's own performance counters.
 *
 * Backed by the CUPTI Range Profiler (CUDA >= 12.6; the only non-deprecated
 * counter API in CUDA 13) with one *user* range per begin/end and *user*
 * replay.  The metric set {dram__bytes_read.sum, dram__bytes_write.sum,
 * gpu__time_duration.sum} fits in one pass, so nothing is ever replayed: the
 * variant's kernels run exactly once, asynchronously, as in the timed loop.
 * See profiles/cupti-notes.md for the why, the pitfalls and how to enable
 * counters on a machine.
 *
 * Use (profiling pass only, never while timing):
 *
 *     hbm_counters *hc; char why[256];
 *     int rc = hbm_counters_open(dev, &hc, why, sizeof why);
 *     if (rc == HBM_UNAVAILABLE) { note(why); goto no_counters; }   // not an error
 *     if (rc != 0) fail(bench_last_error());
 *     flush_l2();                                   // outside the range
 *     hbm_counters_begin(hc, "linear_attn/chunked T=4096 B=16");
 *     variant->run(state, &io, stream);            // any number of kernels/streams
 *     hbm_counters_end(hc, &rd_bytes, &wr_bytes, &gpu_ns);
 *     ... (begin/end again as often as needed) ...
 *     hbm_counters_close(hc);
 *
 * One session per process and per CUDA context (CUPTI allows one profiler
 * client per process: the binary must not run under nsys/ncu while a session
 * is open).  Not thread-safe: one thread drives a session.
 *
 * Return values follow harness/bench_check.h: 0 = ok, -1 = unexpected failure
 * with the message in bench_last_error(); and HBM_UNAVAILABLE when counters
 * simply cannot be read on this machine (no privileges, vGPU, MIG, another
 * profiler attached, ...), with a one-line reason in `why`. */
#ifndef CHELA_HBM_COUNTERS_H
#define CHELA_HBM_COUNTERS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Counters can't be read here; not a bug in the caller or the variant.  GPU
 * tests turn this into exit code 77 (skip), the harness into an empty cell
 * plus a note.  Deliberately distinct from 0, -1 and 77. */
#define HBM_UNAVAILABLE 2

/* The metric set every session collects, in the order hbm_counters_end
 * reports them: bytes read from DRAM, bytes written to DRAM, GPU time (ns). */
#define HBM_NUM_METRICS 3
extern const char *const HBM_METRICS[HBM_NUM_METRICS];

typedef struct hbm_counters hbm_counters;

/* Sets the current device to cuda_device, creates its primary context if
 * needed, and prepares CUPTI: device support check, counter availability,
 * config image (checked to be one pass), range profiler enabled on the
 * context, counter-data image.  On 0, *out is a session; otherwise *out is
 * NULL and `why` (may be NULL) holds a one-line reason.  Takes ~0.1-1 s. */
int hbm_counters_open(int cuda_device, hbm_counters **out, char *why, size_t why_len);

/* Synchronizes the device (so earlier work is not counted), resets the
 * counter-data image and opens one user range named range_name (NULL:
 * "hbm").  Everything launched on the session's context until
 * hbm_counters_end is counted, on any stream. */
int hbm_counters_begin(hbm_counters *hc, const char *range_name);

/* Synchronizes the device, closes the range, decodes and evaluates it.  Any
 * output pointer may be NULL (outputs are -1 on failure).  The DRAM counters
 * are GPU-wide: traffic of other processes on the same GPU during the range
 * is counted too.  gpu_time_ns is gpu__time_duration.sum over the whole range,
 * launch gaps and the closing sync included: a sanity check for bytes/time,
 * never a timing result (see profiles/cupti-notes.md). */
int hbm_counters_end(hbm_counters *hc, double *read_bytes, double *write_bytes,
                     double *gpu_time_ns);

/* Ends an open range if any, disables the profiler, frees everything.  NULL ok. */
void hbm_counters_close(hbm_counters *hc);

/* Host-only (no GPU, no driver needed): do HBM_METRICS exist for `chip`
 * ("GH100", "GA100", "GB100", ...) and how many passes do they need?  For CI,
 * so that a renamed metric fails a test on a GPU-less box.  Returns 0 (and
 * *num_passes), -1 when a metric or the chip is rejected (which one is in
 * `why` and bench_last_error()), HBM_UNAVAILABLE when the host library
 * (libnvperf_host) can't be loaded. */
int hbm_counters_check_metrics_offline(const char *chip, int *num_passes, char *why,
                                       size_t why_len);

/* Same check for any metric list; exposed so tests can prove that a misspelt
 * name is rejected. */
int hbm_counters_check_metric_list(const char *chip, const char *const *metrics, size_t num_metrics,
                                   int *num_passes, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif
