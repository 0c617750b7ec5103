/*
 * Suite "api": version, status strings, *_init defaults, contexts (options, info, XCAT_*
 * environment), tensors (create, write/read with strides, wrap_host zero-copy, errors),
 * allocation failure on every allocation without leaks, and WRONG_CONTEXT.
 * Run with CK_FORK=yes (set by CTest): tests call setenv() freely.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* Start each test from a known environment: CTest may run with XCAT_* set by the user. */
static void clear_env(void)
{
    unsetenv("XCAT_BACKEND");
    unsetenv("XCAT_DEVICE");
    unsetenv("XCAT_ISA_MAX");
    unsetenv("XCAT_NUM_THREADS");
}

/* ---- version, status strings, enumerations, *_init ----------------------------------------- */

START_TEST(test_version)
{
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", XCAT_VERSION_MAJOR, XCAT_VERSION_MINOR,
             XCAT_VERSION_PATCH);
    ck_assert_uint_eq(xcat_version_number(), XCAT_VERSION_NUMBER);
    ck_assert_uint_eq(XCAT_VERSION_NUMBER,
                      XCAT_VERSION_MAJOR * 10000 + XCAT_VERSION_MINOR * 100 + XCAT_VERSION_PATCH);
    ck_assert_ptr_nonnull(xcat_version_string());
    ck_assert_str_eq(xcat_version_string(), expect);
}
END_TEST

static const xcat_status ALL_STATUSES[] = {
    XCAT_OK,
    XCAT_ERROR_INVALID_ARGUMENT,
    XCAT_ERROR_SHAPE_MISMATCH,
    XCAT_ERROR_DTYPE_MISMATCH,
    XCAT_ERROR_OUT_OF_RANGE,
    XCAT_ERROR_SIZE_OVERFLOW,
    XCAT_ERROR_OUT_OF_MEMORY,
    XCAT_ERROR_DEVICE_OUT_OF_MEMORY,
    XCAT_ERROR_OUT_OF_RESOURCES,
    XCAT_ERROR_BACKEND_UNAVAILABLE,
    XCAT_ERROR_DEVICE_NOT_FOUND,
    XCAT_ERROR_BUILD_FAILED,
    XCAT_ERROR_UNSUPPORTED,
    XCAT_ERROR_WRONG_CONTEXT,
    XCAT_ERROR_BAD_STATE,
    XCAT_ERROR_BACKEND_FAILURE,
    XCAT_ERROR_INTERNAL,
};
#define NUM_STATUSES ((int)(sizeof ALL_STATUSES / sizeof ALL_STATUSES[0]))

START_TEST(test_status_codes_pinned)
{
    /* The values are part of the ABI: never renumbered. */
    for (int k = 0; k < NUM_STATUSES; ++k)
        ck_assert_int_eq((int)ALL_STATUSES[k], -k);
}
END_TEST

START_TEST(test_status_strings)
{
    for (int k = 0; k < NUM_STATUSES; ++k) {
        const char *s = xcat_status_string(ALL_STATUSES[k]);
        ck_assert_msg(s != NULL && s[0] != '\0', "status %d has no name", (int)ALL_STATUSES[k]);
        for (int m = 0; m < k; ++m)
            ck_assert_msg(strcmp(s, xcat_status_string(ALL_STATUSES[m])) != 0,
                          "statuses %d and %d share the name \"%s\"", (int)ALL_STATUSES[k],
                          (int)ALL_STATUSES[m], s);
    }
    const int unknown[] = {1, -17, -1000, 12345};
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; ++k)
        ck_assert_ptr_nonnull(xcat_status_string((xcat_status)unknown[k]));
}
END_TEST

START_TEST(test_free_null_and_names)
{
    xcat_context_free(NULL);
    xcat_tensor_free(NULL);
    xcat_loss_plan_free(NULL);
    ck_assert_ptr_nonnull(xcat_context_last_error(NULL));

    ck_assert_uint_eq(xcat_dtype_size(XCAT_DTYPE_F32), 4);
    ck_assert_uint_eq(xcat_dtype_size(XCAT_DTYPE_I32), 4);
    ck_assert_uint_eq(xcat_dtype_size(XCAT_DTYPE_I64), 8);
    ck_assert_uint_eq(xcat_dtype_size((xcat_dtype)77), 0);
    ck_assert_str_eq(xcat_isa_name(XCAT_ISA_SCALAR), "scalar");
    ck_assert_str_eq(xcat_isa_name(XCAT_ISA_AVX2), "avx2");
    ck_assert_str_eq(xcat_isa_name(XCAT_ISA_AVX512), "avx512");
    ck_assert_ptr_nonnull(xcat_isa_name((xcat_isa)99));
}
END_TEST

