// The avx2 rows of the int8 path (kernels/registry.inc). Activations arrive as the reference
// quantizer's blocks (Q8_0 for the 32-element formats, Q8_K for the K-quants, packed by
// kernels/avx2/act_packers.cc); weight blocks are unpacked to bytes by the format's codec
// (kernels/avx2/codecs-inl.h) and multiplied with _mm256_maddubs_epi16 (unsigned x signed)
// + _mm256_madd_epi16; integer sums are exact, then scaled in float once per block
// (kernels/avx2/int8_legacy-inl.h) or super-block (kernels/avx2/int8_kquant-inl.h).
#include "kernels/avx2/codecs-inl.h"
#include "kernels/avx2/int8_kquant-inl.h"
#include "kernels/avx2/int8_legacy-inl.h"

namespace fk {
namespace {

// The kernel of registry row (F, kMinM): the tile driver over the format's codec, of the
// kind its activation blocks say.
template <Format F, int64_t kMinM>
void run_int8(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  static_assert(kMinM == 1, "the avx2 int8 path has only general rows (MIN_M 1)");
  static_assert(IsComplete<Int8Codec<F>>::value,
                "a registry row names an avx2 int8 kernel of a format without an Int8Codec in "
                "kernels/avx2/codecs-inl.h");
  using C = Int8Codec<F>;
  if constexpr (C::kAct == Format::kQ8_0) {
    run_tiles<VecAvx2, LegacyInt8<C>>(a, n_begin, n_end);
  } else {
    run_tiles<VecAvx2, KQuantInt8<C>>(a, n_begin, n_end);
  }
}

}  // namespace

#define FK_ENTRY_kAvx2_kInt8(FORMAT, MIN_M) run_int8<Format::FORMAT, MIN_M>(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
