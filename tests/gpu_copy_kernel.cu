/* gpu_copy_kernel.cu: a plain copy and a read-only L2 sweep for test_gpu_cupti.
 * float4 accesses, grid-stride loops, nothing clever: the point is a kernel
 * whose DRAM traffic is known exactly (4n bytes each way). */
#include <cuda_runtime.h>

#include "bench_check.h"
#include "gpu_copy_kernel.h"

static __global__ void copy_f32_kernel(float *__restrict__ dst, const float *__restrict__ src,
                                       size_t n) {
    size_t n4 = n / 4, stride = (size_t)gridDim.x * blockDim.x;
    size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const float4 *s4 = reinterpret_cast<const float4 *>(src);
    float4 *d4 = reinterpret_cast<float4 *>(dst);
    for (size_t i = i0; i < n4; i += stride) d4[i] = s4[i];
    for (size_t i = n4 * 4 + i0; i < n; i += stride) dst[i] = src[i]; /* tail */
}

static __global__ void l2_sweep_kernel(const float *__restrict__ buf, size_t n,
                                       float *__restrict__ sink) {
    size_t n4 = n / 4, stride = (size_t)gridDim.x * blockDim.x;
    size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const float4 *b4 = reinterpret_cast<const float4 *>(buf);
    float acc = 0.f;
    for (size_t i = i0; i < n4; i += stride) {
        float4 v = b4[i];
        acc += v.x + v.y + v.z + v.w;
    }
    for (size_t i = n4 * 4 + i0; i < n; i += stride) acc += buf[i];
    if (acc == -1234567.0f) *sink = acc; /* never true for our zero-filled buffer */
}

static unsigned grid_for(size_t n4) {
    size_t blocks = (n4 + 255) / 256;
    if (blocks > 65536) blocks = 65536; /* grid-stride beyond this */
    return blocks ? (unsigned)blocks : 1u;
}

extern "C" int test_copy_f32(float *d_dst, const float *d_src, size_t n, cudaStream_t stream) {
    if (((size_t)d_dst | (size_t)d_src) % 16)
        BENCH_FAIL("test_copy_f32: pointers must be 16-byte aligned");
    copy_f32_kernel<<<grid_for(n / 4), 256, 0, stream>>>(d_dst, d_src, n);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" int test_l2_sweep(const float *d_buf, size_t n, float *d_sink, cudaStream_t stream) {
    if ((size_t)d_buf % 16) BENCH_FAIL("test_l2_sweep: buffer must be 16-byte aligned");
    l2_sweep_kernel<<<grid_for(n / 4), 256, 0, stream>>>(d_buf, n, d_sink);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}
