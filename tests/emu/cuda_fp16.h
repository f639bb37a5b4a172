/* cuda_fp16.h (CPU emulation, tests/emu/): cuda_bf16.h holds both types' conversions. */
#include "cuda_bf16.h"
