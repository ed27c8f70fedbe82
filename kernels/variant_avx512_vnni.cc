// AVX-512 VNNI variant: the int8-path kernels of kernels/avx512_int8.h with kVnni = true
// (vpdpbusd for the u8 x s8 products, vpdpwssd for the K-quant sub-block scales). Only the
// int8 path: VNNI has nothing for f32 FMAs, so the f32 path of this CPU class is avx512's
// (dispatch falls back to it when avx512_vnni is requested, kernels/matmul.h). Activations
// are packed by the avx512 packers (defined in kernels/variant_avx512.cc; the layouts are
// avx512_common.h's).
#include "kernels/avx512_int8.h"

namespace fk {

namespace {
using Int8 = Int8Kernels<true>;
}  // namespace

// ---- The registry's entry points (rows in the avx512_vnni section of kernels/registry.inc) --

void q4_0_int8__avx512_vnni(const MatmulArgs& a, int64_t nb, int64_t ne) { Int8::q4_0(a, nb, ne); }
void q4_1_int8__avx512_vnni(const MatmulArgs& a, int64_t nb, int64_t ne) { Int8::q4_1(a, nb, ne); }
void q5_0_int8__avx512_vnni(const MatmulArgs& a, int64_t nb, int64_t ne) { Int8::q5_0(a, nb, ne); }
void q8_0_int8__avx512_vnni(const MatmulArgs& a, int64_t nb, int64_t ne) { Int8::q8_0(a, nb, ne); }
void q4_k_int8__avx512_vnni(const MatmulArgs& a, int64_t nb, int64_t ne) { Int8::q4_k(a, nb, ne); }
void q5_k_int8__avx512_vnni(const MatmulArgs& a, int64_t nb, int64_t ne) { Int8::q5_k(a, nb, ne); }
void q6_k_int8__avx512_vnni(const MatmulArgs& a, int64_t nb, int64_t ne) { Int8::q6_k(a, nb, ne); }
void q8_k_int8__avx512_vnni(const MatmulArgs& a, int64_t nb, int64_t ne) { Int8::q8_k(a, nb, ne); }

}  // namespace fk
