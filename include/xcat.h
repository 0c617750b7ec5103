/*
 * xcat.h — the whole public API of xcat, and its manual.
 *
 * xcat computes losses over very large item catalogs (full-softmax cross-entropy and the
 * sampled-softmax family) forward and backward, tile by tile, so that the rows × catalog
 * logits matrix never exists in memory; and item-scoring top-K with exclusions, fused with
 * the scoring, plus the ranking metrics of its results.
 *
 * Conventions
 * -----------
 * - Every fallible call returns an xcat_status: XCAT_OK (0) or a negative error code. Codes are
 *   pinned forever. xcat_status_string() names a code; xcat_context_last_error() gives the
 *   detail of the last failed call on a context (which argument, which row, which size).
 * - Handles are opaque. Every *_free(NULL) is a no-op. An object belongs to the context that
 *   created it; mixing contexts is XCAT_ERROR_WRONG_CONTEXT.
 * - Extensible structs (xcat_context_options, xcat_loss_desc, xcat_loss_args, xcat_context_info)
 *   start with `struct_size`. Always fill them with their *_init() function first: it sets
 *   struct_size = sizeof(the struct as this header knows it) and every default. A library
 *   newer than the header reads only the fields the caller's struct_size covers, so old
 *   binaries keep working when fields are appended.
 * - Sizes, counts and offsets are int64_t (N·C overflows 32 bits at ordinary sizes).
 * - The library never aborts, exits or prints.
 * - Thread safety: a context, and everything created from it, is used by one thread at a
 *   time. Separate contexts may be used from separate threads concurrently. Functions that
 *   take no context (version, status strings, *_init) may be called from any thread.
 * - Matrices are row-major with a row stride in elements (stride >= cols); vectors are
 *   tensors of shape n×1 or 1×n with contiguous elements.
 */
#ifndef XCAT_H
#define XCAT_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(XCAT_SHARED_BUILD)
#define XCAT_API __declspec(dllexport)
#elif defined(_WIN32) && defined(XCAT_SHARED)
#define XCAT_API __declspec(dllimport)
#elif defined(__GNUC__) && defined(XCAT_BUILDING)
#define XCAT_API __attribute__((visibility("default")))
#else
#define XCAT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Version                                                                                    */
/* ---------------------------------------------------------------------------------------- */

#define XCAT_VERSION_MAJOR 0
#define XCAT_VERSION_MINOR 1
#define XCAT_VERSION_PATCH 0
/** MAJOR·10000 + MINOR·100 + PATCH, e.g. 100 for 0.1.0. */
#define XCAT_VERSION_NUMBER \
    (XCAT_VERSION_MAJOR * 10000 + XCAT_VERSION_MINOR * 100 + XCAT_VERSION_PATCH)

/** The version of the library actually linked (compare with XCAT_VERSION_NUMBER). */
XCAT_API unsigned xcat_version_number(void);
/** "MAJOR.MINOR.PATCH" of the linked library; static storage. */
XCAT_API const char *xcat_version_string(void);

/* ---------------------------------------------------------------------------------------- */
/* Status codes (values pinned: never renumbered, never reused)                               */
/* ---------------------------------------------------------------------------------------- */

typedef enum xcat_status {
    XCAT_OK = 0,
    XCAT_ERROR_INVALID_ARGUMENT = -1,    /* NULL where a value is required, bad enum or option */
    XCAT_ERROR_SHAPE_MISMATCH = -2,      /* tensor shapes disagree with the plan or each other */
    XCAT_ERROR_DTYPE_MISMATCH = -3,      /* tensor dtype not the one the argument needs */
    XCAT_ERROR_OUT_OF_RANGE = -4,        /* an index (e.g. a target) outside its valid range */
    XCAT_ERROR_SIZE_OVERFLOW = -5,       /* a size or byte count does not fit in 64 bits/size_t */
    XCAT_ERROR_OUT_OF_MEMORY = -6,       /* host allocation failed */
    XCAT_ERROR_DEVICE_OUT_OF_MEMORY = -7,/* device allocation failed */
    XCAT_ERROR_OUT_OF_RESOURCES = -8,    /* device resources (work-group, registers) exhausted */
    XCAT_ERROR_BACKEND_UNAVAILABLE = -9, /* the requested backend is not built in or has no device */
    XCAT_ERROR_DEVICE_NOT_FOUND = -10,   /* XCAT_DEVICE / options.device matched no device */
    XCAT_ERROR_BUILD_FAILED = -11,       /* a device kernel failed to compile (log in last_error) */
    XCAT_ERROR_UNSUPPORTED = -12,        /* a valid request this backend/version does not implement */
    XCAT_ERROR_WRONG_CONTEXT = -13,      /* objects from different contexts were mixed */
    XCAT_ERROR_BAD_STATE = -14,          /* call out of order (see each function) */
    XCAT_ERROR_BACKEND_FAILURE = -15,    /* the device runtime reported an unexpected error */
    XCAT_ERROR_INTERNAL = -16,           /* a bug in xcat: please report it */
    XCAT_STATUS_FORCE_32BIT = 0x7FFFFFFF
} xcat_status;

/** A short constant English name for a status ("invalid argument"); never NULL. */
XCAT_API const char *xcat_status_string(xcat_status status);

/* ---------------------------------------------------------------------------------------- */
/* Enumerations                                                                               */
/* ---------------------------------------------------------------------------------------- */

typedef enum xcat_backend_kind {
    XCAT_BACKEND_AUTO = 0,   /* XCAT_BACKEND env if set, else first OpenCL GPU, else CPU */
    XCAT_BACKEND_CPU = 1,    /* native CPU backend: scalar / AVX2 / AVX-512 kernels */
    XCAT_BACKEND_OPENCL = 2, /* OpenCL device (GPU, or PoCL on a CPU) */
    XCAT_BACKEND_FORCE_32BIT = 0x7FFFFFFF
} xcat_backend_kind;

/** CPU instruction-set levels, a lattice: SCALAR < AVX2 (+FMA) < AVX512 (F/BW/DQ/VL). */
typedef enum xcat_isa {
    XCAT_ISA_SCALAR = 0,
    XCAT_ISA_AVX2 = 1,
    XCAT_ISA_AVX512 = 2,
    XCAT_ISA_FORCE_32BIT = 0x7FFFFFFF
} xcat_isa;