START_TEST(test_init_defaults)
{
    xcat_context_options opt;
    memset(&opt, 0xA5, sizeof opt);
    xcat_context_options_init(&opt);
    ck_assert_uint_eq(opt.struct_size, sizeof opt);
    ck_assert_int_eq(opt.backend, XCAT_BACKEND_AUTO);
    ck_assert_ptr_null(opt.device);
    ck_assert_int_eq(opt.num_threads, 0);
    ck_assert_int_eq(opt.isa_max, -1);
    ck_assert_uint_eq(opt.flags, 0);
    ck_assert_ptr_null(opt.error_message);
    ck_assert_ptr_null(opt.alloc);
    ck_assert_ptr_null(opt.free);

    xcat_loss_desc desc;
    memset(&desc, 0xA5, sizeof desc);
    xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
    ck_assert_uint_eq(desc.struct_size, sizeof desc);
    ck_assert_int_eq(desc.kind, XCAT_LOSS_CE);
    ck_assert_int_eq(desc.reduction, XCAT_REDUCTION_MEAN);
    ck_assert_int_eq(desc.dtype, XCAT_DTYPE_F32);
    ck_assert_int_eq(desc.ignore_index, -100);
    ck_assert(desc.scale == 1.0f && desc.softcap == 0.0f);
    ck_assert(desc.label_smoothing == 0.0f && desc.z_loss == 0.0f);
    ck_assert_uint_eq(desc.flags, 0);

    xcat_loss_args args;
    memset(&args, 0xA5, sizeof args);
    xcat_loss_args_init(&args);
    ck_assert_uint_eq(args.struct_size, sizeof args);
    ck_assert(!args.hidden && !args.items && !args.bias && !args.targets && !args.row_weights);

    xcat_context_info info;
    xcat_context_info_init(&info);
    ck_assert_uint_eq(info.struct_size, sizeof info);
}
END_TEST

/* ---- contexts ------------------------------------------------------------------------------- */

static xcat_context_info get_info(const xcat_context *ctx)
{
    xcat_context_info info;
    xcat_context_info_init(&info);
    test_expect_ok(ctx, xcat_context_get_info(ctx, &info), "xcat_context_get_info");
    return info;
}

/* The best ISA level the CPU (and, through GCC's checks, the OS) offers. */
static int cpu_isa_level(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return XCAT_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return XCAT_ISA_AVX2;
#endif
    return XCAT_ISA_SCALAR;
}

