/* ref_softmax_attn.c: CPU reference for softmax attention, causal or not.
 *
 * Row by row, straight from the definition: scores q_t . k_s / sqrt(dk) for
 * s <= t (every s with --noncausal), softmax with the row maximum subtracted first (so
 * large logits cannot overflow exp), then the weighted sum of the sampled value columns.
 * Costs (keys) * (dk + n_col) per sampled row, ops.c's sa_cost. */
#include <math.h>
#include <stdlib.h>

#include "bench_check.h"
#include "reference_extra.h"

/* q . k_s with four partial sums: a single accumulator's add latency bounds the
 * plain loop; the order change only moves the last bits. */
static double dot_df(const double *q, const float *k, int n) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += q[i] * (double)k[i];
        a1 += q[i + 1] * (double)k[i + 1];
        a2 += q[i + 2] * (double)k[i + 2];
        a3 += q[i + 3] * (double)k[i + 3];
    }
    for (; i < n; i++) a0 += q[i] * (double)k[i];
    return (a0 + a1) + (a2 + a3);
}

/* One sampled row over keys 0..last: p[] is scratch of last+1 doubles, q the pre-scaled query. */
static void sa_row(const float *k_seq, const float *v_seq, int D, const double *q, int last,
                   const sample_t *m, double *p, double *o) {
    double mx = -INFINITY;
    for (int s = 0; s <= last; s++) {
        const double acc = dot_df(q, k_seq + (size_t)s * D, D);
        p[s] = acc;
        if (acc > mx) mx = acc;
    }
    double sum = 0.0;
    for (int s = 0; s <= last; s++) {
        p[s] = exp(p[s] - mx);
        sum += p[s];
    }
    for (int c = 0; c < m->n_col; c++) o[c] = 0.0;
    for (int s = 0; s <= last; s++) {
        const float *vs = v_seq + (size_t)s * D;
        for (int c = 0; c < m->n_col; c++) o[c] += p[s] * (double)vs[m->col[c]];
    }
    for (int c = 0; c < m->n_col; c++) o[c] /= sum;
}

int ref_softmax_attn(const shape_t *s, const float *const *in, const sample_t *smp, double *out) {
    if (s->B <= 0 || s->H <= 0 || s->T <= 0 || s->dk <= 0)
        BENCH_FAIL("softmax_attn: B, H, T, dk must be positive");
    if (s->dv != s->dk) BENCH_FAIL("softmax_attn: needs dk == dv (got dk %d, dv %d)", s->dk, s->dv);
    const char *bad = ref_sample_problem(smp, s->B * s->H, s->T, s->dk);
    if (bad) BENCH_FAIL("softmax_attn: %s", bad);
    if (smp->n_seq == 0 || smp->n_t == 0 || smp->n_col == 0) return 0;

    const int D = s->dk;
    const size_t T = (size_t)s->T, n = (size_t)smp->n_col;
    const int t_max = s->causal ? smp->t[smp->n_t - 1] : s->T - 1;
    double *buf = malloc(((size_t)t_max + 1 + (size_t)D) * sizeof(double));
    if (!buf) BENCH_FAIL("softmax_attn reference: out of host memory (%d doubles)", t_max + 1);
    double *q = buf, *p = buf + D;
    const double scale = 1.0 / sqrt((double)D);
    for (int si = 0; si < smp->n_seq; si++) {
        const size_t base = (size_t)smp->seq[si] * T * (size_t)D;
        for (int ti = 0; ti < smp->n_t; ti++) {
            const int t = smp->t[ti];
            const float *qt = in[0] + base + (size_t)t * D;
            for (int i = 0; i < D; i++) q[i] = (double)qt[i] * scale;
            sa_row(in[1] + base, in[2] + base, D, q, s->causal ? t : s->T - 1, smp, p,
                   out + ((size_t)si * smp->n_t + ti) * n);
        }
    }
    free(buf);
    return 0;
}
