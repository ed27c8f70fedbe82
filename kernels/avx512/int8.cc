// The avx512 rows of the int8 path (kernels/registry.inc): AVX-512 F/BW/DQ/VL, u8 x s8
// products by vpmaddubsw + vpmaddwd (kernels/avx512/int8_path-inl.h with kVnni = false).
// Activations are packed by kernels/avx512/act_packers.cc.
#include "kernels/avx512/int8_path-inl.h"

namespace fk {

#define FK_ENTRY_kAvx512_kInt8(FORMAT, MIN_M) \
  run_int8<Format::FORMAT, MIN_M, /*kVnni=*/false>(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