START_TEST(test_context_null_options)
{
    clear_env();
    xcat_context *ctx = (xcat_context *)&ctx; /* must be overwritten */
    ck_assert_int_eq(xcat_context_create(NULL, &ctx), XCAT_OK);
    ck_assert_ptr_nonnull(ctx);
    const xcat_context_info info = get_info(ctx);
    ck_assert(info.backend == XCAT_BACKEND_CPU || info.backend == XCAT_BACKEND_OPENCL);
    ck_assert(info.backend_name[0] != '\0');
    ck_assert_str_eq(xcat_context_last_error(ctx), "");
    ck_assert_int_eq(xcat_context_synchronize(ctx), XCAT_OK);
    xcat_context_free(ctx);

    ck_assert_int_eq(xcat_context_create(NULL, NULL), XCAT_ERROR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_context_info)
{
    xcat_context *best = test_context(-1, 2);
    const xcat_context_info info = get_info(best);
    ck_assert_int_eq(info.backend, XCAT_BACKEND_CPU);
    ck_assert_str_eq(info.backend_name, "cpu");
    ck_assert(info.device_name[0] != '\0');
    ck_assert_int_eq(info.num_threads, 2);
    ck_assert_int_le(info.isa, cpu_isa_level());
    ck_assert_str_eq(xcat_context_last_error(best), "");

    for (int level = XCAT_ISA_SCALAR; level <= XCAT_ISA_AVX512; ++level) {
        xcat_context *capped = test_context(level, 1);
        const xcat_context_info ci = get_info(capped);
        const int expect = level < (int)info.isa ? level : (int)info.isa;
        ck_assert_msg((int)ci.isa == expect, "isa_max %d: got %s, expected %s", level,
                      xcat_isa_name(ci.isa), xcat_isa_name((xcat_isa)expect));
        ck_assert_int_eq(ci.num_threads, 1);
        xcat_context_free(capped);
    }

    /* get_info takes a const context: it cannot record a last error, only return the code. */
    test_expect_error(NULL, xcat_context_get_info(best, NULL), XCAT_ERROR_INVALID_ARGUMENT, NULL,
                      "get_info(info NULL)");
    xcat_context_info out;
    xcat_context_info_init(&out);
    test_expect_error(NULL, xcat_context_get_info(NULL, &out), XCAT_ERROR_INVALID_ARGUMENT, NULL,
                      "get_info(ctx NULL)");
    xcat_context_free(best);
}
END_TEST

/* Create a context from `opt` (defaults when NULL), with an error buffer attached. */
static xcat_status create_with_message(xcat_context_options *opt, xcat_context **ctx,
                                       char *msg, size_t msg_size)
{
    xcat_context_options local;
    if (!opt) {
        xcat_context_options_init(&local);
        opt = &local;
    }
    msg[0] = '\0';
    opt->error_message = msg;
    opt->error_message_size = msg_size;
    *ctx = (xcat_context *)msg; /* must be overwritten */
    return xcat_context_create(opt, ctx);
}

/* Expect context creation to fail with `want`, *ctx NULL and a message mentioning `needle`. */
static void expect_create_fails(xcat_context_options *opt, xcat_status want, const char *needle)
{
    char msg[512];
    xcat_context *ctx = NULL;
    const xcat_status st = create_with_message(opt, &ctx, msg, sizeof msg);
    ck_assert_msg(st == want, "context create: expected %s, got %s (%s)", xcat_status_string(want),
                  xcat_status_string(st), msg);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(msg[0] != '\0', "no error message for %s", xcat_status_string(st));
    if (needle)
        ck_assert_msg(strstr(msg, needle) != NULL, "message \"%s\" does not quote \"%s\"", msg,
                      needle);
}

/* Create a context from `opt` (defaults when NULL), expecting success. */
static xcat_context *expect_create_ok(xcat_context_options *opt)
{
    char msg[512];
    xcat_context *ctx = NULL;
    const xcat_status st = create_with_message(opt, &ctx, msg, sizeof msg);
    ck_assert_msg(st == XCAT_OK && ctx, "context create failed: %s (%s)", xcat_status_string(st),
                  msg);
    return ctx;
}

START_TEST(test_env_backend_cpu)
{
    clear_env();
    setenv("XCAT_BACKEND", "cpu", 1);
    xcat_context *ctx = expect_create_ok(NULL);
    ck_assert_int_eq(get_info(ctx).backend, XCAT_BACKEND_CPU);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_env_backend_bogus)
{
    clear_env();
    setenv("XCAT_BACKEND", "bogus", 1);
    expect_create_fails(NULL, XCAT_ERROR_INVALID_ARGUMENT, "bogus");
    /* No error buffer: still fails cleanly. */
    xcat_context *ctx = NULL;
    ck_assert_int_eq(xcat_context_create(NULL, &ctx), XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_ptr_null(ctx);
    /* XCAT_CONTEXT_IGNORE_ENV: the variable is not read. */
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.flags = XCAT_CONTEXT_IGNORE_ENV;
    ctx = expect_create_ok(&opt);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_env_isa_max)
{
    clear_env();
    setenv("XCAT_ISA_MAX", "scalar", 1);
    xcat_context *ctx = expect_create_ok(NULL);
    const xcat_context_info info = get_info(ctx);
    if (info.backend == XCAT_BACKEND_CPU)
        ck_assert_int_eq(info.isa, XCAT_ISA_SCALAR);
    xcat_context_free(ctx);

    setenv("XCAT_ISA_MAX", "avx9", 1);
    expect_create_fails(NULL, XCAT_ERROR_INVALID_ARGUMENT, "avx9");
}
END_TEST

START_TEST(test_env_num_threads)
{
    clear_env();
    setenv("XCAT_BACKEND", "cpu", 1);
    setenv("XCAT_NUM_THREADS", "1", 1);
    xcat_context *ctx = expect_create_ok(NULL);
    ck_assert_int_eq(get_info(ctx).num_threads, 1);
    xcat_context_free(ctx);

    /* An explicit option beats the environment. */
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.num_threads = 2;
    ctx = expect_create_ok(&opt);
    ck_assert_int_eq(get_info(ctx).num_threads, 2);
    xcat_context_free(ctx);

    setenv("XCAT_NUM_THREADS", "lots", 1);
    expect_create_fails(NULL, XCAT_ERROR_INVALID_ARGUMENT, "lots");
}
END_TEST

START_TEST(test_env_backend_opencl)
{
    clear_env();
    setenv("XCAT_BACKEND", "opencl", 1);
    char msg[512];
    xcat_context *ctx = NULL;
    const xcat_status st = create_with_message(NULL, &ctx, msg, sizeof msg);
    if (st == XCAT_OK) {
        ck_assert_int_eq(get_info(ctx).backend, XCAT_BACKEND_OPENCL);
        xcat_context_free(ctx);
        return;
    }
    ck_assert_msg(st == XCAT_ERROR_BACKEND_UNAVAILABLE || st == XCAT_ERROR_DEVICE_NOT_FOUND,
                  "XCAT_BACKEND=opencl: %s", xcat_status_string(st));
    ck_assert_ptr_null(ctx);
    ck_assert_msg(msg[0] != '\0', "no message for %s", xcat_status_string(st));

    /* An explicit backend beats the environment. */
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_CPU;
    ctx = expect_create_ok(&opt);
    ck_assert_int_eq(get_info(ctx).backend, XCAT_BACKEND_CPU);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_context_bad_options)
{
    clear_env();
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.backend = (xcat_backend_kind)77;
    expect_create_fails(&opt, XCAT_ERROR_INVALID_ARGUMENT, NULL);

    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_CPU;
    opt.num_threads = -4;
    expect_create_fails(&opt, XCAT_ERROR_INVALID_ARGUMENT, NULL);

    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_CPU;
    opt.device = "zz-no-such-device-zz";
    expect_create_fails(&opt, XCAT_ERROR_DEVICE_NOT_FOUND, NULL);

    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_CPU;
    opt.device = "0"; /* the first (only) CPU device, by index */
    xcat_context *ctx = expect_create_ok(&opt);
    xcat_context_free(ctx);
}
END_TEST

/* ---- tensors --------------------------------------------------------------------------------- */

START_TEST(test_tensor_zeroed_and_shape)
{
    xcat_context *ctx = test_context(-1, 1);
    xcat_tensor *t = test_tensor(ctx, XCAT_DTYPE_F32, 5, 7, NULL);
    float *x = test_read_floats(t);
    test_check_all_zero("fresh tensor", x, 35);
    free(x);

    xcat_dtype dtype = XCAT_DTYPE_I64;
    int64_t rows = 0, cols = 0, stride = 0;
    ck_assert_int_eq(xcat_tensor_get_shape(t, &dtype, &rows, &cols, &stride), XCAT_OK);
    ck_assert_int_eq(dtype, XCAT_DTYPE_F32);
    ck_assert_int_eq(rows, 5);
    ck_assert_int_eq(cols, 7);
    ck_assert_int_eq(stride, 7);
    ck_assert_int_eq(xcat_tensor_get_shape(t, NULL, NULL, NULL, NULL), XCAT_OK);
    ck_assert_int_eq(xcat_tensor_get_shape(NULL, &dtype, &rows, &cols, &stride),
                     XCAT_ERROR_INVALID_ARGUMENT);
    xcat_tensor_free(t);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_tensor_roundtrip_strides)
{
    enum { R = 5, C = 7, SRC = 9, DST = 11 };
    test_rng_stream("roundtrip", 0);
    xcat_context *ctx = test_context(-1, 1);
    xcat_tensor *t = test_tensor(ctx, XCAT_DTYPE_F32, R, C, NULL);
    float src[R * SRC], dst[R * DST];
    test_fill_matrix(src, R, C, SRC, -5.0f, 5.0f);
    for (int k = 0; k < R * DST; ++k)
        dst[k] = -7.0f;
    test_expect_ok(ctx, xcat_tensor_write(t, src, SRC), "write with stride");
    test_expect_ok(ctx, xcat_tensor_read(t, dst, DST), "read with stride");
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < DST; ++c) {
            const float want = c < C ? src[r * SRC + c] : -7.0f; /* padding left alone */
            ck_assert_msg(dst[r * DST + c] == want, "(%d,%d): %g vs %g", r, c,
                          (double)dst[r * DST + c], (double)want);
        }
    test_expect_error(ctx, xcat_tensor_write(t, src, C - 1), XCAT_ERROR_INVALID_ARGUMENT, NULL,
                      "write stride < cols");
    test_expect_error(ctx, xcat_tensor_read(t, dst, -1), XCAT_ERROR_INVALID_ARGUMENT, NULL,
                      "read stride < 0");
    test_expect_error(ctx, xcat_tensor_write(t, NULL, 0), XCAT_ERROR_INVALID_ARGUMENT, NULL,
                      "write NULL");
    test_expect_error(ctx, xcat_tensor_read(t, NULL, 0), XCAT_ERROR_INVALID_ARGUMENT, NULL,
                      "read NULL");
    ck_assert_int_eq(xcat_tensor_write(NULL, src, 0), XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_tensor_read(NULL, dst, 0), XCAT_ERROR_INVALID_ARGUMENT);
    xcat_tensor_free(t);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_tensor_integer_roundtrip)
{
    xcat_context *ctx = test_context(-1, 1);
    const int64_t big[3] = {INT64_MIN, -100, INT64_MAX};
    const int32_t small[4] = {INT32_MIN, -1, 0, INT32_MAX};
    int64_t big_out[3] = {0};
    int32_t small_out[4] = {0};
    xcat_tensor *a = test_tensor(ctx, XCAT_DTYPE_I64, 3, 1, big);
    xcat_tensor *b = test_tensor(ctx, XCAT_DTYPE_I32, 1, 4, small);
    ck_assert_int_eq(xcat_tensor_read(a, big_out, 0), XCAT_OK);
    ck_assert_int_eq(xcat_tensor_read(b, small_out, 0), XCAT_OK);
    ck_assert_mem_eq(big, big_out, sizeof big);
    ck_assert_mem_eq(small, small_out, sizeof small);
    xcat_tensor_free(a);
    xcat_tensor_free(b);
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_tensor_wrap_host)
{
    enum { R = 4, C = 6, STRIDE = 10 };
    float host[R * STRIDE], out[R * C], in[R * C];
    for (int k = 0; k < R * STRIDE; ++k)
        host[k] = (float)k;
    xcat_context *ctx = test_context(-1, 1);
    xcat_tensor *t = NULL;
    test_expect_ok(ctx, xcat_tensor_wrap_host(ctx, XCAT_DTYPE_F32, R, C, STRIDE, host, &t),
                   "wrap_host");
    int64_t stride = 0;
    ck_assert_int_eq(xcat_tensor_get_shape(t, NULL, NULL, NULL, &stride), XCAT_OK);
    ck_assert_int_eq(stride, STRIDE);

    /* Zero-copy: a change to the host buffer is seen through the tensor... */
    host[2 * STRIDE + 3] = 1234.5f;
    ck_assert_int_eq(xcat_tensor_read(t, out, 0), XCAT_OK);
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c)
            ck_assert(out[r * C + c] == host[r * STRIDE + c]);
    /* ...and a write through the tensor lands in the host buffer, padding untouched. */
    for (int k = 0; k < R * C; ++k)
        in[k] = -(float)k;
    ck_assert_int_eq(xcat_tensor_write(t, in, 0), XCAT_OK);
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < STRIDE; ++c)
            ck_assert(host[r * STRIDE + c] == (c < C ? in[r * C + c] : (float)(r * STRIDE + c)));
    xcat_tensor_free(t); /* leaves the host memory alone */
    ck_assert(host[0] == in[0]);

    xcat_tensor *bad = NULL;
    test_expect_error(ctx, xcat_tensor_wrap_host(ctx, XCAT_DTYPE_F32, R, C, C - 1, host, &bad),
                      XCAT_ERROR_INVALID_ARGUMENT, "row_stride", "wrap_host row_stride < cols");
    ck_assert_ptr_null(bad);
    test_expect_error(ctx, xcat_tensor_wrap_host(ctx, XCAT_DTYPE_F32, R, C, C, NULL, &bad),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "wrap_host data NULL");
    test_expect_error(ctx, xcat_tensor_wrap_host(ctx, XCAT_DTYPE_F32, 0, C, C, host, &bad),
                      XCAT_ERROR_INVALID_ARGUMENT, "rows", "wrap_host rows 0");
    test_expect_error(ctx,
                      xcat_tensor_wrap_host(ctx, XCAT_DTYPE_F32, INT64_MAX / 2, 4, 4, host, &bad),
                      XCAT_ERROR_SIZE_OVERFLOW, NULL, "wrap_host size overflow");
    xcat_context_free(ctx);
}
END_TEST

