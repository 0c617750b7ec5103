/* sampled_ref.c — float64 references (being written). */
#include "sampled_ref.h"

int sampled_ref_placeholder(void) { return 0; }