typedef enum xcat_dtype {
    XCAT_DTYPE_F32 = 0,
    XCAT_DTYPE_I32 = 1,
    XCAT_DTYPE_I64 = 2,
    XCAT_DTYPE_BF16 = 3, /* reserved: storage type of a later release */
    XCAT_DTYPE_F16 = 4,  /* reserved: storage type of a later release */
    XCAT_DTYPE_FORCE_32BIT = 0x7FFFFFFF
} xcat_dtype;

/** Size in bytes of one element of `dtype`, 0 for an unknown dtype. */
XCAT_API size_t xcat_dtype_size(xcat_dtype dtype);
/** Name of the ISA level ("scalar", "avx2", "avx512"); never NULL. */
XCAT_API const char *xcat_isa_name(xcat_isa isa);

/* ---------------------------------------------------------------------------------------- */
/* Contexts                                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct xcat_context xcat_context;

/** Ignore the XCAT_* variables that choose or tune (XCAT_BACKEND, XCAT_DEVICE,
 *  XCAT_NUM_THREADS, XCAT_ISA_MAX, XCAT_CPU_TILE_*, XCAT_CL_GEMM_TILE), for reproducible tests
 *  and embedding. Locations are always honoured: XCAT_CACHE_DIR (on-disk OpenCL binary cache;
 *  "none" disables it; default $XDG_CACHE_HOME/xcat or ~/.cache/xcat) and XCAT_CL_DIR (load
 *  the OpenCL kernels from that directory instead of the embedded copies, for development). */
#define XCAT_CONTEXT_IGNORE_ENV 0x1u
/** Record every OpenCL kernel's device time (per kernel name: calls, total, mean), read with
 *  xcat_context_profile(). Each launch then waits for its kernel: for finding where the time
 *  goes, not for production runs. Also set by XCAT_PROFILE=1 (unless IGNORE_ENV). On a
 *  caller's command queue (xcat_context_create_opencl) it needs CL_QUEUE_PROFILING_ENABLE on
 *  that queue, else nothing is recorded. The CPU backend records nothing. */
#define XCAT_CONTEXT_PROFILE 0x2u

typedef struct xcat_context_options {
    uint32_t struct_size;
    /** Which backend. AUTO (default) reads XCAT_BACKEND=auto|cpu|opencl, then prefers the
     *  first OpenCL GPU, else the native CPU backend. An explicit choice beats the env. */
    xcat_backend_kind backend;
    /** Device selector: an index into the backend's device list (xcat_device_get_info) or a
     *  case-insensitive substring of the device, vendor or platform name. NULL (default):
     *  XCAT_DEVICE, else for OpenCL the first GPU (or the first device when there is no GPU). */
    const char *device;
    /** CPU worker threads. 0 (default): XCAT_NUM_THREADS, else every online core. Results
     *  never depend on this number (bitwise). With OpenBLAS's pthreads build, xcat sets
     *  OpenBLAS to one thread while a CPU loss call runs and restores the previous count when
     *  it returns (OpenBLAS's setting is process-wide: do not call BLAS from other threads
     *  concurrently with an xcat call if that matters to you). */
    int32_t num_threads;
    /** Highest CPU ISA level to use. -1 (default): XCAT_ISA_MAX=scalar|avx2|avx512, else the
     *  best level the CPU and OS support. A cap above what the machine supports is lowered. */
    int32_t isa_max;
    /** XCAT_CONTEXT_* flags. */
    uint32_t flags;
    /** Optional buffer that receives the reason when xcat_context_create() fails (there is no
     *  context yet to hold a last error). */
    char *error_message;
    size_t error_message_size;
    /** Optional host allocator for everything the context allocates on the host (contexts,
     *  tensors, plan workspaces). Both NULL (default): aligned_alloc/free. `alloc` returns
     *  memory aligned to `alignment` (a power of two <= 4096) or NULL on failure, which xcat
     *  reports as XCAT_ERROR_OUT_OF_MEMORY. */
    void *(*alloc)(void *user, size_t size, size_t alignment);
    void (*free)(void *user, void *ptr);
    void *alloc_user;
} xcat_context_options;

/** Fill `options` with the defaults above and struct_size. */
XCAT_API void xcat_context_options_init(xcat_context_options *options);

/**
 * Create a context on one backend and device. `options` may be NULL (all defaults).
 * Errors: INVALID_ARGUMENT (out == NULL, bad enum, bad XCAT_* env value: the message quotes it),
 * BACKEND_UNAVAILABLE (e.g. OpenCL asked for but not built in, or no OpenCL platform),
 * DEVICE_NOT_FOUND, OUT_OF_MEMORY. On error *out is NULL.
 */
XCAT_API xcat_status xcat_context_create(const xcat_context_options *options, xcat_context **out);
/** Free a context. Every tensor and plan of the context must be freed first. */
XCAT_API void xcat_context_free(xcat_context *ctx);

/** Detail of the most recent failed call on `ctx` ("" if none yet); valid until the next call
 *  on the context. Never NULL (for a NULL ctx it says so). */
XCAT_API const char *xcat_context_last_error(const xcat_context *ctx);

typedef struct xcat_context_info {
    uint32_t struct_size;
    xcat_backend_kind backend; /* resolved: CPU or OPENCL, never AUTO */
    char backend_name[32];     /* "cpu", "opencl" */
    char device_name[256];     /* e.g. "AMD EPYC 9R14 (avx512)" or the OpenCL device name */
    xcat_isa isa;              /* CPU backend: the level in use */
    int32_t num_threads;       /* CPU backend: worker threads */
} xcat_context_info;

XCAT_API void xcat_context_info_init(xcat_context_info *info);
/** Describe the context. `info` must have been initialised by xcat_context_info_init().
 *  Returns INVALID_ARGUMENT for a NULL argument (not recorded in last_error: the context is
 *  const here, as it is for every query). */
XCAT_API xcat_status xcat_context_get_info(const xcat_context *ctx, xcat_context_info *info);

/** Wait until all work submitted on the context has finished (no-op on the CPU backend). */
XCAT_API xcat_status xcat_context_synchronize(xcat_context *ctx);

