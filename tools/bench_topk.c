/* bench_topk.c — `xcat-bench topk`: top-K timings against a bare sgemm of the same shape and a
 * materialise-and-select baseline. (Being written.) */
#include <stdio.h>

#include "bench_util.h"

int xcat_bench_topk_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "xcat-bench topk: not implemented yet\n");
    return 2;
}
