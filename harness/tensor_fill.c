/* tensor_fill.c: the host image of an input tensor, bit-identical to the GPU's. */
#include "tensor_init.h"

void tensor_fill_host(const tensor_desc_t *t, uint64_t seed, uint32_t index, dtype_t act,
                      float *host) {
    dtype_t st = t->store == STORE_F32 ? DTYPE_F32 : act;
    for (size_t i = 0; i < t->elems; i++) {
        float x = tensor_init_value(t->init, t->scale, t->offset, t->tau, t->row_len, seed, index, i);
        if (st == DTYPE_BF16) x = ti_bf16_to_float(ti_bf16_bits(x));
        else if (st == DTYPE_F16) x = ti_f16_to_float(ti_f16_bits(x));
        host[i] = x;
    }
}
