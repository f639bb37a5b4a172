/* ref_linear_attn.c: CPU reference for linear attention, and a C model of the
 * chunked GPU algorithm.
 *
 * The reference uses the state form, o_t = (q_t/sqrt(dk)) . S_t with
 * S_t = sum_{s<=t} k_s^T v_s, because it is O(T) per sequence and, restricted to
 * the sampled value columns, costs dk * n_col per token (ops.c's la_cost): each
 * value column of S evolves independently of the others, so keeping only the
 * sampled ones gives the same numbers as the full state.
 *
 * The chunked model follows chela-spec.md literally (inter-chunk term from the
 * carried state, intra-chunk term from the masked Q K^T): a different route to the
 * same function, so agreement between the two tests the chunk algebra that the GPU
 * kernel implements. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "reference_extra.h"

void ref_la_state_add(double *S, const double *k, int dk, const double *v, int n) {
    for (int i = 0; i < dk; i++) {
        const double ki = k[i];
        double *row = S + (size_t)i * n;
        for (int c = 0; c < n; c++) row[c] += ki * v[c];
    }
}

void ref_la_state_query(const double *S, const double *q, double scale, int dk, int n,
                        double *o) {
    for (int c = 0; c < n; c++) o[c] = 0.0;
    for (int i = 0; i < dk; i++) {
        const double qi = q[i] * scale;
        const double *row = S + (size_t)i * n;
        for (int c = 0; c < n; c++) o[c] += qi * row[c];
    }
}

static void to_double(const float *x, int n, double *y) {
    for (int i = 0; i < n; i++) y[i] = (double)x[i];
}

static int la_shape_ok(const shape_t *s) {
    return s->B > 0 && s->H > 0 && s->T > 0 && s->dk > 0 && s->dv > 0;
}

/* Per-sequence working set of the sampled reference. */
typedef struct {
    double *S;  /* [dk][n_col] */
    double *q;  /* [dk]        */
    double *k;  /* [dk]        */
    double *v;  /* [n_col]     the sampled columns of v_s */
} la_work_t;

/* Adds token s of one sequence to the sampled state. */
static void la_add_token(const shape_t *sh, const float *k_seq, const float *v_seq,
                         const sample_t *m, int s, la_work_t *w) {
    to_double(k_seq + (size_t)s * sh->dk, sh->dk, w->k);
    const float *vrow = v_seq + (size_t)s * sh->dv;
    for (int c = 0; c < m->n_col; c++) w->v[c] = (double)vrow[m->col[c]];
    ref_la_state_add(w->S, w->k, sh->dk, w->v, m->n_col);
}

static void la_query_token(const shape_t *sh, const float *q_seq, const sample_t *m, int t,
                           la_work_t *w, double *o) {
    to_double(q_seq + (size_t)t * sh->dk, sh->dk, w->q);
    ref_la_state_query(w->S, w->q, 1.0 / sqrt((double)sh->dk), sh->dk, m->n_col, o);
}

/* One sampled sequence: walk the tokens once, emitting at the sampled t's. */
static void la_sequence(const shape_t *sh, const float *const *in, const sample_t *m, int seq,
                        la_work_t *w, double *out_seq) {
    const size_t T = (size_t)sh->T;
    const float *q_seq = in[0] + (size_t)seq * T * sh->dk;
    const float *k_seq = in[1] + (size_t)seq * T * sh->dk;
    const float *v_seq = in[2] + (size_t)seq * T * sh->dv;
    const size_t n = (size_t)m->n_col;
    memset(w->S, 0, (size_t)sh->dk * n * sizeof(double));
    if (!sh->causal) {
        for (int s = 0; s < sh->T; s++) la_add_token(sh, k_seq, v_seq, m, s, w);
        for (int ti = 0; ti < m->n_t; ti++)
            la_query_token(sh, q_seq, m, m->t[ti], w, out_seq + ti * n);
        return;
    }
    int ti = 0;
    for (int s = 0; ti < m->n_t; s++) {
        la_add_token(sh, k_seq, v_seq, m, s, w);
        for (; ti < m->n_t && m->t[ti] == s; ti++)
            la_query_token(sh, q_seq, m, s, w, out_seq + ti * n);
    }
}

int ref_linear_attn(const shape_t *s, const float *const *in, const sample_t *smp, double *out) {
    if (!la_shape_ok(s)) BENCH_FAIL("linear_attn: B, H, T, dk, dv must be positive");
    const char *bad = ref_sample_problem(smp, s->B * s->H, s->T, s->dv);
    if (bad) BENCH_FAIL("linear_attn: %s", bad);
    if (smp->n_seq == 0 || smp->n_t == 0 || smp->n_col == 0) return 0;

    const size_t dk = (size_t)s->dk, n = (size_t)smp->n_col;
    double *buf = malloc((dk * n + 2 * dk + n) * sizeof(double));
    if (!buf) BENCH_FAIL("linear_attn reference: out of host memory (%zu doubles)", dk * n);
    la_work_t w = {.S = buf, .q = buf + dk * n, .k = buf + dk * n + dk, .v = buf + dk * n + 2 * dk};
    for (int si = 0; si < smp->n_seq; si++)
        la_sequence(s, in, smp, smp->seq[si], &w, out + (size_t)si * smp->n_t * n);
    free(buf);
    return 0;
}

