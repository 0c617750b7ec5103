/* sampled_ref.h — float64 references (being written). */
#ifndef XCAT_TEST_SAMPLED_REF_H
#define XCAT_TEST_SAMPLED_REF_H
int sampled_ref_placeholder(void);
#endif