START_TEST(test_tensor_create_errors)
{
    xcat_context *ctx = test_context(-1, 1);
    xcat_tensor *t = (xcat_tensor *)ctx; /* must be reset to NULL on error */
    test_expect_error(ctx, xcat_tensor_create(ctx, XCAT_DTYPE_F32, 0, 3, &t),
                      XCAT_ERROR_INVALID_ARGUMENT, "rows", "rows 0");
    ck_assert_ptr_null(t);
    test_expect_error(ctx, xcat_tensor_create(ctx, XCAT_DTYPE_F32, -2, 3, &t),
                      XCAT_ERROR_INVALID_ARGUMENT, "rows", "rows -2");
    test_expect_error(ctx, xcat_tensor_create(ctx, XCAT_DTYPE_F32, 3, 0, &t),
                      XCAT_ERROR_INVALID_ARGUMENT, "cols", "cols 0");
    test_expect_error(ctx, xcat_tensor_create(ctx, (xcat_dtype)42, 3, 3, &t),
                      XCAT_ERROR_INVALID_ARGUMENT, "dtype", "unknown dtype");
    test_expect_error(ctx, xcat_tensor_create(ctx, XCAT_DTYPE_F32, 3, 3, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "out NULL");
    /* 2^31 · 2^31 elements · 4 bytes = 2^64 bytes; INT64_MAX · 2 elements overflows int64. */
    test_expect_error(ctx,
                      xcat_tensor_create(ctx, XCAT_DTYPE_F32, INT64_C(1) << 31, INT64_C(1) << 31,
                                         &t),
                      XCAT_ERROR_SIZE_OVERFLOW, NULL, "2^62 elements of 4 bytes");
    test_expect_error(ctx, xcat_tensor_create(ctx, XCAT_DTYPE_I64, INT64_MAX, 2, &t),
                      XCAT_ERROR_SIZE_OVERFLOW, NULL, "INT64_MAX x 2");
    ck_assert_ptr_null(t);
    ck_assert_int_eq(xcat_tensor_create(NULL, XCAT_DTYPE_F32, 3, 3, &t),
                     XCAT_ERROR_INVALID_ARGUMENT);
    xcat_context_free(ctx);
}
END_TEST

/* ---- a small loss problem shared by the allocation and context tests ------------------------- */

enum { SN = 4, SC = 10, SD = 3 };

typedef struct small_problem {
    xcat_tensor *h, *e, *y, *loss, *dh, *de;
} small_problem;

static void small_problem_free(small_problem *p)
{
    TEST_FREE_TENSORS(p->h, p->e, p->y, p->loss, p->dh, p->de);
    memset(p, 0, sizeof *p);
}

/* Create one tensor and fill it from `data` (may be NULL); returns the first failure. */
static xcat_status make_tensor(xcat_context *ctx, xcat_dtype dtype, int64_t rows, int64_t cols,
                               const void *data, xcat_tensor **out)
{
    xcat_status st = xcat_tensor_create(ctx, dtype, rows, cols, out);
    if (st == XCAT_OK && data)
        st = xcat_tensor_write(*out, data, 0);
    return st;
}

/* Build the tensors of a small problem; stops at (and returns) the first failure. */
static xcat_status small_problem_make(xcat_context *ctx, small_problem *p)
{
    float h[SN * SD], e[SC * SD];
    const int64_t y[SN] = {1, -100, 9, 0};
    for (int k = 0; k < SN * SD; ++k)
        h[k] = 0.1f * (float)(k % 7) - 0.3f;
    for (int k = 0; k < SC * SD; ++k)
        e[k] = 0.05f * (float)(k % 11) - 0.2f;
    memset(p, 0, sizeof *p);
    xcat_status st = make_tensor(ctx, XCAT_DTYPE_F32, SN, SD, h, &p->h);
    if (st == XCAT_OK)
        st = make_tensor(ctx, XCAT_DTYPE_F32, SC, SD, e, &p->e);
    if (st == XCAT_OK)
        st = make_tensor(ctx, XCAT_DTYPE_I64, SN, 1, y, &p->y);
    if (st == XCAT_OK)
        st = make_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL, &p->loss);
    if (st == XCAT_OK)
        st = make_tensor(ctx, XCAT_DTYPE_F32, SN, SD, NULL, &p->dh);
    if (st == XCAT_OK)
        st = make_tensor(ctx, XCAT_DTYPE_F32, SC, SD, NULL, &p->de);
    return st;
}