/* ---------------- the chunked model ---------------- */

/* Per-sequence working set of the chunked model. */
typedef struct {
    double *S;  /* [dk][dv] carried state S_{i-1}           */
    double *q;  /* [chunk][dk] the chunk's Q, pre-scaled    */
    double *k;  /* [chunk][dk]                               */
    double *v;  /* [chunk][dv]                               */
} chunk_work_t;

static double dot(const double *a, const double *b, int n) {
    double acc = 0.0;
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* Loads L tokens from t0 into the chunk buffers (Q scaled by 1/sqrt(dk)). */
static void chunk_load(const shape_t *sh, const float *q_seq, const float *k_seq,
                       const float *v_seq, int t0, int L, chunk_work_t *w) {
    const size_t dk = (size_t)sh->dk, dv = (size_t)sh->dv;
    const double scale = 1.0 / sqrt((double)sh->dk);
    for (size_t i = 0; i < (size_t)L * dk; i++) {
        w->q[i] = (double)q_seq[(size_t)t0 * dk + i] * scale;
        w->k[i] = (double)k_seq[(size_t)t0 * dk + i];
    }
    to_double(v_seq + (size_t)t0 * dv, (int)((size_t)L * dv), w->v);
}

/* O_[i] = Q_[i] S_{i-1} + ((Q_[i] K_[i]^T) . mask) V_[i], then S_i = S_{i-1} + K_[i]^T V_[i]. */
static void chunk_step(const shape_t *sh, int L, chunk_work_t *w, double *o_chunk) {
    const int dk = sh->dk, dv = sh->dv;
    for (int r = 0; r < L; r++) {
        double *o = o_chunk + (size_t)r * dv;
        const double *qr = w->q + (size_t)r * dk;
        ref_la_state_query(w->S, qr, 1.0, dk, dv, o); /* inter-chunk term */
        for (int c = 0; c <= r; c++) {                 /* intra-chunk, causal mask */
            const double a = dot(qr, w->k + (size_t)c * dk, dk);
            const double *vc = w->v + (size_t)c * dv;
            for (int j = 0; j < dv; j++) o[j] += a * vc[j];
        }
    }
    for (int c = 0; c < L; c++)
        ref_la_state_add(w->S, w->k + (size_t)c * dk, dk, w->v + (size_t)c * dv, dv);
}

static void chunked_sequence(const shape_t *sh, const float *const *in, int seq, int chunk,
                             chunk_work_t *w, double *o_seq) {
    const size_t T = (size_t)sh->T, dk = (size_t)sh->dk, dv = (size_t)sh->dv;
    const float *q_seq = in[0] + (size_t)seq * T * dk;
    const float *k_seq = in[1] + (size_t)seq * T * dk;
    const float *v_seq = in[2] + (size_t)seq * T * dv;
    memset(w->S, 0, dk * dv * sizeof(double));
    if (!sh->causal) {
        /* Bidirectional: every row sees the whole-sequence state; no mask term. */
        for (int t0 = 0; t0 < sh->T; t0 += chunk) {
            int L = sh->T - t0 < chunk ? sh->T - t0 : chunk;
            chunk_load(sh, q_seq, k_seq, v_seq, t0, L, w);
            for (int c = 0; c < L; c++)
                ref_la_state_add(w->S, w->k + c * dk, sh->dk, w->v + c * dv, sh->dv);
        }
        for (int t0 = 0; t0 < sh->T; t0 += chunk) {
            int L = sh->T - t0 < chunk ? sh->T - t0 : chunk;
            chunk_load(sh, q_seq, k_seq, v_seq, t0, L, w);
            for (int r = 0; r < L; r++)
                ref_la_state_query(w->S, w->q + r * dk, 1.0, sh->dk, sh->dv,
                                   o_seq + (t0 + r) * dv);
        }
        return;
    }
    for (int t0 = 0; t0 < sh->T; t0 += chunk) {
        int L = sh->T - t0 < chunk ? sh->T - t0 : chunk;
        chunk_load(sh, q_seq, k_seq, v_seq, t0, L, w);
        chunk_step(sh, L, w, o_seq + (size_t)t0 * dv);
    }
}

int ref_linear_attn_chunked(const shape_t *s, const float *const *in, int chunk,
                            double *out_full) {
    if (!la_shape_ok(s)) BENCH_FAIL("linear_attn chunked model: B, H, T, dk, dv must be positive");
    if (chunk < 1) BENCH_FAIL("linear_attn chunked model: chunk %d < 1", chunk);
    if (chunk > s->T) chunk = s->T; /* one short chunk; bounds the buffers */

    const size_t dk = (size_t)s->dk, dv = (size_t)s->dv, C = (size_t)chunk;
    size_t n = dk * dv + C * (2 * dk + dv);
    double *buf = malloc(n * sizeof(double));
    if (!buf) BENCH_FAIL("linear_attn chunked model: out of host memory (%zu doubles)", n);
    chunk_work_t w = {.S = buf, .q = buf + dk * dv, .k = buf + dk * dv + C * dk,
                      .v = buf + dk * dv + 2 * C * dk};
    const size_t per_seq = (size_t)s->T * dv;
    for (int seq = 0; seq < s->B * s->H; seq++)
        chunked_sequence(s, in, seq, chunk, &w, out_full + (size_t)seq * per_seq);
    free(buf);
    return 0;
}
