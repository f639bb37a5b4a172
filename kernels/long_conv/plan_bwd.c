/* long_conv/plan_bwd.c: the long convolution's backward plan (plan_bwd.h says what runs). */
#include "long_conv/plan_bwd.h"

int lcb_plan_make(int B, int d, int T, const lcf_plan_t *fft, size_t elem_bytes, size_t budget,
                  lcb_plan_t *plan) {
    if (B < 1 || d < 1 || T < 1 || !fft || fft->M < 1 || fft->rows < 1 || fft->P < 1) return -1;
    if (!budget) budget = LCB_SPEC_BUDGET;
    lcb_plan_t p = {0};
    p.B = B;
    p.d = d;
    p.T = T;
    p.rev_bytes = (size_t)B * d * T * elem_bytes;
    if (fft->P == 1 && fft->M <= LCB_FUSED_MAX_M) {
        p.fused_dk = 1;
        p.dk_threads = fft->M / 16 > 64 ? fft->M / 16 : 64;
        /* buf [M + M/16] and the twiddles, as the forward kernel's block (lcf_plan_geometry) */
        p.dk_smem = fft->smem_bytes;
        p.chunk = B;
        p.nchunks = 1;
        *plan = p;
        return 0;
    }
    p.spec_row = (size_t)fft->rows * (size_t)fft->M;
    /* two spectra (x and dY') a batch row: 2 d spec_row float2 */
    const size_t per_b = 2 * (size_t)d * p.spec_row * 8;
    size_t chunk = budget / per_b;
    if (chunk < 1) chunk = 1;
    if (chunk > (size_t)B) chunk = (size_t)B;
    /* the spectrum launch: chunk x d transforms of P blocks, a grid below 2^31 */
    const size_t max_rows = 0x7fffffffULL / (size_t)fft->P;
    while (chunk > 1 && chunk * (size_t)d > max_rows) chunk /= 2;
    p.chunk = (int)chunk;
    p.nchunks = (B + p.chunk - 1) / p.chunk;
    p.spec_bytes = (size_t)p.chunk * d * p.spec_row * 8;
    p.acc_bytes = B == 1 ? 0 : (size_t)d * p.spec_row * 8; /* B = 1: no product sum */
    p.imp_bytes = (size_t)d * T * 4;
    *plan = p;
    return 0;
}

size_t lcb_plan_workspace(const lcb_plan_t *p) {
    /* B = 1 keeps dY''s spectra alone */
    return 2 * p->rev_bytes + (p->B == 1 ? 1 : 2) * p->spec_bytes + p->acc_bytes + p->imp_bytes;
}
