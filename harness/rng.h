/* rng.h: a counter-based generator, the same bits on host and device.
 *
 * Every input element is a pure function of (seed, tensor index, element index),
 * so the GPU fills its buffers in parallel and the CPU reference regenerates the
 * identical values without copying anything back.  splitmix64's finaliser is
 * enough here: we need reproducible, non-degenerate values, not cryptography. */
#ifndef CHELA_RNG_H
#define CHELA_RNG_H

#include <stdint.h>

#if defined(__CUDACC__)
#define RNG_FN static inline __host__ __device__
#else
#define RNG_FN static inline
#endif

RNG_FN uint64_t rng_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Uniform in [-1, 1), never exactly 0 (24 random bits, offset by half a step). */
RNG_FN float rng_uniform(uint64_t seed, uint32_t tensor, uint64_t index) {
    uint64_t h = rng_mix64(seed ^ rng_mix64(((uint64_t)tensor << 48) ^ index));
    uint32_t m = (uint32_t)(h >> 40);                 /* 24 bits */
    return ((float)m + 0.5f) * (2.0f / 16777216.0f) - 1.0f;
}

#endif
