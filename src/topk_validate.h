/* topk_validate.h — checks of top-K / sampled-rank calls (src/topk.c), and the index-vector
 * reader the metrics share. */
#ifndef XCAT_TOPK_VALIDATE_H
#define XCAT_TOPK_VALIDATE_H

#include "backend.h"

/* Host copies owned by one call. */
typedef struct xcat_topk_host {
    int64_t *offsets, *exclude, *banned;
    int64_t num_banned;
} xcat_topk_host;

/* Check `args` and fill `call` (k left 0) and `host`; on error nothing is left allocated. */
xcat_status xcat_topk_call_prepare(xcat_context *ctx, const xcat_topk_args *args,
                                   xcat_topk_call *call, xcat_topk_host *host);
void xcat_topk_host_free(xcat_context *ctx, xcat_topk_host *host);

/* A call whose CSR the backend checked on the device and found bad (csr_on_device): read it
 * to the host and return the status and message the host check gives (the first problem). */
xcat_status xcat_topk_check_csr_on_host(xcat_context *ctx, const xcat_topk_call *call);

/* Read an I32/I64 vector tensor (of any backend) to a new int64 host array (NULL tensor: NULL,
 * 0). Free with xcat_host_free. */
xcat_status xcat_read_index_vector(xcat_context *ctx, const xcat_tensor *t, const char *name,
                                   int64_t **out, int64_t *n);

#endif
