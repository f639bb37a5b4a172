/* build_describe.c: what build produced a row: the CUDA archs and nvcc it was compiled
 * with, and the versions of the CUDA libraries loaded at run time (a newer libcublas on
 * the loader path changes kernels without a rebuild).  Printed by --version and
 * written into every row's `build` cell. */
#include "build_describe.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cufft.h>
#include <stdio.h>
#include <string.h>

#include "build_info.h"

const char *build_describe(void) {
    static char buf[160];
    if (buf[0]) return buf;
    int rt = 0, drv = 0, fft = 0;
    (void)cudaRuntimeGetVersion(&rt);
    (void)cudaDriverGetVersion(&drv); /* 0 without a driver */
    (void)cudaGetLastError();
    if (cufftGetVersion(&fft) != CUFFT_SUCCESS) fft = 0;
    const size_t lt = cublasLtGetVersion();
    snprintf(buf, sizeof buf, "%s; cudart %d; driver %d; cublasLt %zu; cufft %d", CHELA_BUILD_ARCHS,
             rt, drv, lt, fft);
    for (char *c = buf; *c; c++) /* a CSV cell never holds the separator */
        if (*c == ',') *c = ';';
    return buf;
}
