/* gpu_copy_kernel.h: the two kernels test_gpu_cupti needs, callable from C.
 * Both return 0, or -1 after bench_set_error() (harness/bench_check.h). */
#ifndef CHELA_TEST_GPU_COPY_KERNEL_H
#define CHELA_TEST_GPU_COPY_KERNEL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st; /* == cudaStream_t */

/* d_dst[i] = d_src[i] for i < n: reads and writes exactly 4n bytes of DRAM
 * when neither array is in L2. */
int test_copy_f32(float *d_dst, const float *d_src, size_t n, struct CUstream_st *stream);

/* Reads d_buf[0..n) and writes nothing (d_sink is written only if the sum hits
 * an impossible value, so the loads can't be optimised away).  Run over >= 2x
 * the L2 size, it leaves L2 holding only clean lines of d_buf: no dirty line
 * from earlier work gets written back inside the next measured range. */
int test_l2_sweep(const float *d_buf, size_t n, float *d_sink, struct CUstream_st *stream);

#ifdef __cplusplus
}
#endif

#endif
