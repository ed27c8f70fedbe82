// The avx2 rows of the f32 path (kernels/registry.inc): the shared f32 path
// (kernels/simd/f32_path-inl.h) with VecAvx2 over the avx2 block decoders
// (kernels/avx2/codecs-inl.h). Weights are decoded to scaled floats, 8 at a time, in
// registers and fed to FMAs against the f32 activations.
#include "kernels/avx2/codecs-inl.h"

namespace fk {

#define FK_ENTRY_kAvx2_kF32(FORMAT, MIN_M) run_f32<VecAvx2, Format::FORMAT>(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
