// Shared by the AVX-512 variants only (kernels/variant_avx512.cc, variant_avx512_vnni.cc):
// helpers, the packed activation layouts of their int8 path, and the tiling driver.
//
// Everything here is in an anonymous namespace: each variant file gets its own copy, compiled
// with that file's ISA flags, so no function compiled for one instruction set can be picked
// by the linker for another. Include it from variant files only.
#ifndef KERNELS_AVX512_COMMON_H_
#define KERNELS_AVX512_COMMON_H_

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/formats.h"
#include "kernels/kernel_api.h"

namespace fk {
namespace {

#define FK_INLINE inline __attribute__((always_inline))
#define FK_NOINLINE __attribute__((noinline))

// ---- Small helpers ------------------------------------------------------------------------

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
FK_INLINE float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
FK_INLINE __m512i loadu512(const void* p) { return _mm512_loadu_si512(p); }
FK_INLINE __m512i load512(const void* p) { return _mm512_load_si512(p); }
FK_INLINE __m256i loadu256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
FK_INLINE __m128i loadu128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// The value, pinned in a register: stops the compiler from re-loading a vector from memory
// for each of its uses (it does so for vpermt2w's overwritten operand), which costs load
// slots, the scarce resource of these kernels.
FK_INLINE __m512i in_reg(__m512i v) {
  __asm__("" : "+v"(v));
  return v;
}

// Mask of the low `bytes` bits (bytes in [0, 64]).
FK_INLINE __mmask64 low_bytes_mask(int bytes) {
  return bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
}

// init + per int32 lane: the sum of the 4 products u * s of its bytes, for two vector pairs
// (u unsigned, s signed bytes). VNNI: two vpdpbusd. Without: vpmaddubsw per pair, the two
// pairs added as int16, then vpmaddwd; |4 * u * s| must fit int16, so u <= 64 (the 4-, 5- and
// 6-bit weights that use this; |s| <= 127).
template <bool kVnni>
FK_INLINE __m512i dot2_u8s8(__m512i init, __m512i u0, __m512i s0, __m512i u1, __m512i s1) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, u0, s0), u1, s1);
  } else {
    const __m512i p = _mm512_add_epi16(_mm512_maddubs_epi16(u0, s0), _mm512_maddubs_epi16(u1, s1));
    return _mm512_add_epi32(init, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
  }
}

// A 64-byte table of 16-bit lanes (permute indices, patterns), built at compile time.
struct alignas(64) Words {
  uint16_t v[32];
};
struct alignas(64) Bytes {
  uint8_t v[64];
};
struct alignas(64) Dwords {
  uint32_t v[16];
};

// Software prefetch of bytes [off, off + bytes) of the 4 weight rows of a later tile (the
// next one, or the first at least 16 KB ahead). Rows are only a few KB long, too short
// for the hardware prefetchers to ramp up on. Into L2 (T1), not L1: a tile's worth of
// lines in flight would overrun L1's few miss buffers and stall the loads the kernel
// needs now (prefetching into L1 halved streaming GEMV speed). Address arithmetic in
// uintptr_t: past the last row the addresses point outside the weights, which prefetch
// tolerates.
constexpr int64_t kPrefetchAheadBytes = 16 << 10;
FK_INLINE void prefetch_next_tile(const uint8_t* const (&w)[4], int64_t row_bytes, int64_t off,
                                  int64_t bytes) {
  // At least kPrefetchAheadBytes ahead: with short rows one tile is too close to hide DRAM
  // latency (SmolLM2's 576-wide rows: 612-byte Q8_0 rows, 2.4 KB tiles; whole tiles ahead
  // took its Q8_0 decode at 1 thread from 75 to 94 tok/s). Tiles of 8 KB or more: one ahead.
  const int64_t tile_bytes = 4 * row_bytes;
  const int64_t ahead = tile_bytes * std::max<int64_t>(1, kPrefetchAheadBytes / tile_bytes);
  for (int j = 0; j < 4; ++j) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(w[j]) + ahead + off;
    for (int64_t o = 0; o < bytes; o += 64)
      _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T1);
  }
}

