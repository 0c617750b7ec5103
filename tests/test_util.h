/* Shared helpers of the xcat Check suites: seeded RNG, data, comparisons, contexts, tensors. */
#ifndef XCAT_TEST_UTIL_H
#define XCAT_TEST_UTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "xcat.h"

/* ---- random numbers ------------------------------------------------------------------------ */

/** Pick the run's seed: XCAT_TEST_SEED (decimal or 0x hex) if set, else fresh from the clock
 *  and pid. Prints it, so that a failure can be reproduced. test_run_suite() calls it. */
void test_seed_init(void);
uint64_t test_seed(void);
/** Restart the generator on a stream derived from the run's seed, a name and an index, so a
 *  test draws the same numbers whether or not other tests ran before it (CK_FORK or not). */
void test_rng_stream(const char *name, int64_t index);
uint64_t test_rand_u64(void);
double test_rand_uniform(double lo, double hi);
/** Uniform integer in [lo, hi). */
int64_t test_rand_int(int64_t lo, int64_t hi);

/** Fill a rows×cols matrix with row stride `stride` with U(lo, hi); padding gets NaN. */
void test_fill_matrix(float *x, int64_t rows, int64_t cols, int64_t stride, float lo, float hi);
/** Targets in [0, c), with each row ignored (= ignore_index) with probability ignore_frac; at
 *  least one row is kept when n > 1 and ignore_frac < 1. */
void test_fill_targets(int64_t *y, int64_t n, int64_t c, double ignore_frac,
                       int64_t ignore_index);

/* ---- allocation and comparison --------------------------------------------------------------- */

/** malloc that fails the test instead of returning NULL. */
void *test_alloc(size_t bytes);
double *test_alloc_doubles(int64_t count);
float *test_alloc_floats(int64_t count);

double test_max_abs(const double *x, int64_t count);
/** Fail the test unless |got_k − ref_k| <= atol + rtol·|ref_k| for every k; the message names
 *  `what`, the worst element, both values and the seed. NaN anywhere fails. */
void test_check_close(const char *what, const float *got, const double *ref, int64_t count,
                      double atol, double rtol);
/** Fail the test unless every element is exactly 0.0f. */
void test_check_all_zero(const char *what, const float *x, int64_t count);

/* ---- xcat objects ---------------------------------------------------------------------------- */

/** A CPU context that ignores the XCAT_* environment. isa_max -1 = best; num_threads 0 = all.
 *  Fails the test if it cannot be created. */
xcat_context *test_context(int isa_max, int num_threads);
/** A CPU context capped at ISA `level` that really runs at that level; NULL (after printing a
 *  note) when the machine or build cannot reach it: the caller returns early and passes. */
xcat_context *test_context_at_isa(int level, int num_threads);
/** Create a rows×cols tensor and, if `data` is non-NULL, write it (contiguous). */
xcat_tensor *test_tensor(xcat_context *ctx, xcat_dtype dtype, int64_t rows, int64_t cols,
                         const void *data);
/** Free `count` tensors (NULL entries allowed). */
void test_free_tensors(xcat_tensor *const *tensors, size_t count);
#define TEST_FREE_TENSORS(...)                                                                    \
    test_free_tensors((xcat_tensor *const[]){__VA_ARGS__},                                     \
                      sizeof((xcat_tensor *const[]){__VA_ARGS__}) / sizeof(xcat_tensor *))
/** Read a F32 tensor into a freshly allocated contiguous array. */
float *test_read_floats(const xcat_tensor *t);

/** Assert `got == want`; when ctx is non-NULL also that the context's last error is non-empty
 *  and, when `needle` is non-NULL, contains it. `what` labels the failure. */
void test_expect_error(const xcat_context *ctx, xcat_status got, xcat_status want,
                       const char *needle, const char *what);
/** Assert a call succeeded; the failure message carries the status and the last error. */
void test_expect_ok(const xcat_context *ctx, xcat_status got, const char *what);