/** The kernel profile of a context created with XCAT_CONTEXT_PROFILE (or XCAT_PROFILE=1), as
 *  text in `buf` (always NUL-terminated, cut to `size`): a header line, then one line per
 *  kernel name — "name calls total_ms mean_us" — in decreasing total time (a kernel launched
 *  in several roles is listed once per role, as name/role: topk_select/sample, /scan, /cut,
 *  /final, /rescored, topk_score/sample); device time from the OpenCL profiling clock, since
 *  the context was made or last reset. Without profiling, or on the CPU backend, one line
 *  that says so. `reset` != 0: clear the counts after reading.
 *  INVALID_ARGUMENT for NULL ctx / buf or size 0. */
XCAT_API xcat_status xcat_context_profile(xcat_context *ctx, char *buf, size_t size, int reset);

/* ---------------------------------------------------------------------------------------- */
/* Devices                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct xcat_device_info {
    uint32_t struct_size;
    xcat_backend_kind backend;  /* CPU or OPENCL */
    int32_t index;              /* the value XCAT_DEVICE / options.device accepts */
    char name[256];
    char vendor[128];
    char platform[128];         /* OpenCL platform name; "" for the CPU backend */
    char driver_version[64];
    char opencl_c_version[64];  /* "" for the CPU backend */
    int32_t is_gpu, is_cpu;     /* device type */
    int32_t compute_units;      /* OpenCL compute units; CPU: online cores */
    int64_t global_mem_bytes;
    int64_t max_alloc_bytes;
    int64_t local_mem_bytes;
    int64_t max_work_group_size;
    int32_t has_fp16;           /* cl_khr_fp16 */
    int32_t has_subgroups;      /* cl_khr_subgroups or cl_intel_subgroups */
    int32_t inline_ptx;         /* a probe kernel with inline PTX asm compiled (NVIDIA path) */
    xcat_isa isa;               /* CPU backend: best supported level */
} xcat_device_info;

XCAT_API void xcat_device_info_init(xcat_device_info *info);
/** Number of devices of `backend` (CPU: 1). OPENCL with no platform installed gives 0 and
 *  XCAT_OK; OPENCL not built into the library gives BACKEND_UNAVAILABLE. AUTO is invalid. */
XCAT_API xcat_status xcat_device_count(xcat_backend_kind backend, int32_t *count);
/** Describe device `index` of `backend` (probing it: may compile a tiny probe kernel).
 *  Errors: INVALID_ARGUMENT (NULL info, AUTO), DEVICE_NOT_FOUND (index out of range),
 *  BACKEND_UNAVAILABLE (backend not built in). */
XCAT_API xcat_status xcat_device_get_info(xcat_backend_kind backend, int32_t index,
                                          xcat_device_info *info);

/* ---------------------------------------------------------------------------------------- */
/* Tensors                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct xcat_tensor xcat_tensor;

/**
 * Create a rows × cols tensor in the backend's memory (host memory on the CPU backend),
 * contiguous (row stride = cols), zero-filled. rows, cols >= 1.
 * Errors: INVALID_ARGUMENT (NULL, non-positive size, unknown dtype), SIZE_OVERFLOW,
 * OUT_OF_MEMORY / DEVICE_OUT_OF_MEMORY.
 */
XCAT_API xcat_status xcat_tensor_create(xcat_context *ctx, xcat_dtype dtype, int64_t rows,
                                        int64_t cols, xcat_tensor **out);

/**
 * Wrap caller-owned host memory without copying on the CPU backend: element (r, c) is at
 * data + (r·row_stride + c)·dtype_size. row_stride >= cols (row_stride > cols makes views,
 * e.g. a "shifted" window over a sequence). The memory must stay valid and must not be freed
 * until the tensor is freed; it must be aligned to the element size. Backends that cannot
 * address host memory (OpenCL) return UNSUPPORTED.
 */
XCAT_API xcat_status xcat_tensor_wrap_host(xcat_context *ctx, xcat_dtype dtype, int64_t rows,
                                           int64_t cols, int64_t row_stride, void *data,
                                           xcat_tensor **out);

/** Copy rows × cols elements from host memory `src` (row stride `src_row_stride` elements,
 *  0 = cols) into the tensor. */
XCAT_API xcat_status xcat_tensor_write(xcat_tensor *tensor, const void *src,
                                       int64_t src_row_stride);
/** Copy the tensor into host memory `dst` (row stride `dst_row_stride`, 0 = cols). */
XCAT_API xcat_status xcat_tensor_read(const xcat_tensor *tensor, void *dst,
                                      int64_t dst_row_stride);
/** Shape query; any output pointer may be NULL. */
XCAT_API xcat_status xcat_tensor_get_shape(const xcat_tensor *tensor, xcat_dtype *dtype,
                                           int64_t *rows, int64_t *cols, int64_t *row_stride);
/** Free the tensor; memory created by xcat is released, wrapped memory is left alone. */
XCAT_API void xcat_tensor_free(xcat_tensor *tensor);