static xcat_loss_args small_problem_args(const small_problem *p)
{
    xcat_loss_args args;
    xcat_loss_args_init(&args);
    args.hidden = p->h;
    args.items = p->e;
    args.targets = p->y;
    return args;
}

/* Plan, forward and backward on a small problem; returns the first failure. */
static xcat_status small_problem_run(xcat_context *ctx, const small_problem *p,
                                     xcat_loss_plan **plan)
{
    xcat_loss_desc desc;
    xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
    const xcat_loss_args args = small_problem_args(p);
    xcat_status st = xcat_loss_plan_create(ctx, &desc, SN, SC, SD, plan);
    if (st == XCAT_OK)
        st = xcat_loss_forward(*plan, &args, p->loss, NULL);
    if (st == XCAT_OK)
        st = xcat_loss_backward(*plan, &args, NULL, p->dh, p->de, NULL);
    return st;
}

/* ---- allocation failure ---------------------------------------------------------------------- */

typedef struct counting_allocator {
    int64_t budget;      /* allocations still granted; < 0: unlimited */
    int64_t outstanding; /* granted and not yet freed */
    int64_t denied;
    int bad_alignment;
} counting_allocator;

static void *counting_alloc(void *user, size_t size, size_t alignment)
{
    counting_allocator *a = user;
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 4096)
        a->bad_alignment = 1;
    if (a->budget == 0) {
        a->denied++;
        return NULL;
    }
    if (a->budget > 0)
        a->budget--;
    const size_t align = alignment < sizeof(void *) ? sizeof(void *) : alignment;
    const size_t rounded = (size + align - 1) / align * align;
    void *ptr = aligned_alloc(align, rounded ? rounded : align);
    if (ptr)
        a->outstanding++;
    return ptr;
}

