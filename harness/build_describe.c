/* build_describe.c: what build produced a row: the CUDA archs and nvcc it was compiled
 * with, and the versions of the CUDA libraries loaded at run time (a newer libcublas on
 * the loader path changes kernels without a rebuild), cuDNN's included when the build has it.  Printed by --version and
 * written into every row's `build` cell. */
#include "build_describe.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cufft.h>
#include <stdio.h>
#include <string.h>

#include "build_info.h"

#ifdef CHELA_HAVE_CUDNN
#include <cudnn_graph.h>

/* cuDNN 9 numbers its versions major * 10000 + minor * 100 + patch. */
static void cudnn_version_text(size_t v, char *buf, size_t len) {
    snprintf(buf, len, "%zu.%zu.%zu", v / 10000, (v / 100) % 100, v % 100);
}
#endif

const char *build_cudnn(void) {
    static char buf[256];
#ifdef CHELA_HAVE_CUDNN
    char built[32], run[32];
    cudnn_version_text(CUDNN_VERSION, built, sizeof built);
    cudnn_version_text(cudnnGetVersion(), run, sizeof run);
    snprintf(buf, sizeof buf, "built with %s (%s), running %s", built, CHELA_CUDNN_WHERE, run);
#else
    snprintf(buf, sizeof buf, "not built (not found at configure time; set CUDNN_ROOT)");
#endif
    return buf;
}

const char *build_describe(void) {
    static char buf[200];
    if (buf[0]) return buf;
    int rt = 0, drv = 0, fft = 0;
    (void)cudaRuntimeGetVersion(&rt);
    (void)cudaDriverGetVersion(&drv); /* 0 without a driver */
    (void)cudaGetLastError();
    if (cufftGetVersion(&fft) != CUFFT_SUCCESS) fft = 0;
    const size_t lt = cublasLtGetVersion();
    char cudnn[32] = "none";
#ifdef CHELA_HAVE_CUDNN
    cudnn_version_text(cudnnGetVersion(), cudnn, sizeof cudnn);
#endif
    snprintf(buf, sizeof buf, "%s; cudart %d; driver %d; cublasLt %zu; cufft %d; cudnn %s",
             CHELA_BUILD_ARCHS, rt, drv, lt, fft, cudnn);
    for (char *c = buf; *c; c++) /* a CSV cell never holds the separator */
        if (*c == ',') *c = ';';
    return buf;
}
