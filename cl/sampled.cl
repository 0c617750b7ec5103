/* sampled.cl — kernels of the sampled loss kinds (being written). */
