/* topk_ref.c — see topk_ref.h. Deliberately naive: O(M·C·d + M·C log C). */
#include "topk_ref.h"

#include <math.h>
#include <stdlib.h>

typedef struct ref_item {
    double s;
    int64_t i;
} ref_item;

static int cmp_ref(const void *a, const void *b)
{
    const ref_item *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

void topk_ref(const float *U, int64_t ldu, const float *E, int64_t lde, const float *b,
              int64_t m, int64_t c, int64_t d, const int64_t *off, const int64_t *ex,
              const int64_t *banned, int64_t nb, int64_t k, int64_t *idx, double *score)
{
    ref_item *v = malloc((size_t)c * sizeof *v);
    char *skip = malloc((size_t)c);
    for (int64_t q = 0; q < m; ++q) {
        for (int64_t j = 0; j < c; ++j) skip[j] = 0;
        for (int64_t t = 0; t < nb; ++t) skip[banned[t]] = 1;
        if (off)
            for (int64_t t = off[q]; t < off[q + 1]; ++t) skip[ex[t]] = 1;
        int64_t n = 0;
        for (int64_t j = 0; j < c; ++j) {
            double s = b ? (double)b[j] : 0.0;
            for (int64_t t = 0; t < d; ++t) s += (double)U[q * ldu + t] * (double)E[j * lde + t];
            if (skip[j] || isnan(s)) continue;
            v[n++] = (ref_item){s, j};
        }
        qsort(v, (size_t)n, sizeof *v, cmp_ref);
        for (int64_t t = 0; t < k; ++t) {
            idx[q * k + t] = t < n ? v[t].i : -1;
            score[q * k + t] = t < n ? v[t].s : -INFINITY;
        }
    }
    free(v);
    free(skip);
}