/* ---------------------------------------------------------------------------------------- */
/* Losses: descriptor → plan → forward / backward                                             */
/* ---------------------------------------------------------------------------------------- */
/*
 * Notation: hidden states H (N×d), item (class) embeddings E (C×d), optional bias b (C),
 * targets y (N), scale s, softcap c. For row i and item j:
 *
 *     r_ij = s·(h_i·e_j + b_j)                   (bias added exactly once per logit)
 *     z_ij = c·tanh(r_ij / c)   if c > 0, else r_ij
 *     LSE_i = log Σ_j exp(z_ij)
 *
 * XCAT_LOSS_CE (full-softmax cross-entropy), per row, with label smoothing ε and z-loss λ:
 *
 *     ℓ_i = LSE_i − (1−ε)·z_{i,y_i} − (ε/C)·Σ_j z_ij + λ·LSE_i²
 *
 * (ε = λ = 0 gives plain CE; ε matches PyTorch's label_smoothing, λ PaLM's z-loss.)
 * Rows with y_i == ignore_index contribute nothing: ℓ_i = 0, zero gradient, and they are left
 * out of the mean's denominator. Per-row weights w_i (optional, default 1) multiply ℓ_i.
 * Reductions: SUM = Σ_i w_i ℓ_i; MEAN = SUM / Σ_{i not ignored} w_i; NONE = the vector w_i ℓ_i.
 * When every row is ignored (or the weights sum to 0), MEAN is defined as 0 with zero gradients
 * (PyTorch gives NaN; a training loop over padded batches wants 0).
 *
 * Non-finite inputs are not checked on the hot path: a NaN or Inf in H, E or b makes the loss of
 * every row that touches it NaN (and MEAN/SUM NaN), and its gradients NaN; nothing crashes and
 * other rows of a NONE reduction are unaffected. Targets are checked on every call: a target
 * outside [0, C) that is not ignore_index is OUT_OF_RANGE, and the message names the first such
 * row.
 *
 * Gradients are accumulated in fp32 and are deterministic: the same inputs give bitwise the same
 * outputs, whatever the number of threads. On OpenCL devices that compile inline PTX mma.sync
 * (NVIDIA sm_80+) the GEMMs run on tensor cores as 3×TF32 (three TF32 products per fp32
 * product, fp32 accumulation: within a few fp32 ulps of the fp32 GEMM, still deterministic);
 * XCAT_CL_CE_MMA=0 keeps the fp32 GEMMs. No rows×catalog buffer is ever allocated: the plan's
 * workspace is O(N·d + C + tile sizes) (see xcat_loss_plan_workspace_size()).
 *
 * The sampled kinds
 * -----------------
 * Row i has its positive p = y_i and a list of negatives n_i1..n_iK drawn by the sampler (or
 * given by the caller). Every candidate's logit z is formed as above (scale, bias, softcap).
 * A negative is *masked* (contributes nothing, forward and backward alike) when it equals the
 * row's positive (an accidental hit), when it appears in the row's listed items
 * (args.row_items, e.g. the user's whole history), or when a given index is −1 (padding).
 * m_ik ∈ {0, 1} marks the unmasked ones. Label smoothing and z-loss must be 0 for these kinds.
 *
 * XCAT_LOSS_SAMPLED_CE (CE⁻; Klenitskiy & Vasilev 2023, Zhelnin et al. 2025):
 *     ℓ_i = log( e^{z_p} + Σ_k m_ik·e^{z_ik − c_ik} ) − z_p
 *   with the correction c_ik: NONE 0; UNIFORM log(K/(C−1)); LOGQ log(K·q(n_ik)), q = the
 *   sampler's probability of the item (uniform: 1/C; popularity: count/Σcount; given
 *   negatives: the plan's item counts, which LOGQ then requires; distinct negatives: use
 *   UNIFORM, LOGQ is refused). A negative whose q is 0 is masked.
 *   `lse` receives the log-denominator log(e^{z_p} + Σ_k m_ik·e^{z_ik − c_ik}).
 *
 * XCAT_LOSS_BCE / XCAT_LOSS_GBCE (SASRec; gSASRec, Petrov & Macdonald 2023), σ the logistic:
 *     ℓ_i = −[ β·log σ(z_p) + Σ_k m_ik·log(1 − σ(z_ik)) ] / (K + 1)
 *   BCE: β = 1. GBCE: β = 1 − t·(1 − α), α = K/(C−1), t = desc.gbce_t ∈ [0, 1] (t = 0 is BCE).
 *   Correction must be NONE; `lse` must be NULL.
 *
 * XCAT_LOSS_INBATCH (two-tower retrieval): the negatives of row i are the positives y_j of the
 *   call's other non-ignored rows j ≠ i (masked where y_j = y_i or listed in row i's items),
 *   plus K = desc.num_negatives extra negatives from the sampler (UNIFORM or POPULARITY; K = 0
 *   means in-batch only). Q(j) is item j's frequency from xcat_loss_plan_set_item_counts()
 *   (required for LOGQ and LOGQ_CORRECTED). Each candidate's corrected logit is z̃ = z − log Q
 *   for in-batch candidates and z̃ = z − log(K·q) for extra negatives (q as for SAMPLED_CE).
 *     NONE:   ℓ_i = log( e^{z_p} + Σ_j m_ij·e^{z_j} ) − z_p                (plain in-batch)
 *     LOGQ:   ℓ_i = log( e^{z̃_p} + Σ_j m_ij·e^{z̃_j} ) − z̃_p              (Yi et al. 2019: the
 *             positive is corrected too)
 *     LOGQ_CORRECTED (Khrylchenko et al., RecSys 2025, arXiv 2507.09331): negatives use
 *             Q'(j) = Q(j)/(1 − Q(p)), the normaliser runs over the negatives only, and the row
 *             is weighted by w_i = stop_gradient(1 − P̂_i):
 *             S_i = log Σ_j m_ij·e^{z_j − log Q'(j)},  P̂_i = e^{z_p} / (e^{z_p} + e^{S_i}),
 *             ℓ_i = −w_i·(z_p − S_i)   (0 for a row with no unmasked negative).
 *   `lse` receives the log-denominator of the row's softmax (S_i for LOGQ_CORRECTED).
 *
 * Negatives are drawn *inside the kernels* from Philox4x32-10 keyed by (desc.seed, args.step,
 * row, k): forward, backward, xcat_loss_draw_negatives() and every backend draw the same
 * items, bit for bit, and no N×K index buffer is ever stored. Change args.step every training
 * step for fresh negatives. Samplers:
 *   UNIFORM        each negative uniform over [0, C) (with replacement);
 *                  with XCAT_LOSS_DISTINCT_NEGATIVES: K distinct items uniform over the C−1
 *                  items other than the positive (without replacement; K <= C−1), through a
 *                  keyed permutation, still O(1) per draw and no storage;
 *   POPULARITY     q(j) ∝ counts given by xcat_loss_plan_set_item_counts(); Walker's alias
 *                  table built once per set, O(1) per draw;
 *   GIVEN_PER_ROW  args.negatives is an N×K I32/I64 matrix of items (−1 = padding);
 *   GIVEN_SHARED   args.negatives is a vector of K items shared by every row: the logits are
 *                  an N×K GEMM, not gathers (so are INBATCH's in-batch logits, an N×N GEMM),
 *                  on every backend;
 *   IN_BATCH       only with XCAT_LOSS_INBATCH (its extras then use desc.num_negatives = 0).
 * XCAT_LOSS_REJECT_HITS redraws (up to 16 times, then masks) a drawn negative that would be
 * masked, instead of masking it. Rows are numbered within the call: row i of a call is row i
 * of args.hidden.
 *
 * Backward of the sampled kinds writes dE (and db) densely: every item that is no candidate
 * gets 0. It stays deterministic without float atomics: each item's gradient is summed in a
 * fixed (row, k) order by the item's single owner. Every pass redraws and recomputes its K+1
 * logits per row, so a backward costs the same whether or not a forward preceded it.
 *
 * Availability: every sampled kind on both backends, with the same draws bit for bit (the
 * OpenCL kernels include the same cl/rng.cl). OpenCL sums dE/db by item ownership as well
 * (chunks of rows, entry lists of at most 2^23 (GPU) / 2^20 (CPU device) (item, value) pairs):
 * deterministic, no atomics. Given negatives held in device tensors are read back once per call
 * to check their ids. INBATCH: a row whose
 * positive has Q = 0 under a correction contributes nothing; its extras' sampler is UNIFORM or
 * POPULARITY (K >= 1) or IN_BATCH (K = 0: in-batch only); DISTINCT and the UNIFORM correction do
 * not apply. Shared candidates allocate their GEMM buffers per call: 8·S·d bytes for the S
 * shared rows and their gradient, plus at most 128 MiB (CPU: dots and coefficients of a chunk
 * of rows) or 256 MiB (OpenCL: the same, in place) of chunk buffers. *
 * XCAT_LOSS_SCE — Scalable Cross-Entropy (Mezentsev, Gusak, Oseledets & Frolov, RecSys 2024;
 * reference code AIRI-Institute/Scalable-SASRec, model.py sce_forward). It approximates full CE
 * by scoring each row only against the catalog items most likely to be its hardest negatives,
 * found by maximum inner product search along n_b random bucket directions ω_b (n_b × d, no
 * gradient). Per call:
 *   1. Directions, drawn from (desc.seed, args.step) — a new step gives new directions:
 *        plain (sce_mix_rows = 0):  Ω = d^(−1/4)·G,      G n_b × d;
 *        mixed (sce_mix_rows = 1):  Ω = d^(−1/4)·Rᵀ·H,   R N × n_b (ignored rows' entries 0),
 *      with G and R of xcat's reproducible Gaussian (cl/rng.cl xr_gauss12: the sum of twelve
 *      uniforms minus 6 — mean 0, variance 1, bounded to ±6 — from integer arithmetic, so
 *      every backend draws the same bits). Plain directions are bitwise the same on every
 *      backend; mixed ones are a GEMM, equal up to its rounding.
 *   2. Selection, by xcat_topk with the directions as queries (ties to the lower index, no
 *      n_b × C matrix): bucket b takes the k_x rows with the highest ω_b·h_i (ignored rows never;
 *      k_x is clamped to the call's N) and the k_y items with the highest ω_b·e_j (items in
 *      args.banned_items never, e.g. the padding item). No bias enters the selection.
 *   3. For each (bucket b, selected row i): the CE over the bucket's k_y items and the row's
 *      positive p = y_i, target p, the items equal to p masked:
 *        ℓ_bi = log( e^{z_ip} + Σ_{j ∈ Y_b, j ≠ p} e^{z_ij} ) − z_ip
 *      with z as above (scale, bias, softcap).
 *   4. A row's loss is the maximum over the buckets it was selected into, ℓ_i = max_b ℓ_bi (its
 *      winning bucket: the lowest b on ties); a row in no bucket *does not contribute* (loss 0,
 *      zero gradient, and it is left out of MEAN's denominator, like an ignored row). Weights
 *      and reductions as for CE, over the contributing rows.
 *   5. Backward: the selections are constants; each contributing row's gradient flows through
 *      its winning bucket only, to its own h_i, the bucket's items and its positive (and their
 *      bias); dE / db are written densely (zero elsewhere), dH is zero for non-contributing
 *      rows.
 * Parameters (0 = default): desc.sce_buckets n_b and desc.sce_rows_per_bucket k_x default to
 * ⌊2·√max_rows⌋ (the paper's choice), desc.sce_items_per_bucket k_y to min(256, C) (the
 * reference configs use 64 … 4,096); k_y <= C; desc.sce_mix_rows 0 or 1. Label smoothing and
 * z-loss must be 0; desc.sampler, correction, num_negatives and gbce_t must keep their
 * defaults. `lse` receives the winning bucket's log-denominator (0 for rows that contribute
 * nothing). Cost: selection as two top-K calls (n_b queries against N rows and against C
 * items), then per bucket a k_x × k_y × d GEMM forward and a (winning rows) × k_y × d
 * recompute and two GEMMs backward: about 8·N·k_y·d + 6·N·k_y·d flops at the defaults, against
 * 8·N·C·d for full CE. Deterministic (buckets are accumulated in order; no float atomics).
 * Workspace: the selections (n_b·(k_x + k_y) indices), per-row state (16 bytes per row) and
 * per-bucket tiles (OpenCL: waves of buckets within 512 MiB on a GPU), plus the two top-K
 * calls' own bounded buffers, and on the host about 44 bytes per row + 512 KiB of backward
 * plan, kept by the plan; xcat_loss_sce_buckets() returns the selection a call would use.
 */

