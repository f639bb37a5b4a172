/* verify_grad.c: which gradient elements to check, and the table of gradient references.
 *
 * A gradient's sample is chosen as a forward's (verify.c), tensor by tensor with its own
 * cost: exhaustive when cheap, else a few sequences x positions (first and last always) x
 * columns, shrunk to the budget.  Two things differ from the forward:
 *   - columns may shrink to 1: short_long_conv's dk3 costs a whole correlation a channel
 *     (grad_ref_conv.c), so at T = 64k one channel is what fits;
 *   - when the smallest sample is still over the budget, positions come from the last rows
 *     only (always T - 1): causal softmax attention's dK_s / dV_s need every row t >= s, so
 *     the rows near the end are the ones a CPU can afford at T = 64k.  Those rows still see
 *     every key of the sequence (row T - 1 attends to all), but dK / dV at early positions
 *     go unchecked there, and the row's note says so (t_lo). */
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "grad_ref.h"
#include "rng.h"

extern const grad_ref_t GRAD_REF_TRANSFORMER, GRAD_REF_CHELA;
extern const grad_ref_t GRAD_REF_LINEAR_ATTN, GRAD_REF_SOFTMAX_ATTN, GRAD_REF_LONG_CONV,
    GRAD_REF_SHORT_LONG_CONV;

const grad_ref_t *grad_ref_get(op_id op) {
    switch (op) {
    case OP_LINEAR_ATTN: return &GRAD_REF_LINEAR_ATTN;
    case OP_SOFTMAX_ATTN: return &GRAD_REF_SOFTMAX_ATTN;
    case OP_LONG_CONV: return &GRAD_REF_LONG_CONV;
    case OP_SHORT_LONG_CONV: return &GRAD_REF_SHORT_LONG_CONV;
    case OP_TRANSFORMER: return &GRAD_REF_TRANSFORMER;
    case OP_CHELA: return &GRAD_REF_CHELA;
    default: return NULL;
    }
}

tensor_desc_t grad_dy_desc(const tensor_desc_t *out) {
    tensor_desc_t t = {.name = "dy", .elems = out->elems, .store = STORE_ACT,
                       .init = INIT_UNIFORM, .scale = 1.0f};
    return t;
}

void grad_sample_free(grad_sample_t *gs) {
    sample_free(&gs->b);
    gs->t_lo = 0;
}

