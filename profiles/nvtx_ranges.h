/* nvtx_ranges.h: NVTX ranges for nsys / ncu timelines, in the "chela-bench"
 * domain, one colour per op family (the part of the name before '/'), so all
 * linear_attn/... ranges share a colour whatever the variant.
 *
 *     nvtx_push("linear_attn/chunked T=4096 B=16");
 *     ... launches ...
 *     nvtx_pop();
 *
 * Header-only NVTX3 underneath: without an attached tool every call is a cheap
 * no-op, and -DNVTX_DISABLE compiles them out.  NVTX ranges do NOT feed the
 * CUPTI range profiler (hbm_counters.h has its own begin/end).  Push and pop
 * must pair up on the same thread. */
#ifndef CHELA_NVTX_RANGES_H
#define CHELA_NVTX_RANGES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Same type as cudaStream_t, without pulling the CUDA headers in here. */
struct CUstream_st;

void nvtx_push(const char *name);
void nvtx_pop(void);

/* Names a stream in the timeline (e.g. "timed", "flush"). */
void nvtx_name_stream(struct CUstream_st *stream, const char *name);

/* 0xAARRGGBB colour used for `name`'s family; exposed for tests. */
uint32_t nvtx_family_color(const char *name);

#ifdef __cplusplus
}
#endif

#endif
