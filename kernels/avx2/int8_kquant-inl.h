// The avx2 int8 path of the K-quants (textual header, see kernels/simd/common-inl.h): a tile
// micro-kernel over the codecs of Q8_K kind (kernels/avx2/codecs-inl.h) against the
// reference Q8_K activation blocks.
//
// Per super-block: the codec's exact int32 sums of sc_s * q * y over all sub-blocks (lanes),
// then one float FMA per output with d * da; terms with other scales (Q4_K / Q5_K mins) are
// the codec's, straight into the accumulator.
#ifndef KERNELS_AVX2_INT8_KQUANT_INL_H_
#define KERNELS_AVX2_INT8_KQUANT_INL_H_

#include "kernels/avx2/codecs-inl.h"

namespace fk {
namespace {

template <class C>
struct KQuantInt8 {
  static_assert(C::kAct == Format::kQ8_K, "a codec of Q8_K kind");
  using Prep = NoPrep;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    const int64_t nb = a.k / kQK_K;
    const uint8_t* w[NR];
    const uint8_t* y[MR];
    tile_rows(a, j0, nv, w);
    tile_acts(a, i0, y);
    __m256 acc[MR][NR];
    zero(acc);
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_ahead<VecAvx2>(a, w, b * C::kBytes, C::kBytes);
      const uint8_t* yb[MR];
      float da[MR];
      for (int i = 0; i < MR; ++i) {
        yb[i] = y[i] + b * kQ8_KBytes;
        da[i] = load_f32(yb[i] + kQ8_KD);
      }
      const uint8_t* blk[NR];
      for (int j = 0; j < NR; ++j) blk[j] = w[j] + b * C::kBytes;
      __m256i isum[MR][NR];
      C::template block<MR, NR>(blk, yb, da, acc, isum);
      for (int j = 0; j < NR; ++j) {
        const float d = C::d(blk[j]);
        for (int i = 0; i < MR; ++i)
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]), _mm256_set1_ps(d * da[i]),
                                      acc[i][j]);
      }
    }
    store_tile(a, i0, j0, nv, acc);
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX2_INT8_KQUANT_INL_H_