static int alloc_sample(sample_buf_t *b, int ns, int nt, int nc) {
    memset(b, 0, sizeof *b);
    b->seq = malloc(sizeof(int) * (size_t)(ns > 0 ? ns : 1));
    b->t = malloc(sizeof(int) * (size_t)(nt > 0 ? nt : 1));
    b->col = malloc(sizeof(int) * (size_t)(nc > 0 ? nc : 1));
    if (!b->seq || !b->t || !b->col) {
        sample_free(b);
        return -1;
    }
    b->s = (sample_t){ns, b->seq, nt, b->t, nc, b->col};
    return 0;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* k distinct values of lo..n-1, always lo and n-1, sorted (verify.c's pick, offset). */
static void pick(int *out, int k, int lo, int n, uint64_t seed, uint32_t stream) {
    const int span = n - lo;
    if (k >= span) {
        for (int i = 0; i < span; i++) out[i] = lo + i;
        return;
    }
    int m = 0;
    out[m++] = lo;
    if (k > 1) out[m++] = n - 1;
    for (uint64_t ctr = 0; m < k; ctr++) {
        int v = lo + (int)(rng_mix64(seed ^ ((uint64_t)stream << 40) ^ ctr) % (uint64_t)span);
        int dup = 0;
        for (int j = 0; j < m; j++) dup |= out[j] == v;
        if (!dup) out[m++] = v;
    }
    qsort(out, (size_t)k, sizeof *out, cmp_int);
}

int grad_sample_full(const grad_ref_t *g, const shape_t *s, int tensor, grad_sample_t *out) {
    grad_view_t v;
    g->view(s, tensor, &v);
    out->t_lo = 0;
    if (alloc_sample(&out->b, v.n_seq, v.n_t, v.n_col)) return -1;
    for (int i = 0; i < v.n_seq; i++) out->b.seq[i] = i;
    for (int i = 0; i < v.n_t; i++) out->b.t[i] = i;
    for (int i = 0; i < v.n_col; i++) out->b.col[i] = i;
    out->b.exhaustive = 1;
    return 0;
}

/* A sample of k_seq x k_t x k_col, positions from t_lo on. */
static int make(const grad_view_t *v, int k_seq, int k_t, int k_col, int t_lo, uint64_t seed,
                uint32_t tensor, sample_buf_t *b) {
    if (k_t > v->n_t - t_lo) k_t = v->n_t - t_lo;
    if (alloc_sample(b, k_seq, k_t, k_col)) return -1;
    /* streams of their own per tensor: the tensors' samples are independent */
    pick(b->seq, k_seq, 0, v->n_seq, seed, 11 + 4 * tensor);
    pick(b->t, k_t, t_lo, v->n_t, seed, 12 + 4 * tensor);
    pick(b->col, k_col, 0, v->n_col, seed, 13 + 4 * tensor);
    return 0;
}

int grad_sample_choose(const grad_ref_t *g, const shape_t *s, int tensor, uint64_t seed,
                       double budget, grad_sample_t *out) {
    grad_view_t v;
    g->view(s, tensor, &v);
    if (grad_sample_full(g, s, tensor, out)) return -1;
    if (g->cost(s, tensor, &out->b.s) <= budget) return 0;
    grad_sample_free(out);
    int k_seq = v.n_seq < 4 ? v.n_seq : 4, k_t = v.n_t < 256 ? v.n_t : 256;
    int k_col = v.n_col < 64 ? v.n_col : 64;
    for (;;) {
        if (make(&v, k_seq, k_t, k_col, 0, seed, (uint32_t)tensor, &out->b)) return -1;
        if (g->cost(s, tensor, &out->b.s) <= budget) return 0;
        sample_free(&out->b);
        if (k_seq > 1) k_seq /= 2;
        else if (k_col > 8) k_col /= 2;
        else if (k_t > 16) k_t /= 2;
        else if (k_col > 1) k_col /= 2;
        else break;
    }
    /* the smallest sample is over the budget: the last rows, as many as fit (at least the
     * last 16, or all of them when fewer) */
    int lo = 0, hi = v.n_t - (v.n_t < 16 ? v.n_t : 16); /* the lowest t_lo that fits */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (make(&v, 1, 16, 1, mid, seed, (uint32_t)tensor, &out->b)) return -1;
        double cost = g->cost(s, tensor, &out->b.s);
        sample_free(&out->b);
        if (cost <= budget) hi = mid;
        else lo = mid + 1;
    }
    out->t_lo = lo;
    return make(&v, 1, 16, 1, lo, seed, (uint32_t)tensor, &out->b);
}

int grad_ref_eval(const grad_ref_t *g, const shape_t *s, const float *const *in, const float *dy,
                  int tensor, const sample_t *smp, double *out, grad_whole_t *w) {
    if (g->reference) return g->reference(s, in, dy, tensor, smp, out);
    if (!w->n) {
        tensor_desc_t desc[OP_MAX_INPUTS], o;
        const int n = op_get(g->op)->describe(s, desc, &o);
        for (int i = 0; i < n; i++)
            if (!(w->grad[i] = malloc(desc[i].elems * sizeof(double)))) {
                grad_whole_free(w);
                bench_set_error(__FILE__, __LINE__, "host memory for the whole gradients");
                return -1;
            }
        w->n = n;
        if (g->whole(s, in, dy, w->grad)) {
            grad_whole_free(w);
            return -1;
        }
    }
    grad_view_t v;
    g->view(s, tensor, &v);
    size_t k = 0;
    for (int a = 0; a < smp->n_seq; a++)
        for (int b = 0; b < smp->n_t; b++)
            for (int c = 0; c < smp->n_col; c++)
                out[k++] = w->grad[tensor][grad_view_index(&v, smp->seq[a], smp->t[b], smp->col[c])];
    return 0;
}

void grad_whole_free(grad_whole_t *w) {
    for (int i = 0; i < OP_MAX_INPUTS; i++) {
        free(w->grad[i]);
        w->grad[i] = NULL;
    }
    w->n = 0;
}

double grad_ref_total_cost(const grad_ref_t *g, const shape_t *s, int n_in,
                           const grad_sample_t *smp) {
    if (g->whole) return g->cost(s, 0, &smp[0].b.s);
    double c = 0;
    for (int i = 0; i < n_in; i++) c += g->cost(s, i, &smp[i].b.s);
    return c;
}
