/* kernels.c — map an ISA level to its kernel table. */
#include "baseline_guard.h"
#include "kernels.h"

const xcat_row_kernels *xcat_row_kernels_get(xcat_isa isa)
{
    switch (isa) {
#ifdef XCAT_HAVE_AVX512_UNIT
    case XCAT_ISA_AVX512: return &xcat_row_kernels_avx512;
#endif
#ifdef XCAT_HAVE_AVX2_UNIT
    case XCAT_ISA_AVX2: return &xcat_row_kernels_avx2;
#endif
    default: return &xcat_row_kernels_scalar;
    }
}
