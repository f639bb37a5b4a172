/* gpu_util.h: the harness's own device work: filling inputs from the seed,
 * poisoning outputs, counting unwritten elements, flushing L2, and measuring
 * the device's ceilings (copy bandwidth, GEMM rates) and SM clock. */
#ifndef CHELA_GPU_UTIL_H
#define CHELA_GPU_UTIL_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills d_ptr with tensor `index` of a point: same bits as tensor_fill_host. */
int gpu_fill_tensor(const tensor_desc_t *t, uint64_t seed, uint32_t index, dtype_t act,
                    void *d_ptr, cudaStream_t st);
/* Sets every byte to 0xFF: NaN in fp32, bf16 and fp16 alike. */
int gpu_poison(void *d_ptr, size_t bytes, cudaStream_t st);
/* Number of non-finite elements (an output element nobody wrote stays NaN). */
int gpu_count_nonfinite(const void *d_ptr, size_t elems, dtype_t dt, unsigned long long *count,
                        cudaStream_t st);

typedef struct {
    void *d_buf;   /* >= 2x L2, read-only sweep */
    size_t bytes;
    unsigned *d_sink;
} l2_flusher_t;
int l2_flusher_init(l2_flusher_t *f);
/* A read-only sweep: evicts the previous run's lines without leaving dirty
 * lines whose write-back would be charged to the next measured kernel. */
int l2_flush(l2_flusher_t *f, cudaStream_t st);
void l2_flusher_free(l2_flusher_t *f);

typedef struct {
    char name[96];
    int sm_count;
    size_t l2_bytes;
    size_t total_mem;
    double sm_clock_mhz;      /* measured: clock64() ticks over event time */
    double peak_clock_mhz;    /* cudaDevAttrClockRate */
    double copy_gbps;         /* device-to-device copy, bytes read + written */
    double bf16_gemm_tflops;  /* cuBLAS 8192^3 (smaller if memory is short) */
    double fp32_gemm_tflops;  /* cuBLAS, pedantic fp32 (no TF32) */
} device_info_t;

/* Selects the device and fills the static facts (name, SMs, L2, memory). */
int gpu_device_open(int device, device_info_t *info);
/* Measures clock, copy bandwidth and GEMM rates (about a second). */
int gpu_measure_ceilings(device_info_t *info);
double gpu_measure_sm_clock_mhz(void);

/* Converts n elements of dtype dt at host h_raw into floats. */
void host_to_float(const void *h_raw, size_t n, dtype_t dt, float *out);

#ifdef __cplusplus
}
#endif
#endif