typedef enum xcat_loss_kind {
    XCAT_LOSS_CE = 0,          /* full-softmax cross-entropy (implemented) */
    XCAT_LOSS_SAMPLED_CE = 1,  /* CE over the positive and K sampled negatives (CE⁻) */
    XCAT_LOSS_BCE = 2,         /* binary CE with K negatives (SASRec) */
    XCAT_LOSS_GBCE = 3,        /* generalised BCE with calibration t (gSASRec) */
    XCAT_LOSS_INBATCH = 4,     /* in-batch negatives (+ optional sampled ones), logQ */
    XCAT_LOSS_SCE = 5,         /* scalable CE with MIPS buckets (see above) */
    XCAT_LOSS_KIND_FORCE_32BIT = 0x7FFFFFFF
} xcat_loss_kind;

typedef enum xcat_reduction {
    XCAT_REDUCTION_MEAN = 0,
    XCAT_REDUCTION_SUM = 1,
    XCAT_REDUCTION_NONE = 2,
    XCAT_REDUCTION_FORCE_32BIT = 0x7FFFFFFF
} xcat_reduction;

/** Sampler of negatives (sampled kinds; see above). */
typedef enum xcat_sampler {
    XCAT_SAMPLER_UNIFORM = 0,
    XCAT_SAMPLER_POPULARITY = 1,
    XCAT_SAMPLER_GIVEN_PER_ROW = 2,
    XCAT_SAMPLER_GIVEN_SHARED = 3,
    XCAT_SAMPLER_IN_BATCH = 4,
    XCAT_SAMPLER_FORCE_32BIT = 0x7FFFFFFF
} xcat_sampler;

