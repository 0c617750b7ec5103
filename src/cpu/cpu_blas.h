/* cpu_blas.h — how the CPU backend keeps OpenBLAS single-threaded inside its own parallel
 * passes (every CPU op with tile GEMMs inside an OpenMP region uses these). */
#ifndef XCAT_CPU_BLAS_H
#define XCAT_CPU_BLAS_H

#include <omp.h>

#include <cblas.h>

/* OpenBLAS's OpenMP build runs single-threaded inside an *active* parallel region, but a team
 * of one thread is not active, and it would then start its own threads for every tile. Setting
 * this worker's nthreads ICV (scoped to the region's implicit task) keeps it to one. */
static inline void blas_single_threaded(void)
{
    if (omp_get_num_threads() == 1) omp_set_num_threads(1);
}

/* OpenBLAS's pthreads build ignores OpenMP nesting: inside every tile GEMM of every xcat worker
 * it would wake its own thread pool (measured 4.6× slower on 2 cores). For the duration of a
 * pass it is held to one thread, and the caller's setting is restored afterwards. (The OpenMP
 * and serial builds need nothing: see blas_single_threaded.) */
static inline int blas_pin_begin(void)
{
    if (openblas_get_parallel() != 1) return 0;
    int n = openblas_get_num_threads();
    if (n > 1) openblas_set_num_threads(1);
    return n;
}

static inline void blas_pin_end(int saved)
{
    if (saved > 1) openblas_set_num_threads(saved);
}

#endif
