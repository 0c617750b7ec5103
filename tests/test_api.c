/*
 * Suite "api": version, status strings, *_init defaults, contexts (options, info, XCAT_*
 * environment), devices (count, info, selection by index and name), tensors (create,
 * write/read with strides, wrap_host zero-copy, errors), allocation failure on every
 * allocation without leaks, WRONG_CONTEXT, and on every OpenCL device: tensors, error paths
 * (absurd sizes, wrap_host, mixed backends), the interop entry points of xcat_opencl.h, the
 * on-disk program cache and kernel build failures.
 * Run with CK_FORK=yes (set by CTest): tests call setenv() freely.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#ifdef XCAT_TEST_HAVE_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include "xcat_opencl.h"
#endif

/* Start each test from a known environment: CTest may run with XCAT_* set by the user. */
static void clear_env(void)
{
    unsetenv("XCAT_BACKEND");
    unsetenv("XCAT_DEVICE");
    unsetenv("XCAT_ISA_MAX");
    unsetenv("XCAT_NUM_THREADS");
    unsetenv("XCAT_CL_DIR");
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

/* Number of OpenCL devices the library sees; -1 when the backend is not built in. */
static int opencl_device_count(void)
{
    int32_t n = -7;
    const xcat_status st = xcat_device_count(XCAT_BACKEND_OPENCL, &n);
    if (st == XCAT_ERROR_BACKEND_UNAVAILABLE) {
        ck_assert_int_eq(n, 0);
        return -1;
    }
    ck_assert_msg(st == XCAT_OK, "xcat_device_count(OPENCL): %s", xcat_status_string(st));
    ck_assert_int_ge(n, 0);
    return (int)n;
}

START_TEST(test_env_backend_opencl)
{
    clear_env();
    const int devices = opencl_device_count();
    setenv("XCAT_BACKEND", "opencl", 1);
    char msg[512];
    xcat_context *ctx = NULL;
    const xcat_status st = create_with_message(NULL, &ctx, msg, sizeof msg);
    if (devices > 0) {
        /* A device is there (PoCL counts): XCAT_BACKEND=opencl must give an OpenCL context. */
        ck_assert_msg(st == XCAT_OK, "XCAT_BACKEND=opencl with %d devices: %s (%s)", devices,
                      xcat_status_string(st), msg);
        const xcat_context_info info = get_info(ctx);
        ck_assert_int_eq(info.backend, XCAT_BACKEND_OPENCL);
        ck_assert_str_eq(info.backend_name, "opencl");
        ck_assert(info.device_name[0] != '\0');
        xcat_context_free(ctx);
        return;
    }
    ck_assert_msg(st == XCAT_ERROR_BACKEND_UNAVAILABLE,
                  "XCAT_BACKEND=opencl without devices: %s", xcat_status_string(st));
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

/* ---- devices --------------------------------------------------------------------------------- */

START_TEST(test_device_count)
{
    int32_t n = -1;
    ck_assert_int_eq(xcat_device_count(XCAT_BACKEND_CPU, &n), XCAT_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(xcat_device_count(XCAT_BACKEND_CPU, NULL), XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_device_count(XCAT_BACKEND_AUTO, &n), XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_device_count((xcat_backend_kind)77, &n), XCAT_ERROR_INVALID_ARGUMENT);
    const int devices = opencl_device_count();
    printf("note: %d OpenCL device(s)%s\n", devices < 0 ? 0 : devices,
           devices < 0 ? " (backend not built in)" : "");
    /* Counting twice gives the same answer. */
    ck_assert_int_eq(opencl_device_count(), devices);
}
END_TEST

START_TEST(test_device_info_cpu)
{
    xcat_device_info info;
    memset(&info, 0xA5, sizeof info);
    xcat_device_info_init(&info);
    ck_assert_uint_eq(info.struct_size, sizeof info);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_CPU, 0, &info), XCAT_OK);
    ck_assert_uint_eq(info.struct_size, sizeof info);
    ck_assert_int_eq(info.backend, XCAT_BACKEND_CPU);
    ck_assert_int_eq(info.index, 0);
    ck_assert_int_eq(info.is_cpu, 1);
    ck_assert_int_eq(info.is_gpu, 0);
    ck_assert_msg(info.name[0] != '\0', "CPU device has no name");
    ck_assert_str_eq(info.platform, "");
    ck_assert_str_eq(info.opencl_c_version, "");
    ck_assert_int_ge(info.compute_units, 1);
    ck_assert_int_eq(info.inline_ptx, 0);
    /* The best level: what a context without a cap runs at, and what cpuid says. */
    xcat_context *ctx = test_context(-1, 1);
    ck_assert_msg(info.isa == get_info(ctx).isa, "device isa %s, best context runs %s",
                  xcat_isa_name(info.isa), xcat_isa_name(get_info(ctx).isa));
    ck_assert_int_le(info.isa, cpu_isa_level());
    xcat_context_free(ctx);

    xcat_device_info other;
    xcat_device_info_init(&other);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_CPU, 1, &other),
                     XCAT_ERROR_DEVICE_NOT_FOUND);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_CPU, -1, &other),
                     XCAT_ERROR_DEVICE_NOT_FOUND);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_AUTO, 0, &other),
                     XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_device_get_info((xcat_backend_kind)77, 0, &other),
                     XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_CPU, 0, NULL),
                     XCAT_ERROR_INVALID_ARGUMENT);

    /* A caller built against a shorter struct: nothing past its struct_size is written. */
    xcat_device_info short_info;
    memset(&short_info, 0x5A, sizeof short_info);
    xcat_device_info_init(&short_info);
    short_info.struct_size = (uint32_t)offsetof(xcat_device_info, vendor);
    memset(short_info.vendor, 0x5A, sizeof short_info.vendor);
    short_info.isa = (xcat_isa)4242;
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_CPU, 0, &short_info), XCAT_OK);
    ck_assert_uint_eq(short_info.struct_size, offsetof(xcat_device_info, vendor));
    ck_assert_str_eq(short_info.name, info.name);
    ck_assert_int_eq((unsigned char)short_info.vendor[0], 0x5A);
    ck_assert_int_eq((int)short_info.isa, 4242);
}
END_TEST

