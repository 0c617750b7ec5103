/* sampled_ref.h — float64 reference of the sampled kinds (SAMPLED_CE, BCE, GBCE), given the
 * negatives a call drew (xcat_loss_draw_negatives: −1 = masked), per xcat.h's definitions. */
#ifndef XCAT_TEST_SAMPLED_REF_H
#define XCAT_TEST_SAMPLED_REF_H

#include <stdint.h>

typedef struct sampled_ref_opts {
    int kind;            /* xcat_loss_kind */
    int reduction;       /* xcat_reduction */
    int64_t ignore_index;
    double scale, softcap;
    double corr;         /* subtracted from every negative's logit (SAMPLED_CE) */
    double beta;         /* positive-term weight (BCE 1, GBCE β) */
    int logq_on;         /* LOGQ: negative k's correction is log K + log q(item) instead */
    double logk;
    const double *logq;  /* log q per item, or NULL: logq_uniform for every item */
    double logq_uniform;
} sampled_ref_opts;

/* loss: 1 value (MEAN/SUM) or N (NONE); lse: N (SAMPLED_CE) or NULL; dH N×d, dE C×d, db C
 * (any may be NULL); up: upstream gradient (NULL = 1; 1 value or N for NONE). */
void sampled_ref(const sampled_ref_opts *o, const float *H, int64_t ldh, const float *E,
                 int64_t lde, const float *b, const int64_t *y, const float *w,
                 const int64_t *neg, int64_t n, int64_t c, int64_t d, int64_t k,
                 const double *up, double *loss, double *lse, double *dH, double *dE,
                 double *db);

#endif
