/* sampling_rng.c — the host build of cl/rng.cl: the same source the OpenCL kernels compile, so
 * host and device draws are bit-identical. */
#define XCAT_RNG_HOST 1
#include "../cl/rng.cl"

#include "sampling.h"

void xcat_philox4x32_10(uint32_t counter[4], uint64_t key)
{
    xr_philox4x32_10(counter, (xr_u32)key, (xr_u32)(key >> 32));
}
