// The avx512_vnni rows of the int8 path (kernels/registry.inc): the AVX-512 int8 kernels with
// kVnni = true (kernels/avx512/int8_path-inl.h): vpdpbusd for the u8 x s8 products, vpdpwssd
// for the K-quant sub-block scales. Only the int8 path: VNNI has nothing for f32 FMAs, so
// the f32 path of this CPU class is avx512's (dispatch falls back to it, kernels/matmul.h).
// Activations are packed by the avx512 packers (kernels/avx512/act_packers.cc).
#include "kernels/avx512/int8_path-inl.h"

namespace fk {

#define FK_ENTRY_kAvx512Vnni_kInt8(FORMAT, MIN_M) \
  run_int8<Format::FORMAT, MIN_M, /*kVnni=*/true>(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
