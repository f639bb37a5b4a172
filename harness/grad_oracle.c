/* grad_oracle.c: a layer's gradients from its fp32 GPU oracle (op.h gpu_oracle, a variant
 * with run_bwd), the reference for training points too large for the double CPU backward
 * (grad_ref_layers.c).
 *
 * The oracle runs its forward and backward on the point's own inputs and dy, writing every
 * gradient in fp32 (dX included: the oracle's convention, harness/oracle_transformer_bwd.cu),
 * into buffers of its own; the sampled elements are read out of them in double.  Its
 * backward is itself checked against the double reference at small shapes on every element
 * (tests/test_gpu_oracle_transformer_bwd.c); here it is what the bf16 variant is compared
 * with over the whole sequence, as the forward's oracle is (runner_gpu.c). */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "grad_ref.h"
#include "runner_gpu.h"

int grad_oracle_reference(const variant_t *ov, const shape_t *s, const io_t *io, const void *d_dy,
                          int n_in, const tensor_desc_t *in, const tensor_desc_t *out,
                          const grad_ref_t *gr, const grad_sample_t *smp, double *const *ref,
                          cudaStream_t stream) {
    const char *why = ov->available ? ov->available() : NULL;
    if (!why) why = ov->supports(s);
    if (why) {
        bench_set_error(__FILE__, __LINE__, "the gradient oracle %s cannot run this point: %s",
                        ov->name, why);
        return -1;
    }
    io_t oio = *io;
    grad_io_t g = {.dy = d_dy};
    void *state = NULL;
    float *host = NULL;
    int rc = -1;
    if (cudaMalloc(&oio.out, out->elems * sizeof(float)) != cudaSuccess) {
        oio.out = NULL;
        goto cuda_fail;
    }
    for (int i = 0; i < n_in; i++)
        if (cudaMalloc(&g.grad[i], in[i].elems * sizeof(float)) != cudaSuccess) {
            g.grad[i] = NULL;
            goto cuda_fail;
        }
    if (ov->setup(s, &oio, &state) || ov->run(state, &oio, stream) ||
        ov->run_bwd(state, &oio, &g, stream))
        goto out;
    if (cudaStreamSynchronize(stream) != cudaSuccess) goto cuda_fail;
    for (int i = 0; i < n_in; i++) {
        free(host);
        if (!(host = malloc(in[i].elems * sizeof(float)))) {
            bench_set_error(__FILE__, __LINE__, "host memory for the oracle's d%s", in[i].name);
            goto out;
        }
        if (cudaMemcpy(host, g.grad[i], in[i].elems * sizeof(float), cudaMemcpyDeviceToHost) !=
            cudaSuccess)
            goto cuda_fail;
        grad_view_t v;
        gr->view(s, i, &v);
        const sample_t *m = &smp[i].b.s;
        size_t k = 0;
        for (int a = 0; a < m->n_seq; a++)
            for (int b = 0; b < m->n_t; b++)
                for (int c = 0; c < m->n_col; c++)
                    ref[i][k++] = host[grad_view_index(&v, m->seq[a], m->t[b], m->col[c])];
    }
    rc = 0;
    goto out;
cuda_fail:
    bench_set_error(__FILE__, __LINE__, "the gradient oracle %s: %s", ov->name,
                    cudaGetErrorString(cudaGetLastError()));
out:
    if (state) ov->teardown(state);
    free(host);
    cudaFree(oio.out);
    for (int i = 0; i < n_in; i++) cudaFree(g.grad[i]);
    (void)cudaGetLastError();
    return rc;
}
