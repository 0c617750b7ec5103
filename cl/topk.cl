/* topk.cl — fused scoring + top-K selection kernels (being written). */
