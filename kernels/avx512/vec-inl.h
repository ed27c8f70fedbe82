// AVX-512 (F/BW/DQ/VL, and VNNI where the library's flags allow it): the vector traits the
// shared scaffolding (kernels/simd/) is instantiated with, and the small helpers of the
// avx512 and avx512_vnni kernels. Textual header for those libraries' .cc files only (see
// kernels/simd/common-inl.h).
#ifndef KERNELS_AVX512_VEC_INL_H_
#define KERNELS_AVX512_VEC_INL_H_

#include <immintrin.h>

#include "kernels/simd/common-inl.h"

namespace fk {
namespace {

struct VecAvx512 {
  using F = __m512;       // kLanes floats
  using Mask = __mmask16;  // the first lanes of a partial vector
  static constexpr int kLanes = 16;

  static FK_INLINE F zero() { return _mm512_setzero_ps(); }
  static FK_INLINE F loadu(const float* p) { return _mm512_loadu_ps(p); }
  static FK_INLINE F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  // Lanes [0, n), 0 < n < kLanes; masked-off lanes load as 0.
  static FK_INLINE Mask first_lanes(int64_t n) {
    return static_cast<__mmask16>((1u << n) - 1);
  }
  static FK_INLINE F maskload(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static FK_INLINE float hsum(F v) { return _mm512_reduce_add_ps(v); }
  static FK_INLINE F set1(float x) { return _mm512_set1_ps(x); }
  static FK_INLINE void storeu(float* p, F v) { _mm512_storeu_ps(p, v); }
  static FK_INLINE void mask_storeu(float* p, Mask m, F v) { _mm512_mask_storeu_ps(p, m, v); }

  // Tiling (kernels/simd/driver-inl.h): 1 x 4 tiles for batch 1, 4 x 4 for batches over
  // blocks of activation rows of about half an L2, so they stay in L2 while each 4-row
  // strip of weights is swept over them; the last weight rows repeat in a full tile.
  static constexpr int kGemvNR = 4;
  static constexpr int kGemmMR = 4;
  static constexpr int kGemmNR = 4;
  static constexpr bool kNarrowTails = false;
  // Float weights (F32 / F16 / BF16, kernels/simd/f32_path-inl.h) below the panel rows'
  // MIN_M 16: 4 x 4 tiles (kGemmNR) over blocks of 768 KB. Batch 8 on the Intel Xeon: 4096x4096,
  // 1 thread, hot (kernel_bench --hot), 4 x 4 ran 42-43 GFLOP/s, 6 x 4 25-29, 8 x 3 24-25;
  // with cold weights (harness:sweep, 4 shapes, 2 threads) 4 x 4 and 6 x 4 were even
  // (1.07x / 1.11x ggml, within the run-to-run noise).
  static constexpr int kFloatGemmMR = 4;
  static constexpr int64_t kFloatActBlockBytes = 768 << 10;
  // Their panel GEMM (batches from 16, kernels/simd/f32_panel-inl.h): k blocks of 256 (one
  // block of 256 packed rows is 256 KB, a 24-row strip's block 24 KB). 128, 256 and 512
  // measured the same within noise (batch 64 / 256, 4096x4096, 1 thread, hot).
  static constexpr int64_t kFloatPanelKc = 256;
  static constexpr int64_t kActBlockBytes = 384 << 10;
  // Prefetch (kernels/simd/common-inl.h): at least 16 KB ahead. With short rows one tile is
  // too close to hide DRAM latency (SmolLM2's 576-wide rows: 612-byte Q8_0 rows, 2.4 KB
  // tiles; whole tiles ahead took its Q8_0 decode at 1 thread from 75 to 94 tok/s). Tiles
  // of 16 KB or more: one ahead.
  static constexpr int64_t kPrefetchAheadBytes = 16 << 10;
  static constexpr bool kPrefetchLastByte = false;
};

// Weight rows per tile of every AVX-512 tile micro-kernel (the int8 codecs gather the 4 rows'
// scales into one vector); the driver's tiles are that wide.
constexpr int kNR = 4;
static_assert(VecAvx512::kGemvNR == kNR && VecAvx512::kGemmNR == kNR, "4-row tiles");

// ---- Helpers ----------------------------------------------------------------------------------

FK_INLINE __m512i loadu512(const void* p) { return _mm512_loadu_si512(p); }
FK_INLINE __m512i load512(const void* p) { return _mm512_load_si512(p); }
FK_INLINE __m256i loadu256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
FK_INLINE __m128i loadu128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// Per int32 lane: the low 16 bits of lo in the low word, of hi in the high word (an int16
// pair for vpmaddwd / vpdpwssd, or a scale for both bytes of a word's vpmullw).
FK_INLINE __m512i int16_pair(__m512i lo, __m512i hi) {
  return _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(hi, 16));
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

// ---- u8 x s8 dot products of the int8 path ------------------------------------------------
//
// VNNI: vpdpbusd (4 products per int32 lane, no intermediate saturation). Without VNNI:
// vpmaddubsw (pairs, saturating at +-32767) then vpmaddwd; unsigned weights are at most 6-bit
// (2 * 63 * 127 = 16002, no saturation; two nibble pairs added as int16: 2 * 2 * 31 * 127 =
// 15748). Signed weights (Q8_0 / Q8_K): with VNNI as (w + 128) * y minus 128 * sum(y)
// (precomputed); without, as |w| * (y with w's sign) (|y| <= 127, so at most 2 * 127 * 127 =
// 32258 per pair).

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

// A signed weight vector prepared for products with signed activations.
struct SignedW {
  __m512i u;      // VNNI: w + 128 as unsigned bytes; otherwise |w|
  __mmask64 neg;  // otherwise: lanes where w < 0
};
template <bool kVnni>
FK_INLINE SignedW prep_signed(__m512i w) {
  if constexpr (kVnni) {
    return {_mm512_xor_si512(w, _mm512_set1_epi8(static_cast<char>(0x80))), 0};
  } else {
    return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w)};
  }
}
// acc + per lane: sum of 4 products w * y. VNNI: the caller's accumulator must carry
// -128 * sum(y) of the lane (the bias of w + 128).
template <bool kVnni>
FK_INLINE __m512i dot_signed(__m512i acc, const SignedW& w, __m512i y) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(acc, w.u, y);
  } else {
    const __m512i ys = _mm512_mask_sub_epi8(y, w.neg, _mm512_setzero_si512(), y);
    return _mm512_add_epi32(acc,
                            _mm512_madd_epi16(_mm512_maddubs_epi16(w.u, ys), _mm512_set1_epi16(1)));
  }
}

// A 64-byte table of 16-bit lanes (permute indices, patterns), built at compile time.
struct alignas(64) Words {
  uint16_t v[32];
};
struct alignas(64) Bytes {
  uint8_t v[64];
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_VEC_INL_H_
