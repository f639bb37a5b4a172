/* build_describe.h: the build and the CUDA library versions, one line (build_describe.c). */
#ifndef CHELA_BUILD_DESCRIBE_H
#define CHELA_BUILD_DESCRIBE_H

/* "sm 90 (wgmma unit 90a-real) nvcc 13.0.88; cudart 13000; driver 0; cublasLt 130000; cufft 12000;
 * cudnn 9.14.0" (cudnn none in a build without it) */
const char *build_describe(void);
/* cuDNN, for --version: "built with 9.19.0 (/usr/local/cuda/include), running 9.14.0", or
 * "not built (not found at configure time; set CUDNN_ROOT)". */
const char *build_cudnn(void);

#endif