static void counting_free(void *user, void *ptr)
{
    counting_allocator *a = user;
    if (ptr)
        a->outstanding--;
    free(ptr);
}

static xcat_status counting_context(counting_allocator *a, xcat_context **ctx)
{
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_CPU;
    opt.flags = XCAT_CONTEXT_IGNORE_ENV;
    opt.num_threads = 2;
    opt.alloc = counting_alloc;
    opt.free = counting_free;
    opt.alloc_user = a;
    return xcat_context_create(&opt, ctx);
}

/* Context → tensors → plan → forward → backward → free everything; returns the first failure. */
static xcat_status alloc_sequence(counting_allocator *a)
{
    xcat_context *ctx = NULL;
    xcat_loss_plan *plan = NULL;
    small_problem p;
    memset(&p, 0, sizeof p);
    xcat_status st = counting_context(a, &ctx);
    if (st == XCAT_OK)
        st = small_problem_make(ctx, &p);
    if (st == XCAT_OK)
        st = small_problem_run(ctx, &p, &plan);
    xcat_loss_plan_free(plan);
    small_problem_free(&p);
    xcat_context_free(ctx);
    return st;
}

START_TEST(test_alloc_failure_everywhere)
{
    int64_t n = 0;
    for (; n < 10000; ++n) {
        counting_allocator a = {.budget = n};
        const xcat_status st = alloc_sequence(&a);
        ck_assert_msg(a.outstanding == 0, "budget %lld: %lld allocations leaked (status %s)",
                      (long long)n, (long long)a.outstanding, xcat_status_string(st));
        ck_assert_msg(!a.bad_alignment, "alignment not a power of two <= 4096");
        if (st == XCAT_OK)
            break;
        ck_assert_msg(st == XCAT_ERROR_OUT_OF_MEMORY && a.denied > 0,
                      "budget %lld: got %s (%lld allocations denied), expected out of memory",
                      (long long)n, xcat_status_string(st), (long long)a.denied);
    }
    ck_assert_msg(n > 0, "the context did not allocate through options.alloc");
    ck_assert_msg(n < 10000, "the sequence never succeeded");
    printf("alloc failure: the sequence needs %lld allocations\n", (long long)n);
}
END_TEST

