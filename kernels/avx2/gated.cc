// The gated activation for the avx2 variant (kernels/activation.h): the shared SIMD body
// (kernels/simd/gated-inl.h) over 8 lanes, compiled with AVX2 flags.
#include "kernels/simd/gated-inl.h"

namespace fk {
namespace {

struct GateLanesAvx2 {
  using F = __m256;
  using I = __m256i;
  using Mask = __m256i;
  static constexpr int kLanes = 8;

  static FK_GATE_INLINE F set1(float x) { return _mm256_set1_ps(x); }
  static FK_GATE_INLINE F add(F a, F b) { return _mm256_add_ps(a, b); }
  static FK_GATE_INLINE F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static FK_GATE_INLINE F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static FK_GATE_INLINE F div(F a, F b) { return _mm256_div_ps(a, b); }
  static FK_GATE_INLINE F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static FK_GATE_INLINE F max(F a, F b) { return _mm256_max_ps(a, b); }
  static FK_GATE_INLINE F min(F a, F b) { return _mm256_min_ps(a, b); }
  static FK_GATE_INLINE I as_int(F a) { return _mm256_castps_si256(a); }
  static FK_GATE_INLINE F as_float(I a) { return _mm256_castsi256_ps(a); }
  static FK_GATE_INLINE I set1_i(int32_t x) { return _mm256_set1_epi32(x); }
  static FK_GATE_INLINE I add_i(I a, I b) { return _mm256_add_epi32(a, b); }
  static FK_GATE_INLINE I sub_i(I a, I b) { return _mm256_sub_epi32(a, b); }
  static FK_GATE_INLINE I shl23_i(I a) { return _mm256_slli_epi32(a, 23); }
  static FK_GATE_INLINE F loadu(const float* p) { return _mm256_loadu_ps(p); }
  static FK_GATE_INLINE void storeu(float* p, F v) { _mm256_storeu_ps(p, v); }
  // Lanes [0, n), 0 < n < kLanes.
  static FK_GATE_INLINE Mask first_lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static FK_GATE_INLINE F maskload(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static FK_GATE_INLINE void maskstore(float* p, Mask m, F v) { _mm256_maskstore_ps(p, m, v); }
};

}  // namespace

void gated__avx2(GateKind kind, float* gate, const float* up, int64_t n) {
  gated_simd<GateLanesAvx2>(kind, gate, up, n);
}

}  // namespace fk
