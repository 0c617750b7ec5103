/* avx2_rows.c — AVX2+FMA instantiation of the row kernels (compiled with -mavx2 -mfma only;
 * chosen at run time when cpuid and xgetbv say AVX2, FMA and YMM state are available). */
#include <immintrin.h>
#include <stdint.h>

#define VF __m256
#define VW 8
#define VMASK __m256i
#define v_set1 _mm256_set1_ps
#define v_zero _mm256_setzero_ps
#define v_add _mm256_add_ps
#define v_sub _mm256_sub_ps
#define v_mul _mm256_mul_ps
#define v_div _mm256_div_ps
#define v_fma _mm256_fmadd_ps
#define v_max _mm256_max_ps
#define v_min _mm256_min_ps
#define v_loadu _mm256_loadu_ps
#define v_storeu _mm256_storeu_ps
#define v_load_tail(p, m) _mm256_maskload_ps((p), (m))
#define v_store_tail(p, v, m) _mm256_maskstore_ps((p), (m), (v))
#define v_select_mask(m, a, b) _mm256_blendv_ps((b), (a), _mm256_castsi256_ps(m))
#define v_gt_bits(a, b) ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps((a), (b), _CMP_GT_OQ)))
#define v_eq_bits(a, b) ((unsigned)_mm256_movemask_ps(_mm256_cmp_ps((a), (b), _CMP_EQ_OQ)))

static inline __m256 v_abs(__m256 x)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}
static inline __m256 v_copysign(__m256 mag, __m256 sign)
{
    const __m256 sbit = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sbit, mag), _mm256_and_ps(sbit, sign));
}
static inline __m256 v_round(__m256 x)
{
    return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline __m256 v_pow2i(__m256 n)
{
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
static inline __m256 v_lt_select(__m256 x, __m256 t, __m256 y, __m256 z)
{
    return _mm256_blendv_ps(z, y, _mm256_cmp_ps(x, t, _CMP_LT_OQ));
}
static inline __m256 v_select_nan(__m256 x, __m256 y)
{
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
static inline __m256i v_tail_mask(int64_t n)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), iota);
}
static inline float v_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float v_hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define ROWS_PREFIX avx2_
#define ROWS_NAME avx2
#define ROWS_ISA XCAT_ISA_AVX2
#define ROWS_FUSED_ABOVE_DEFAULT 1
#include "rows_impl.h"
