/* stats.c: median, p10/p90 (linear interpolation), min and relative spread. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double stats_quantile(const double *s, int n, double q) {
    if (n <= 0) return NAN;
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return s[n - 1];
    double f = pos - i;
    return s[i] * (1 - f) + s[i + 1] * f;
}

stats_t stats_compute(double *x, int n) {
    stats_t st = {.n = n, .median = NAN, .p10 = NAN, .p90 = NAN, .min = NAN, .mean = NAN,
                  .stdrel = NAN};
    if (n <= 0) return st;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    st.mean = sum / n;
    double var = 0;
    for (int i = 0; i < n; i++) var += (x[i] - st.mean) * (x[i] - st.mean);
    st.stdrel = n > 1 ? sqrt(var / (n - 1)) / st.mean : 0;
    st.median = stats_quantile(x, n, 0.5);
    st.p10 = stats_quantile(x, n, 0.1);
    st.p90 = stats_quantile(x, n, 0.9);
    st.min = x[0];
    return st;
}