START_TEST(test_alloc_used_for_everything)
{
    counting_allocator a = {.budget = -1};
    xcat_context *ctx = NULL;
    ck_assert_int_eq(counting_context(&a, &ctx), XCAT_OK);
    const int64_t after_ctx = a.outstanding;
    ck_assert_int_ge(after_ctx, 1);
    small_problem p;
    ck_assert_int_eq(small_problem_make(ctx, &p), XCAT_OK);
    const int64_t after_tensors = a.outstanding;
    ck_assert_int_gt(after_tensors, after_ctx);
    xcat_loss_plan *plan = NULL;
    test_expect_ok(ctx, small_problem_run(ctx, &p, &plan), "small problem");
    ck_assert_int_gt(a.outstanding, after_tensors); /* the plan's workspace */
    xcat_loss_plan_free(plan);
    ck_assert_int_eq(a.outstanding, after_tensors);
    small_problem_free(&p);
    ck_assert_int_eq(a.outstanding, after_ctx);
    xcat_context_free(ctx);
    ck_assert_int_eq(a.outstanding, 0);
    ck_assert(!a.bad_alignment);
}
END_TEST

/* ---- struct_size: a binary built against an older, shorter struct keeps working -------------- */

START_TEST(test_struct_size_compat)
{
    clear_env();
    /* Options ending before the allocator fields: those fields must not be read. */
    counting_allocator a = {.budget = 0};
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_CPU;
    opt.alloc = counting_alloc;
    opt.free = counting_free;
    opt.alloc_user = &a;
    opt.struct_size = (uint32_t)offsetof(xcat_context_options, alloc);
    xcat_context *ctx = NULL;
    ck_assert_int_eq(xcat_context_create(&opt, &ctx), XCAT_OK);
    ck_assert_int_eq(a.denied, 0);

    /* An output struct ending before `isa`: nothing past struct_size may be written. */
    xcat_context_info info;
    xcat_context_info_init(&info);
    info.struct_size = (uint32_t)offsetof(xcat_context_info, isa);
    info.isa = (xcat_isa)12345;
    info.num_threads = -777;
    ck_assert_int_eq(xcat_context_get_info(ctx, &info), XCAT_OK);
    ck_assert_int_eq(info.backend, XCAT_BACKEND_CPU);
    ck_assert_int_eq((int)info.isa, 12345);
    ck_assert_int_eq(info.num_threads, -777);

    /* A loss descriptor from before the sampled-kind fields. */
    small_problem p;
    test_expect_ok(ctx, small_problem_make(ctx, &p), "tensors");
    xcat_loss_desc desc;
    xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
    desc.struct_size = (uint32_t)offsetof(xcat_loss_desc, num_negatives);
    xcat_loss_plan *plan = NULL;
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &desc, SN, SC, SD, &plan), "short desc");
    xcat_loss_plan_free(plan);
    small_problem_free(&p);
    xcat_context_free(ctx);
}
END_TEST