/** Logit correction of sampled negatives (sampled kinds; see above). */
typedef enum xcat_correction {
    XCAT_CORRECTION_NONE = 0,
    XCAT_CORRECTION_UNIFORM = 1,
    XCAT_CORRECTION_LOGQ = 2,
    XCAT_CORRECTION_LOGQ_CORRECTED = 3,
    XCAT_CORRECTION_FORCE_32BIT = 0x7FFFFFFF
} xcat_correction;

/** The forward pass computes only the loss (evaluation): it skips the work that lets
 *  xcat_loss_backward() reuse it, so a following backward does one more pass over the catalog.
 *  CE on the CPU: without label smoothing this forward is one fused pass whose logit tiles stay
 *  in registers (AVX2 / AVX-512, at the CPU's best level; the BLAS tiles otherwise, and always
 *  for training; XCAT_CPU_FUSED=0/1 forces either); its workspace adds 20 bytes per row. */
#define XCAT_LOSS_FORWARD_ONLY 0x1u
/** Sampled kinds: redraw a negative that would be masked instead of masking it. */
#define XCAT_LOSS_REJECT_HITS 0x2u
/** UNIFORM sampler: K distinct negatives per row, never the positive (without replacement). */
#define XCAT_LOSS_DISTINCT_NEGATIVES 0x4u

typedef struct xcat_loss_desc {
    uint32_t struct_size;
    xcat_loss_kind kind;
    xcat_reduction reduction; /* default MEAN */
    xcat_dtype dtype;         /* storage dtype of H and E; F32 (default) for now */
    int64_t ignore_index;     /* default -100: rows with this target are ignored */
    float scale;              /* s, inverse temperature; default 1; must be finite and > 0 */
    float softcap;            /* c; default 0 = off; else finite and > 0 */
    float label_smoothing;    /* ε in [0, 1); default 0 */
    float z_loss;             /* λ >= 0; default 0 */
    uint32_t flags;           /* XCAT_LOSS_* flags */
    /* --- sampled kinds (ignored by XCAT_LOSS_CE) --- */
    int64_t num_negatives;    /* K >= 1 (INBATCH: extras, >= 0); GIVEN_*: the tensor's K */
    xcat_sampler sampler;     /* default UNIFORM */
    xcat_correction correction; /* default NONE */
    float gbce_t;             /* GBCE calibration t in [0, 1]; default 0 */
    uint64_t seed;            /* Philox key of the drawn negatives; default 0 */
    /* --- XCAT_LOSS_SCE (0 = default; see above) --- */
    int64_t sce_buckets;          /* n_b >= 1; default ⌊2·√max_rows⌋ */
    int64_t sce_rows_per_bucket;  /* k_x >= 1; default ⌊2·√max_rows⌋ (clamped to N per call) */
    int64_t sce_items_per_bucket; /* k_y in [1, C]; default min(256, C) */
    int32_t sce_mix_rows;         /* 1: directions mix the batch's rows (Ω = d^(−1/4)·Rᵀ·H) */
} xcat_loss_desc;

/** Fill `desc` with struct_size, `kind` and the defaults listed above. */
XCAT_API void xcat_loss_desc_init(xcat_loss_desc *desc, xcat_loss_kind kind);

typedef struct xcat_loss_plan xcat_loss_plan;

/**
 * Validate `desc` and the sizes once, size and allocate the workspace, and prepare kernels,
 * so that forward/backward cost nothing but the work itself. `max_rows` is the largest N the
 * plan will see (a call may use fewer rows, e.g. a ragged last batch), `num_classes` is C and
 * `dim` is d; all >= 1.
 * Errors: INVALID_ARGUMENT (bad field: the message names it), UNSUPPORTED (kind or dtype not
 * implemented on this backend), SIZE_OVERFLOW, OUT_OF_MEMORY.
 */
XCAT_API xcat_status xcat_loss_plan_create(xcat_context *ctx, const xcat_loss_desc *desc,
                                           int64_t max_rows, int64_t num_classes, int64_t dim,
                                           xcat_loss_plan **out);
/** Bytes of workspace the plan holds (independent of N×C). */
XCAT_API xcat_status xcat_loss_plan_workspace_size(const xcat_loss_plan *plan, size_t *bytes);
/** Compute the workspace size a plan would hold, without allocating it. */
XCAT_API xcat_status xcat_loss_workspace_size(xcat_context *ctx, const xcat_loss_desc *desc,
                                              int64_t max_rows, int64_t num_classes,
                                              int64_t dim, size_t *bytes);
XCAT_API void xcat_loss_plan_free(xcat_loss_plan *plan);

/** The inputs of one loss call. Initialise with xcat_loss_args_init(). */
typedef struct xcat_loss_args {
    uint32_t struct_size;
    const xcat_tensor *hidden;      /* H: N×d F32, N <= max_rows, any row stride */
    const xcat_tensor *items;       /* E: C×d F32, any row stride */
    const xcat_tensor *bias;        /* b: vector of C F32, or NULL */
    const xcat_tensor *targets;     /* y: vector of N, I32 or I64 */
    const xcat_tensor *row_weights; /* w: vector of N F32, or NULL (all 1) */
    /* --- sampled kinds --- */
    const xcat_tensor *negatives;   /* GIVEN_PER_ROW: N×K, GIVEN_SHARED: vector of K; I32/I64 */
    const xcat_tensor *row_items_offsets; /* optional CSR of items that count as hits per row: */
    const xcat_tensor *row_items;   /* offsets: vector of N+1 I64, row_items: vector of nnz
                                       I32/I64, each row's ids ascending (repeats allowed) */
    uint64_t step;                  /* mixed into the RNG counter: new step, new negatives
                                       (SCE: new bucket directions) */
    /* --- XCAT_LOSS_SCE --- */
    const xcat_tensor *banned_items; /* vector of item ids never selected into a bucket (any
                                        order, repeats allowed; e.g. the padding item), or NULL */
} xcat_loss_args;

XCAT_API void xcat_loss_args_init(xcat_loss_args *args);

