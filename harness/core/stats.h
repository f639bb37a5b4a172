/* stats.h: summary statistics of timing samples. */
#ifndef CHELA_STATS_H
#define CHELA_STATS_H

typedef struct {
    int n;
    double median, p10, p90, min, mean;
    double stdrel; /* sample standard deviation / mean */
} stats_t;

/* Sorts x in place. */
stats_t stats_compute(double *x, int n);
/* Linear-interpolated quantile of sorted x, q in [0, 1]. */
double stats_quantile(const double *sorted, int n, double q);

#endif
