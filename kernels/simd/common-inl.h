// Pieces every SIMD variant shares: inlining macros, unaligned scalar loads, the K-quant
// scale unpacking, the weight rows of a tile, and the software-prefetch policy.
//
// Textual header (-inl.h): included only by the .cc files of the ISA libraries
// (kernels/avx2/, kernels/avx512/), each compiling it with its own ISA flags. Everything is
// in an anonymous namespace, so every translation unit has its own copy and no function
// compiled for one instruction set can be picked by the linker for another.
#ifndef KERNELS_SIMD_COMMON_INL_H_
#define KERNELS_SIMD_COMMON_INL_H_

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/formats.h"
#include "kernels/kernel_api.h"

#define FK_INLINE inline __attribute__((always_inline))
#define FK_NOINLINE __attribute__((noinline))

namespace fk {
namespace {

// ---- Unaligned scalar loads (weight rows and blocks have no alignment) ---------------------

FK_INLINE uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
FK_INLINE uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
FK_INLINE uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
FK_INLINE float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Q4_K / Q5_K: the 6-bit scales and mins of the 8 sub-blocks from the 12 packed bytes,
// one per byte of *sc / *mn, with scalar integer operations (which leave the vector units
// to the products).
//   Sub-blocks 0-3: low 6 bits of bytes 0-3 (scales) and 4-7 (mins).
//   Sub-blocks 4-7: low nibble (scales) / high nibble (mins) of bytes 8-11, plus the top
//   2 bits of bytes 0-3 / 4-7 as bits 4-5.
FK_INLINE void unpack_k4_scales(const uint8_t* s12, uint64_t* sc, uint64_t* mn) {
  const uint32_t u0 = load_u32(s12), u1 = load_u32(s12 + 4), u2 = load_u32(s12 + 8);
  const uint32_t sc_lo = u0 & 0x3F3F3F3Fu, mn_lo = u1 & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (u2 & 0x0F0F0F0Fu) | ((u0 >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((u2 >> 4) & 0x0F0F0F0Fu) | ((u1 >> 2) & 0x30303030u);
  *sc = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *mn = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
}

// Q3_K: the 16 stored 6-bit scales (0..63; the scale is the value - 32) from the 12 packed
// bytes, one per byte of the 16 bytes at out (scales 4w .. 4w + 3 in word w), with scalar
// integer operations, returned as a vector. Low 4 bits: the low nibbles of bytes 0-7 (scales 0-7), then their high
// nibbles (scales 8-15); high 2 bits: bits 2 (s / 4), +1 of byte 8 + s % 4, i.e. the 2-bit
// field s / 4 of each of the bytes 8-11, moved to bits 4-5.
FK_INLINE __m128i unpack_k3_scales16(const uint8_t* s12) {
  const uint32_t a0 = load_u32(s12), a1 = load_u32(s12 + 4), a2 = load_u32(s12 + 8);
  return _mm_set_epi32(static_cast<int>(((a1 >> 4) & 0x0F0F0F0Fu) | (((a2 >> 6) & 0x03030303u) << 4)),
                       static_cast<int>(((a0 >> 4) & 0x0F0F0F0Fu) | (((a2 >> 4) & 0x03030303u) << 4)),
                       static_cast<int>((a1 & 0x0F0F0F0Fu) | (((a2 >> 2) & 0x03030303u) << 4)),
                       static_cast<int>((a0 & 0x0F0F0F0Fu) | ((a2 & 0x03030303u) << 4)));
}

// True when T is a complete type here (a codec specialization exists), for clear errors.
template <class T, class = void>
struct IsComplete : std::false_type {};
template <class T>
struct IsComplete<T, std::void_t<decltype(sizeof(T))>> : std::true_type {};

// ---- Tiles ----------------------------------------------------------------------------------

// Per-call data a kernel builds once from MatmulArgs (kernels/simd/driver-inl.h); most need
// none.
struct NoPrep {
  explicit NoPrep(const MatmulArgs&) {}
};

// The NR weight rows of a tile starting at row j0 with nv valid rows: rows past the valid
// ones repeat the last valid one (their outputs are computed and not stored).
template <int NR>
FK_INLINE void tile_rows(const MatmulArgs& a, int64_t j0, int nv, const uint8_t* (&w)[NR]) {
  for (int j = 0; j < NR; ++j)
    w[j] = a.weights + (j0 + std::min(j, nv - 1) * a.row_step) * a.row_bytes;
}

// The packed activation rows i0 .. i0 + MR - 1 of a tile, as the kernel's block type.
template <class Act, int MR>
FK_INLINE void tile_acts(const MatmulArgs& a, int64_t i0, const Act* (&y)[MR]) {
  for (int i = 0; i < MR; ++i) y[i] = reinterpret_cast<const Act*>(a.act + (i0 + i) * a.act_row_bytes);
}

// The output column of a tile's weight row j (MatmulArgs::row_step).
FK_INLINE int64_t out_col(const MatmulArgs& a, int64_t j0, int j) { return j0 + j * a.row_step; }

// The f16 path (kernel_api.h), shared by its kernels of every ISA: activation row i's fp16
// values (f16_act_pack_row_ref's layout), and storing output (i, column of row j): the f32
// lanes' sum times the row's 2^-e, or, when that is not finite, the f32 path's sum of the
// input floats (f16_path_fallback).
FK_INLINE const uint8_t* f16_act_values(const MatmulArgs& a, int64_t i) {
  return a.act + i * a.act_row_bytes + kF16ActValuesOffset;
}
FK_INLINE void store_f16_path_output(const MatmulArgs& a, int64_t i, int64_t col,
                                     const uint8_t* w, float sum) {
  float unscale;
  std::memcpy(&unscale, a.act + i * a.act_row_bytes, sizeof unscale);
  float v = sum * unscale;
  if (!std::isfinite(v)) v = f16_path_fallback(a.input + i * a.k, w, a.k);
  a.output[i * a.n + col] = v;
}

// Software prefetch of bytes [off, off + bytes) of the NR weight rows of a later tile: the
// next one (V::kPrefetchAheadBytes == 0), or the first whose rows start at least
// V::kPrefetchAheadBytes (in all NR rows together) ahead. The next tile's row j is NR rows
// on (adjacent rows, row_step 1) or one row on (NR sequential streams, row_step > 1). The
// hardware prefetchers alone keep up with neither: Q2_K, kernel_bench from DRAM, 2 threads,
// without this took 2x the time on adjacent-row tiles and 1.1x-1.2x on streams. Into L2
// (T1), not L1: a tile's worth of lines in flight would overrun L1's few miss buffers and
// stall the loads the kernel needs now. V::kPrefetchLastByte also touches the range's last
// byte (its line, when the range is not line-aligned). Address arithmetic in uintptr_t:
// past the last row the addresses point outside the weights, which prefetch tolerates.
// Nothing when a.software_prefetch is false (dispatch's choice per CPU and kernel: where
// the hardware prefetchers alone are faster).
template <class V, int NR>
FK_INLINE void prefetch_ahead(const MatmulArgs& a, const uint8_t* const (&w)[NR], int64_t off,
                              int64_t bytes) {
  if (!a.software_prefetch) return;
  const int64_t tile_bytes = NR * a.row_bytes;
  int64_t tiles = 1;
  if constexpr (V::kPrefetchAheadBytes > 0)
    tiles = std::max<int64_t>(1, V::kPrefetchAheadBytes / tile_bytes);
  const int64_t ahead = tiles * (a.row_step == 1 ? tile_bytes : a.row_bytes);
  for (int j = 0; j < NR; ++j) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(w[j]) + ahead + off;
    for (int64_t o = 0; o < bytes; o += 64)
      _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T1);
    if constexpr (V::kPrefetchLastByte)
      _mm_prefetch(reinterpret_cast<const char*>(p + bytes - 1), _MM_HINT_T1);
  }
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_SIMD_COMMON_INL_H_
