// The gated activation for the avx512 variant (kernels/activation.h): the shared SIMD body
// (kernels/simd/gated-inl.h) over 16 lanes, compiled with AVX-512 flags.
#include "kernels/avx512/vec-inl.h"
#include "kernels/simd/gated-inl.h"

namespace fk {
namespace {

// The ISA's vector traits (VecAvx512) plus the float and int32 lane operations of the gate.
struct GateLanesAvx512 : VecAvx512 {
  using I = __m512i;

  static FK_INLINE F add(F a, F b) { return _mm512_add_ps(a, b); }
  static FK_INLINE F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static FK_INLINE F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static FK_INLINE F div(F a, F b) { return _mm512_div_ps(a, b); }
  static FK_INLINE F neg(F a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
  static FK_INLINE F max(F a, F b) { return _mm512_max_ps(a, b); }
  static FK_INLINE F min(F a, F b) { return _mm512_min_ps(a, b); }
  static FK_INLINE I as_int(F a) { return _mm512_castps_si512(a); }
  static FK_INLINE F as_float(I a) { return _mm512_castsi512_ps(a); }
  static FK_INLINE I set1_i(int32_t x) { return _mm512_set1_epi32(x); }
  static FK_INLINE I add_i(I a, I b) { return _mm512_add_epi32(a, b); }
  static FK_INLINE I sub_i(I a, I b) { return _mm512_sub_epi32(a, b); }
  static FK_INLINE I shl23_i(I a) { return _mm512_slli_epi32(a, 23); }
};

}  // namespace

void gated__avx512(GateKind kind, float* gate, const float* up, int64_t n) {
  gated_simd<GateLanesAvx512>(kind, gate, up, n);
}

}  // namespace fk
