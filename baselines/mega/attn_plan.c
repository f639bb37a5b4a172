/* mega/attn_plan.c: the chunked attention's GEMM plan (attn_plan.h). */
#include "mega/attn_plan.h"

#include <stdlib.h>
#include <string.h>

size_t mega_attn_slab_elems(int B, int T, int chunk) {
    const size_t full = (size_t)(T / chunk), rem = (size_t)(T % chunk), c = (size_t)chunk;
    return (size_t)B * (full * c * c + rem * rem);
}

double mega_attn_gemm_elems(int B, int T, int chunk) {
    const int full = T / chunk, rem = T % chunk;
    const double fc = (double)chunk * chunk - (double)(chunk / 2) * (chunk - chunk / 2);
    const double fr = (double)rem * rem - (double)(rem / 2) * (rem - rem / 2);
    return (double)B * (full * fc + fr);
}

/* Appends `count` chunks of length L from row0, `stride` rows apart, in calls of at most
 * MEGA_ATTN_MAX_BATCH chunks, their slabs from *off on. */
static void push(mega_attn_plan_t *p, long long row0, long long stride, long long count, int L,
                 size_t *off) {
    for (long long k0 = 0; k0 < count; k0 += MEGA_ATTN_MAX_BATCH) {
        const int n = (int)(count - k0 < MEGA_ATTN_MAX_BATCH ? count - k0 : MEGA_ATTN_MAX_BATCH);
        mega_attn_group_t *g = &p->g[p->ng++];
        g->row0 = row0 + k0 * stride;
        g->stride = stride;
        g->count = n;
        g->L = L;
        g->s_off = *off;
        *off += (size_t)n * L * L;
    }
}

int mega_attn_plan_make(int B, int T, int z, int nv, int chunk, mega_attn_plan_t *p) {
    memset(p, 0, sizeof *p);
    if (B < 1 || T < 1 || z < 1 || nv < 1 || chunk < 1 || chunk > T) return -1;
    *p = (mega_attn_plan_t){.B = B, .T = T, .z = z, .nv = nv, .chunk = chunk};
    const int full = T / chunk, rem = T % chunk;
    const long long items = (long long)B * (full + (rem != 0));
    p->g = calloc((size_t)B + 2 + (size_t)(items / MEGA_ATTN_MAX_BATCH), sizeof *p->g);
    if (!p->g) return -1;
    size_t off = 0;
    if (rem == 0) {
        push(p, 0, chunk, (long long)B * full, chunk, &off);
    } else {
        for (int b = 0; full > 0 && b < B; b++) push(p, (long long)b * T, chunk, full, chunk, &off);
        push(p, (long long)full * chunk, T, B, rem, &off);
    }
    return 0;
}

void mega_attn_plan_free(mega_attn_plan_t *p) {
    free(p->g);
    memset(p, 0, sizeof *p);
}

int mega_attn_scores_calls(const mega_attn_plan_t *p, int gi, mega_gemm_call_t out[2]) {
    const mega_attn_group_t *g = &p->g[gi];
    const int L = g->L, h = L / 2, z = p->z;
    const long long x0 = g->row0 * z, sx = g->stride * z, ss = (long long)L * L;
    int n = 0;
    if (h > 0) /* S[0:h, 0:h]: keys [0, h) of queries [0, h) */
        out[n++] = (mega_gemm_call_t){.transa = 1, .m = h, .n = h, .k = z, .count = g->count,
                                      .a = x0, .lda = z, .sa = sx, .b = x0, .ldb = z, .sb = sx,
                                      .c = (long long)g->s_off, .ldc = L, .sc = ss};
    /* S[h:L, 0:L] */
    out[n++] = (mega_gemm_call_t){.transa = 1, .m = L, .n = L - h, .k = z, .count = g->count,
                                  .a = x0, .lda = z, .sa = sx, .b = x0 + (long long)h * z,
                                  .ldb = z, .sb = sx, .c = (long long)g->s_off + (long long)h * L,
                                  .ldc = L, .sc = ss};
    return n;
}

int mega_attn_pv_calls(const mega_attn_plan_t *p, int gi, mega_gemm_call_t out[2]) {
    const mega_attn_group_t *g = &p->g[gi];
    const int L = g->L, h = L / 2, nv = p->nv;
    const long long x0 = g->row0 * nv, sx = g->stride * nv, ss = (long long)L * L;
    int n = 0;
    if (h > 0) /* O[0:h] = P[0:h, 0:h] V[0:h] */
        out[n++] = (mega_gemm_call_t){.transa = 0, .m = nv, .n = h, .k = h, .count = g->count,
                                      .a = x0, .lda = nv, .sa = sx, .b = (long long)g->s_off,
                                      .ldb = L, .sb = ss, .c = x0, .ldc = nv, .sc = sx};
    /* O[h:L] = P[h:L, 0:L] V[0:L] */
    out[n++] = (mega_gemm_call_t){.transa = 0, .m = nv, .n = L - h, .k = L, .count = g->count,
                                  .a = x0, .lda = nv, .sa = sx,
                                  .b = (long long)g->s_off + (long long)h * L, .ldb = L, .sb = ss,
                                  .c = x0 + (long long)h * nv, .ldc = nv, .sc = sx};
    return n;
}
