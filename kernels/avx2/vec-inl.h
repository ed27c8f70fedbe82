// AVX2 + FMA + F16C: the vector traits the shared scaffolding (kernels/simd/) is
// instantiated with, and the small helpers of the avx2 kernels. Textual header for the
// avx2 library's .cc files only (see kernels/simd/common-inl.h).
#ifndef KERNELS_AVX2_VEC_INL_H_
#define KERNELS_AVX2_VEC_INL_H_

#include <immintrin.h>

#include "kernels/simd/common-inl.h"

namespace fk {
namespace {

// Horizontal sum in a fixed order (the same for every output).
FK_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct VecAvx2 {
  using F = __m256;       // kLanes floats
  using Mask = __m256i;   // the first lanes of a partial vector
  static constexpr int kLanes = 8;

  static FK_INLINE F zero() { return _mm256_setzero_ps(); }
  static FK_INLINE F loadu(const float* p) { return _mm256_loadu_ps(p); }
  static FK_INLINE F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  // Lanes [0, n), 0 < n < kLanes; masked-off lanes load as 0.
  static FK_INLINE Mask first_lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static FK_INLINE F maskload(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static FK_INLINE float hsum(F v) { return fk::hsum(v); }
  static FK_INLINE F set1(float x) { return _mm256_set1_ps(x); }
  static FK_INLINE void storeu(float* p, F v) { _mm256_storeu_ps(p, v); }
  static FK_INLINE void mask_storeu(float* p, Mask m, F v) { _mm256_maskstore_ps(p, m, v); }

  // Tiling (kernels/simd/driver-inl.h): 1 x 4 tiles for batch 1, 4 x 2 for batches; the
  // last weight rows take narrower tiles; no activation blocking.
  static constexpr int kGemvNR = 4;
  static constexpr int kGemmMR = 4;
  static constexpr int kGemmNR = 2;
  static constexpr bool kNarrowTails = true;
  // Float weights (F32 / F16 / BF16): the same tiles (16 registers leave no room for more).
  static constexpr int kFloatGemmMR = 4;
  static constexpr int64_t kFloatActBlockBytes = 0;
  static constexpr int64_t kActBlockBytes = 0;
  // Prefetch (kernels/simd/common-inl.h): exactly one tile ahead. A longer distance sped
  // Q8_0 up on short rows but slowed Q4_0 / Q4_1 down (README, known limits).
  static constexpr int64_t kPrefetchAheadBytes = 0;
  static constexpr bool kPrefetchLastByte = true;
};

// ---- Helpers ----------------------------------------------------------------------------------

FK_INLINE __m256i loadu256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
FK_INLINE __m128i loadu128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
FK_INLINE __m128i loadu64(const void* p) {
  return _mm_loadl_epi64(static_cast<const __m128i*>(p));
}

// The half at p, converted and broadcast to 8 lanes.
FK_INLINE __m256 bcast_fp16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(load_u16(p))));
}

// Sum over each 4-byte group of u * s (u unsigned bytes, s signed bytes): 8 int32 lanes.
FK_INLINE __m256i dot_us(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// 8 consecutive unsigned / signed bytes at p widened to int32.
FK_INLINE __m256i u8x8_to_i32(const uint8_t* p) { return _mm256_cvtepu8_epi32(loadu64(p)); }
FK_INLINE __m256i s8x8_to_i32(const uint8_t* p) { return _mm256_cvtepi8_epi32(loadu64(p)); }

// The MR x NR accumulators of a tile.
template <int MR, int NR>
FK_INLINE void zero(__m256 (&acc)[MR][NR]) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
}

// Writes the tile's outputs (the first nv weight rows), each accumulator reduced by hsum.
template <int MR, int NR>
FK_INLINE void store_tile(const MatmulArgs& a, int64_t i0, int64_t j0, int nv,
                          const __m256 (&acc)[MR][NR]) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      if (j < nv) a.output[(i0 + i) * a.n + out_col(a, j0, j)] = hsum(acc[i][j]);
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX2_VEC_INL_H_