/**
 * Forward pass. `loss` receives the reduced loss (a 1×1 F32 tensor for MEAN/SUM, a vector of N
 * for NONE, ignored rows 0). `lse` (optional, vector of N F32) receives LSE_i (0 for ignored
 * rows). Unless the plan has XCAT_LOSS_FORWARD_ONLY, the pass also keeps, in the plan's
 * workspace, the per-row state that makes the next xcat_loss_backward() on the same args cheap.
 * Errors: INVALID_ARGUMENT, SHAPE_MISMATCH, DTYPE_MISMATCH, WRONG_CONTEXT, OUT_OF_RANGE (a
 * target; the message names the first bad row).
 */
XCAT_API xcat_status xcat_loss_forward(xcat_loss_plan *plan, const xcat_loss_args *args,
                                       xcat_tensor *loss, xcat_tensor *lse);

/**
 * Backward pass: writes (overwrites) the gradients of the loss. `grad_loss` is the upstream
 * gradient: NULL means 1; otherwise a 1×1 F32 tensor for MEAN/SUM, or a vector of N F32 for
 * NONE (applied to each row before anything is reduced over rows). Any of `d_hidden` (N×d),
 * `d_items` (C×d), `d_bias` (vector of C) may be NULL to skip it; at least one must be given.
 * When it follows xcat_loss_forward() on the same plan with the same args (same tensors, whose
 * contents must not have changed in between), it reuses the forward's per-row state; otherwise
 * it recomputes that state first (correct, one more pass over the catalog).
 * Errors: as for forward.
 */
XCAT_API xcat_status xcat_loss_backward(xcat_loss_plan *plan, const xcat_loss_args *args,
                                        const xcat_tensor *grad_loss, xcat_tensor *d_hidden,
                                        xcat_tensor *d_items, xcat_tensor *d_bias);

/**
 * Forward and backward in one call — a training step: `loss` and `lse` as xcat_loss_forward()
 * writes them and the gradients as a following xcat_loss_backward() with `grad_loss` would
 * (same arguments, same rules; `grad_loss` is read before `loss` is final, so it must not
 * share memory with `loss` or `lse`: the same tensor is INVALID_ARGUMENT). The results agree
 * with the two calls to rounding (summation orders may differ), and are deterministic.
 * Where a backend has a fused path it does less work: the OpenCL CE computes the logits of
 * blocks of rows over the whole catalog once and uses them for both passes (three GEMMs, 6·N·C·d
 * flops, instead of the two calls' four, 8·N·C·d) whenever at least one GEMM tile's rows
 * (128 on GPUs) fit the plan's logit buffer (GPUs: global memory / 32 within 1–4 GiB, e.g.
 * 4,096 rows of a 256,000-item catalog on a 141 GB H200; CPU devices: 256 MiB); otherwise,
 * and on the other backends and kinds, it runs the two passes. After the fused path a
 * following xcat_loss_backward() recomputes the per-row state. XCAT_CL_CE_FUSED_ROWS=n caps
 * the block at n rows (0: never fused; testing and tuning).
 * Errors: as for forward and backward.
 */
XCAT_API xcat_status xcat_loss_forward_backward(xcat_loss_plan *plan, const xcat_loss_args *args,
                                                xcat_tensor *loss, xcat_tensor *lse,
                                                const xcat_tensor *grad_loss,
                                                xcat_tensor *d_hidden, xcat_tensor *d_items,
                                                xcat_tensor *d_bias);

/**
 * Give the plan the item counts (or probabilities) used by the POPULARITY sampler and by the
 * LOGQ corrections; may be called again at any time (e.g. as counts drift), later calls
 * replace earlier ones. `counts` is a vector of C: I32/I64 counts (>= 0, sum > 0; normalised
 * by xcat) or F32 probabilities (each >= 0, finite, summing to 1 within 1e-3). Builds the
 * alias table once here (O(C)), so draws cost O(1). Items with count 0 are never drawn by
 * POPULARITY; their LOGQ correction is undefined, so a candidate with Q = 0 is masked.
 * Errors: INVALID_ARGUMENT (not a sampled kind, bad dtype, sum 0, probabilities not summing
 * to 1), OUT_OF_RANGE (a negative or non-finite entry; the message names the first),
 * SHAPE_MISMATCH, OUT_OF_MEMORY.
 */
XCAT_API xcat_status xcat_loss_plan_set_item_counts(xcat_loss_plan *plan,
                                                    const xcat_tensor *counts);

/**
 * Write the negatives a forward/backward with the same plan and args would use: an N×K I32
 * or I64 matrix `out` (N = the call's rows; INBATCH: its K extras), one item per (row, k),
 * with −1 where the negative is masked. Draws only: no logits are computed.
 * Errors: as forward; INVALID_ARGUMENT for XCAT_LOSS_CE or an INBATCH plan with K = 0.
 */
XCAT_API xcat_status xcat_loss_draw_negatives(xcat_loss_plan *plan, const xcat_loss_args *args,
                                              xcat_tensor *out);

/**
 * XCAT_LOSS_SCE: write the buckets a forward/backward with the same plan and args would use:
 * `rows` (n_b × k_x, I32/I64) the selected rows of each bucket and `items` (n_b × k_y) its
 * items, each in descending order of ω_b·h (ω_b·e), ties to the lower index, −1 where fewer
 * remain (k_x = the plan's value clamped to the call's N). Either may be NULL.
 * Errors: as forward; INVALID_ARGUMENT for any other kind; SHAPE_MISMATCH for a wrong shape.
 */
XCAT_API xcat_status xcat_loss_sce_buckets(xcat_loss_plan *plan, const xcat_loss_args *args,
                                           xcat_tensor *rows, xcat_tensor *items);

/* ---------------------------------------------------------------------------------------- */
/* Item-scoring top-K and ranking metrics                                                     */
/* ---------------------------------------------------------------------------------------- */
/*
 * For M queries U (M×d) and the catalog E (C×d), score s_qj = u_q·e_j (+ b_j) and keep, per
 * query, the K best items: indices and scores sorted by score descending, ties broken by the
 * lower item index, so results are deterministic and identical across backends whenever the
 * scores are. The M×C score matrix is never stored: scoring and selection are fused, tile by
 * tile. Excluded items: the query's CSR list (its history; O(nnz)) and the global banned list.
 * Where fewer than K items remain, the tail is index −1 and score −INFINITY. A NaN score
 * counts as excluded (it never enters a result).
 */