/* Does an int32 field of `info` look like a boolean? */
#define CK_BOOL(info, field)                                                                     \
    ck_assert_msg((info).field == 0 || (info).field == 1, "device %d: " #field " = %d",         \
                  (int)(info).index, (int)(info).field)

static int tolower_ascii(char c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int contains_nocase(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (; *hay; ++hay) {
        size_t k = 0;
        while (k < n && hay[k] && tolower_ascii(hay[k]) == tolower_ascii(needle[k]))
            ++k;
        if (k == n)
            return 1;
    }
    return 0;
}

START_TEST(test_device_info_opencl)
{
    clear_env();
    const int devices = opencl_device_count();
    xcat_device_info info;
    xcat_device_info_init(&info);
    if (devices < 0) {
        ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_OPENCL, 0, &info),
                         XCAT_ERROR_BACKEND_UNAVAILABLE);
        printf("note: OpenCL backend not built in: OpenCL device info not tested\n");
        return;
    }
    for (int i = 0; i < devices; ++i) {
        xcat_device_info_init(&info);
        ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_OPENCL, i, &info), XCAT_OK);
        ck_assert_int_eq(info.backend, XCAT_BACKEND_OPENCL);
        ck_assert_int_eq(info.index, i);
        ck_assert_msg(info.name[0] && info.vendor[0] && info.platform[0],
                      "device %d: name '%s', vendor '%s', platform '%s'", i, info.name,
                      info.vendor, info.platform);
        ck_assert_msg(strncmp(info.opencl_c_version, "OpenCL C ", 9) == 0,
                      "device %d: opencl_c_version '%s'", i, info.opencl_c_version);
        ck_assert_msg(info.driver_version[0] != '\0', "device %d: no driver version", i);
        CK_BOOL(info, is_gpu);
        CK_BOOL(info, is_cpu);
        CK_BOOL(info, has_fp16);
        CK_BOOL(info, has_subgroups);
        CK_BOOL(info, inline_ptx);
        ck_assert_msg(!(info.is_gpu && info.is_cpu), "device %d: both GPU and CPU", i);
        ck_assert_int_ge(info.compute_units, 1);
        ck_assert_msg(info.global_mem_bytes >= (INT64_C(1) << 20) &&
                          info.max_alloc_bytes >= (INT64_C(1) << 20) &&
                          info.max_alloc_bytes <= info.global_mem_bytes,
                      "device %d: global %lld, max alloc %lld bytes", i,
                      (long long)info.global_mem_bytes, (long long)info.max_alloc_bytes);
        /* OpenCL 1.2 minimums: 16 KiB of local memory (full profile), 1 work-item. */
        ck_assert_msg(info.local_mem_bytes >= 16384 && info.local_mem_bytes < (INT64_C(1) << 32),
                      "device %d: local memory %lld bytes", i, (long long)info.local_mem_bytes);
        ck_assert_msg(info.max_work_group_size >= 1 && info.max_work_group_size <= 65536,
                      "device %d: max work-group size %lld", i,
                      (long long)info.max_work_group_size);
        /* Inline PTX only compiles for NVIDIA's PTX back end: a CPU device accepting it means
         * the probe is fooled (e.g. a compiler that checks asm only at code generation). */
        if (info.is_cpu)
            ck_assert_msg(info.inline_ptx == 0,
                          "device %d ('%s', a CPU) reports inline_ptx = 1", i, info.name);
        printf("note: OpenCL device %d: %s | %s | %s | %s | %s | %d CUs | fp16 %d subgroups %d "
               "ptx %d\n", i, info.name, info.vendor, info.platform, info.driver_version,
               info.opencl_c_version, (int)info.compute_units, (int)info.has_fp16,
               (int)info.has_subgroups, (int)info.inline_ptx);

        /* The context on this device (by index) names it. */
        char index[16];
        snprintf(index, sizeof index, "%d", i);
        xcat_context_options opt;
        xcat_context_options_init(&opt);
        opt.backend = XCAT_BACKEND_OPENCL;
        opt.device = index;
        opt.flags = XCAT_CONTEXT_IGNORE_ENV;
        xcat_context *ctx = expect_create_ok(&opt);
        const xcat_context_info ci = get_info(ctx);
        ck_assert_int_eq(ci.backend, XCAT_BACKEND_OPENCL);
        ck_assert_msg(strstr(ci.device_name, info.name) != NULL,
                      "context on device %d is named '%s', the device '%s'", i, ci.device_name,
                      info.name);
        xcat_context_free(ctx);
    }
    xcat_device_info_init(&info);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_OPENCL, devices, &info),
                     XCAT_ERROR_DEVICE_NOT_FOUND);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_OPENCL, -1, &info),
                     XCAT_ERROR_DEVICE_NOT_FOUND);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_OPENCL, 0, NULL),
                     XCAT_ERROR_INVALID_ARGUMENT);
    if (devices == 0)
        printf("note: no OpenCL device installed: per-device info not tested\n");
}
END_TEST

