/* topk_ref.h — float64 references (being written). */
#ifndef XCAT_TEST_TOPK_REF_H
#define XCAT_TEST_TOPK_REF_H
int topk_ref_placeholder(void);
#endif