typedef struct xcat_topk_args {
    uint32_t struct_size;
    const xcat_tensor *queries;         /* U: M×d F32, any row stride */
    const xcat_tensor *items;           /* E: C×d F32, any row stride */
    const xcat_tensor *bias;            /* b: vector of C F32, or NULL */
    const xcat_tensor *exclude_offsets; /* CSR row pointers: vector of M+1 I64, or NULL */
    const xcat_tensor *exclude_items;   /* vector of nnz I32/I64: query q excludes
                                           exclude_items[offsets[q] .. offsets[q+1]),
                                           ascending per query (repeats allowed) */
    const xcat_tensor *banned_items;    /* vector of item ids excluded for every query (any
                                           order, repeats allowed; e.g. the padding item 0), or
                                           NULL */
} xcat_topk_args;

XCAT_API void xcat_topk_args_init(xcat_topk_args *args);

/**
 * The `k` best items per query. `indices`: M×k I32 or I64 (required); `scores`: M×k F32 or
 * NULL. k from 1 up to C (k = 16384 and beyond are supported). Workspace, never M×C: on the
 * CPU, per worker, a block of queries' score tile (or, with the fused scoring of AVX2 and
 * AVX-512 / XCAT_CPU_FUSED=1, ~128 KiB of packed items) and candidate buffers (k >= 4096: plus
 * up to 65,536 sampled item ids and their scores, for each query's starting threshold); on
 * OpenCL, candidate buffers of (k + clamp(4k, 2048, 16384) + chunk) 8-byte keys per query (chunk
 * 8192 items, 16384 with tensor cores; 4096 on CPU devices), at most 960 MiB (queries go in
 * blocks), allocated per call. OpenCL needs M, C, d < 2^31 (else UNSUPPORTED).
 * Precision: scores are fp32 dot products (+ bias) on every backend. On OpenCL devices whose
 * compiler takes inline PTX mma.sync (NVIDIA sm_80+), candidates are first found with TF32
 * tensor-core scores and a per-query error margin (2·((2^-10 + (d+4)·2^-22)·‖u‖·max‖e‖ +
 * 2^-22·max|b|)), then rescored in fp32 in the same order as the fp32 path: indices and scores
 * equal that path's. Queries the margin cannot serve (NaN / inf inputs; more ties within the
 * margin than the candidate buffer holds) are redone in fp32. XCAT_CL_TOPK_APPROX=0 scores in
 * fp32 only.
 * Errors: INVALID_ARGUMENT (NULL, k <= 0, k > C, malformed CSR: offsets not starting at 0, not
 * non-decreasing, ending past the items vector; ids not ascending within a query),
 * OUT_OF_RANGE (an excluded or banned id outside [0, C); the message names it),
 * SHAPE_MISMATCH, DTYPE_MISMATCH, WRONG_CONTEXT, OUT_OF_MEMORY, DEVICE_OUT_OF_MEMORY.
 */
XCAT_API xcat_status xcat_topk(xcat_context *ctx, const xcat_topk_args *args, int64_t k,
                               xcat_tensor *indices, xcat_tensor *scores);

/**
 * Sampled evaluation (as in the SASRec paper): rank each query's target among R negatives drawn
 * uniformly (Philox keyed by (seed, query, r)) from the items that are neither the target nor
 * excluded/banned for the query (redrawn up to 64 times, then dropped). `ranks[q]` (vector of
 * M, I64) = the number of drawn negatives scoring above the target, ties counted when the
 * negative's index is lower (the top-K tie rule); 0 is the best rank. `targets`: vector of M
 * I32/I64 in [0, C). Feed `ranks` to xcat_metrics_from_ranks().
 */
XCAT_API xcat_status xcat_rank_sampled(xcat_context *ctx, const xcat_topk_args *args,
                                       const xcat_tensor *targets, int64_t num_negatives,
                                       uint64_t seed, xcat_tensor *ranks);

/** Ranking metrics, averaged over the queries that have at least one target. */
typedef struct xcat_metrics {
    uint32_t struct_size;
    int64_t queries;  /* queries counted (with >= 1 target) */
    double hr;        /* HR@K: 1 if any target is in the top K */
    double ndcg;      /* NDCG@K: Σ_{hits at rank r (1-based)} 1/log2(r+1), divided by the
                         ideal Σ_{r=1..min(T,K)} 1/log2(r+1), T = the query's target count */
    double mrr;       /* MRR@K: 1/r of the first hit, 0 if none */
    double recall;    /* Recall@K: hits / T */
    double precision; /* Precision@K: hits / K */
    double coverage;  /* distinct items over all queries' top K / C (catalog coverage) */
} xcat_metrics;
/* These are RecBole's definitions (recbole/evaluator/metrics.py: Hit, NDCG, MRR, Recall,
 * Precision, ItemCoverage), which RePlay shares for one target per query. */

XCAT_API void xcat_metrics_init(xcat_metrics *metrics);

/**
 * Metrics at cutoff `k_at` (1 <= k_at <= the columns of `indices`) of top-K results `indices`
 * (M×K I32/I64, from xcat_topk) against held-out targets: one per query (`target_offsets`
 * NULL, `targets` a vector of M; −1 = no target) or many (CSR: `target_offsets` vector of M+1
 * I64, `targets` vector of nnz; repeats within a query count once). `num_items` = C, for the
 * coverage. Computed in float64 on the host (tensors of any backend are read back).
 */
XCAT_API xcat_status xcat_metrics_from_topk(xcat_context *ctx, const xcat_tensor *indices,
                                            int64_t k_at, const xcat_tensor *target_offsets,
                                            const xcat_tensor *targets, int64_t num_items,
                                            xcat_metrics *out);

/** Metrics at cutoff `k_at` from 0-based target ranks (xcat_rank_sampled): hit when rank <
 *  k_at, NDCG 1/log2(rank+2), MRR 1/(rank+1); recall = hr, precision = hr/k_at, coverage 0. */
XCAT_API xcat_status xcat_metrics_from_ranks(xcat_context *ctx, const xcat_tensor *ranks,
                                             int64_t k_at, xcat_metrics *out);

#ifdef __cplusplus
}
#endif

#endif /* XCAT_H */