/* ---- targets: the backends and devices a parametrised test runs on -------------------------- */
/*
 * The target table lists cpu:scalar, cpu:avx2, cpu:avx512, then every OpenCL device (at most
 * TEST_MAX_OPENCL_TARGETS), or, when there is none, one placeholder OpenCL entry whose tests
 * print why and pass. Loop tests use `_i` as an index into it. test_targets_init() builds it
 * once, in main() before the suite is made (the loop bounds depend on it); it enumerates the
 * OpenCL devices in a short-lived child process, so the test runner itself never initialises
 * an OpenCL driver before Check forks its test children.
 *
 * Environment: XCAT_TEST_OPENCL=0 leaves the OpenCL devices out (placeholder); =require makes
 * the placeholder fail instead of pass (CI on a machine that must have a device).
 * XCAT_TEST_OPENCL_DEVICE=<text> keeps only the OpenCL devices whose index equals <text> or
 * whose name, vendor or platform contains it (case-insensitive).
 */
#define TEST_MAX_OPENCL_TARGETS 8

typedef struct test_target {
    xcat_backend_kind backend; /* CPU or OPENCL */
    int isa;                   /* CPU: the ISA level (xcat_isa) */
    int device;                /* OPENCL: the device index; -1 for the placeholder */
    char name[32];             /* "cpu:avx2", "opencl:0", "opencl:none" */
    char detail[320];          /* OpenCL: device name; placeholder: why there is no device */
} test_target;

void test_targets_init(void);
int test_num_targets(void);
const test_target *test_target_get(int index);
/** Index of the first OpenCL entry (there is always at least the placeholder). */
int test_first_opencl_target(void);
/** A context on target `index` (CPU: ISA level capped and checked, `num_threads` threads;
 *  OpenCL: options.device = its index, IGNORE_ENV). NULL after printing a note when the
 *  target cannot run here (ISA level missing, OpenCL placeholder): the caller returns and
 *  passes. Fails the test if a real target's context cannot be created. */
xcat_context *test_target_context(int index, int num_threads);
/** The same with the OpenCL context's `flags` given (0: the XCAT_* environment is read, for
 *  tests of the testing knobs; they set them with setenv, CK_FORK keeps that per test). */
xcat_context *test_target_context_flags(int index, int num_threads, uint32_t flags);
/** The backend of a context. */
xcat_backend_kind test_context_backend(const xcat_context *ctx);
/** "isa avx2 threads 2" or "opencl 'device name'": for failure messages. */
void test_context_label(const xcat_context *ctx, char *buf, size_t size);

/**
 * A rows×cols F32 input tensor from host data with row stride `stride` (>= cols) on any
 * backend. Contiguous data is created and written. Strided data is, on the CPU backend,
 * wrapped zero-copy (xcat_tensor_wrap_host: `data` must outlive the tensor); on OpenCL, put
 * into a caller-made cl_mem (clCreateBuffer, padding included, after a prefix of 7 NaN
 * elements) and wrapped with xcat_tensor_wrap_opencl(stride, offset_bytes = 28), so the
 * interop path runs too (without the OpenCL headers: created and written with the stride).
 */
xcat_tensor *test_input_matrix(xcat_context *ctx, int64_t rows, int64_t cols, int64_t stride,
                               float *data);
/** test_input_matrix() with `prefix` elements before (0, 0) on OpenCL instead of 7 (e.g. a
 *  multiple of 4 for 16-byte aligned rows when the stride is one too). */
xcat_tensor *test_input_matrix_at(xcat_context *ctx, int64_t rows, int64_t cols, int64_t stride,
                                  float *data, int64_t prefix);

/** Print the seed (test_seed_init), run one suite with CK_NORMAL output (Check's summary
 *  lines); returns the process exit status. */
int test_run_suite(Suite *suite);

#endif /* XCAT_TEST_UTIL_H */
