/* sampling.h — host side of the sampled kinds: the plan's item distribution (counts, alias
 * table, log q) and the draw helpers every backend's host code shares (cl/rng.cl holds the
 * bit-exact draw arithmetic itself). */
#ifndef XCAT_SAMPLING_H
#define XCAT_SAMPLING_H

#include "internal.h"

/* The item distribution set by xcat_loss_plan_set_item_counts(). */
typedef struct xcat_sampling {
    int64_t classes;
    uint32_t *alias_threshold; /* C: keep bucket j when the draw's 2nd word < threshold[j] */
    int32_t *alias_index;      /* C: else take alias_index[j] (full buckets alias themselves) */
    float *log_q;              /* C: log of the normalised probability (−inf where 0) */
    uint64_t generation;       /* bumped on every set, so backends know to re-upload */
} xcat_sampling;

/* Free plan->sampling (NULL is fine). */
void xcat_sampling_free(xcat_loss_plan *plan);

/* Philox4x32-10 on the host (cl/rng.cl), for tests and host-side draws. */
void xcat_philox4x32_10(uint32_t counter[4], uint64_t key);

#endif