/* Device selection: options.device and XCAT_DEVICE, by index and by name, and their errors. */
START_TEST(test_device_selection)
{
    clear_env();
    const int devices = opencl_device_count();
    if (devices <= 0) {
        printf("note: no OpenCL device: device selection tested on the CPU only\n");
        return;
    }
    xcat_device_info first;
    xcat_device_info_init(&first);
    ck_assert_int_eq(xcat_device_get_info(XCAT_BACKEND_OPENCL, 0, &first), XCAT_OK);
    xcat_context_options opt;
    char bad_index[16];
    snprintf(bad_index, sizeof bad_index, "%d", devices);

    /* XCAT_DEVICE with XCAT_BACKEND=opencl: a bad name or index is DEVICE_NOT_FOUND. */
    setenv("XCAT_BACKEND", "opencl", 1);
    setenv("XCAT_DEVICE", "zz-no-such-device-zz", 1);
    expect_create_fails(NULL, XCAT_ERROR_DEVICE_NOT_FOUND, NULL);
    setenv("XCAT_DEVICE", bad_index, 1);
    expect_create_fails(NULL, XCAT_ERROR_DEVICE_NOT_FOUND, NULL);
    setenv("XCAT_DEVICE", "0", 1);
    xcat_context *ctx = expect_create_ok(NULL);
    ck_assert(strstr(get_info(ctx).device_name, first.name) != NULL);
    xcat_context_free(ctx);

    /* By a piece of the name with its case flipped (a piece with a letter: an all-digit
     * selector would be read as an index). */
    const size_t len = strlen(first.name);
    for (size_t at = 0; at + 4 <= len; ++at) {
        char piece[5];
        int letters = 0;
        for (size_t k = 0; k < 4; ++k) {
            const char ch = first.name[at + k];
            letters += tolower_ascii(ch) >= 'a' && tolower_ascii(ch) <= 'z';
            piece[k] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32)
                                                : (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        piece[4] = '\0';
        if (!letters)
            continue;
        setenv("XCAT_DEVICE", piece, 1);
        ctx = expect_create_ok(NULL);
        const xcat_context_info ci = get_info(ctx);
        ck_assert_int_eq(ci.backend, XCAT_BACKEND_OPENCL);
        ck_assert_msg(contains_nocase(ci.device_name, piece), "XCAT_DEVICE='%s' chose '%s'",
                      piece, ci.device_name);
        xcat_context_free(ctx);
        break;
    }

    /* IGNORE_ENV: neither variable is read; the explicit backend is used on device 0. */
    setenv("XCAT_DEVICE", "zz-no-such-device-zz", 1);
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_OPENCL;
    opt.flags = XCAT_CONTEXT_IGNORE_ENV;
    ctx = expect_create_ok(&opt);
    ck_assert_int_eq(get_info(ctx).backend, XCAT_BACKEND_OPENCL);
    xcat_context_free(ctx);
    /* An explicit options.device beats XCAT_DEVICE. */
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_OPENCL;
    opt.device = "0";
    ctx = expect_create_ok(&opt);
    xcat_context_free(ctx);
    unsetenv("XCAT_DEVICE");
    unsetenv("XCAT_BACKEND");

    /* options.device errors. */
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_OPENCL;
    opt.flags = XCAT_CONTEXT_IGNORE_ENV;
    opt.device = "zz-no-such-device-zz";
    expect_create_fails(&opt, XCAT_ERROR_DEVICE_NOT_FOUND, "zz-no-such-device-zz");
    opt.device = bad_index;
    expect_create_fails(&opt, XCAT_ERROR_DEVICE_NOT_FOUND, NULL);
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
    int opencl_device; /* counting_context(): -1 = the CPU backend, else this OpenCL device */
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
    char device[16];
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_CPU;
    if (a->opencl_device >= 0) {
        snprintf(device, sizeof device, "%d", a->opencl_device);
        opt.backend = XCAT_BACKEND_OPENCL;
        opt.device = device;
    }
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

/* Deny the n-th host allocation of alloc_sequence() for n = 0, 1, … until it succeeds: every
 * failure is OUT_OF_MEMORY and frees everything it got. On `opencl_device` (-1: the CPU). */
static void alloc_failure_everywhere(int opencl_device)
{
    int64_t n = 0;
    for (; n < 10000; ++n) {
        counting_allocator a = {.budget = n, .opencl_device = opencl_device};
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
    printf("alloc failure: the sequence needs %lld allocations on %s\n", (long long)n,
           opencl_device < 0 ? "the CPU" : "OpenCL");
}

START_TEST(test_alloc_failure_everywhere)
{
    alloc_failure_everywhere(-1);
}
END_TEST

START_TEST(test_alloc_used_for_everything)
{
    counting_allocator a = {.budget = -1, .opencl_device = -1};
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
    counting_allocator a = {.budget = 0, .opencl_device = -1};
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

/* ---- OpenCL: tensors, error paths, interop, program cache, build failures ------------------- */
/* These loop over the OpenCL entries of the target table (test_util.h): one iteration per
 * device, or one that prints why there is none and passes. */

/* The small problem's outputs on `ctx`: loss, d_hidden, d_items, read back. */
typedef struct small_result {
    float loss;
    float dh[SN * SD], de[SC * SD];
} small_result;

static small_result small_problem_result(xcat_context *ctx, const char *what)
{
    small_problem p;
    xcat_loss_plan *plan = NULL;
    small_result r;
    memset(&r, 0, sizeof r);
    test_expect_ok(ctx, small_problem_make(ctx, &p), what);
    test_expect_ok(ctx, small_problem_run(ctx, &p, &plan), what);
    test_expect_ok(ctx, xcat_tensor_read(p.loss, &r.loss, 0), what);
    test_expect_ok(ctx, xcat_tensor_read(p.dh, r.dh, 0), what);
    test_expect_ok(ctx, xcat_tensor_read(p.de, r.de, 0), what);
    xcat_loss_plan_free(plan);
    small_problem_free(&p);
    ck_assert_msg(isfinite(r.loss) && r.loss > 0.0f, "%s: loss %g", what, (double)r.loss);
    return r;
}

static void expect_same_result(const char *what, const small_result *a, const small_result *b)
{
    ck_assert_msg(memcmp(a, b, sizeof *a) == 0, "%s: results differ (loss %.9g vs %.9g)", what,
                  (double)a->loss, (double)b->loss);
}

/* The small problem on the CPU: the OpenCL loss must agree to rounding. */
static void expect_cpu_loss(const small_result *r, const char *what)
{
    xcat_context *cpu = test_context(-1, 1);
    const small_result c = small_problem_result(cpu, "small problem on the CPU");
    xcat_context_free(cpu);
    ck_assert_msg(fabs((double)r->loss - (double)c.loss) <= 1e-5 * (1.0 + fabs((double)c.loss)),
                  "%s: OpenCL loss %.9g, CPU loss %.9g", what, (double)r->loss, (double)c.loss);
}

START_TEST(test_opencl_tensors)
{
    clear_env();
    xcat_context *ctx = test_target_context(_i, 0);
    if (!ctx)
        return;
    enum { R = 5, C = 7, SRC = 9, DST = 11 };
    test_rng_stream("opencl roundtrip", 0);

    /* Created tensors are zeroed and contiguous. */
    xcat_tensor *t = test_tensor(ctx, XCAT_DTYPE_F32, R, C, NULL);
    float *zero = test_read_floats(t);
    test_check_all_zero("fresh OpenCL tensor", zero, R * C);
    free(zero);
    int64_t rows = 0, cols = 0, stride = 0;
    ck_assert_int_eq(xcat_tensor_get_shape(t, NULL, &rows, &cols, &stride), XCAT_OK);
    ck_assert(rows == R && cols == C && stride == C);

    /* Strided write and read; the destination's padding is left alone. */
    float src[R * SRC], dst[R * DST];
    test_fill_matrix(src, R, C, SRC, -5.0f, 5.0f);
    for (int k = 0; k < R * DST; ++k)
        dst[k] = -7.0f;
    test_expect_ok(ctx, xcat_tensor_write(t, src, SRC), "write with stride");
    test_expect_ok(ctx, xcat_tensor_read(t, dst, DST), "read with stride");
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < DST; ++c)
            ck_assert_msg(dst[r * DST + c] == (c < C ? src[r * SRC + c] : -7.0f),
                          "(%d,%d): %g", r, c, (double)dst[r * DST + c]);
    test_expect_error(ctx, xcat_tensor_write(t, src, C - 1), XCAT_ERROR_INVALID_ARGUMENT, NULL,
                      "write stride < cols");
    xcat_tensor_free(t);

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
    TEST_FREE_TENSORS(a, b);

    /* Host memory cannot be wrapped on OpenCL. */
    float host[R * C] = {0};
    t = (xcat_tensor *)ctx;
    test_expect_error(ctx, xcat_tensor_wrap_host(ctx, XCAT_DTYPE_F32, R, C, C, host, &t),
                      XCAT_ERROR_UNSUPPORTED, NULL, "wrap_host on OpenCL");
    ck_assert_ptr_null(t);

    /* Argument errors as on the CPU. */
    test_expect_error(ctx, xcat_tensor_create(ctx, XCAT_DTYPE_F32, 0, 3, &t),
                      XCAT_ERROR_INVALID_ARGUMENT, "rows", "rows 0");
    test_expect_error(ctx,
                      xcat_tensor_create(ctx, XCAT_DTYPE_F32, INT64_C(1) << 31, INT64_C(1) << 31,
                                         &t),
                      XCAT_ERROR_SIZE_OVERFLOW, NULL, "2^62 elements of 4 bytes");

    /* 2^40 bytes (1 TiB): more than any device gives; the context survives the failure. */
    t = (xcat_tensor *)ctx;
    const xcat_status st = xcat_tensor_create(ctx, XCAT_DTYPE_F32, INT64_C(1) << 20,
                                              INT64_C(1) << 18, &t);
    ck_assert_msg(st == XCAT_ERROR_DEVICE_OUT_OF_MEMORY || st == XCAT_ERROR_OUT_OF_MEMORY ||
                      st == XCAT_ERROR_SIZE_OVERFLOW,
                  "a 2^40-byte tensor: %s (%s)", xcat_status_string(st),
                  xcat_context_last_error(ctx));
    ck_assert_ptr_null(t);
    ck_assert_str_ne(xcat_context_last_error(ctx), "");
    const small_result r = small_problem_result(ctx, "small problem after a failed allocation");
    expect_cpu_loss(&r, "small problem after a failed allocation");
    xcat_context_free(ctx);
}
END_TEST

/* Host allocation failure at every allocation of an OpenCL context's life: OUT_OF_MEMORY,
 * nothing leaked (cl objects made before the failure are released: LeakSanitizer cannot see
 * those, see tests/lsan.supp, but the run would grow without bound if they were not). */
START_TEST(test_opencl_alloc_failure)
{
    clear_env();
    const test_target *t = test_target_get(_i);
    if (t->device < 0) {
        ck_assert_ptr_null(test_target_context(_i, 0)); /* prints the note */
        return;
    }
    alloc_failure_everywhere(t->device);
}
END_TEST

/* CPU objects with an OpenCL plan, and OpenCL objects with a CPU plan: WRONG_CONTEXT. */
START_TEST(test_opencl_wrong_context)
{
    clear_env();
    xcat_context *ocl = test_target_context(_i, 0);
    if (!ocl)
        return;
    xcat_context *cpu = test_context(-1, 1);
    small_problem po, pc;
    xcat_loss_plan *plan_o = NULL, *plan_c = NULL;
    test_expect_ok(ocl, small_problem_make(ocl, &po), "OpenCL tensors");
    test_expect_ok(cpu, small_problem_make(cpu, &pc), "CPU tensors");
    test_expect_ok(ocl, small_problem_run(ocl, &po, &plan_o), "OpenCL plan");
    test_expect_ok(cpu, small_problem_run(cpu, &pc, &plan_c), "CPU plan");

    xcat_loss_args args = small_problem_args(&pc);
    test_expect_error(ocl, xcat_loss_forward(plan_o, &args, po.loss, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "forward: CPU inputs, OpenCL plan");
    test_expect_error(ocl, xcat_loss_backward(plan_o, &args, NULL, po.dh, po.de, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "backward: CPU inputs, OpenCL plan");
    args = small_problem_args(&po);
    args.targets = pc.y;
    test_expect_error(ocl, xcat_loss_forward(plan_o, &args, po.loss, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "forward: CPU targets only");
    args = small_problem_args(&po);
    test_expect_error(ocl, xcat_loss_forward(plan_o, &args, pc.loss, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "forward: CPU loss tensor");
    test_expect_error(ocl, xcat_loss_backward(plan_o, &args, NULL, po.dh, pc.de, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "backward: CPU d_items");
    test_expect_error(cpu, xcat_loss_forward(plan_c, &args, pc.loss, NULL),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "forward: OpenCL inputs, CPU plan");
    /* Both plans still work on their own tensors. */
    args = small_problem_args(&po);
    test_expect_ok(ocl, xcat_loss_forward(plan_o, &args, po.loss, NULL), "OpenCL forward");
    args = small_problem_args(&pc);
    test_expect_ok(cpu, xcat_loss_forward(plan_c, &args, pc.loss, NULL), "CPU forward");

    xcat_loss_plan_free(plan_o);
    xcat_loss_plan_free(plan_c);
    small_problem_free(&po);
    small_problem_free(&pc);
    xcat_context_free(ocl);
    xcat_context_free(cpu);
}
END_TEST

#ifdef XCAT_TEST_HAVE_OPENCL
/* include/xcat_opencl.h: the context's CL objects, wrapping a caller's cl_mem at an offset with
 * a stride, its checks, and a context made on the caller's own cl_context and queue. */
START_TEST(test_opencl_interop)
{
    clear_env();
    xcat_context *ctx = test_target_context(_i, 0);
    if (!ctx)
        return;
    cl_context clctx = NULL;
    cl_device_id dev = NULL;
    cl_command_queue queue = NULL;
    test_expect_ok(ctx, xcat_context_get_opencl(ctx, &clctx, &dev, &queue), "get_opencl");
    ck_assert(clctx && dev && queue);
    ck_assert_int_eq(xcat_context_get_opencl(ctx, NULL, NULL, NULL), XCAT_OK);
    ck_assert_int_eq(xcat_context_get_opencl(NULL, &clctx, NULL, NULL),
                     XCAT_ERROR_INVALID_ARGUMENT);

    /* CPU contexts and tensors have no CL objects. */
    xcat_context *cpu = test_context(-1, 1);
    xcat_tensor *cpu_t = test_tensor(cpu, XCAT_DTYPE_F32, 2, 2, NULL), *t = NULL;
    ck_assert_int_eq(xcat_context_get_opencl(cpu, &clctx, NULL, NULL), XCAT_ERROR_UNSUPPORTED);
    cl_mem mem = NULL;
    size_t offset = 1;
    ck_assert_int_eq(xcat_tensor_get_opencl(cpu_t, &mem, &offset), XCAT_ERROR_UNSUPPORTED);
    ck_assert_int_eq(xcat_tensor_get_opencl(NULL, &mem, &offset), XCAT_ERROR_INVALID_ARGUMENT);

    /* A created tensor's buffer, at offset 0. */
    xcat_tensor *own = test_tensor(ctx, XCAT_DTYPE_F32, 3, 3, NULL);
    test_expect_ok(ctx, xcat_tensor_get_opencl(own, &mem, &offset), "tensor_get_opencl");
    ck_assert(mem != NULL && offset == 0);
    xcat_tensor_free(own);

    /* Wrap rows of stride S at element offset OFF of a buffer filled with -1. */
    enum { R = 3, C = 4, S = 6, OFF = 5, TOTAL = OFF + R * S };
    float fill[TOTAL], in[R * C], out[R * C], back[TOTAL];
    for (int k = 0; k < TOTAL; ++k)
        fill[k] = -1.0f;
    for (int k = 0; k < R * C; ++k)
        in[k] = (float)k + 0.5f;
    cl_int err = CL_SUCCESS;
    cl_mem buf = clCreateBuffer(clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof fill,
                                fill, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    ck_assert_int_eq(xcat_tensor_wrap_opencl(cpu, XCAT_DTYPE_F32, R, C, S, buf, 0, &t),
                     XCAT_ERROR_UNSUPPORTED);
    test_expect_error(ctx, xcat_tensor_wrap_opencl(ctx, XCAT_DTYPE_F32, R, C, S, NULL, 0, &t),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "wrap_opencl NULL buffer");
    test_expect_error(ctx, xcat_tensor_wrap_opencl(ctx, XCAT_DTYPE_F32, R, C, S, buf, 2, &t),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "wrap_opencl offset of 2 bytes");
    test_expect_error(ctx, xcat_tensor_wrap_opencl(ctx, XCAT_DTYPE_F32, R, C, C - 1, buf, 0, &t),
                      XCAT_ERROR_INVALID_ARGUMENT, NULL, "wrap_opencl stride < cols");
    test_expect_error(ctx,
                      xcat_tensor_wrap_opencl(ctx, XCAT_DTYPE_F32, R + 1, C, S, buf,
                                              OFF * sizeof(float), &t),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "wrap_opencl past the buffer's end");
    test_expect_error(ctx,
                      xcat_tensor_wrap_opencl(ctx, XCAT_DTYPE_F32, 1, 1, 1, buf,
                                              sizeof fill, &t),
                      XCAT_ERROR_SHAPE_MISMATCH, NULL, "wrap_opencl offset at the end");
    ck_assert_ptr_null(t);
    test_expect_ok(ctx,
                   xcat_tensor_wrap_opencl(ctx, XCAT_DTYPE_F32, R, C, S, buf,
                                           OFF * sizeof(float), &t),
                   "wrap_opencl");
    clReleaseMemObject(buf); /* the tensor keeps its own reference */
    int64_t stride = 0;
    ck_assert_int_eq(xcat_tensor_get_shape(t, NULL, NULL, NULL, &stride), XCAT_OK);
    ck_assert_int_eq(stride, S);
    test_expect_ok(ctx, xcat_tensor_get_opencl(t, &mem, &offset), "tensor_get_opencl");
    ck_assert(mem == buf && offset == OFF * sizeof(float));
    test_expect_ok(ctx, xcat_tensor_write(t, in, 0), "write into the wrapped buffer");
    ck_assert_int_eq(clEnqueueReadBuffer(queue, mem, CL_TRUE, 0, sizeof back, back, 0, NULL,
                                         NULL),
                     CL_SUCCESS);
    for (int k = 0; k < TOTAL; ++k) {
        const int r = (k - OFF) / S, c = (k - OFF) % S;
        const float want = (k >= OFF && c < C) ? in[r * C + c] : -1.0f;
        ck_assert_msg(back[k] == want, "buffer element %d: %g, expected %g", k,
                      (double)back[k], (double)want);
    }
    test_expect_ok(ctx, xcat_tensor_read(t, out, 0), "read the wrapped buffer");
    ck_assert_mem_eq(out, in, sizeof in);
    xcat_tensor_free(t);

    /* A buffer of another cl_context. */
    cl_context foreign = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    cl_mem fbuf = clCreateBuffer(foreign, CL_MEM_READ_WRITE, 64, NULL, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    test_expect_error(ctx, xcat_tensor_wrap_opencl(ctx, XCAT_DTYPE_F32, 2, 2, 2, fbuf, 0, &t),
                      XCAT_ERROR_WRONG_CONTEXT, NULL, "wrap_opencl, buffer of another context");
    clReleaseMemObject(fbuf);

    /* xcat on the caller's context and queue (released by the caller right away: retained). */
    cl_command_queue own_q = clCreateCommandQueue(foreign, dev, 0, &err);
    ck_assert_int_eq(err, CL_SUCCESS);
    char msg[512] = "";
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.error_message = msg;
    opt.error_message_size = sizeof msg;
    xcat_context *mine = NULL;
    ck_assert_msg(xcat_context_create_opencl(foreign, dev, own_q, &opt, &mine) == XCAT_OK,
                  "create_opencl: %s", msg);
    cl_context got_ctx = NULL;
    cl_command_queue got_q = NULL;
    test_expect_ok(mine, xcat_context_get_opencl(mine, &got_ctx, NULL, &got_q), "get_opencl");
    ck_assert(got_ctx == foreign && got_q == own_q);
    ck_assert_int_eq(get_info(mine).backend, XCAT_BACKEND_OPENCL);

    xcat_context *queueless = NULL;
    ck_assert_int_eq(xcat_context_create_opencl(foreign, dev, NULL, NULL, &queueless), XCAT_OK);
    test_expect_ok(queueless, xcat_context_get_opencl(queueless, NULL, NULL, &got_q), "queue");
    ck_assert(got_q != NULL && got_q != own_q);
    xcat_context_free(queueless);

    cl_command_queue ooo = clCreateCommandQueue(foreign, dev,
                                                CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (err == CL_SUCCESS) {
        xcat_context *bad = (xcat_context *)msg;
        ck_assert_int_eq(xcat_context_create_opencl(foreign, dev, ooo, &opt, &bad),
                         XCAT_ERROR_INVALID_ARGUMENT);
        ck_assert_ptr_null(bad);
        ck_assert_msg(msg[0] != '\0', "no message for an out-of-order queue");
        clReleaseCommandQueue(ooo);
    } else {
        printf("note: the device has no out-of-order queues (%d): not tested\n", (int)err);
    }
    xcat_context *none = NULL;
    ck_assert_int_eq(xcat_context_create_opencl(NULL, dev, NULL, NULL, &none),
                     XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_context_create_opencl(foreign, NULL, NULL, NULL, &none),
                     XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_int_eq(xcat_context_create_opencl(foreign, dev, NULL, NULL, NULL),
                     XCAT_ERROR_INVALID_ARGUMENT);
    ck_assert_ptr_null(none);

    clReleaseCommandQueue(own_q);
    clReleaseContext(foreign);
    /* Same device, same kernels: the caller's context computes what xcat's own does, bitwise. */
    const small_result on_mine = small_problem_result(mine, "small problem, caller's context");
    const small_result on_ctx = small_problem_result(ctx, "small problem, xcat's context");
    expect_same_result("caller's context vs xcat's context", &on_mine, &on_ctx);
    xcat_context_free(mine);

    xcat_tensor_free(cpu_t);
    xcat_context_free(cpu);
    xcat_context_free(ctx);
}
END_TEST
#endif /* XCAT_TEST_HAVE_OPENCL */

/* Regular files in `dir` (0 if it cannot be read). */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        n += stat(path, &st) == 0 && S_ISREG(st.st_mode);
    }
    closedir(d);
    return n;
}

/* Remove the regular files of `dir`, then `dir`. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
    rmdir(dir);
}

static void make_temp_dir(char *buf, size_t size, const char *what)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, size, "%s/xcat-test-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
    ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp(%s) failed", buf);
}

/* XCAT_CACHE_DIR (honoured under IGNORE_ENV): binaries land there (in a directory xcat creates)
 * and a second context that loads them computes the same bits; "none" works without one. */
START_TEST(test_opencl_program_cache)
{
    clear_env();
    if (test_target_get(_i)->device < 0) {
        ck_assert_ptr_null(test_target_context(_i, 0)); /* prints the note */
        return;
    }
    char root[512], dir[600];
    make_temp_dir(root, sizeof root, "cache");
    snprintf(dir, sizeof dir, "%s/made-by-xcat", root);
    setenv("XCAT_CACHE_DIR", dir, 1);
    xcat_context *first = test_target_context(_i, 0);
    const small_result a = small_problem_result(first, "small problem, cold cache");
    xcat_context_free(first);
    const int files = count_files(dir);
    ck_assert_msg(files >= 1, "XCAT_CACHE_DIR=%s: no program binary written", dir);

    xcat_context *second = test_target_context(_i, 0);
    const small_result b = small_problem_result(second, "small problem, warm cache");
    xcat_context_free(second);
    expect_same_result("cold cache vs warm cache", &a, &b);
    ck_assert_int_eq(count_files(dir), files); /* nothing new to compile */

    setenv("XCAT_CACHE_DIR", "none", 1);
    xcat_context *third = test_target_context(_i, 0);
    const small_result c = small_problem_result(third, "small problem, cache off");
    xcat_context_free(third);
    expect_same_result("cache vs no cache", &a, &c);
    remove_dir(dir);
    rmdir(root);
}
END_TEST

/* Copy `from` to `to`, appending `tail` (may be NULL). Returns 0 on success. */
static int copy_file(const char *from, const char *to, const char *tail)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    int ok = in && out;
    char buf[4096];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    if (ok && tail)
        ok = fputs(tail, out) >= 0;
    if (in)
        fclose(in);
    if (out)
        ok = fclose(out) == 0 && ok;
    return ok ? 0 : -1;
}

static int ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

#define BROKEN_MARKER "xcat_test_deliberately_broken_kernel"

/* XCAT_CL_DIR at copies of cl/ whose every .cl file ends in an #error: building any program
 * fails with BUILD_FAILED and the compiler's log (which quotes the #error) in last_error; the
 * context stays usable and, with XCAT_CL_DIR unset, builds the embedded kernels. */
START_TEST(test_opencl_build_failure)
{
    clear_env();
#ifndef XCAT_TEST_CL_DIR
    printf("note: XCAT_TEST_CL_DIR not defined: build-failure test skipped\n");
    return;
#else
    const test_target *target = test_target_get(_i);
    if (target->device < 0) {
        ck_assert_ptr_null(test_target_context(_i, 0)); /* prints the note */
        return;
    }
    DIR *d = opendir(XCAT_TEST_CL_DIR);
    if (!d) {
        printf("note: %s cannot be read: build-failure test skipped\n", XCAT_TEST_CL_DIR);
        return;
    }
    char tmp[512];
    make_temp_dir(tmp, sizeof tmp, "cl");
    int broken = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char from[1024], to[1024];
        struct stat st;
        snprintf(from, sizeof from, "%s/%s", XCAT_TEST_CL_DIR, e->d_name);
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(to, sizeof to, "%s/%s", tmp, e->d_name);
        const int is_cl = ends_with(e->d_name, ".cl");
        ck_assert_msg(copy_file(from, to, is_cl ? "\n#error " BROKEN_MARKER "\n" : NULL) == 0,
                      "copying %s to %s", from, to);
        broken += is_cl;
    }
    closedir(d);
    if (broken == 0) {
        printf("note: no .cl file in %s: build-failure test skipped\n", XCAT_TEST_CL_DIR);
        remove_dir(tmp);
        return;
    }
    setenv("XCAT_CL_DIR", tmp, 1);
    setenv("XCAT_CACHE_DIR", "none", 1);

    char msg[4096] = "", device[16];
    snprintf(device, sizeof device, "%d", target->device);
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_OPENCL;
    opt.device = device;
    opt.flags = XCAT_CONTEXT_IGNORE_ENV;
    opt.error_message = msg;
    opt.error_message_size = sizeof msg;
    xcat_context *ctx = NULL;
    xcat_status st = xcat_context_create(&opt, &ctx);
    if (st != XCAT_OK) {
        /* Programs built when the context is made: the failure is reported there. */
        ck_assert_msg(st == XCAT_ERROR_BUILD_FAILED, "context with broken kernels: %s (%s)",
                      xcat_status_string(st), msg);
        ck_assert_msg(strstr(msg, BROKEN_MARKER) != NULL, "no compiler log in \"%s\"", msg);
        unsetenv("XCAT_CL_DIR");
        ctx = test_target_context(_i, 0);
    } else {
        small_problem p;
        xcat_loss_plan *plan = NULL;
        test_expect_ok(ctx, small_problem_make(ctx, &p), "tensors");
        st = small_problem_run(ctx, &p, &plan);
        test_expect_error(ctx, st, XCAT_ERROR_BUILD_FAILED, BROKEN_MARKER,
                          "plan/forward/backward with broken kernels");
        xcat_loss_plan_free(plan);
        small_problem_free(&p);
        unsetenv("XCAT_CL_DIR");
    }
    const small_result r = small_problem_result(ctx, "small problem after a failed build");
    expect_cpu_loss(&r, "small problem after a failed build");
    xcat_context_free(ctx);
    remove_dir(tmp);
#endif
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

    TCase *devices = tcase_create("devices");
    tcase_set_timeout(devices, 60);
    tcase_add_test(devices, test_device_count);
    tcase_add_test(devices, test_device_info_cpu);
    tcase_add_test(devices, test_device_info_opencl);
    tcase_add_test(devices, test_device_selection);
    suite_add_tcase(s, devices);

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

    const int targets = test_num_targets(), first_opencl = test_first_opencl_target();
    TCase *ocl = tcase_create("opencl");
    tcase_set_timeout(ocl, 300); /* a cold program cache compiles for seconds on PoCL */
    tcase_add_loop_test(ocl, test_opencl_tensors, first_opencl, targets);
    tcase_add_loop_test(ocl, test_opencl_wrong_context, first_opencl, targets);
    tcase_add_loop_test(ocl, test_opencl_alloc_failure, first_opencl, targets);
#ifdef XCAT_TEST_HAVE_OPENCL
    tcase_add_loop_test(ocl, test_opencl_interop, first_opencl, targets);
#endif
    tcase_add_loop_test(ocl, test_opencl_program_cache, first_opencl, targets);
    tcase_add_loop_test(ocl, test_opencl_build_failure, first_opencl, targets);
    suite_add_tcase(s, ocl);
    return s;
}

int main(void)
{
    test_targets_init(); /* before the suite: the OpenCL loop bounds depend on it */
    return test_run_suite(api_suite());
}
