// The gated activation for the avx512 variant (kernels/activation.h): the shared SIMD body
// (kernels/simd/gated-inl.h) over 16 lanes, compiled with AVX-512 flags.
#include "kernels/simd/gated-inl.h"

namespace fk {
namespace {

struct GateLanesAvx512 {
  using F = __m512;
  using I = __m512i;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;

  static FK_GATE_INLINE F set1(float x) { return _mm512_set1_ps(x); }
  static FK_GATE_INLINE F add(F a, F b) { return _mm512_add_ps(a, b); }
  static FK_GATE_INLINE F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static FK_GATE_INLINE F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static FK_GATE_INLINE F div(F a, F b) { return _mm512_div_ps(a, b); }
  static FK_GATE_INLINE F neg(F a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
  static FK_GATE_INLINE F max(F a, F b) { return _mm512_max_ps(a, b); }
  static FK_GATE_INLINE F min(F a, F b) { return _mm512_min_ps(a, b); }
  static FK_GATE_INLINE I as_int(F a) { return _mm512_castps_si512(a); }
  static FK_GATE_INLINE F as_float(I a) { return _mm512_castsi512_ps(a); }
  static FK_GATE_INLINE I set1_i(int32_t x) { return _mm512_set1_epi32(x); }
  static FK_GATE_INLINE I add_i(I a, I b) { return _mm512_add_epi32(a, b); }
  static FK_GATE_INLINE I sub_i(I a, I b) { return _mm512_sub_epi32(a, b); }
  static FK_GATE_INLINE I shl23_i(I a) { return _mm512_slli_epi32(a, 23); }
  static FK_GATE_INLINE F loadu(const float* p) { return _mm512_loadu_ps(p); }
  static FK_GATE_INLINE void storeu(float* p, F v) { _mm512_storeu_ps(p, v); }
  // Lanes [0, n), 0 < n < kLanes.
  static FK_GATE_INLINE Mask first_lanes(int64_t n) {
    return static_cast<__mmask16>((1u << n) - 1);
  }
  static FK_GATE_INLINE F maskload(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static FK_GATE_INLINE void maskstore(float* p, Mask m, F v) { _mm512_mask_storeu_ps(p, m, v); }
};

}  // namespace

void gated__avx512(GateKind kind, float* gate, const float* up, int64_t n) {
  gated_simd<GateLanesAvx512>(kind, gate, up, n);
}

}  // namespace fk
