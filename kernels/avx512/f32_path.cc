// The avx512 rows of the f32 path (kernels/registry.inc): the shared f32 path
// (kernels/simd/f32_path-inl.h) with VecAvx512 over the AVX-512 block decoders
// (kernels/avx512/codecs-inl.h), 16 weights at a time.
#include "kernels/avx512/codecs-inl.h"
#include "kernels/simd/f32_panel-inl.h"

namespace fk {

// MIN_M > 1: the float formats' panel GEMM (kernels/simd/f32_panel-inl.h).
#define FK_ENTRY_kAvx512_kF32(FORMAT, MIN_M)                           \
  if constexpr ((MIN_M) > 1) {                                          \
    run_f32_panel<VecAvx512, Format::FORMAT>(a, n_begin, n_end);        \
  } else {                                                              \
    run_f32<VecAvx512, Format::FORMAT>(a, n_begin, n_end);              \
  }
#include "kernels/simd/entry_points-inl.h"

// The panels the MIN_M > 1 rows read, packed by dispatch once per call.
extern const ActPacker act_f32_panel__avx512 =
    FloatPanels<VecAvx512>::packer("f32_panel__avx512");

}  // namespace fk
