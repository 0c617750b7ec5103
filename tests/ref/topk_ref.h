/* topk_ref.h — exhaustive float64 reference of xcat_topk: score every item in double, drop the
 * excluded, banned and NaN ones, sort by (score descending, item ascending). */
#ifndef XCAT_TEST_TOPK_REF_H
#define XCAT_TEST_TOPK_REF_H

#include <stdint.h>

/* idx (M×k) and score (M×k) receive the reference result; tail −1 / −INFINITY. off/ex is the
 * exclusion CSR (or NULL), banned a list of nb ids (any order, or NULL). */
void topk_ref(const float *U, int64_t ldu, const float *E, int64_t lde, const float *b,
              int64_t m, int64_t c, int64_t d, const int64_t *off, const int64_t *ex,
              const int64_t *banned, int64_t nb, int64_t k, int64_t *idx, double *score);

#endif