// ---- Tiling driver ------------------------------------------------------------------------
//
// Every kernel is a micro-kernel K::tile<MR>(args, i0, j0, nv) computing the MR x 4 block of
// outputs output[i0 .. i0+MR)[j0 .. j0+4) over the whole of k, decoding each weight block
// once and using it for all MR activation rows held in registers. When fewer than 4 weight
// rows remain (nv < 4), the missing rows repeat the last valid one and are not stored.
// Each output has its own accumulator and sees exactly the same operations whatever tile
// it is computed in (lanes never mix rows), reduced once at the end in a fixed order: an
// output's bits never depend on how [0, n) was split between calls or threads.
//
// Batch 1 runs 1 x 4 tiles (four weight rows share every activation load). Batch > 1 runs
// 4 x 4 tiles over blocks of activation rows small enough to stay in L2 while each 4-row
// strip of weights is swept over them.
constexpr int kNR = 4;
constexpr int kMR = 4;
constexpr int64_t kActBlockBytes = 384 << 10;  // activation rows per block: about L2 / 2

template <class K>
void run_tiles(const MatmulArgs& a, int64_t n_begin, int64_t n_end, int64_t act_row_bytes) {
  if (a.m <= 0 || n_begin >= n_end) return;
  if (a.m == 1) {
    for (int64_t j = n_begin; j < n_end; j += kNR)
      K::template tile<1>(a, 0, j, static_cast<int>(std::min<int64_t>(kNR, n_end - j)));
    return;
  }
  const int64_t mc =
      std::max<int64_t>(kMR, kActBlockBytes / std::max<int64_t>(1, act_row_bytes) / kMR * kMR);
  for (int64_t ib = 0; ib < a.m; ib += mc) {
    const int64_t ie = std::min(a.m, ib + mc);
    for (int64_t j = n_begin; j < n_end; j += kNR) {
      const int nv = static_cast<int>(std::min<int64_t>(kNR, n_end - j));
      int64_t i = ib;
      for (; i + kMR <= ie; i += kMR) K::template tile<kMR>(a, i, j, nv);
      switch (ie - i) {
        case 3: K::template tile<3>(a, i, j, nv); break;
        case 2: K::template tile<2>(a, i, j, nv); break;
        case 1: K::template tile<1>(a, i, j, nv); break;
        default: break;
      }
    }
  }
}

// The 4 weight rows of a tile starting at j0 with nv valid rows (the rest repeat the last).
FK_INLINE void tile_rows(const MatmulArgs& a, int64_t j0, int nv, const uint8_t* (&w)[4]) {
  for (int j = 0; j < kNR; ++j) w[j] = a.weights + (j0 + std::min(j, nv - 1)) * a.row_bytes;
}

// ---- Packed activation layouts of the int8 path ---------------------------------------------
//
// Both hold exactly the reference quantizer's values (Q8_0: fp16 d, q = roundf(x / d);
// Q8_K: float d, q = nearest_int(-127 x / max)), reordered so that a weight block's decoded
// bytes line up with them without shuffles, plus sums the kernels need, precomputed once.

// Q8_0, in groups of 4 blocks (128 elements). y holds the first halves (elements 0..15) of
// the 4 blocks, then the second halves (16..31): y[16b + t] = q_b[t], y[64 + 16b + t] =
// q_b[16 + t]. A dot over 64-byte vectors then leaves block b in int32 lanes 4b..4b+3.
// Lane l (block l / 4) sees 8 quants: y[4l .. 4l+3] and y[64 + 4l .. 64 + 4l+3]; aux[l] is
// `bias` times their sum (an integer, for Q4_0 / Q5_0 / Q8_0 offsets) or, for Q4_1, the
// float da_b * (sum of block b's 32 quants), b = l / 4. A partial last group is padded
// with zeros (da = 0).
struct alignas(64) ActQ8_0x4 {
  int8_t y[128];
  float da[16];     // lane l: the scale of block l / 4 (fp16 rounded, as a float)
  int32_t aux[16];  // see above (float bits for Q4_1)
};
static_assert(sizeof(ActQ8_0x4) == 256, "packed Q8_0 group is 256 bytes");

// Q8_K, one 256-element super-block. y is in element order, or for Q4_K/Q5_K ("nibble"
// order) in 32-element sub-blocks 0 2 1 3 4 6 5 7, the order of a Q4_K block's nibbles.
struct alignas(64) ActQ8_K {
  int8_t y[256];
  float d;
  int32_t sum;          // sum of all 256 quants
  int16_t nbsum16[16];  // -16 * (sum of quants 16 s .. 16 s + 15), s = 0..15 (fits int16)
  int16_t bsum32[8];    // sum of quants 32 s .. 32 s + 31, s = 0..7
  uint8_t pad[8];
};
static_assert(sizeof(ActQ8_K) == 320, "packed Q8_K super-block is 320 bytes");

// Position in ActQ8_K::y of sub-block s (32 elements) in nibble order.
constexpr int nibble_slot(int s) { return (s & ~3) + ((s & 1) << 1) + ((s >> 1) & 1); }

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_COMMON_H_
