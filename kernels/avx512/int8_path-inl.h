// The AVX-512 int8 path's kernels per registry row, for both AVX-512 variants (textual
// header, see kernels/simd/common-inl.h; included by kernels/avx512/int8.cc with kVnni =
// false and kernels/avx512/int8_vnni.cc with kVnni = true).
#ifndef KERNELS_AVX512_INT8_PATH_INL_H_
#define KERNELS_AVX512_INT8_PATH_INL_H_

#include "kernels/avx512/codecs-inl.h"

namespace fk {
namespace {

// The kernel of registry row (F, kMinM): for the general row (MIN_M 1) the 4 x 4 tile driver
// over the format's codec, of the kind its activation blocks say; for a batch row (MIN_M > 1)
// the weight-panel kernel over the format's panel codec.
template <Format F, int64_t kMinM, bool kVnni>
void run_int8(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  if constexpr (kMinM > 1) {
    static_assert(IsComplete<PanelCodec<F>>::value,
                  "a registry row with MIN_M > 1 names an AVX-512 panel kernel of a format "
                  "without a PanelCodec in kernels/avx512/codecs-inl.h");
    KPanelInt8<PanelCodec<F>, kVnni>::run(a, n_begin, n_end);
  } else {
    static_assert(IsComplete<Int8Codec<F, kVnni>>::value,
                  "a registry row names an AVX-512 int8 kernel of a format without an "
                  "Int8Codec in kernels/avx512/codecs-inl.h");
    using C = Int8Codec<F, kVnni>;
    if constexpr (C::kAct == Format::kQ8_0) {
      run_tiles<VecAvx512, LegacyInt8<C>>(a, n_begin, n_end);
    } else if constexpr (PairTile<C>::value) {
      run_tiles<VecAvx512, KQuantPairInt8<C>>(a, n_begin, n_end);
    } else {
      run_tiles<VecAvx512, KQuantInt8<C>>(a, n_begin, n_end);
    }
  }
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_INT8_PATH_INL_H_
