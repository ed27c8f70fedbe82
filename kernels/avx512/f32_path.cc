// The avx512 rows of the f32 path (kernels/registry.inc): the shared f32 path
// (kernels/simd/f32_path-inl.h) with VecAvx512 over the AVX-512 block decoders
// (kernels/avx512/codecs-inl.h), 16 weights at a time.
#include "kernels/avx512/codecs-inl.h"

namespace fk {

#define FK_ENTRY_kAvx512_kF32(FORMAT, MIN_M) run_f32<VecAvx512, Format::FORMAT>(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
