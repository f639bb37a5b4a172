/* bench_check.h: one check macro per library, each recording file, line and the
 * library's own error text, then returning -1 from the enclosing function.
 *
 * Why return instead of exit: the harness must still write the failing point's
 * CSV row (status fail:...), keep the file valid and decide the exit code
 * itself.  Variants' setup/run functions therefore return int (0 = ok) and use
 * these macros; the harness reads the message with bench_last_error(). */
#ifndef CHELA_BENCH_CHECK_H
#define CHELA_BENCH_CHECK_H

#ifdef __cplusplus
extern "C" {
#endif

/* printf-style; keeps the first line of the message for the CSV note. */
void bench_set_error(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
const char *bench_last_error(void);
void bench_clear_error(void);

#ifdef __cplusplus
}
#endif

#define BENCH_FAIL(...)                                   \
    do {                                                  \
        bench_set_error(__FILE__, __LINE__, __VA_ARGS__); \
        return -1;                                        \
    } while (0)

/* CUDA runtime: every call and, after each launch, CUDA_CHECK(cudaGetLastError()). */
#define CUDA_CHECK(call)                                                               \
    do {                                                                               \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) {                                                       \
            bench_set_error(__FILE__, __LINE__, "%s: %s (%s)", #call, cudaGetErrorName(e_), \
                            cudaGetErrorString(e_));                                   \
            return -1;                                                                 \
        }                                                                              \
    } while (0)

#define CUBLAS_CHECK(call)                                                                    \
    do {                                                                                      \
        cublasStatus_t s_ = (call);                                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                    \
            bench_set_error(__FILE__, __LINE__, "%s: %s", #call, cublasGetStatusString(s_));  \
            return -1;                                                                        \
        }                                                                                     \
    } while (0)

#define CUFFT_CHECK(call)                                                                \
    do {                                                                                 \
        cufftResult r_ = (call);                                                         \
        if (r_ != CUFFT_SUCCESS) {                                                       \
            bench_set_error(__FILE__, __LINE__, "%s: cufftResult %d", #call, (int)r_);   \
            return -1;                                                                   \
        }                                                                                \
    } while (0)

#endif
