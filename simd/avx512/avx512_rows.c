/* avx512_rows.c — AVX-512 instantiation of the row kernels (compiled with the AVX-512 F/BW/DQ/VL
 * flags only; chosen at run time when cpuid and xgetbv say those and ZMM state are available). */
#include <immintrin.h>
#include <stdint.h>

#define VF __m512
#define VW 16
#define VMASK __mmask16
#define v_set1 _mm512_set1_ps
#define v_zero _mm512_setzero_ps
#define v_add _mm512_add_ps
#define v_sub _mm512_sub_ps
#define v_mul _mm512_mul_ps
#define v_div _mm512_div_ps
#define v_fma _mm512_fmadd_ps
#define v_max _mm512_max_ps
#define v_min _mm512_min_ps
#define v_abs _mm512_abs_ps
#define v_loadu _mm512_loadu_ps
#define v_storeu _mm512_storeu_ps
#define v_load_tail(p, m) _mm512_maskz_loadu_ps((m), (p))
#define v_store_tail(p, v, m) _mm512_mask_storeu_ps((p), (m), (v))
#define v_select_mask(m, a, b) _mm512_mask_blend_ps((m), (b), (a))
#define v_hsum _mm512_reduce_add_ps
#define v_hmax _mm512_reduce_max_ps
#define v_gt_bits(a, b) ((unsigned)_mm512_cmp_ps_mask((a), (b), _CMP_GT_OQ))
#define v_eq_bits(a, b) ((unsigned)_mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ))

static inline __m512 v_copysign(__m512 mag, __m512 sign)
{
    /* sbit ? sign : mag, bit by bit (vpternlog truth table 0xCA = A ? B : C). */
    const __m512i sbit = _mm512_set1_epi32((int)0x80000000u);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(sbit, _mm512_castps_si512(sign),
                                                         _mm512_castps_si512(mag), 0xCA));
}
static inline __m512 v_round(__m512 x)
{
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline __m512 v_pow2i(__m512 n)
{
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
static inline __m512 v_lt_select(__m512 x, __m512 t, __m512 y, __m512 z)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, t, _CMP_LT_OQ), z, y);
}
static inline __m512 v_select_nan(__m512 x, __m512 y)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}
static inline __mmask16 v_tail_mask(int64_t n)
{
    return (__mmask16)((1u << n) - 1u);
}

#define ROWS_PREFIX avx512_
#define ROWS_NAME avx512
#define ROWS_ISA XCAT_ISA_AVX512
/* Fused top-K scoring (fused_above): on the 16-core Xeon (device machine, 2026-12-02,
 * M = 4,096, C = 10^6, 50 exclusions, paired runs) 1.04-1.18x faster than the OpenBLAS tiles at
 * d = 64 / 128, K = 10 / 1,000 / 10,000, and the topk suite passed there with it. */
#define ROWS_FUSED_ABOVE_DEFAULT 1
/* The fused CE forward's micro-tile: 12 rows × 2 vectors = 24 accumulators + 2 panel vectors +
 * a broadcast of the 32 registers. With AVX2's 6 rows (15 registers) it was 13-17 % slower than
 * OpenBLAS's AVX-512 tiles at d = 256 on the 16-core Xeon; with 12 rows it is 1.19-1.29x faster
 * at d = 64, 1.06-1.19x at 128, even at 256 (docs/benchmarks.md). */
#define FUSED_MR 12
#include "rows_impl.h"
