/* cuda_runtime_api.h (CPU emulation, tests/emu/): the two types the emulated kernel files'
 * headers name.  Shadows the toolkit's header for the emulation test alone. */
#ifndef CHELA_EMU_CUDA_RUNTIME_API_H
#define CHELA_EMU_CUDA_RUNTIME_API_H
typedef void *cudaStream_t;
typedef int cudaError_t;
#endif