/* ---- WRONG_CONTEXT --------------------------------------------------------------------------- */

START_TEST(test_wrong_context)
{
    xcat_context *a = test_context(-1, 1);
    xcat_context *b = test_context(-1, 1);
    small_problem pa, pb;
    test_expect_ok(a, small_problem_make(a, &pa), "tensors of A");
    test_expect_ok(b, small_problem_make(b, &pb), "tensors of B");
    xcat_loss_plan *plan_b = NULL;
    test_expect_ok(b, small_problem_run(b, &pb, &plan_b), "plan of B on B's tensors");

    xcat_loss_args args = small_problem_args(&pa);
    test_expect_error(b, xcat_loss_forward(plan_b, &args, pb.loss, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "forward: A's inputs, B's plan");
    test_expect_error(b, xcat_loss_backward(plan_b, &args, NULL, pb.dh, pb.de, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "backward: A's inputs, B's plan");
    args = small_problem_args(&pb);
    args.items = pa.e;
    test_expect_error(b, xcat_loss_forward(plan_b, &args, pb.loss, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "forward: A's items only");
    args = small_problem_args(&pb);
    test_expect_error(b, xcat_loss_forward(plan_b, &args, pa.loss, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "forward: A's loss tensor");
    test_expect_error(b, xcat_loss_backward(plan_b, &args, NULL, pb.dh, pa.de, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "backward: A's d_items");

    xcat_loss_plan_free(plan_b);
    small_problem_free(&pa);
    small_problem_free(&pb);
    xcat_context_free(a);
    xcat_context_free(b);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *basics = tcase_create("basics");
    tcase_add_test(basics, test_version);
    tcase_add_test(basics, test_status_codes_pinned);
    tcase_add_test(basics, test_status_strings);
    tcase_add_test(basics, test_free_null_and_names);
    tcase_add_test(basics, test_init_defaults);
    suite_add_tcase(s, basics);

    TCase *ctx = tcase_create("context");
    tcase_add_test(ctx, test_context_null_options);
    tcase_add_test(ctx, test_context_info);
    tcase_add_test(ctx, test_env_backend_cpu);
    tcase_add_test(ctx, test_env_backend_bogus);
    tcase_add_test(ctx, test_env_isa_max);
    tcase_add_test(ctx, test_env_num_threads);
    tcase_add_test(ctx, test_env_backend_opencl);
    tcase_add_test(ctx, test_context_bad_options);
    suite_add_tcase(s, ctx);

    TCase *tensors = tcase_create("tensor");
    tcase_add_test(tensors, test_tensor_zeroed_and_shape);
    tcase_add_test(tensors, test_tensor_roundtrip_strides);
    tcase_add_test(tensors, test_tensor_integer_roundtrip);
    tcase_add_test(tensors, test_tensor_wrap_host);
    tcase_add_test(tensors, test_tensor_create_errors);
    suite_add_tcase(s, tensors);

    TCase *mem = tcase_create("memory");
    tcase_set_timeout(mem, 60);
    tcase_add_test(mem, test_alloc_failure_everywhere);
    tcase_add_test(mem, test_alloc_used_for_everything);
    tcase_add_test(mem, test_wrong_context);
    tcase_add_test(mem, test_struct_size_compat);
    suite_add_tcase(s, mem);
    return s;
}

int main(void)
{
    return test_run_suite(api_suite());
}
